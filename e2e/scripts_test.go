package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runLib runs script in bash after sourcing scripts/lib.sh, with the run
// folder moved to runDir so the test never touches the checkout's .run/.
// Values reach the script through env ("NAME=value"), never through its
// text. It returns standard output and standard error together, and the
// exit code.
func runLib(t *testing.T, runDir, script string, env ...string) (string, int) {
	t.Helper()
	prelude := `source "$LIB"
RUN_DIR=$TEST_RUN_DIR
PID_DIR=$RUN_DIR/pids
WORKER_SHUTDOWN_FILE=$PID_DIR/worker-shutdown-seconds
`
	cmd := exec.CommandContext(t.Context(), "bash", "-c", prelude+script)
	cmd.Env = append(os.Environ(),
		"LIB="+filepath.Join(repoRoot(t), "scripts", "lib.sh"),
		"TEST_RUN_DIR="+runDir,
	)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return string(out), exitErr.ExitCode()
	}
	if err != nil {
		t.Fatalf("run bash: %v", err)
	}
	return string(out), 0
}

func TestDurationSecondsParsesWorkerDurations(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want string
	}{
		{"", "30"},
		{"0", "30"},
		{"0s", "30"},
		{"45", "45"},
		{"30s", "30"},
		{"1m30s", "90"},
		{"2h", "7200"},
		{"1.5s", "2"},
		{"500ms", "1"},
		{"1m0.5s", "61"},
	}
	for _, tc := range cases {
		out, code := runLib(t, t.TempDir(), `duration_seconds "$IN"`, "IN="+tc.in)
		if code != 0 {
			t.Errorf("duration_seconds %q: exit code %d, output %q", tc.in, code, out)
			continue
		}
		if got := strings.TrimSpace(out); got != tc.want {
			t.Errorf("duration_seconds %q = %q, want %s", tc.in, got, tc.want)
		}
	}
}

func TestDurationSecondsRejectsInvalid(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"abc", "-5s", "5 s", "10x", "s"} {
		if out, code := runLib(t, t.TempDir(), `duration_seconds "$IN"`, "IN="+in); code == 0 {
			t.Errorf("duration_seconds %q succeeded with %q, want a failure", in, out)
		}
	}
}

// startFakeWorker starts a copy of sleep named queue-worker, so the
// process name check in stop_pid accepts it, and records its PID where
// run.sh records a worker's. SIGTERM ends it at once. The returned
// channel closes when the process has exited.
func startFakeWorker(t *testing.T, runDir string) <-chan struct{} {
	t.Helper()
	sleepPath, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("sleep is not installed: %v", err)
	}
	binary, err := os.ReadFile(sleepPath)
	if err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(t.TempDir(), "queue-worker")
	if err := os.WriteFile(fake, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(fake, "300")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the fake worker: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	pidDir := filepath.Join(runDir, "pids")
	if err := os.MkdirAll(pidDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pid := []byte(strconv.Itoa(cmd.Process.Pid) + "\n")
	if err := os.WriteFile(filepath.Join(pidDir, "worker-1.pid"), pid, 0o644); err != nil {
		t.Fatal(err)
	}
	return exited
}

func TestStopAppPrintsShutdownWait(t *testing.T) {
	t.Parallel()
	runDir := t.TempDir()
	exited := startFakeWorker(t, runDir)
	if err := os.WriteFile(filepath.Join(runDir, "pids", "worker-shutdown-seconds"), []byte("7\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	out, code := runLib(t, runDir, "stop_app")
	if code != 0 {
		t.Fatalf("stop_app: exit code %d, output:\n%s", code, out)
	}
	want := "waiting up to 7 s (WORKER_SHUTDOWN_TIMEOUT) for running jobs to finish"
	if !strings.Contains(out, want) {
		t.Errorf("stop_app output lacks %q:\n%s", want, out)
	}
	if !strings.Contains(out, "stopping queue-worker (pid ") {
		t.Errorf("stop_app output does not name the worker it stops:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(runDir, "pids", "worker-1.pid")); !os.IsNotExist(err) {
		t.Errorf("worker-1.pid still exists after stop_app (stat error %v)", err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Errorf("fake worker still runs 10 s after stop_app returned")
	}
}

func TestStopAppSilentWithoutWorkers(t *testing.T) {
	t.Parallel()
	runDir := t.TempDir()

	out, code := runLib(t, runDir, "stop_app")
	if code != 0 {
		t.Fatalf("stop_app: exit code %d, output:\n%s", code, out)
	}
	if strings.Contains(out, "waiting up to") {
		t.Errorf("stop_app announced a wait with no worker running:\n%s", out)
	}
}
