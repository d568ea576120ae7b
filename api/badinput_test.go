package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/moonmind/broker/internal/apitest"
)

// TestBadInputChangesNothing sends each malformed request and checks the
// status, the code, the field, and that the pause state, the job counts and
// the audit trail did not change.
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{BrokerConfig: brokerConfigSmallPayload})
	c := newClient(t, s)
	job := c.enqueue("demo:a", nil)
	jobPath := "/api/queue/jobs/" + job.ID
	oversize := `{"type":"demo:a","payload":{"blob":"` + strings.Repeat("x", smallPayload+bodyHeadroom) + `"}}`
	payloadOverLimit := `{"type":"demo:a","payload":{"blob":"` + strings.Repeat("x", smallPayload) + `"}}`

	cases := []struct {
		name        string
		method      string
		path, token string
		body        any
		status      int
		code, field string
	}{
		{"unknown field", http.MethodPost, "/api/queue/jobs", s.ProducerToken, `{"type":"demo:a","colour":"red"}`, 400, "unknown_field", "colour"},
		{"wrong type", http.MethodPost, "/api/queue/jobs", s.ProducerToken, `{"type":"demo:a","priority":"high"}`, 400, "invalid_field", "priority"},
		{"fractional integer", http.MethodPost, "/api/queue/jobs", s.ProducerToken, `{"type":"demo:a","maxAttempts":1.5}`, 400, "invalid_field", "maxAttempts"},
		{"missing type", http.MethodPost, "/api/queue/jobs", s.ProducerToken, `{"priority":1}`, 400, "invalid_field", "type"},
		{"payload not an object", http.MethodPost, "/api/queue/jobs", s.ProducerToken, `{"type":"demo:a","payload":[1,2]}`, 400, "invalid_field", "payload"},
		{"maxAttempts too high", http.MethodPost, "/api/queue/jobs", s.ProducerToken, `{"type":"demo:a","maxAttempts":1001}`, 400, "invalid_field", "maxAttempts"},
		{"bad runAt", http.MethodPost, "/api/queue/jobs", s.ProducerToken, `{"type":"demo:a","runAt":"tomorrow"}`, 400, "invalid_field", "runAt"},
		{"invalid UTF-8", http.MethodPost, "/api/queue/jobs", s.ProducerToken, []byte("{\"type\":\"demo:\xff\"}"), 400, "invalid_json", ""},
		{"syntax error", http.MethodPost, "/api/queue/jobs", s.ProducerToken, `{"type":`, 400, "invalid_json", ""},
		{"array body", http.MethodPost, "/api/queue/jobs", s.ProducerToken, `[1]`, 400, "invalid_json", ""},
		{"trailing data", http.MethodPost, "/api/queue/jobs", s.ProducerToken, `{"type":"demo:a"} {}`, 400, "invalid_json", ""},
		{"body over the limit", http.MethodPost, "/api/queue/jobs", s.ProducerToken, oversize, 413, "payload_too_large", ""},
		{"payload over the limit", http.MethodPost, "/api/queue/jobs", s.ProducerToken, payloadOverLimit, 413, "payload_too_large", ""},
		{"claim without workerId", http.MethodPost, "/api/queue/jobs/claim", s.WorkerToken, `{}`, 400, "invalid_field", "workerId"},
		{"claim waitSeconds too long", http.MethodPost, "/api/queue/jobs/claim", s.WorkerToken, `{"workerId":"w","waitSeconds":31}`, 400, "invalid_field", "waitSeconds"},
		{"claim leaseSeconds zero", http.MethodPost, "/api/queue/jobs/claim", s.WorkerToken, `{"workerId":"w","leaseSeconds":0}`, 400, "invalid_field", "leaseSeconds"},
		{"claim allowedTypes not a list", http.MethodPost, "/api/queue/jobs/claim", s.WorkerToken, `{"workerId":"w","allowedTypes":"demo:a"}`, 400, "invalid_field", "allowedTypes"},
		{"pause without reason", http.MethodPost, "/api/system/worker-pause", s.OperatorToken, `{"action":"pause","mode":"drain"}`, 400, "invalid_field", "reason"},
		{"pause with blank reason", http.MethodPost, "/api/system/worker-pause", s.OperatorToken, `{"action":"pause","mode":"drain","reason":"   "}`, 400, "invalid_field", "reason"},
		{"pause reason too long", http.MethodPost, "/api/system/worker-pause", s.OperatorToken, `{"action":"pause","mode":"drain","reason":"` + strings.Repeat("é", 1001) + `"}`, 400, "invalid_field", "reason"},
		{"pause with bad mode", http.MethodPost, "/api/system/worker-pause", s.OperatorToken, `{"action":"pause","mode":"stop","reason":"r"}`, 400, "invalid_field", "mode"},
		{"pause without mode", http.MethodPost, "/api/system/worker-pause", s.OperatorToken, `{"action":"pause","reason":"r"}`, 400, "invalid_field", "mode"},
		{"bad action", http.MethodPost, "/api/system/worker-pause", s.OperatorToken, `{"action":"halt","mode":"drain","reason":"r"}`, 400, "invalid_field", "action"},
		{"pause unknown field", http.MethodPost, "/api/system/worker-pause", s.OperatorToken, `{"action":"pause","mode":"drain","reason":"r","force":true}`, 400, "unknown_field", "force"},
		{"pause expectedVersion string", http.MethodPost, "/api/system/worker-pause", s.OperatorToken, `{"action":"pause","mode":"drain","reason":"r","expectedVersion":"1"}`, 400, "invalid_field", "expectedVersion"},
		{"pause invalid UTF-8", http.MethodPost, "/api/system/worker-pause", s.OperatorToken, []byte("{\"action\":\"pause\",\"mode\":\"drain\",\"reason\":\"\xc3\x28\"}"), 400, "invalid_json", ""},
		{"pause body over the limit", http.MethodPost, "/api/system/worker-pause", s.OperatorToken, `{"action":"pause","mode":"drain","reason":"` + strings.Repeat("r", smallPayload+bodyHeadroom) + `"}`, 413, "payload_too_large", ""},
		{"resume with mode", http.MethodPost, "/api/system/worker-pause", s.OperatorToken, `{"action":"resume","mode":"drain","reason":"r"}`, 400, "invalid_field", "mode"},
		{"waitSeconds too long", http.MethodGet, "/api/system/worker-pause?waitVersion=1&waitSeconds=31", s.OperatorToken, nil, 400, "invalid_field", "waitSeconds"},
		{"heartbeat without workerId", http.MethodPost, jobPath + "/heartbeat", s.WorkerToken, `{"attempt":1}`, 400, "invalid_field", "workerId"},
		{"heartbeat checkpoint not an object", http.MethodPost, jobPath + "/heartbeat", s.WorkerToken, `{"workerId":"w","checkpoint":"x"}`, 400, "invalid_field", "checkpoint"},
		{"complete outcome code too long", http.MethodPost, jobPath + "/complete", s.WorkerToken, `{"workerId":"w","finishOutcomeCode":"` + strings.Repeat("c", 65) + `"}`, 400, "invalid_field", "finishOutcomeCode"},
		{"recover with bad mode", http.MethodPost, jobPath + "/recover", s.OperatorToken, `{"mode":"delete"}`, 400, "invalid_field", "mode"},
		{"event with bad level", http.MethodPost, jobPath + "/events", s.WorkerToken, `{"workerId":"w","level":"fatal","message":"m"}`, 400, "invalid_field", "level"},
		{"list with bad status", http.MethodGet, "/api/queue/jobs?status=done", s.ProducerToken, nil, 400, "invalid_field", "status"},
		{"list with bad limit", http.MethodGet, "/api/queue/jobs?limit=501", s.ProducerToken, nil, 400, "invalid_field", "limit"},
		{"control events with bad cursor", http.MethodGet, "/api/system/control-events?before=abc", s.OperatorToken, nil, 400, "invalid_field", "before"},
		{"token without name", http.MethodPost, "/api/tokens", s.OperatorToken, `{"role":"worker"}`, 400, "invalid_field", "name"},
		{"token with bad role", http.MethodPost, "/api/tokens", s.OperatorToken, `{"name":"n","role":"admin"}`, 400, "invalid_field", "role"},
		{"pause sent with GET", http.MethodGet, "/api/queue/jobs/claim", s.WorkerToken, nil, 405, "method_not_allowed", ""},
		{"complete sent with GET", http.MethodGet, jobPath + "/complete", s.WorkerToken, nil, 405, "method_not_allowed", ""},
		{"pause sent with PUT", http.MethodPut, "/api/system/worker-pause", s.OperatorToken, `{"action":"pause","mode":"drain","reason":"r"}`, 405, "method_not_allowed", ""},
		{"cancel sent with GET", http.MethodGet, jobPath + "/cancel", s.OperatorToken, nil, 405, "method_not_allowed", ""},
		{"tokens sent with PUT", http.MethodPut, "/api/tokens", s.OperatorToken, `{}`, 405, "method_not_allowed", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, s)
			c.expectError(request{method: tc.method, path: tc.path, token: tc.token, body: tc.body, invalid: true}, tc.status, tc.code, tc.field)
		})
	}

	snap := c.snapshot()
	if snap.Version != 1 || snap.WorkersPaused {
		t.Errorf("pause state after bad requests = %+v, want unpaused version 1", snap.systemDoc)
	}
	if snap.Metrics.Queued != 1 || snap.Metrics.Running != 0 {
		t.Errorf("queued/running after bad requests = %d/%d, want 1/0", snap.Metrics.Queued, snap.Metrics.Running)
	}
	if n := auditRows(t, s); n != 0 {
		t.Errorf("audit rows after bad requests = %d, want 0", n)
	}
	var tokens struct {
		Items []any `json:"items"`
	}
	c.json(http.MethodGet, "/api/tokens", s.OperatorToken, nil, http.StatusOK, &tokens)
	if len(tokens.Items) != 1 {
		t.Errorf("stored tokens after bad requests = %d, want only the producer token", len(tokens.Items))
	}
}

func TestPauseSentAsGETIsRejected(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	c.expectError(request{method: http.MethodGet, path: "/api/system/worker-pause?action=pause&mode=drain&reason=x", token: s.OperatorToken, invalid: true},
		http.StatusMethodNotAllowed, "method_not_allowed", "")
	c.expectError(request{method: http.MethodGet, path: "/api/system/worker-pause", token: s.OperatorToken, invalid: true,
		body: map[string]any{"action": "pause", "mode": "drain", "reason": "x"}}, http.StatusMethodNotAllowed, "method_not_allowed", "")
	if snap := c.snapshot(); snap.WorkersPaused || snap.Version != 1 {
		t.Errorf("pause state after GET with pause parameters = %+v, want unpaused version 1", snap.systemDoc)
	}
}
