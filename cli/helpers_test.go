package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with the current output")

// syncBuffer is a bytes.Buffer safe for a command writing in one goroutine
// while the test reads in another.
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

// result is the outcome of one in-process brokerctl run.
type result struct {
	code   int
	stdout string
	stderr string
}

// run runs brokerctl in-process against srv with the operator token.
func run(t *testing.T, srv *apitest.Server, args ...string) result {
	t.Helper()
	return runWith(t, srv.URL, srv.OperatorToken, args...)
}

func runWith(t *testing.T, url, token string, args ...string) result {
	t.Helper()
	var stdout, stderr syncBuffer
	full := append([]string{"--url", url, "--token", token}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := Run(ctx, full, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// wantCode fails the test when r did not exit with want.
func wantCode(t *testing.T, r result, want int) {
	t.Helper()
	if r.code != want {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, want, r.stdout, r.stderr)
	}
}

// enqueue adds a job of jobType with the producer token and returns it.
func enqueue(t *testing.T, srv *apitest.Server, jobType string) broker.Job {
	t.Helper()
	var job broker.Job
	srv.DoJSON(t, "POST", "/api/queue/jobs", srv.ProducerToken, map[string]any{"type": jobType}, http.StatusCreated, &job)
	return job
}

// claim claims one job for workerID with the worker token and returns it.
func claim(t *testing.T, srv *apitest.Server, workerID string, leaseSeconds int) broker.Job {
	t.Helper()
	var resp struct {
		Job *broker.Job `json:"job"`
	}
	body := map[string]any{"workerId": workerID, "leaseSeconds": leaseSeconds}
	srv.DoJSON(t, "POST", "/api/queue/jobs/claim", srv.WorkerToken, body, http.StatusOK, &resp)
	if resp.Job == nil {
		t.Fatalf("claim by %s returned no job", workerID)
	}
	return *resp.Job
}

func complete(t *testing.T, srv *apitest.Server, job broker.Job) {
	t.Helper()
	body := map[string]any{"workerId": *job.ClaimedBy, "attempt": job.Attempt, "resultSummary": "done"}
	srv.DoJSON(t, "POST", "/api/queue/jobs/"+job.ID+"/complete", srv.WorkerToken, body, http.StatusOK, nil)
}

// pauseViaAPI pauses the workers directly through the API.
func pauseViaAPI(t *testing.T, srv *apitest.Server, mode, reason string) {
	t.Helper()
	body := map[string]any{"action": "pause", "mode": mode, "reason": reason}
	srv.DoJSON(t, "POST", "/api/system/worker-pause", srv.OperatorToken, body, http.StatusOK, nil)
}

// snapshot reads the pause snapshot directly through the API.
func snapshot(t *testing.T, srv *apitest.Server) pauseSnapshot {
	t.Helper()
	var snap pauseSnapshot
	srv.DoJSON(t, "GET", "/api/system/worker-pause", srv.OperatorToken, nil, http.StatusOK, &snap)
	return snap
}

var (
	timePattern     = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	uuidPattern     = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	durationPattern = regexp.MustCompile(`\b(\d+h)?(\d+m)?\d+(\.\d+)?(ms|s)\b`)
	spacesPattern   = regexp.MustCompile(` {2,}`)
)

// normalize replaces what differs between runs (times, ids, durations)
// with placeholders and collapses column padding, whose width follows them.
func normalize(s string, ids map[string]string) string {
	for id, name := range ids {
		s = strings.ReplaceAll(s, id, name)
	}
	s = timePattern.ReplaceAllString(s, "<TIME>")
	s = uuidPattern.ReplaceAllString(s, "<ID>")
	s = durationPattern.ReplaceAllString(s, "<DURATION>")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(spacesPattern.ReplaceAllString(l, "  "), " ")
	}
	return strings.Join(lines, "\n")
}

// checkGolden compares got with testdata/name, or rewrites the file with
// -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (create it with go test ./cli -run %s -update): %v", t.Name(), err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (rerun with -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// decodeJSON parses a command's JSON output into out.
func decodeJSON(t *testing.T, r result, out any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), out); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
}
