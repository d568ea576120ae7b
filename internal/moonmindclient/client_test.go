package moonmindclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// The tests here serve fixed responses from an httptest server on 127.0.0.1,
// because the real broker never sends the broken responses they need. The
// compatibility test in package api runs the client against the real broker.

const validJobID = "7f0c6d2e-3b1a-4c5d-9e8f-0a1b2c3d4e5f"

// recorded is one request seen by the fixed-answer server.
type recorded struct {
	method, path, accept, workerToken, authorization string
	body                                             map[string]any
}

// fixedServer responds to every request with status and body and records it.
func fixedServer(t *testing.T, status int, body string) (*Client, func() []recorded) {
	t.Helper()
	var mu sync.Mutex
	var seen []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		rec := recorded{
			method: r.Method, path: r.URL.RequestURI(), accept: r.Header.Get("Accept"),
			workerToken: r.Header.Get(WorkerTokenHeader), authorization: r.Header.Get("Authorization"),
		}
		if len(raw) > 0 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			if err := json.Unmarshal(raw, &rec.body); err != nil {
				t.Errorf("request body %s is not a JSON object: %v", raw, err)
			}
		}
		mu.Lock()
		seen = append(seen, rec)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, WorkerToken: "worker-secret", ReadToken: "reader-secret"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), seen...)
	}
}

// jobJSON returns a valid job document with one field replaced by value
// (raw JSON), or removed when value is empty.
func jobJSON(t *testing.T, field, value string) string {
	t.Helper()
	doc := map[string]json.RawMessage{
		"id": json.RawMessage(`"` + validJobID + `"`), "type": json.RawMessage(`"task"`),
		"status": json.RawMessage(`"running"`), "payload": json.RawMessage(`{"a":1}`),
		"attempt": json.RawMessage(`1`), "maxAttempts": json.RawMessage(`3`),
		"createdAt":      json.RawMessage(`"2026-12-04T20:06:53.123Z"`),
		"updatedAt":      json.RawMessage(`"2026-12-04T20:06:54+01:00"`),
		"leaseExpiresAt": json.RawMessage(`"2026-12-04T20:07:53.1Z"`),
	}
	if field != "" {
		if value == "" {
			delete(doc, field)
		} else {
			doc[field] = json.RawMessage(value)
		}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("encode job: %v", err)
	}
	return string(raw)
}

const validSystem = `{"workersPaused":false,"mode":null,"reason":null,"version":1,"requestedAt":null,"updatedAt":"2026-12-04T20:06:53Z"}`

func TestClaimSendsMoonMindShape(t *testing.T) {
	t.Parallel()
	c, seen := fixedServer(t, http.StatusOK, `{"job":`+jobJSON(t, "", "")+`,"system":`+validSystem+`}`)

	res, err := c.ClaimJob(context.Background(), ClaimParams{WorkerID: "w1", LeaseSeconds: 120})
	if err != nil {
		t.Fatalf("ClaimJob: %v", err)
	}
	if res.Job == nil || res.Job.ID != validJobID || res.Job.Attempt != 1 || res.Job.MaxAttempts != 3 {
		t.Errorf("claimed job = %+v, want id %s, attempt 1, maxAttempts 3", res.Job, validJobID)
	}
	if res.System.Version != 1 || res.System.UpdatedAt == nil {
		t.Errorf("system = %+v, want version 1 and updatedAt set", res.System)
	}

	reqs := seen()
	if len(reqs) != 1 {
		t.Fatalf("server saw %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/api/queue/jobs/claim" {
		t.Errorf("request = %s %s, want POST /api/queue/jobs/claim", r.method, r.path)
	}
	if r.workerToken != "worker-secret" {
		t.Errorf("%s = %q, want the worker token", WorkerTokenHeader, r.workerToken)
	}
	if r.authorization != "" {
		t.Errorf("Authorization = %q on a worker call, want none", r.authorization)
	}
	if r.accept != "application/json" {
		t.Errorf("Accept = %q, want application/json", r.accept)
	}
	if len(r.body) != 2 || r.body["workerId"] != "w1" || r.body["leaseSeconds"] != float64(120) {
		t.Errorf("claim body = %v, want exactly workerId w1 and leaseSeconds 120", r.body)
	}
}

func TestFinishFieldsLeftOutWhenEmpty(t *testing.T) {
	t.Parallel()
	c, seen := fixedServer(t, http.StatusOK, jobJSON(t, "", ""))
	ctx := context.Background()

	if _, err := c.CompleteJob(ctx, validJobID, "w1", "", nil); err != nil {
		t.Fatalf("CompleteJob: %v", err)
	}
	if _, err := c.AckCancel(ctx, validJobID, "w1", "", &Finish{OutcomeCode: "CANCELLED"}); err != nil {
		t.Fatalf("AckCancel: %v", err)
	}
	if _, err := c.FailJob(ctx, validJobID, "w1", "boom", false, nil); err != nil {
		t.Fatalf("FailJob: %v", err)
	}

	reqs := seen()
	if got := reqs[0].body; len(got) != 1 || got["workerId"] != "w1" {
		t.Errorf("complete body = %v, want only workerId", got)
	}
	if got := reqs[1].body; len(got) != 2 || got["finishOutcomeCode"] != "CANCELLED" {
		t.Errorf("cancel ack body = %v, want workerId and finishOutcomeCode only", got)
	}
	if got := reqs[2].body; len(got) != 3 || got["retryable"] != false || got["errorMessage"] != "boom" {
		t.Errorf("fail body = %v, want workerId, errorMessage and retryable false", got)
	}
}

func TestResponseChecksRejectBrokenAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body, wantField string
	}{
		{"version zero", `{"job":null,"system":{"workersPaused":true,"version":0}}`, "system.version"},
		{"version missing", `{"job":null,"system":{"workersPaused":false}}`, "system.version"},
		{"version a string", `{"job":null,"system":{"version":"2"}}`, "system.version"},
		{"system missing", `{"job":null}`, "system"},
		{"unknown mode", `{"job":null,"system":{"version":1,"mode":"stop"}}`, "system.mode"},
		{"time without zone", `{"job":null,"system":{"version":1,"updatedAt":"2026-12-04T20:06:53"}}`, "system.updatedAt"},
		{"time as date only", `{"job":` + jobJSON(t, "createdAt", `"2026-12-04"`) + `,"system":` + validSystem + `}`, "job.createdAt"},
		{"attempt zero", `{"job":` + jobJSON(t, "attempt", `0`) + `,"system":` + validSystem + `}`, "job.attempt"},
		{"attempt fraction", `{"job":` + jobJSON(t, "attempt", `1.5`) + `,"system":` + validSystem + `}`, "job.attempt"},
		{"maxAttempts negative", `{"job":` + jobJSON(t, "maxAttempts", `-3`) + `,"system":` + validSystem + `}`, "job.maxAttempts"},
		{"id not a UUID", `{"job":` + jobJSON(t, "id", `"job-1"`) + `,"system":` + validSystem + `}`, "job.id"},
		{"type missing", `{"job":` + jobJSON(t, "type", "") + `,"system":` + validSystem + `}`, "job.type"},
		{"payload an array", `{"job":` + jobJSON(t, "payload", `[1]`) + `,"system":` + validSystem + `}`, "job.payload"},
		{"body not an object", `[]`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, _ := fixedServer(t, http.StatusOK, tc.body)
			_, err := c.ClaimJob(context.Background(), ClaimParams{WorkerID: "w1", LeaseSeconds: 60})
			if !errors.Is(err, ErrInvalidResponse) {
				t.Fatalf("ClaimJob error = %v, want ErrInvalidResponse", err)
			}
			if tc.wantField != "" && !strings.Contains(err.Error(), tc.wantField+" ") {
				t.Errorf("error %q does not name %s", err, tc.wantField)
			}
		})
	}
}

func TestAbsentAttemptsUseMoonMindDefaults(t *testing.T) {
	t.Parallel()
	body := jobJSON(t, "attempt", "")
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "maxAttempts")
	raw, _ := json.Marshal(doc)
	c, _ := fixedServer(t, http.StatusOK, string(raw))

	job, err := c.GetJob(context.Background(), validJobID)
	if err != nil {
		t.Fatalf("GetJob: %v", err)
	}
	if job.Attempt != 1 || job.MaxAttempts != 3 {
		t.Errorf("attempt, maxAttempts = %d, %d, want the defaults 1, 3", job.Attempt, job.MaxAttempts)
	}
}

func TestErrorAnswerBecomesAPIError(t *testing.T) {
	t.Parallel()
	c, seen := fixedServer(t, http.StatusBadRequest,
		`{"code":"invalid_field","message":"finishOutcomeCode has 65 characters: send at most 64","field":"finishOutcomeCode"}`)

	_, err := c.CompleteJob(context.Background(), validJobID, "w1", "", &Finish{OutcomeCode: strings.Repeat("x", 65)})
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("CompleteJob error = %v, want *APIError", err)
	}
	if apiErr.Status != http.StatusBadRequest || apiErr.Code != "invalid_field" || apiErr.Field != "finishOutcomeCode" {
		t.Errorf("APIError = %+v, want 400 invalid_field on finishOutcomeCode", apiErr)
	}
	if got := seen()[0].path; got != "/api/queue/jobs/"+validJobID+"/complete" {
		t.Errorf("path = %s, want the complete path", got)
	}
}

func TestReadsUseBearerToken(t *testing.T) {
	t.Parallel()
	c, seen := fixedServer(t, http.StatusOK, `{"items":[],"nextCursor":null}`)

	page, err := c.ListEvents(context.Background(), validJobID, "1733340000000-0", 10)
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	if len(page.Items) != 0 || page.NextCursor != "" {
		t.Errorf("page = %+v, want empty", page)
	}
	r := seen()[0]
	if r.authorization != "Bearer reader-secret" || r.workerToken != "" {
		t.Errorf("Authorization %q, worker header %q, want the read token as bearer only", r.authorization, r.workerToken)
	}
	if want := "/api/queue/jobs/" + validJobID + "/events?after=1733340000000-0&limit=10"; r.path != want {
		t.Errorf("path = %s, want %s", r.path, want)
	}
}
