package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/moonmind/broker/internal/apitest"
)

// pauseVersionAndAudit returns the pause version, whether the workers are
// paused, and the number of audit rows in PostgreSQL.
func pauseVersionAndAudit(t *testing.T, s *apitest.Server) (int64, bool, int) {
	t.Helper()
	var snap struct {
		WorkersPaused bool  `json:"workersPaused"`
		Version       int64 `json:"version"`
	}
	s.DoJSON(t, http.MethodGet, "/api/system/worker-pause", s.OperatorToken, nil, http.StatusOK, &snap)
	return snap.Version, snap.WorkersPaused, auditRows(t, s)
}

// authCall is one request of the role matrix.
type authCall struct {
	name, method, path string
	body               any
}

// checkRejected sends call with header and wants status and code.
func checkRejected(t *testing.T, s *apitest.Server, call authCall, header http.Header, status int, code string) {
	t.Helper()
	// leaseCall always sets Authorization, but these calls send exactly
	// the header under test, so the request is built here.
	req, err := http.NewRequest(call.method, s.URL+call.path, bodyReader(t, call.body))
	if err != nil {
		t.Fatalf("build %s: %v", call.name, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if call.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", call.name, err)
	}
	defer resp.Body.Close()
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != status || e.Code != code {
		t.Errorf("%s with %v: status %d code %q, want %d %q (message %q)", call.name, redactHeader(header), resp.StatusCode, e.Code, status, code, e.Message)
	}
	if e.Message == "" {
		t.Errorf("%s with %v: empty error message", call.name, redactHeader(header))
	}
}

func bodyReader(t *testing.T, body any) *strings.Reader {
	t.Helper()
	if body == nil {
		return strings.NewReader("")
	}
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatalf("encode body: %v", err)
	}
	return strings.NewReader(string(raw))
}

// redactHeader names the header keys only, so a failure message never
// shows a token.
func redactHeader(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": []string{"Bearer " + token}}
}

func TestOnlyOperatorsCanPause(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	job := leaseEnqueue(t, s, 3)
	startVersion, startPaused, startRows := pauseVersionAndAudit(t, s)

	operatorCalls := []authCall{
		{"pause", http.MethodPost, "/api/system/worker-pause", map[string]any{"action": "pause", "mode": "drain", "reason": "upgrade"}},
		{"resume", http.MethodPost, "/api/system/worker-pause", map[string]any{"action": "resume", "reason": "done", "forceResume": true}},
		{"cancel", http.MethodPost, "/api/queue/jobs/" + job.ID + "/cancel", map[string]any{"reason": "stop"}},
		{"snapshot", http.MethodGet, "/api/system/worker-pause", nil},
		{"recover", http.MethodPost, "/api/queue/jobs/" + job.ID + "/recover", map[string]any{"mode": "requeue"}},
		{"resubmit", http.MethodPost, "/api/queue/jobs/" + job.ID + "/resubmit", map[string]any{}},
		{"pause event stream", http.MethodGet, "/api/system/worker-pause/events", nil},
		{"audit trail", http.MethodGet, "/api/system/control-events", nil},
		{"worker list", http.MethodGet, "/api/workers", nil},
		{"token list", http.MethodGet, "/api/tokens", nil},
	}

	// Without a token, or with a token that is not a bearer token of a
	// known caller, every operator call is 401.
	unauthenticated := []http.Header{
		{},
		{"Authorization": []string{"Bearer "}},
		{"Authorization": []string{"Bearer not-a-token"}},
		{"Authorization": []string{"Basic " + s.OperatorToken}},
		{"Authorization": []string{s.OperatorToken}},
		// The worker token header accepts worker tokens only.
		{"X-Moonmind-Worker-Token": []string{s.OperatorToken}},
	}
	for _, call := range operatorCalls {
		for _, h := range unauthenticated {
			checkRejected(t, s, call, h, http.StatusUnauthorized, "unauthorized")
		}
		// A token in the query string is not read.
		queryCall := call
		if strings.Contains(call.path, "?") {
			queryCall.path += "&token=" + s.OperatorToken
		} else {
			queryCall.path += "?token=" + s.OperatorToken
		}
		checkRejected(t, s, queryCall, http.Header{}, http.StatusUnauthorized, "unauthorized")
	}

	// Worker and producer tokens may not call operator endpoints, in
	// either header.
	forbidden := []http.Header{
		bearer(s.WorkerToken),
		{"X-Moonmind-Worker-Token": []string{s.WorkerToken}},
		bearer(s.ProducerToken),
	}
	for _, call := range operatorCalls {
		for _, h := range forbidden {
			checkRejected(t, s, call, h, http.StatusForbidden, "forbidden")
		}
	}

	// A pause sent with another method is 405, and so is a GET that
	// carries a pause request in its query or body: GET only reads.
	wrongMethod := []authCall{
		{"pause as GET with a query", http.MethodGet, "/api/system/worker-pause?action=pause&mode=drain&reason=upgrade", nil},
		{"pause as GET with a body", http.MethodGet, "/api/system/worker-pause", map[string]any{"action": "pause", "mode": "drain", "reason": "upgrade"}},
		{"pause as PUT", http.MethodPut, "/api/system/worker-pause", map[string]any{"action": "pause", "mode": "drain", "reason": "upgrade"}},
		{"pause as PATCH", http.MethodPatch, "/api/system/worker-pause", map[string]any{"action": "pause", "mode": "drain", "reason": "upgrade"}},
		{"pause as DELETE", http.MethodDelete, "/api/system/worker-pause", nil},
	}
	for _, call := range wrongMethod {
		checkRejected(t, s, call, bearer(s.OperatorToken), http.StatusMethodNotAllowed, "method_not_allowed")
	}

	// A revoked operator token is 401 like an unknown one.
	var created struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	s.DoJSON(t, http.MethodPost, "/api/tokens", s.OperatorToken, map[string]any{"name": "short-lived-operator", "role": "operator"}, http.StatusCreated, &created)
	s.DoJSON(t, http.MethodDelete, "/api/tokens/"+created.ID, s.OperatorToken, nil, http.StatusOK, nil)
	checkRejected(t, s, operatorCalls[0], bearer(created.Token), http.StatusUnauthorized, "unauthorized")

	// None of the rejected calls changed the pause state, its version or
	// the audit trail.
	version, paused, rows := pauseVersionAndAudit(t, s)
	if version != startVersion || paused != startPaused || rows != startRows {
		t.Fatalf("after rejected calls: version %d paused %v audit rows %d, want %d %v %d",
			version, paused, rows, startVersion, startPaused, startRows)
	}
	if got := leaseGet(t, s, job.ID); got.Status != "queued" {
		t.Fatalf("after rejected calls: job status %s, want queued", got.Status)
	}

	// A worker token claims.
	if claimed := leaseClaim(t, s, "worker-a", 30); claimed == nil || claimed.ID != job.ID {
		t.Fatalf("worker claim = %+v, want job %s", claimed, job.ID)
	}

	// With the operator token everything works, and each accepted change
	// adds one audit row and one version.
	var snap struct {
		WorkersPaused bool  `json:"workersPaused"`
		Version       int64 `json:"version"`
	}
	s.DoJSON(t, http.MethodPost, "/api/system/worker-pause", s.OperatorToken, operatorCalls[0].body, http.StatusOK, &snap)
	if !snap.WorkersPaused || snap.Version != startVersion+1 {
		t.Errorf("operator pause: paused %v version %d, want true %d", snap.WorkersPaused, snap.Version, startVersion+1)
	}
	s.DoJSON(t, http.MethodGet, "/api/system/worker-pause", s.OperatorToken, nil, http.StatusOK, nil)
	s.DoJSON(t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/cancel", s.OperatorToken, operatorCalls[2].body, http.StatusOK, nil)
	s.DoJSON(t, http.MethodPost, "/api/system/worker-pause", s.OperatorToken, operatorCalls[1].body, http.StatusOK, &snap)
	if snap.WorkersPaused || snap.Version != startVersion+2 {
		t.Errorf("operator resume: paused %v version %d, want false %d", snap.WorkersPaused, snap.Version, startVersion+2)
	}
	if rows := auditRows(t, s); rows != startRows+2 {
		t.Errorf("audit rows after the operator's pause and resume: %d, want %d", rows, startRows+2)
	}
}
