package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/testutil"
)

// binaryPath is the queue-worker binary that TestMain builds.
var binaryPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "queue-worker-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, "create temp dir:", err)
		os.Exit(1)
	}
	binaryPath = filepath.Join(dir, "queue-worker")
	build := exec.Command("go", "build", "-race", "-o", binaryPath, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build queue-worker:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a bytes.Buffer safe for the process's output copier and
// the test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// workerProcess is a running queue-worker.
type workerProcess struct {
	cmd    *exec.Cmd
	output *syncBuffer
	exited chan error
}

// startProcess runs the binary with only the given environment (plus
// PATH and HOME) and kills it at cleanup if it still runs.
func startProcess(t *testing.T, env map[string]string, args ...string) *workerProcess {
	t.Helper()
	cmd := exec.Command(binaryPath, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &workerProcess{cmd: cmd, output: &syncBuffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start queue-worker: %v", err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("queue-worker output:\n%s", p.output.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for a zero exit status.
func (p *workerProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("send SIGTERM: %v", err)
	}
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			t.Fatalf("queue-worker exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("queue-worker did not exit within 30s of SIGTERM")
	}
}

func workerEnv(srv *apitest.Server, id string) map[string]string {
	return map[string]string{
		"BROKER_URL":              srv.URL,
		"BROKER_TOKEN":            srv.WorkerToken,
		"WORKER_ID":               id,
		"WORKER_LEASE":            "3",
		"WORKER_POLL_WAIT":        "2s",
		"WORKER_SHUTDOWN_TIMEOUT": "300ms",
		"LOG_FORMAT":              "json",
	}
}

func enqueue(t *testing.T, srv *apitest.Server, jobType, payload string) *broker.Job {
	t.Helper()
	job, _, err := srv.Broker.Enqueue(context.Background(), broker.EnqueueParams{Type: jobType, Payload: json.RawMessage(payload), MaxAttempts: 3})
	if err != nil {
		t.Fatalf("enqueue %s: %v", jobType, err)
	}
	return job
}

func waitJob(t *testing.T, srv *apitest.Server, id, what string, cond func(*broker.Job) bool) *broker.Job {
	t.Helper()
	var job *broker.Job
	testutil.WaitFor(t, 30*time.Second, what, func() bool {
		var err error
		if job, err = srv.Broker.GetJob(context.Background(), id); err != nil {
			t.Fatalf("get job %s: %v", id, err)
		}
		return cond(job)
	})
	return job
}

func checkpointDone(job *broker.Job) int {
	var progress sleepProgress
	if json.Unmarshal(job.Checkpoint, &progress) != nil {
		return 0
	}
	return progress.Done
}

func TestBinaryRunsDemoHandlers(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	proc := startProcess(t, workerEnv(srv, testutil.RandomName("bin")))

	echo := enqueue(t, srv, "demo:echo", `{"greeting":"hello"}`)
	fail := enqueue(t, srv, "demo:fail", `{"error":"disk full","retryable":false}`)
	badSleep := enqueue(t, srv, "demo:sleep", `{"seconds":-1}`)

	done := waitJob(t, srv, echo.ID, "demo:echo to succeed", func(j *broker.Job) bool { return j.Status == broker.StatusSucceeded })
	if done.ResultSummary == nil || *done.ResultSummary != `{"greeting":"hello"}` {
		t.Errorf("demo:echo resultSummary %v, want the payload", done.ResultSummary)
	}
	failed := waitJob(t, srv, fail.ID, "demo:fail to fail", func(j *broker.Job) bool { return j.Status == broker.StatusFailed })
	if failed.ErrorMessage == nil || *failed.ErrorMessage != "disk full" || failed.Attempt != 1 {
		t.Errorf("demo:fail: error %v attempt %d, want %q after 1 attempt", failed.ErrorMessage, failed.Attempt, "disk full")
	}
	rejected := waitJob(t, srv, badSleep.ID, "bad demo:sleep to fail", func(j *broker.Job) bool { return j.Status == broker.StatusFailed })
	if rejected.ErrorMessage == nil || !strings.Contains(*rejected.ErrorMessage, "seconds must be a whole number") {
		t.Errorf("bad demo:sleep error %v, want it to name seconds", rejected.ErrorMessage)
	}
	proc.stop(t)
}

func TestBinaryReleasesJobOnSIGTERM(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	first := startProcess(t, workerEnv(srv, testutil.RandomName("first")))

	job := enqueue(t, srv, "demo:sleep", `{"seconds":4}`)
	waitJob(t, srv, job.ID, "a saved checkpoint of two seconds", func(j *broker.Job) bool {
		return j.Status == broker.StatusRunning && checkpointDone(j) >= 2
	})
	first.stop(t)

	released, err := srv.Broker.GetJob(context.Background(), job.ID)
	if err != nil {
		t.Fatalf("get job: %v", err)
	}
	if released.Status != broker.StatusQueued || released.Attempt != 0 {
		t.Fatalf("after SIGTERM: status %s attempt %d, want queued attempt 0", released.Status, released.Attempt)
	}
	doneBefore := checkpointDone(released)
	if doneBefore < 2 || doneBefore >= 4 {
		t.Fatalf("released checkpoint %s, want done from 2 to 3", released.Checkpoint)
	}
	if !strings.Contains(first.output.String(), "job released for shutdown") {
		t.Errorf("the log does not report the release")
	}

	secondID := testutil.RandomName("second")
	second := startProcess(t, workerEnv(srv, secondID))
	finished := waitJob(t, srv, job.ID, "the second worker to finish the job", func(j *broker.Job) bool {
		return j.Status == broker.StatusSucceeded
	})
	if finished.Attempt != 1 {
		t.Errorf("final attempt %d, want 1", finished.Attempt)
	}
	if finished.ClaimedBy == nil || *finished.ClaimedBy != secondID {
		t.Errorf("finished by %v, want %s", finished.ClaimedBy, secondID)
	}
	second.stop(t)
}

func TestBinaryHelpListsEnvironment(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(binaryPath, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, name := range []string{"BROKER_URL", "BROKER_TOKEN", "BROKER_CACERT", "WORKER_ID", "WORKER_CONCURRENCY",
		"WORKER_LEASE", "WORKER_PAUSE_POLL", "WORKER_SHUTDOWN_TIMEOUT", "WORKER_TYPES", "WORKER_CAPABILITIES", "LOG_FORMAT"} {
		if !strings.Contains(string(out), name) {
			t.Errorf("--help does not mention %s", name)
		}
	}
}

func TestBinaryRejectsBadSettings(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"missing URL", map[string]string{}, "BROKER_URL"},
		{"bad lease", map[string]string{"BROKER_URL": "http://127.0.0.1:1", "WORKER_LEASE": "soon"}, "WORKER_LEASE"},
		{"short lease", map[string]string{"BROKER_URL": "http://127.0.0.1:1", "WORKER_LEASE": "500ms"}, "LeaseDuration"},
		{"bad log format", map[string]string{"BROKER_URL": "http://127.0.0.1:1", "LOG_FORMAT": "xml"}, "LOG_FORMAT"},
		{"bad concurrency", map[string]string{"BROKER_URL": "http://127.0.0.1:1", "WORKER_CONCURRENCY": "two"}, "WORKER_CONCURRENCY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(binaryPath)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			for k, v := range tc.env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
				t.Fatalf("exit error %v, want status 1; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output %q does not name %s", out, tc.want)
			}
		})
	}
}
