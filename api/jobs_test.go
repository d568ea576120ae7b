package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/moonmind/broker/internal/apitest"
)

func TestJobLifecycleOverHTTP(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	var job jobDoc
	c.json(http.MethodPost, "/api/queue/jobs", s.ProducerToken, map[string]any{
		"type": "demo:echo", "payload": map[string]any{"text": "héllo ✓"}, "priority": 5, "idempotencyKey": "k1",
	}, http.StatusCreated, &job)
	if job.Status != "queued" {
		t.Errorf("status after enqueue = %q, want queued", job.Status)
	}

	var again jobDoc
	c.json(http.MethodPost, "/api/queue/jobs", s.ProducerToken, map[string]any{
		"type": "demo:echo", "idempotencyKey": "k1",
	}, http.StatusOK, &again)
	if again.ID != job.ID {
		t.Errorf("enqueue with a used idempotency key returned job %s, want %s", again.ID, job.ID)
	}

	var got jobDoc
	c.json(http.MethodGet, "/api/queue/jobs/"+job.ID, s.ProducerToken, nil, http.StatusOK, &got)
	if string(got.Payload) != `{"text":"héllo ✓"}` {
		t.Errorf("payload = %s, want the enqueued object", got.Payload)
	}

	var page struct {
		Items []jobDoc `json:"items"`
	}
	c.json(http.MethodGet, "/api/queue/jobs?status=queued&limit=10", s.ProducerToken, nil, http.StatusOK, &page)
	if len(page.Items) != 1 || page.Items[0].ID != job.ID {
		t.Errorf("list of queued jobs = %+v, want only %s", page.Items, job.ID)
	}

	claim := c.claim("w1", nil)
	if claim.Job == nil || claim.Job.ID != job.ID {
		t.Fatalf("claim returned %+v, want job %s", claim.Job, job.ID)
	}
	if claim.System.Version != 1 || claim.System.WorkersPaused {
		t.Errorf("claim system = %+v, want unpaused version 1", claim.System)
	}

	var hb struct {
		jobDoc
		System systemDoc `json:"system"`
	}
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/heartbeat", s.WorkerToken, map[string]any{
		"workerId": "w1", "attempt": 1, "leaseSeconds": 30, "checkpoint": map[string]any{"step": 2},
	}, http.StatusOK, &hb)
	if hb.System.Version != 1 {
		t.Errorf("heartbeat system version = %d, want 1", hb.System.Version)
	}
	if string(hb.Checkpoint) != `{"step":2}` {
		t.Errorf("heartbeat checkpoint = %s, want {\"step\":2}", hb.Checkpoint)
	}

	var ev struct {
		ID      string `json:"id"`
		Message string `json:"message"`
	}
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/events", s.WorkerToken, map[string]any{
		"workerId": "w1", "level": "info", "message": "halfway", "payload": map[string]any{"pct": 50},
	}, http.StatusCreated, &ev)
	if ev.Message != "halfway" {
		t.Errorf("appended event message = %q, want halfway", ev.Message)
	}

	var events struct {
		Items []struct {
			Message string `json:"message"`
			Kind    string `json:"kind"`
		} `json:"items"`
	}
	c.json(http.MethodGet, "/api/queue/jobs/"+job.ID+"/events?limit=100", s.ProducerToken, nil, http.StatusOK, &events)
	found := false
	for _, e := range events.Items {
		found = found || e.Message == "halfway"
	}
	if !found {
		t.Errorf("event list %+v lacks the appended event", events.Items)
	}

	var done jobDoc
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/complete", s.WorkerToken, map[string]any{
		"workerId": "w1", "attempt": 1, "resultSummary": "ok",
		"finishOutcomeCode": "done", "finishOutcomeStage": "final", "finishSummary": map[string]any{"n": 1},
	}, http.StatusOK, &done)
	if done.Status != "succeeded" {
		t.Errorf("status after complete = %q, want succeeded", done.Status)
	}

	var summary struct {
		JobID             string          `json:"jobId"`
		Status            string          `json:"status"`
		FinishOutcomeCode *string         `json:"finishOutcomeCode"`
		FinishSummary     json.RawMessage `json:"finishSummary"`
		ResultSummary     *string         `json:"resultSummary"`
	}
	c.json(http.MethodGet, "/api/queue/jobs/"+job.ID+"/finish-summary", s.ProducerToken, nil, http.StatusOK, &summary)
	if summary.Status != "succeeded" || summary.FinishOutcomeCode == nil || *summary.FinishOutcomeCode != "done" {
		t.Errorf("finish summary = %+v, want succeeded with code done", summary)
	}
	if summary.ResultSummary == nil || *summary.ResultSummary != "ok" {
		t.Errorf("finish summary resultSummary = %v, want ok", summary.ResultSummary)
	}

	c.expectError(request{method: http.MethodPost, path: "/api/queue/jobs/" + job.ID + "/complete", token: s.WorkerToken,
		body: map[string]any{"workerId": "w1", "attempt": 1}}, http.StatusConflict, "lease_lost", "")
}

func TestFailAndResubmit(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	job := c.enqueue("demo:fail", map[string]any{"x": 1})
	if claim := c.claim("w1", nil); claim.Job == nil {
		t.Fatalf("claim returned no job")
	}
	var failed jobDoc
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/fail", s.WorkerToken, map[string]any{
		"workerId": "w1", "errorMessage": "boom", "retryable": false,
	}, http.StatusOK, &failed)
	if failed.Status != "failed" {
		t.Fatalf("status after a non-retryable fail = %q, want failed", failed.Status)
	}

	c.expectError(request{method: http.MethodPost, path: "/api/queue/jobs/" + job.ID + "/resubmit", token: s.ProducerToken, body: map[string]any{}},
		http.StatusForbidden, "forbidden", "")

	var copyJob jobDoc
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/resubmit", s.OperatorToken, map[string]any{}, http.StatusCreated, &copyJob)
	if copyJob.ID == job.ID || copyJob.Status != "queued" {
		t.Errorf("resubmitted job = %+v, want a new queued job", copyJob)
	}
	if copyJob.ResubmittedFrom == nil || *copyJob.ResubmittedFrom != job.ID {
		t.Errorf("resubmittedFrom = %v, want %s", copyJob.ResubmittedFrom, job.ID)
	}

	c.expectError(request{method: http.MethodPost, path: "/api/queue/jobs/" + copyJob.ID + "/resubmit", token: s.OperatorToken, body: map[string]any{}},
		http.StatusConflict, "invalid_state", "")
}

func TestCancelQueuedAndRunningJobs(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	queued := c.enqueue("demo:a", nil)
	var cancelled jobDoc
	c.json(http.MethodPost, "/api/queue/jobs/"+queued.ID+"/cancel", s.OperatorToken, map[string]any{"reason": "not needed"}, http.StatusOK, &cancelled)
	if cancelled.Status != "cancelled" {
		t.Errorf("status of a cancelled queued job = %q, want cancelled", cancelled.Status)
	}

	running := c.enqueue("demo:a", nil)
	if claim := c.claim("w1", nil); claim.Job == nil || claim.Job.ID != running.ID {
		t.Fatalf("claim returned %+v, want %s", claim.Job, running.ID)
	}
	var requested jobDoc
	c.json(http.MethodPost, "/api/queue/jobs/"+running.ID+"/cancel", s.OperatorToken, map[string]any{"reason": "stop"}, http.StatusOK, &requested)
	if requested.Status != "running" || requested.CancelRequestedAt == nil {
		t.Errorf("running job after cancel = %+v, want running with cancelRequestedAt", requested)
	}
	var acked jobDoc
	c.json(http.MethodPost, "/api/queue/jobs/"+running.ID+"/cancel/ack", s.WorkerToken, map[string]any{"workerId": "w1", "message": "stopped"}, http.StatusOK, &acked)
	if acked.Status != "cancelled" {
		t.Errorf("status after cancel ack = %q, want cancelled", acked.Status)
	}
}

func TestReleaseRecoverAndLeaseLost(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	job := c.enqueue("demo:a", nil)
	c.claim("w1", nil)

	c.expectError(request{method: http.MethodPost, path: "/api/queue/jobs/" + job.ID + "/heartbeat", token: s.WorkerToken,
		body: map[string]any{"workerId": "w2"}}, http.StatusConflict, "lease_lost", "")
	c.expectError(request{method: http.MethodPost, path: "/api/queue/jobs/" + job.ID + "/recover", token: s.OperatorToken,
		body: map[string]any{"mode": "requeue"}}, http.StatusConflict, "lease_active", "")

	var state jobDoc
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/runtime-state", s.WorkerToken, map[string]any{
		"workerId": "w1", "runtimeState": map[string]any{"cursor": "abc"},
	}, http.StatusOK, &state)
	if string(state.Checkpoint) != `{"cursor":"abc"}` {
		t.Errorf("checkpoint after runtime-state = %s, want {\"cursor\":\"abc\"}", state.Checkpoint)
	}

	var released jobDoc
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/release", s.WorkerToken, map[string]any{"workerId": "w1"}, http.StatusOK, &released)
	if released.Status != "queued" {
		t.Errorf("status after release = %q, want queued", released.Status)
	}
	claim := c.claim("w2", nil)
	if claim.Job == nil || claim.Job.ID != job.ID || claim.Job.Attempt != 1 {
		t.Errorf("claim after release = %+v, want %s at attempt 1", claim.Job, job.ID)
	}
}

func TestUnknownJobIsNotFound(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	c.expectError(request{method: http.MethodGet, path: "/api/queue/jobs/no-such-job", token: s.ProducerToken}, http.StatusNotFound, "not_found", "")
	c.expectError(request{method: http.MethodPost, path: "/api/queue/jobs/no-such-job/cancel", token: s.OperatorToken, body: map[string]any{}},
		http.StatusNotFound, "not_found", "")
	c.expectError(request{method: http.MethodGet, path: "/api/nothing/here", token: s.OperatorToken, invalid: true}, http.StatusNotFound, "not_found", "")
}

func TestArtifactsAreNotSupported(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	job := c.enqueue("demo:a", nil)
	c.expectError(request{method: http.MethodGet, path: "/api/queue/jobs/" + job.ID + "/artifacts", token: s.OperatorToken},
		http.StatusNotFound, "not_supported", "")
	c.expectError(request{method: http.MethodPost, path: "/api/queue/jobs/" + job.ID + "/artifacts", token: s.WorkerToken},
		http.StatusNotFound, "not_supported", "")
	e := c.expectError(request{method: http.MethodGet, path: "/api/queue/jobs/" + job.ID + "/artifacts/out.txt", token: s.ProducerToken},
		http.StatusNotFound, "not_supported", "")
	if want := "not supported by this broker"; !strings.Contains(e.Message, want) {
		t.Errorf("message %q does not say %q", e.Message, want)
	}
}
