package api_test

import (
	"net/http"
	"testing"

	"github.com/moonmind/broker/internal/apitest"
)

func TestAuthRejectsMissingAndUnknownTokens(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	c.expectError(request{method: http.MethodGet, path: "/api/queue/jobs"}, http.StatusUnauthorized, "unauthorized", "")
	c.expectError(request{method: http.MethodGet, path: "/api/queue/jobs", token: "mmb_not-a-real-token"}, http.StatusUnauthorized, "unauthorized", "")
	c.expectError(request{method: http.MethodGet, path: "/api/queue/jobs", token: s.OperatorToken + "x"}, http.StatusUnauthorized, "unauthorized", "")
	c.expectError(request{method: http.MethodGet, path: "/api/queue/jobs", header: map[string]string{"Authorization": "Basic abc"}},
		http.StatusUnauthorized, "unauthorized", "")
}

func TestRolesAreEnforced(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	cases := []struct {
		name, method, path, token string
		body                      any
	}{
		{"producer claims", http.MethodPost, "/api/queue/jobs/claim", s.ProducerToken, map[string]any{"workerId": "w1"}},
		{"worker enqueues", http.MethodPost, "/api/queue/jobs", s.WorkerToken, map[string]any{"type": "demo:a"}},
		{"worker lists jobs", http.MethodGet, "/api/queue/jobs", s.WorkerToken, nil},
		{"producer reads pause", http.MethodGet, "/api/system/worker-pause", s.ProducerToken, nil},
		{"worker lists workers", http.MethodGet, "/api/workers", s.WorkerToken, nil},
		{"producer creates token", http.MethodPost, "/api/tokens", s.ProducerToken, map[string]any{"name": "x", "role": "worker"}},
		{"worker reads audit", http.MethodGet, "/api/system/control-events", s.WorkerToken, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, s)
			c.expectError(request{method: tc.method, path: tc.path, token: tc.token, body: tc.body}, http.StatusForbidden, "forbidden", "")
		})
	}
	if snap := c.snapshot(); snap.Metrics.Queued != 0 {
		t.Errorf("queued = %d after rejected requests, want 0", snap.Metrics.Queued)
	}
}

func TestWorkerTokenCannotPause(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	before := c.snapshot()

	c.expectError(request{method: http.MethodPost, path: "/api/system/worker-pause", token: s.WorkerToken,
		body: map[string]any{"action": "pause", "mode": "drain", "reason": "not allowed"}}, http.StatusForbidden, "forbidden", "")
	c.expectError(request{method: http.MethodPost, path: "/api/system/worker-pause", token: s.ProducerToken,
		body: map[string]any{"action": "pause", "mode": "drain", "reason": "not allowed"}}, http.StatusForbidden, "forbidden", "")

	after := c.snapshot()
	if after.Version != before.Version || after.WorkersPaused {
		t.Errorf("pause state after a rejected pause = %+v, want unchanged %+v", after.systemDoc, before.systemDoc)
	}
	if n := auditRows(t, s); n != 0 {
		t.Errorf("audit rows after a rejected pause = %d, want 0", n)
	}
	if depth, err := s.Broker.OutboxDepth(t.Context()); err != nil || depth != 0 {
		t.Errorf("outbox depth after a rejected pause = %d (%v), want 0", depth, err)
	}
}

func TestWorkerTokenHeader(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	job := c.enqueue("demo:a", nil)

	var res claimDoc
	r := c.do(request{method: http.MethodPost, path: "/api/queue/jobs/claim", body: map[string]any{"workerId": "w1"},
		header: map[string]string{"X-MoonMind-Worker-Token": s.WorkerToken}})
	if r.status != http.StatusOK {
		t.Fatalf("claim with X-MoonMind-Worker-Token: status %d, body %s", r.status, r.body)
	}
	decode(t, r.body, &res)
	if res.Job == nil || res.Job.ID != job.ID {
		t.Errorf("claim with X-MoonMind-Worker-Token returned %+v, want %s", res.Job, job.ID)
	}

	c.expectError(request{method: http.MethodGet, path: "/api/queue/jobs",
		header: map[string]string{"X-MoonMind-Worker-Token": s.OperatorToken}}, http.StatusUnauthorized, "unauthorized", "")
}

func TestAuthDisabledActsAsLocalOperator(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{AuthDisabled: true})
	c := newClient(t, s)

	var snap snapshotDoc
	c.json(http.MethodPost, "/api/system/worker-pause", "", map[string]any{"action": "pause", "mode": "drain", "reason": "local test"}, http.StatusOK, &snap)
	if snap.RequestedBy == nil || *snap.RequestedBy != "local" {
		t.Errorf("requestedBy = %v, want local", snap.RequestedBy)
	}
	if len(snap.Audit.Latest) == 0 || snap.Audit.Latest[0].Actor == nil || *snap.Audit.Latest[0].Actor != "local" {
		t.Errorf("newest audit event = %+v, want actor local", snap.Audit.Latest)
	}
}
