package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/moonmind/broker/api"
	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/testutil"
)

// pauseEnv drives one test broker through its HTTP API the way operators,
// producers and workers do. Every call fails the test on an unexpected
// status, so scenario tests read as a list of steps.
type pauseEnv struct {
	t *testing.T
	s *apitest.Server
}

// startPauseEnv starts a broker API server with a short lease grace and a
// fast reaper, so scenarios with expired leases finish quickly.
func startPauseEnv(t *testing.T) *pauseEnv {
	t.Helper()
	return &pauseEnv{t: t, s: apitest.Start(t, apitest.Options{
		LeaseGrace:     500 * time.Millisecond,
		ReaperInterval: 100 * time.Millisecond,
	})}
}

// claimReply is the body of a claim response.
type claimReply struct {
	Job    *broker.Job       `json:"job"`
	System broker.PauseState `json:"system"`
}

// heartbeatReply is the body of a heartbeat response: the job document
// with the pause state added.
type heartbeatReply struct {
	broker.Job
	System broker.PauseState `json:"system"`
}

// enqueue creates a job from body and returns it.
func (e *pauseEnv) enqueue(body map[string]any) broker.Job {
	e.t.Helper()
	var job broker.Job
	e.s.DoJSON(e.t, http.MethodPost, "/api/queue/jobs", e.s.ProducerToken, body, http.StatusCreated, &job)
	return job
}

// claim sends a claim for workerID with the extra fields (leaseSeconds,
// allowedTypes, waitSeconds, ...) merged into the body.
func (e *pauseEnv) claim(workerID string, extra map[string]any) claimReply {
	e.t.Helper()
	body := map[string]any{"workerId": workerID}
	for k, v := range extra {
		body[k] = v
	}
	var out claimReply
	e.s.DoJSON(e.t, http.MethodPost, "/api/queue/jobs/claim", e.s.WorkerToken, body, http.StatusOK, &out)
	return out
}

// claimNothing claims for workerID and fails the test unless the response
// has no job and says the workers are paused.
func (e *pauseEnv) claimNothing(workerID string, extra map[string]any) claimReply {
	e.t.Helper()
	got := e.claim(workerID, extra)
	if got.Job != nil {
		e.t.Fatalf("claim by %s while paused returned job %s (type %s, attempt %d), want none",
			workerID, got.Job.ID, got.Job.Type, got.Job.Attempt)
	}
	if !got.System.WorkersPaused {
		e.t.Fatalf("claim by %s returned system.workersPaused false, want true", workerID)
	}
	return got
}

// changePause posts body to the pause endpoint with token and returns the
// status and the raw response body.
func (e *pauseEnv) changePause(token string, body map[string]any) (int, []byte) {
	e.t.Helper()
	return e.s.Do(e.t, http.MethodPost, "/api/system/worker-pause", token, body)
}

// pause pauses in mode with reason and returns the fresh snapshot.
func (e *pauseEnv) pause(mode broker.PauseMode, reason string) api.PauseSnapshot {
	e.t.Helper()
	var snap api.PauseSnapshot
	e.s.DoJSON(e.t, http.MethodPost, "/api/system/worker-pause", e.s.OperatorToken,
		map[string]any{"action": "pause", "mode": string(mode), "reason": reason}, http.StatusOK, &snap)
	return snap
}

// resume resumes with reason, forced when force is true.
func (e *pauseEnv) resume(reason string, force bool) api.PauseSnapshot {
	e.t.Helper()
	body := map[string]any{"action": "resume", "reason": reason}
	if force {
		body["forceResume"] = true
	}
	var snap api.PauseSnapshot
	e.s.DoJSON(e.t, http.MethodPost, "/api/system/worker-pause", e.s.OperatorToken, body, http.StatusOK, &snap)
	return snap
}

// snapshot reads GET /api/system/worker-pause.
func (e *pauseEnv) snapshot() api.PauseSnapshot {
	e.t.Helper()
	var snap api.PauseSnapshot
	e.s.DoJSON(e.t, http.MethodGet, "/api/system/worker-pause", e.s.OperatorToken, nil, http.StatusOK, &snap)
	return snap
}

// metrics returns the drain metrics of a fresh snapshot.
func (e *pauseEnv) metrics() broker.DrainMetrics {
	e.t.Helper()
	return e.snapshot().Metrics
}

// wantMetrics fails the test when the snapshot's queued, running,
// staleRunning or isDrained differ from want. what names the moment.
func (e *pauseEnv) wantMetrics(what string, queued, running, stale int64, drained bool) {
	e.t.Helper()
	m := e.metrics()
	if m.Queued != queued {
		e.t.Errorf("%s: queued = %d, want %d (metrics %+v)", what, m.Queued, queued, m)
	}
	if m.Running != running {
		e.t.Errorf("%s: running = %d, want %d (metrics %+v)", what, m.Running, running, m)
	}
	if m.StaleRunning != stale {
		e.t.Errorf("%s: staleRunning = %d, want %d (metrics %+v)", what, m.StaleRunning, stale, m)
	}
	if m.IsDrained != drained {
		e.t.Errorf("%s: isDrained = %v, want %v (metrics %+v)", what, m.IsDrained, drained, m)
	}
}

// job reads one job.
func (e *pauseEnv) job(id string) broker.Job {
	e.t.Helper()
	var job broker.Job
	e.s.DoJSON(e.t, http.MethodGet, "/api/queue/jobs/"+id, e.s.OperatorToken, nil, http.StatusOK, &job)
	return job
}

// heartbeat extends the lease of job for workerID with the extra fields
// (quiesced, checkpoint, leaseSeconds) merged into the body.
func (e *pauseEnv) heartbeat(job broker.Job, workerID string, extra map[string]any) heartbeatReply {
	e.t.Helper()
	body := map[string]any{"workerId": workerID, "attempt": job.Attempt}
	for k, v := range extra {
		body[k] = v
	}
	var out heartbeatReply
	e.s.DoJSON(e.t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/heartbeat", e.s.WorkerToken, body, http.StatusOK, &out)
	return out
}

// complete finishes job for workerID and returns the finished job.
func (e *pauseEnv) complete(job broker.Job, workerID string) broker.Job {
	e.t.Helper()
	var out broker.Job
	e.s.DoJSON(e.t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/complete", e.s.WorkerToken,
		map[string]any{"workerId": workerID, "attempt": job.Attempt, "resultSummary": "done"}, http.StatusOK, &out)
	return out
}

// wantError fails the test unless the response has the status and error code.
func wantError(t *testing.T, what string, status int, raw []byte, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("%s: status %d, want %d; body: %s", what, status, wantStatus, raw)
	}
	var body api.ErrorBody
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s: decode error body %s: %v", what, raw, err)
	}
	if body.Code != wantCode {
		t.Fatalf("%s: code %q, want %q; body: %s", what, body.Code, wantCode, raw)
	}
}

// auditRow is one row of system_control_events as the scenarios compare
// it. The jsonb column scans into []byte, because it may be NULL.
type auditRow struct {
	ID         string    `db:"id"`
	Action     string    `db:"action"`
	Mode       *string   `db:"mode"`
	Reason     string    `db:"reason"`
	Actor      *string   `db:"actor"`
	Version    int64     `db:"version"`
	StateAfter []byte    `db:"state_after"`
	CreatedAt  time.Time `db:"created_at"`
}

// auditTrail returns the pause audit rows in PostgreSQL, oldest version
// first, read straight from the table so no API code is involved.
func (e *pauseEnv) auditTrail() []auditRow {
	e.t.Helper()
	return readAuditTrail(e.t, e.s.DB)
}

func readAuditTrail(t *testing.T, db *sqlx.DB) []auditRow {
	t.Helper()
	rows, err := tryAuditTrail(db)
	if err != nil {
		t.Fatalf("read system_control_events: %v", err)
	}
	return rows
}

// tryAuditTrail reads the audit rows, oldest version first, and returns
// errors instead of failing the test, for polls while PostgreSQL is down.
func tryAuditTrail(db *sqlx.DB) ([]auditRow, error) {
	var rows []auditRow
	err := db.Select(&rows, `SELECT id::text AS id, action, mode, reason, actor, version, state_after, created_at
		FROM system_control_events ORDER BY version, created_at`)
	return rows, err
}

// waitAuditRows waits until the audit table holds n rows and returns them.
func (e *pauseEnv) waitAuditRows(n int) []auditRow {
	e.t.Helper()
	var rows []auditRow
	testutil.WaitFor(e.t, 15*time.Second, fmt.Sprintf("%d audit rows", n), func() bool {
		rows = e.auditTrail()
		return len(rows) >= n
	})
	return rows
}

// tryClaim is claim for use in goroutines other than the test's: it
// returns errors instead of failing the test.
func (e *pauseEnv) tryClaim(workerID string, extra map[string]any) (claimReply, error) {
	body := map[string]any{"workerId": workerID}
	for k, v := range extra {
		body[k] = v
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return claimReply{}, err
	}
	req, err := http.NewRequest(http.MethodPost, e.s.URL+"/api/queue/jobs/claim", bytes.NewReader(raw))
	if err != nil {
		return claimReply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.s.WorkerToken)
	resp, err := e.s.Client.Do(req)
	if err != nil {
		return claimReply{}, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return claimReply{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return claimReply{}, fmt.Errorf("claim by %s: status %d: %s", workerID, resp.StatusCode, answer)
	}
	var out claimReply
	if err := json.Unmarshal(answer, &out); err != nil {
		return claimReply{}, fmt.Errorf("claim by %s: decode %s: %w", workerID, answer, err)
	}
	return out, nil
}

// metricValue returns the value of the Prometheus sample whose name and
// labels are exactly series (for example `mmb_pause_version` or
// `mmb_claims_total{result="empty"}`), and false when /metrics has none.
func (e *pauseEnv) metricValue(series string) (float64, bool) {
	e.t.Helper()
	status, raw := e.s.Do(e.t, http.MethodGet, "/metrics", "", nil)
	if status != http.StatusOK {
		e.t.Fatalf("GET /metrics: status %d; body: %s", status, raw)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || name != series {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			e.t.Fatalf("GET /metrics: sample %q has no number: %v", line, err)
		}
		return v, true
	}
	return 0, false
}
