package cli

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/testutil"
)

func TestStatusTableGolden(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:queued")
	enqueue(t, srv, "demo:running")
	claim(t, srv, "worker-1", 60)
	pauseViaAPI(t, srv, "drain", "Upgrading worker images")

	r := run(t, srv, "status")
	wantCode(t, r, ExitOK)
	checkGolden(t, "status_paused.golden", normalize(r.stdout, nil))
}

func TestStatusJSON(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:sleep")
	claim(t, srv, "worker-7", 60)

	r := run(t, srv, "status", "--output", "json")
	wantCode(t, r, ExitOK)
	var out struct {
		Snapshot pauseSnapshot       `json:"snapshot"`
		Workers  []broker.WorkerInfo `json:"workers"`
	}
	decodeJSON(t, r, &out)
	if out.Snapshot.WorkersPaused {
		t.Errorf("snapshot.workersPaused = true, want false on a fresh broker")
	}
	if out.Snapshot.Metrics.Running != 1 {
		t.Errorf("snapshot.metrics.running = %d, want 1", out.Snapshot.Metrics.Running)
	}
	if len(out.Workers) != 1 || out.Workers[0].ID != "worker-7" {
		t.Errorf("workers = %+v, want one worker worker-7", out.Workers)
	}
}

func TestPauseDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:first")
	first := claim(t, srv, "worker-a", 60)
	waitPast(t, *first.StartedAt)
	enqueue(t, srv, "demo:second")
	second := claim(t, srv, "worker-b", 60)
	before := snapshot(t, srv)

	r := run(t, srv, "pause", "--reason", "Upgrading worker images", "--dry-run")
	wantCode(t, r, ExitOK)
	ids := map[string]string{first.ID: "<JOB-A>", second.ID: "<JOB-B>"}
	checkGolden(t, "pause_dry_run.golden", normalize(r.stdout, ids))

	after := snapshot(t, srv)
	if after.Version != before.Version || after.WorkersPaused {
		t.Errorf("after dry run: version %d paused %v, want version %d and not paused", after.Version, after.WorkersPaused, before.Version)
	}
}

func TestPauseDryRunJSON(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:first")
	first := claim(t, srv, "worker-a", 60)
	waitPast(t, *first.StartedAt)
	enqueue(t, srv, "demo:second")
	claim(t, srv, "worker-b", 60)
	before := snapshot(t, srv)

	r := run(t, srv, "pause", "--reason", "Upgrade", "--mode", "quiesce", "--dry-run", "-o", "json")
	wantCode(t, r, ExitOK)
	var report dryRunReport
	decodeJSON(t, r, &report)
	if !report.DryRun || !report.WouldChange {
		t.Errorf("dryRun %v wouldChange %v, want both true", report.DryRun, report.WouldChange)
	}
	if report.NextVersion != before.Version+1 {
		t.Errorf("nextVersion = %d, want %d", report.NextVersion, before.Version+1)
	}
	if len(report.RunningJobs) != 2 {
		t.Errorf("runningJobs has %d jobs, want 2", len(report.RunningJobs))
	}
	if report.LongestRunning == nil || report.LongestRunning.ID != first.ID {
		t.Errorf("longestRunning = %+v, want the first claimed job %s", report.LongestRunning, first.ID)
	}
	if len(report.Workers) != 2 {
		t.Errorf("workers has %d entries, want 2 live workers", len(report.Workers))
	}
	if after := snapshot(t, srv); after.Version != before.Version || after.WorkersPaused {
		t.Errorf("after dry run: version %d paused %v, want version %d and not paused", after.Version, after.WorkersPaused, before.Version)
	}
}

func TestPauseDryRunPredictsConflict(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	pauseViaAPI(t, srv, "drain", "Same reason")

	r := run(t, srv, "pause", "--reason", "Same reason", "--dry-run", "-o", "json")
	wantCode(t, r, ExitOK)
	var report dryRunReport
	decodeJSON(t, r, &report)
	if report.WouldChange || report.RejectCode != "already_paused" {
		t.Errorf("wouldChange %v rejectCode %q, want false and already_paused", report.WouldChange, report.RejectCode)
	}

	r = run(t, srv, "pause", "--reason", "Other", "--expected-version", "1", "--dry-run", "-o", "json")
	wantCode(t, r, ExitOK)
	decodeJSON(t, r, &report)
	if report.RejectCode != "version_conflict" {
		t.Errorf("rejectCode %q, want version_conflict (the version is 2 after one pause)", report.RejectCode)
	}
}

func TestPauseAndResume(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:sleep")
	job := claim(t, srv, "worker-1", 60)

	r := run(t, srv, "pause", "--mode", "drain", "--reason", "Upgrade", "--expected-version", "1", "-o", "json")
	wantCode(t, r, ExitOK)
	var snap pauseSnapshot
	decodeJSON(t, r, &snap)
	if !snap.WorkersPaused || snap.modeLabel() != "drain" || snap.Version != 2 {
		t.Errorf("after pause: paused %v mode %s version %d, want true drain 2", snap.WorkersPaused, snap.modeLabel(), snap.Version)
	}

	r = run(t, srv, "resume", "--reason", "Done")
	wantCode(t, r, ExitError)
	if !strings.Contains(r.stderr, "not_drained") || !strings.Contains(r.stderr, "--force") {
		t.Errorf("stderr = %q, want the API code not_drained and a hint about --force", r.stderr)
	}

	r = run(t, srv, "resume", "--reason", "Done", "--force")
	wantCode(t, r, ExitOK)
	if !strings.Contains(r.stdout, "Workers:") || !strings.Contains(r.stdout, "Running") {
		t.Errorf("resume output = %q, want the running state", r.stdout)
	}
	if s := snapshot(t, srv); s.WorkersPaused || s.Version != 3 {
		t.Errorf("after resume: paused %v version %d, want false 3", s.WorkersPaused, s.Version)
	}
	complete(t, srv, job)
}

func TestPauseVersionConflict(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})

	r := run(t, srv, "pause", "--reason", "Upgrade", "--expected-version", "7")
	wantCode(t, r, ExitError)
	if !strings.Contains(r.stderr, "version_conflict") {
		t.Errorf("stderr = %q, want version_conflict", r.stderr)
	}
	if s := snapshot(t, srv); s.WorkersPaused {
		t.Errorf("workers paused after a rejected pause")
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"status", "--bogus"}, "unknown flag"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"pause without reason", []string{"pause"}, "missing --reason"},
		{"blank reason", []string{"pause", "--reason", "   "}, "missing --reason"},
		{"bad mode", []string{"pause", "--reason", "x", "--mode", "stop"}, "invalid --mode"},
		{"bad output", []string{"status", "-o", "xml"}, "invalid --output"},
		{"resume without reason", []string{"resume"}, "missing --reason"},
		{"jobs get without id", []string{"jobs", "get"}, "takes 1 argument"},
		{"bad recover mode", []string{"jobs", "recover", "x", "--mode", "delete"}, "invalid --mode"},
		{"bad duration", []string{"wait-drained", "--timeout", "soon"}, "invalid argument"},
		{"bad status", []string{"jobs", "list", "--status", "done"}, "invalid --status"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, srv, tc.args...)
			wantCode(t, r, ExitUsage)
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("stderr = %q, want it to contain %q", r.stderr, tc.want)
			}
		})
	}
	if s := snapshot(t, srv); s.WorkersPaused || s.Version != 1 {
		t.Errorf("usage errors changed the pause state: paused %v version %d", s.WorkersPaused, s.Version)
	}
}

func TestMissingToken(t *testing.T) {
	t.Setenv("BROKER_TOKEN", "") // not parallel: it changes the environment
	r := runWith(t, "http://127.0.0.1:1", "", "status")
	wantCode(t, r, ExitUsage)
	if !strings.Contains(r.stderr, "BROKER_TOKEN") {
		t.Errorf("stderr = %q, want a hint about BROKER_TOKEN", r.stderr)
	}
}

func TestWrongTokenIsError(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	r := runWith(t, srv.URL, "not-a-token", "status")
	wantCode(t, r, ExitError)
	if !strings.Contains(r.stderr, "unauthorized") || !strings.Contains(r.stderr, "BROKER_TOKEN") {
		t.Errorf("stderr = %q, want the code unauthorized and a hint", r.stderr)
	}
}

func TestWaitDrainedNotPaused(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	r := run(t, srv, "wait-drained", "--timeout", "5s")
	wantCode(t, r, ExitUsage)
	if !strings.Contains(r.stderr, "not paused") {
		t.Errorf("stderr = %q, want it to say the workers are not paused", r.stderr)
	}
}

func TestWaitDrainedAlreadySafe(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:queued") // queued jobs do not block the drain
	pauseViaAPI(t, srv, "drain", "Upgrade")

	r := run(t, srv, "wait-drained")
	wantCode(t, r, ExitOK)
	if !strings.Contains(r.stdout, "Safe to upgrade") {
		t.Errorf("stdout = %q, want Safe to upgrade", r.stdout)
	}
}

func TestWaitDrainedTimeout(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:sleep")
	job := claim(t, srv, "worker-1", 300)
	pauseViaAPI(t, srv, "drain", "Upgrade")

	r := run(t, srv, "wait-drained", "--timeout", "1s")
	wantCode(t, r, ExitTimeout)
	if !strings.Contains(r.stdout, job.ID) {
		t.Errorf("stdout does not list the running job %s:\n%s", job.ID, r.stdout)
	}
	if !strings.Contains(r.stderr, "timed out") {
		t.Errorf("stderr = %q, want it to say the wait timed out", r.stderr)
	}
	if strings.Contains(r.stdout, "Safe to upgrade:") {
		t.Errorf("stdout claims safe to upgrade while a job runs:\n%s", r.stdout)
	}
}

func TestWaitDrainedUnreachable(t *testing.T) {
	t.Parallel()
	addr := closedAddr(t)
	r := runWith(t, "http://"+addr, "some-token", "wait-drained", "--timeout", "5s")
	wantCode(t, r, ExitError)
	if !strings.Contains(r.stderr, "cannot reach the broker API") {
		t.Errorf("stderr = %q, want it to say the API cannot be reached", r.stderr)
	}
}

// closedAddr returns a loopback address on which nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestWaitDrainedFollowsStream(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:sleep")
	job := claim(t, srv, "worker-1", 300)
	pauseViaAPI(t, srv, "drain", "Upgrade")

	done, stdout, stderr := startWait(t, srv.URL, srv.OperatorToken)
	testutil.WaitFor(t, 10*time.Second, "the first progress line", func() bool {
		return strings.Contains(stdout.String(), "running 1")
	})
	complete(t, srv, job)

	r := waitResult(t, done, stdout, stderr)
	wantCode(t, r, ExitOK)
	if !strings.Contains(r.stdout, "running 0") || !strings.Contains(r.stdout, "Safe to upgrade") {
		t.Errorf("stdout = %q, want a progress line with running 0 and Safe to upgrade", r.stdout)
	}
	if strings.Contains(r.stderr, "reading the state every") {
		t.Errorf("wait-drained fell back to polling although the stream works: %s", r.stderr)
	}
}

func TestWaitDrainedPollsWithoutStream(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:sleep")
	job := claim(t, srv, "worker-1", 300)
	pauseViaAPI(t, srv, "drain", "Upgrade")

	// A proxy without the event stream, as behind a proxy that cuts
	// long-lived responses.
	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	noStream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") {
			http.NotFound(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(noStream.Close)

	done, stdout, stderr := startWait(t, noStream.URL, srv.OperatorToken)
	testutil.WaitFor(t, 10*time.Second, "the fallback to polling", func() bool {
		return strings.Contains(stderr.String(), "reading the state every")
	})
	complete(t, srv, job)

	r := waitResult(t, done, stdout, stderr)
	wantCode(t, r, ExitOK)
	if !strings.Contains(r.stdout, "Safe to upgrade") {
		t.Errorf("stdout = %q, want Safe to upgrade", r.stdout)
	}
}

func TestWaitDrainedResumedMeanwhile(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:sleep")
	claim(t, srv, "worker-1", 300)
	pauseViaAPI(t, srv, "drain", "Upgrade")

	done, stdout, stderr := startWait(t, srv.URL, srv.OperatorToken)
	testutil.WaitFor(t, 10*time.Second, "the first progress line", func() bool {
		return strings.Contains(stdout.String(), "running 1")
	})
	body := map[string]any{"action": "resume", "reason": "Changed plans", "forceResume": true}
	srv.DoJSON(t, "POST", "/api/system/worker-pause", srv.OperatorToken, body, http.StatusOK, nil)

	r := waitResult(t, done, stdout, stderr)
	wantCode(t, r, ExitError)
	if !strings.Contains(r.stderr, "resumed") {
		t.Errorf("stderr = %q, want it to say the workers were resumed", r.stderr)
	}
}

// startWait runs wait-drained in a goroutine and returns its exit code
// channel and live output buffers.
func startWait(t *testing.T, url, token string) (chan int, *syncBuffer, *syncBuffer) {
	t.Helper()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		args := []string{"--url", url, "--token", token, "wait-drained", "--timeout", "60s"}
		done <- Run(t.Context(), args, &stdout, &stderr)
	}()
	return done, &stdout, &stderr
}

func waitResult(t *testing.T, done chan int, stdout, stderr *syncBuffer) result {
	t.Helper()
	select {
	case code := <-done:
		return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	case <-time.After(90 * time.Second):
		t.Fatalf("wait-drained did not return\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		return result{}
	}
}

func TestPauseWait(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:sleep")
	claim(t, srv, "worker-1", 300)

	r := run(t, srv, "pause", "--reason", "Upgrade", "--wait", "--timeout", "1s")
	wantCode(t, r, ExitTimeout)
	if s := snapshot(t, srv); !s.WorkersPaused {
		t.Errorf("pause --wait did not pause the workers")
	}
}

func TestAuditCommand(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	pauseViaAPI(t, srv, "quiesce", "First pause")
	srv.DoJSON(t, "POST", "/api/system/worker-pause", srv.OperatorToken,
		map[string]any{"action": "resume", "reason": "Back to work"}, http.StatusOK, nil)

	// The API writes the audit row right after the change; the relay
	// retries when that fails, so wait for both rows.
	var page auditPage
	testutil.WaitFor(t, 10*time.Second, "two audit rows", func() bool {
		r := run(t, srv, "audit", "-o", "json")
		if r.code != ExitOK {
			return false
		}
		page = auditPage{}
		_ = json.Unmarshal([]byte(r.stdout), &page)
		return len(page.Items) >= 2
	})
	if page.Items[0].Action != "resume" || page.Items[1].Action != "pause" {
		t.Errorf("audit actions = %s, %s; want resume, pause (newest first)", page.Items[0].Action, page.Items[1].Action)
	}

	r := run(t, srv, "audit", "--limit", "1")
	wantCode(t, r, ExitOK)
	if !strings.Contains(r.stdout, "Back to work") || strings.Contains(r.stdout, "First pause") {
		t.Errorf("audit --limit 1 = %q, want only the resume row", r.stdout)
	}
	if !strings.Contains(r.stdout, "--before") {
		t.Errorf("audit --limit 1 = %q, want a hint for the next page", r.stdout)
	}
}

func TestJobsCommands(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})

	r := run(t, srv, "jobs", "enqueue", "--type", "demo:sleep", "--payload", `{"seconds": 5}`, "--priority", "3", "-o", "json")
	wantCode(t, r, ExitOK)
	var job broker.Job
	decodeJSON(t, r, &job)
	if job.Type != "demo:sleep" || job.Priority != 3 || job.Status != broker.StatusQueued {
		t.Errorf("enqueued job = %+v, want type demo:sleep priority 3 queued", job)
	}

	r = run(t, srv, "jobs", "get", job.ID)
	wantCode(t, r, ExitOK)
	if !strings.Contains(r.stdout, job.ID) || !strings.Contains(r.stdout, `"seconds"`) {
		t.Errorf("jobs get = %q, want the id and payload", r.stdout)
	}

	r = run(t, srv, "jobs", "list", "--status", "queued", "-o", "json")
	wantCode(t, r, ExitOK)
	var page jobPage
	decodeJSON(t, r, &page)
	if len(page.Items) != 1 || page.Items[0].ID != job.ID {
		t.Errorf("jobs list = %+v, want the one queued job", page.Items)
	}

	r = run(t, srv, "jobs", "cancel", job.ID, "--reason", "not needed", "-o", "json")
	wantCode(t, r, ExitOK)
	decodeJSON(t, r, &job)
	if job.Status != broker.StatusCancelled {
		t.Errorf("after cancel: status %s, want cancelled", job.Status)
	}

	r = run(t, srv, "jobs", "get", "no-such-job")
	wantCode(t, r, ExitError)
	if !strings.Contains(r.stderr, "not_found") {
		t.Errorf("stderr = %q, want not_found", r.stderr)
	}

	r = run(t, srv, "jobs", "enqueue", "--type", "x", "--payload", "[1]")
	wantCode(t, r, ExitUsage)
}

func TestJobsRecoverStale(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:sleep")
	job := claim(t, srv, "worker-1", 1)
	pauseViaAPI(t, srv, "drain", "Upgrade")

	testutil.WaitFor(t, 10*time.Second, "the job to turn stale", func() bool {
		r := run(t, srv, "jobs", "list", "--stale", "-o", "json")
		var page jobPage
		_ = json.Unmarshal([]byte(r.stdout), &page)
		return r.code == ExitOK && len(page.Items) == 1
	})

	r := run(t, srv, "jobs", "recover", job.ID, "--mode", "requeue", "-o", "json")
	wantCode(t, r, ExitOK)
	var recovered broker.Job
	decodeJSON(t, r, &recovered)
	if recovered.Status != broker.StatusQueued {
		t.Errorf("after recover: status %s, want queued", recovered.Status)
	}
	if s := snapshot(t, srv); s.Metrics.StaleRunning != 0 || s.Metrics.Queued != 1 {
		t.Errorf("after recover: stale %d queued %d, want 0 and 1", s.Metrics.StaleRunning, s.Metrics.Queued)
	}
}

func TestWorkersList(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:sleep")
	claim(t, srv, "worker-9", 60)

	r := run(t, srv, "workers", "list")
	wantCode(t, r, ExitOK)
	if !strings.Contains(r.stdout, "worker-9") || !strings.Contains(r.stdout, "LAST SEEN") {
		t.Errorf("workers list = %q, want a table with worker-9", r.stdout)
	}
}

func TestTokensCommands(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})

	r := run(t, srv, "tokens", "create", "--name", "ci-worker", "--role", "worker", "--allowed-type", "demo:sleep", "-o", "json")
	wantCode(t, r, ExitOK)
	var created tokenInfo
	decodeJSON(t, r, &created)
	if created.ID == "" || created.Token == "" || created.Role != "worker" {
		t.Fatalf("created token = %+v, want an id, a secret and role worker", created)
	}

	r = run(t, srv, "tokens", "list")
	wantCode(t, r, ExitOK)
	if !strings.Contains(r.stdout, "ci-worker") || strings.Contains(r.stdout, created.Token) {
		t.Errorf("tokens list = %q, want ci-worker without its secret", r.stdout)
	}

	r = run(t, srv, "tokens", "revoke", created.ID)
	wantCode(t, r, ExitOK)
	status, _ := srv.Do(t, "POST", "/api/queue/jobs/claim", created.Token, map[string]any{"workerId": "w"})
	if status != http.StatusUnauthorized {
		t.Errorf("claim with the revoked token: status %d, want 401", status)
	}

	r = run(t, srv, "tokens", "create", "--name", "x", "--role", "admin")
	wantCode(t, r, ExitUsage)
}

func TestBinary(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	bin := filepath.Join(t.TempDir(), "brokerctl")
	build := exec.Command("go", "build", "-o", bin, "../cmd/brokerctl")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/brokerctl: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "status")
	cmd.Env = append(os.Environ(), "BROKER_URL="+srv.URL, "BROKER_TOKEN="+srv.OperatorToken)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("brokerctl status: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Workers:") {
		t.Errorf("brokerctl status output = %q, want the pause state", out)
	}

	cmd = exec.Command(bin, "--help")
	cmd.Env = append(os.Environ(), "BROKER_TOKEN="+srv.OperatorToken)
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("brokerctl --help: %v\n%s", err, out)
	}
	if strings.Contains(string(out), srv.OperatorToken) {
		t.Errorf("brokerctl --help prints the token from BROKER_TOKEN")
	}

	cmd = exec.Command(bin, "wait-drained")
	cmd.Env = append(os.Environ(), "BROKER_URL="+srv.URL, "BROKER_TOKEN="+srv.OperatorToken)
	err = cmd.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != ExitUsage {
		t.Errorf("brokerctl wait-drained while running: %v, want exit code %d", err, ExitUsage)
	}
}

// waitPast waits until the clock (shared with the local Redis) is past t,
// so the next job starts strictly later and "longest running" is defined.
func waitPast(t *testing.T, at time.Time) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, "the clock to pass "+at.String(), func() bool {
		return time.Now().After(at.Add(2 * time.Millisecond))
	})
}
