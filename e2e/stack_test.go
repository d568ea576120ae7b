package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/devcert"
	"github.com/moonmind/broker/internal/testutil"
)

// stack is one running deployment: brokerd over HTTPS on a free loopback
// port, in its own Redis namespace and Postgres schema, plus workers.
type stack struct {
	t         testing.TB
	art       *artifacts
	bin       string
	url       string // https://localhost:PORT
	caFile    string
	operator  string
	worker    string
	namespace string
	// brokerDSN is what brokerd gets: lib/pq takes search_path as a URL
	// parameter. psqlDSN selects the same schema in the form libpq (psql)
	// accepts.
	brokerDSN string
	psqlDSN   string
	client    *http.Client
	brokerd   *process
	workers   []*process
}

// startStack runs `brokerd migrate`, starts `brokerd serve` and waits
// until /readyz returns 200.
func startStack(t *testing.T) *stack {
	t.Helper()
	bin := buildBinaries(t)
	art := newArtifacts(t)

	_, namespace := testutil.Redis(t)
	db, dsn := testutil.Postgres(t)
	var schema string
	if err := db.Get(&schema, "SELECT current_schema()"); err != nil {
		t.Fatalf("read the test schema: %v", err)
	}

	tlsPaths, err := devcert.Ensure(devcert.Config{Dir: filepath.Join(t.TempDir(), "tls")})
	if err != nil {
		t.Fatalf("create certificates: %v", err)
	}

	port := testutil.FreePort(t)
	s := &stack{
		t: t, art: art, bin: bin,
		url:       fmt.Sprintf("https://localhost:%d", port),
		caFile:    tlsPaths.CA,
		operator:  randomToken("e2eop_"),
		worker:    randomToken("e2ewk_"),
		namespace: namespace,
		brokerDSN: dsn,
		psqlDSN:   psqlURL(t, testutil.DatabaseURL(), schema),
	}
	s.client = httpsClient(t, s.caFile)

	env := []string{
		"BROKER_ADDR=127.0.0.1:" + strconv.Itoa(port),
		"BROKER_REDIS_URL=" + testutil.RedisURL(),
		"BROKER_NAMESPACE=" + namespace,
		"BROKER_DATABASE_URL=" + dsn,
		"BROKER_TLS_CERT=" + tlsPaths.Cert,
		"BROKER_TLS_KEY=" + tlsPaths.CertKey,
		"BROKER_AUTH=enabled",
		"BROKER_OPERATOR_TOKEN=" + s.operator,
		"BROKER_WORKER_TOKEN=" + s.worker,
		"BROKER_LOG_FORMAT=json",
		"BROKER_AUTO_MIGRATE=false",
		"BROKER_REAPER_INTERVAL=1s",
	}

	// make run applies the migrations with a separate command before it
	// starts the server; do the same.
	migrate := exec.Command(filepath.Join(bin, "brokerd"), "migrate")
	migrate.Env = append(baseEnv(), env...)
	if out, err := migrate.CombinedOutput(); err != nil {
		_ = os.WriteFile(art.path("brokerd-migrate.log"), out, 0o644)
		t.Fatalf("brokerd migrate: %v\n%s", err, out)
	}

	s.brokerd = startProcess(t, art, "brokerd", filepath.Join(bin, "brokerd"), env, "serve")
	testutil.WaitFor(t, 30*time.Second, "brokerd /readyz to return 200", func() bool {
		if !s.brokerd.running() {
			t.Fatalf("brokerd exited during start-up: %v", s.brokerd.waitErr)
		}
		resp, err := s.client.Get(s.url + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// psqlURL returns base with options=-csearch_path=schema, the form of a
// per-connection setting that libpq understands.
func psqlURL(t testing.TB, base, schema string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse database URL: %v", err)
	}
	q := u.Query()
	q.Set("options", "-csearch_path="+schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// startWorker starts a queue-worker that logs JSON and polls the pause
// state often, so each worker sends many claims while paused.
func (s *stack) startWorker(id string) *process {
	s.t.Helper()
	env := []string{
		"BROKER_URL=" + s.url,
		"BROKER_TOKEN=" + s.worker,
		"BROKER_CACERT=" + s.caFile,
		"WORKER_ID=" + id,
		"WORKER_CONCURRENCY=1",
		"WORKER_PAUSE_POLL=200ms",
		// A short long-poll wait makes a worker that finished its job see
		// the pause within two seconds.
		"WORKER_POLL_WAIT=2s",
		"WORKER_SHUTDOWN_TIMEOUT=2s",
		"LOG_FORMAT=json",
	}
	p := startProcess(s.t, s.art, id, filepath.Join(s.bin, "queue-worker"), env)
	s.workers = append(s.workers, p)
	return p
}

// shellEnv is the environment `source .run/env` gives an operator's shell,
// pointed at this stack.
func (s *stack) shellEnv() []string {
	return append(baseEnv(),
		"PATH="+s.bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"BROKER_URL="+s.url,
		"TOKEN="+s.operator,
		"BROKER_TOKEN="+s.operator,
		"WORKER_TOKEN="+s.worker,
		"BROKER_CACERT="+s.caFile,
		"CURL_CA_BUNDLE="+s.caFile,
		"BROKER_DATABASE_URL="+s.psqlDSN,
	)
}

// runShell runs script with bash -eo pipefail in the operator's
// environment, after pointing the quickstart's fixed address at this
// stack. It returns standard output and the exit code; standard error
// goes to the artifacts log.
func (s *stack) runShell(name, script string) (string, int) {
	s.t.Helper()
	script = strings.ReplaceAll(script, quickstartURL, s.url)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-eo", "pipefail", "-c", script)
	cmd.Env = s.shellEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if exitErr, ok := err.(*exec.ExitError); ok {
			code = exitErr.ExitCode()
		}
	}
	f, ferr := os.OpenFile(s.art.path("shell.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if ferr == nil {
		fmt.Fprintf(f, "=== %s (exit %d)\n$ %s\n--- stdout\n%s--- stderr\n%s\n", name, code, script, stdout.String(), stderr.String())
		_ = f.Close()
	}
	return stdout.String(), code
}

// runJSON runs a quickstart block that prints one JSON document and
// decodes it into v.
func (s *stack) runJSON(name, script string, v any) {
	s.t.Helper()
	out, code := s.runShell(name, script)
	if code != 0 {
		s.t.Fatalf("quickstart step %q exited %d; stdout:\n%s", name, code, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		s.t.Fatalf("quickstart step %q printed no JSON document: %v\n%s", name, err, out)
	}
}

// api sends a request with the operator token and decodes the JSON response.
func (s *stack) api(method, path string, body any, wantStatus int, v any) {
	s.t.Helper()
	s.apiAs(s.operator, method, path, body, wantStatus, v)
}

// apiAs sends a request with token and decodes the JSON response.
func (s *stack) apiAs(token, method, path string, body any, wantStatus int, v any) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatalf("build request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		s.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, wantStatus, data)
	}
	if v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
}

// snapshot is the part of GET /api/system/worker-pause the test checks.
type snapshot struct {
	WorkersPaused bool    `json:"workersPaused"`
	Mode          *string `json:"mode"`
	Reason        *string `json:"reason"`
	Version       int64   `json:"version"`
	RequestedBy   *string `json:"requestedBy"`
	Metrics       struct {
		Queued       int64 `json:"queued"`
		Running      int64 `json:"running"`
		StaleRunning int64 `json:"staleRunning"`
		IsDrained    bool  `json:"isDrained"`
	} `json:"metrics"`
}

func (s *stack) snapshot() snapshot {
	s.t.Helper()
	var snap snapshot
	s.api(http.MethodGet, "/api/system/worker-pause", nil, http.StatusOK, &snap)
	return snap
}

// enqueueSleep enqueues a demo:sleep job and returns its id.
func (s *stack) enqueueSleep(seconds int) string {
	s.t.Helper()
	var job struct {
		ID string `json:"id"`
	}
	s.api(http.MethodPost, "/api/queue/jobs", map[string]any{
		"type": "demo:sleep", "payload": map[string]any{"seconds": seconds},
	}, http.StatusCreated, &job)
	if job.ID == "" {
		s.t.Fatal("enqueue returned a job without an id")
	}
	return job.ID
}

// jobStatus returns the status of a job.
func (s *stack) jobStatus(id string) string {
	s.t.Helper()
	var job struct {
		Status string `json:"status"`
	}
	s.api(http.MethodGet, "/api/queue/jobs/"+id, nil, http.StatusOK, &job)
	return job.Status
}

// logRecord is one JSON log line of a worker (log/slog JSONHandler).
type logRecord map[string]any

func (r logRecord) str(key string) string {
	v, ok := r[key]
	if !ok || v == nil {
		return ""
	}
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// records parses a process's JSON log lines; lines that are not JSON
// (such as a panic trace) come back with only "raw" set.
func records(t testing.TB, p *process) []logRecord {
	t.Helper()
	var out []logRecord
	for _, line := range p.logLines(t) {
		var r logRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			r = logRecord{"raw": line}
		}
		out = append(out, r)
	}
	return out
}

// countMessages counts the log records with message msg whose version
// key equals version.
func countMessages(t testing.TB, p *process, msg string, version int64) int {
	t.Helper()
	n := 0
	for _, r := range records(t, p) {
		if r.str("msg") == msg && r.str("version") == strconv.FormatInt(version, 10) {
			n++
		}
	}
	return n
}

// errorLines returns the log lines at level ERROR and any line that is
// not a JSON record.
func errorLines(t testing.TB, p *process) []string {
	t.Helper()
	var bad []string
	for _, r := range records(t, p) {
		if raw := r.str("raw"); raw != "" {
			bad = append(bad, raw)
			continue
		}
		if strings.EqualFold(r.str("level"), "ERROR") {
			b, _ := json.Marshal(r)
			bad = append(bad, string(b))
		}
	}
	return bad
}
