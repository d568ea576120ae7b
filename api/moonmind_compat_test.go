package api_test

// MoonMind compatibility tests. MoonMind's own queue workers must run against
// this broker with no change on their side, so these tests drive a real
// broker (apitest: real Redis, PostgreSQL and HTTP server on 127.0.0.1) with
// internal/moonmindclient, a Go model of MoonMind's worker client.
//
// The model follows QueueApiClient in moonmind/agents/codex_worker/worker.py
// of github.com/MoonLadderStudios/MoonMind. It sends the worker token in
// X-MoonMind-Worker-Token. Claim sends workerId, leaseSeconds, allowedTypes
// and workerCapabilities, and heartbeat sends workerId and leaseSeconds.
// Complete sends resultSummary, fail sends errorMessage and retryable, and
// cancel/ack sends message. Events carry workerId, level, message and
// payload, and artifacts go up as a multipart upload. The finish fields (finishOutcomeCode, Stage,
// Reason, finishSummary) on complete, fail and cancel/ack, and runtime-state
// with runtimeState, follow the request models of the queue router
// api_service/api/routers/agent_queue.py and the worker test fakes
// (tests/unit/agents/codex_worker/test_worker.py) of the same repository.
// Response checks: the job id is a UUID, attempt and maxAttempts are positive
// integers, system.version is an integer of at least 1, and every timestamp
// is RFC 3339 with Z or an offset. Every request and response of the client
// is also checked against api/openapi.yaml.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/moonmindclient"
	"github.com/moonmind/broker/internal/testutil"
)

const moonMindWorker = "mm-worker-1"

// newMoonMindClient returns a client that sends the worker token in
// X-MoonMind-Worker-Token and reads with the producer token. Every request
// and response is checked against api/openapi.yaml.
func newMoonMindClient(t *testing.T, s *apitest.Server) *moonmindclient.Client {
	t.Helper()
	return moonMindClientWith(t, s, true)
}

// moonMindClientWith is newMoonMindClient; checkRequests false skips the
// request check, for requests that break the document on purpose.
// Responses are checked either way.
func moonMindClientWith(t *testing.T, s *apitest.Server, checkRequests bool) *moonmindclient.Client {
	t.Helper()
	httpClient := *s.Client
	httpClient.Transport = &specCheckingTransport{t: t, base: s.Client.Transport, checkRequests: checkRequests}
	mm, err := moonmindclient.New(moonmindclient.Config{
		BaseURL: s.URL, WorkerToken: s.WorkerToken, ReadToken: s.ProducerToken, HTTPClient: &httpClient,
	})
	if err != nil {
		t.Fatalf("create MoonMind client: %v", err)
	}
	return mm
}

// specCheckingTransport checks each request the MoonMind client sends and
// each response it gets against api/openapi.yaml, so a field or route that
// the document lacks fails the test.
type specCheckingTransport struct {
	t             *testing.T
	base          http.RoundTripper
	checkRequests bool
}

func (tr *specCheckingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tr.t.Helper()
	var raw []byte
	if req.Body != nil {
		var err error
		if raw, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(raw))
	}

	route, params, err := openAPIRouter(tr.t).FindRoute(req)
	if err != nil {
		tr.t.Errorf("%s %s: no route in api/openapi.yaml: %v", req.Method, req.URL.Path, err)
		return tr.roundTrip(req)
	}
	input := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, SkipSettingDefaults: true},
	}
	if tr.checkRequests {
		if err := openapi3filter.ValidateRequest(context.Background(), input); err != nil {
			tr.t.Errorf("%s %s: request does not match api/openapi.yaml: %v", req.Method, req.URL.Path, err)
		}
		req.Body = io.NopCloser(bytes.NewReader(raw))
	}

	resp, err := tr.roundTrip(req)
	if err != nil || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// An event stream stays open; the client checks each event.
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: input, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		tr.t.Errorf("%s %s: response %d %s does not match api/openapi.yaml: %v", req.Method, req.URL.Path, resp.StatusCode, body, err)
	}
	return resp, nil
}

func (tr *specCheckingTransport) roundTrip(req *http.Request) (*http.Response, error) {
	if tr.base != nil {
		return tr.base.RoundTrip(req)
	}
	return http.DefaultTransport.RoundTrip(req)
}

// claimOne claims with the MoonMind client and fails the test unless it
// gets the job with the given id.
func claimOne(t *testing.T, mm *moonmindclient.Client, jobID string) *moonmindclient.Job {
	t.Helper()
	res, err := mm.ClaimJob(t.Context(), moonmindclient.ClaimParams{WorkerID: moonMindWorker, LeaseSeconds: 120})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if res.Job == nil || res.Job.ID != jobID {
		t.Fatalf("claim returned %+v, want job %s", res.Job, jobID)
	}
	return res.Job
}

// wantAPIError checks that err is an *APIError with status, code and, when
// not empty, field.
func wantAPIError(t *testing.T, what string, err error, status int, code, field string) *moonmindclient.APIError {
	t.Helper()
	var apiErr *moonmindclient.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("%s: error %v, want an API error %d %s", what, err, status, code)
	}
	if apiErr.Status != status || apiErr.Code != code {
		t.Errorf("%s: got %d %s (%s), want %d %s", what, apiErr.Status, apiErr.Code, apiErr.Message, status, code)
	}
	if field != "" && apiErr.Field != field {
		t.Errorf("%s: field %q, want %q; message %q", what, apiErr.Field, field, apiErr.Message)
	}
	return apiErr
}

// allEvents pages through a job's events with a small limit, so the cursor
// is exercised, and returns them oldest first.
func allEvents(t *testing.T, mm *moonmindclient.Client, jobID string) []moonmindclient.Event {
	t.Helper()
	var out []moonmindclient.Event
	after := ""
	for range 100 {
		page, err := mm.ListEvents(t.Context(), jobID, after, 2)
		if err != nil {
			t.Fatalf("list events after %q: %v", after, err)
		}
		out = append(out, page.Items...)
		if len(page.Items) == 0 {
			return out
		}
		if page.NextCursor != page.Items[len(page.Items)-1].ID {
			t.Fatalf("nextCursor %q is not the id of the last event %q", page.NextCursor, page.Items[len(page.Items)-1].ID)
		}
		after = page.NextCursor
	}
	t.Fatalf("job %s still had events after 100 pages", jobID)
	return nil
}

func eventKinds(events []moonmindclient.Event) []string {
	kinds := make([]string, len(events))
	for i, ev := range events {
		kinds[i] = ev.Kind
	}
	return kinds
}

// streamAll reads the job's event stream until the broker ends it.
func streamAll(t *testing.T, mm *moonmindclient.Client, jobID, lastEventID string) []moonmindclient.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []moonmindclient.Event
	err := mm.StreamEvents(ctx, jobID, lastEventID, func(ev moonmindclient.Event) error {
		got = append(got, ev)
		return nil
	})
	if err != nil {
		t.Fatalf("stream events of finished job %s: %v (got %d events)", jobID, err, len(got))
	}
	return got
}

func TestMoonMindFullJob(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	mm := newMoonMindClient(t, s)
	ctx := t.Context()
	job := c.enqueue("task", map[string]any{"instructions": "run the tests"})

	claim, err := mm.ClaimJob(ctx, moonmindclient.ClaimParams{
		WorkerID: moonMindWorker, LeaseSeconds: 120,
		AllowedTypes: []string{"task", "codex_exec", "codex_skill"}, WorkerCapabilities: []string{"codex", "git", "gh"},
	})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	if claim.Job == nil || claim.Job.ID != job.ID {
		t.Fatalf("claim returned %+v, want job %s", claim.Job, job.ID)
	}
	if claim.Job.Attempt != 1 || claim.Job.MaxAttempts != broker.DefaultMaxAttempts {
		t.Errorf("attempt, maxAttempts = %d, %d, want 1, %d", claim.Job.Attempt, claim.Job.MaxAttempts, broker.DefaultMaxAttempts)
	}
	if claim.Job.Payload["instructions"] != "run the tests" {
		t.Errorf("claimed payload = %v, want the enqueued one", claim.Job.Payload)
	}
	if claim.Job.LeaseExpiresAt == nil || !claim.Job.LeaseExpiresAt.After(claim.Job.CreatedAt) {
		t.Errorf("leaseExpiresAt = %v, want a time after createdAt %v", claim.Job.LeaseExpiresAt, claim.Job.CreatedAt)
	}
	if claim.System.WorkersPaused || claim.System.Version != 1 {
		t.Errorf("claim system = %+v, want running workers at version 1", claim.System)
	}

	hb, err := mm.Heartbeat(ctx, job.ID, moonMindWorker, 120)
	if err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if hb.Job.Status != "running" || hb.Job.CancelRequestedAt != nil {
		t.Errorf("heartbeat job status %q, cancelRequestedAt %v, want running and no cancel", hb.Job.Status, hb.Job.CancelRequestedAt)
	}
	if hb.System.Version != claim.System.Version {
		t.Errorf("heartbeat system version %d, want %d", hb.System.Version, claim.System.Version)
	}

	// MoonMind's worker sends its progress as events of every level.
	messages := []string{"Worker claimed job", "moonmind.task.plan", "stage output", "publish skipped"}
	for i, level := range []string{"info", "debug", "warn", "error"} {
		ev, err := mm.AppendEvent(ctx, job.ID, moonMindWorker, level, messages[i], map[string]any{"jobType": "task", "step": i})
		if err != nil {
			t.Fatalf("append %s event: %v", level, err)
		}
		if ev.Level != level || ev.Kind != "worker" || ev.WorkerID != moonMindWorker || ev.Payload["jobType"] != "task" {
			t.Errorf("appended event = %+v, want level %s, kind worker, worker %s and the payload", ev, level, moonMindWorker)
		}
	}
	if _, err := mm.AppendEvent(ctx, job.ID, moonMindWorker, "info", "no payload", nil); err != nil {
		t.Fatalf("append event without payload: %v", err)
	}

	state, err := mm.UpdateRuntimeState(ctx, job.ID, moonMindWorker, map[string]any{"stage": "execute", "stepIndex": 2})
	if err != nil {
		t.Fatalf("runtime state: %v", err)
	}
	if state.Checkpoint["stage"] != "execute" || state.Status != "running" {
		t.Errorf("after runtime state: checkpoint %v, status %q, want stage execute and running", state.Checkpoint, state.Status)
	}
	_, err = mm.UpdateRuntimeState(ctx, job.ID, "mm-worker-2", map[string]any{"stage": "stolen"})
	wantAPIError(t, "runtime state by another worker", err, http.StatusConflict, "lease_lost", "")
	_, err = mm.AppendEvent(ctx, job.ID, "mm-worker-2", "info", "not mine", nil)
	wantAPIError(t, "event by another worker", err, http.StatusConflict, "lease_lost", "")

	finish := &moonmindclient.Finish{
		OutcomeCode: "PUBLISHED_PR", OutcomeStage: "publish", OutcomeReason: "published pull request",
		Summary: map[string]any{"schemaVersion": "v1", "finishOutcome": map[string]any{"code": "PUBLISHED_PR", "stage": "publish"}},
	}
	done, err := mm.CompleteJob(ctx, job.ID, moonMindWorker, "task completed; published PR", finish)
	if err != nil {
		t.Fatalf("complete: %v", err)
	}
	if done.Status != "succeeded" || done.FinishedAt == nil {
		t.Errorf("after complete: status %q, finishedAt %v, want succeeded with a time", done.Status, done.FinishedAt)
	}

	read, err := mm.GetJob(ctx, job.ID)
	if err != nil {
		t.Fatalf("get job: %v", err)
	}
	for _, j := range []*moonmindclient.Job{done, read} {
		if j.ResultSummary != "task completed; published PR" || j.FinishOutcomeCode != "PUBLISHED_PR" ||
			j.FinishOutcomeStage != "publish" || j.FinishOutcomeReason != "published pull request" {
			t.Errorf("job document outcome = %q %q %q %q, want the sent ones", j.ResultSummary, j.FinishOutcomeCode, j.FinishOutcomeStage, j.FinishOutcomeReason)
		}
		if j.FinishSummary["schemaVersion"] != "v1" {
			t.Errorf("job document finishSummary = %v, want the sent object", j.FinishSummary)
		}
	}
	if read.Checkpoint["stage"] != "execute" {
		t.Errorf("job document checkpoint = %v, want the saved runtime state", read.Checkpoint)
	}

	fs, err := mm.FinishSummary(ctx, job.ID)
	if err != nil {
		t.Fatalf("finish summary: %v", err)
	}
	if fs.JobID != job.ID || fs.Status != "succeeded" || fs.FinishOutcomeCode != "PUBLISHED_PR" || fs.FinishOutcomeStage != "publish" ||
		fs.FinishOutcomeReason != "published pull request" || fs.ResultSummary != "task completed; published PR" || fs.FinishedAt == nil {
		t.Errorf("finish summary = %+v, want the outcome of the completed job", fs)
	}
	if inner, _ := fs.FinishSummary["finishOutcome"].(map[string]any); inner["code"] != "PUBLISHED_PR" {
		t.Errorf("finish summary object = %v, want the nested finishOutcome", fs.FinishSummary)
	}

	events := allEvents(t, mm, job.ID)
	wantKinds := []string{"claimed", "worker", "worker", "worker", "worker", "worker", "succeeded"}
	if got := eventKinds(events); !slices.Equal(got, wantKinds) {
		t.Fatalf("event kinds = %v, want %v", got, wantKinds)
	}
	for i, msg := range messages {
		if events[i+1].Message != msg {
			t.Errorf("event %d message = %q, want %q", i+1, events[i+1].Message, msg)
		}
	}
	if events[0].WorkerID != moonMindWorker {
		t.Errorf("claimed event worker = %q, want %s", events[0].WorkerID, moonMindWorker)
	}
	for i := 1; i < len(events); i++ {
		if events[i].CreatedAt.Before(events[i-1].CreatedAt) {
			t.Errorf("event %d at %v is older than event %d at %v", i, events[i].CreatedAt, i-1, events[i-1].CreatedAt)
		}
	}

	streamed := streamAll(t, mm, job.ID, "")
	if len(streamed) != len(events) {
		t.Fatalf("stream sent %d events, list has %d", len(streamed), len(events))
	}
	for i := range events {
		if streamed[i].ID != events[i].ID || streamed[i].Kind != events[i].Kind {
			t.Errorf("streamed event %d = %s %s, listed %s %s", i, streamed[i].ID, streamed[i].Kind, events[i].ID, events[i].Kind)
		}
	}
	resumed := streamAll(t, mm, job.ID, events[len(events)-2].ID)
	if len(resumed) != 1 || resumed[0].Kind != "succeeded" {
		t.Errorf("stream after Last-Event-ID sent %v, want only the succeeded event", eventKinds(resumed))
	}
}

func TestMoonMindPausedClaim(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	mm := newMoonMindClient(t, s)
	ctx := t.Context()

	c.pause("drain", "Upgrading worker images")
	job := c.enqueue("task", nil)

	paused, err := mm.ClaimJob(ctx, moonmindclient.ClaimParams{WorkerID: moonMindWorker, LeaseSeconds: 120})
	if err != nil {
		t.Fatalf("claim while paused: %v", err)
	}
	if paused.Job != nil {
		t.Fatalf("claim while paused returned job %s, want none", paused.Job.ID)
	}
	sys := paused.System
	if !sys.WorkersPaused || sys.Mode != "drain" || sys.Reason != "Upgrading worker images" || sys.Version != 2 {
		t.Errorf("system while paused = %+v, want paused in drain at version 2 with the reason", sys)
	}
	if sys.RequestedAt == nil || sys.UpdatedAt == nil {
		t.Errorf("system while paused has requestedAt %v, updatedAt %v, want both set", sys.RequestedAt, sys.UpdatedAt)
	}

	c.resume("Upgrade finished")
	res, err := mm.ClaimJob(ctx, moonmindclient.ClaimParams{WorkerID: moonMindWorker, LeaseSeconds: 120})
	if err != nil {
		t.Fatalf("claim after resume: %v", err)
	}
	if res.Job == nil || res.Job.ID != job.ID {
		t.Fatalf("claim after resume returned %+v, want job %s", res.Job, job.ID)
	}
	if res.System.WorkersPaused || res.System.Mode != "" || res.System.Version != 3 {
		t.Errorf("system after resume = %+v, want running workers at version 3", res.System)
	}
}

func TestMoonMindCancelWithAck(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	mm := newMoonMindClient(t, s)
	ctx := t.Context()
	job := c.enqueue("task", nil)
	claimOne(t, mm, job.ID)

	_, err := mm.AckCancel(ctx, job.ID, moonMindWorker, "too early", nil)
	wantAPIError(t, "cancel ack before a cancel request", err, http.StatusConflict, "invalid_state", "")

	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/cancel", s.OperatorToken, map[string]any{"reason": "operator request"}, http.StatusOK, nil)

	// MoonMind's worker learns of the cancel from cancelRequestedAt in the
	// heartbeat response.
	hb, err := mm.Heartbeat(ctx, job.ID, moonMindWorker, 120)
	if err != nil {
		t.Fatalf("heartbeat after cancel: %v", err)
	}
	if hb.Job.CancelRequestedAt == nil || hb.Job.CancelReason != "operator request" || hb.Job.Status != "running" {
		t.Fatalf("heartbeat after cancel: cancelRequestedAt %v, reason %q, status %q; want the request on a running job",
			hb.Job.CancelRequestedAt, hb.Job.CancelReason, hb.Job.Status)
	}

	finish := &moonmindclient.Finish{
		OutcomeCode: "CANCELLED", OutcomeStage: "execute", OutcomeReason: "cancelled by operator",
		Summary: map[string]any{"schemaVersion": "v1", "finishOutcome": map[string]any{"code": "CANCELLED"}},
	}
	acked, err := mm.AckCancel(ctx, job.ID, moonMindWorker, "stopping due to cancellation", finish)
	if err != nil {
		t.Fatalf("cancel ack: %v", err)
	}
	if acked.Status != "cancelled" || acked.FinishedAt == nil || acked.FinishOutcomeCode != "CANCELLED" ||
		acked.FinishOutcomeStage != "execute" || acked.FinishOutcomeReason != "cancelled by operator" || acked.FinishSummary["schemaVersion"] != "v1" {
		t.Errorf("after cancel ack: %+v, want cancelled with the finish fields", acked)
	}

	fs, err := mm.FinishSummary(ctx, job.ID)
	if err != nil {
		t.Fatalf("finish summary: %v", err)
	}
	if fs.Status != "cancelled" || fs.FinishOutcomeCode != "CANCELLED" || fs.FinishOutcomeStage != "execute" || fs.FinishSummary["schemaVersion"] != "v1" {
		t.Errorf("finish summary = %+v, want the cancel outcome", fs)
	}

	var doc broker.Job
	c.json(http.MethodGet, "/api/queue/jobs/"+job.ID, s.OperatorToken, nil, http.StatusOK, &doc)
	if doc.CancelAckMessage == nil || *doc.CancelAckMessage != "stopping due to cancellation" {
		t.Errorf("job document cancelAckMessage = %v, want the ack message", doc.CancelAckMessage)
	}

	events := allEvents(t, mm, job.ID)
	if got, want := eventKinds(events), []string{"claimed", "cancel_requested", "cancelled"}; !slices.Equal(got, want) {
		t.Fatalf("event kinds = %v, want %v", got, want)
	}
	if last := events[len(events)-1]; !strings.Contains(last.Message, "stopping due to cancellation") || last.WorkerID != moonMindWorker {
		t.Errorf("cancelled event = %+v, want the ack message and the worker", last)
	}
}

func TestMoonMindRetryableFail(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{
		BrokerConfig: broker.Config{BackoffBase: 10 * time.Millisecond, BackoffCap: 50 * time.Millisecond},
	})
	c := newClient(t, s)
	mm := newMoonMindClient(t, s)
	ctx := t.Context()
	var job jobDoc
	c.json(http.MethodPost, "/api/queue/jobs", s.ProducerToken, map[string]any{"type": "task", "maxAttempts": 2}, http.StatusCreated, &job)
	first := claimOne(t, mm, job.ID)
	if first.MaxAttempts != 2 {
		t.Errorf("maxAttempts = %d, want 2", first.MaxAttempts)
	}

	failed, err := mm.FailJob(ctx, job.ID, moonMindWorker, "transient: network unreachable", true,
		&moonmindclient.Finish{OutcomeCode: "FAILED", OutcomeStage: "prepare", OutcomeReason: "clone failed"})
	if err != nil {
		t.Fatalf("retryable fail: %v", err)
	}
	if failed.Status != "queued" || failed.NextAttemptAt == nil || failed.ErrorMessage != "transient: network unreachable" || failed.Attempt != 1 {
		t.Errorf("after retryable fail: status %q, nextAttemptAt %v, error %q, attempt %d; want queued for a retry of attempt 1",
			failed.Status, failed.NextAttemptAt, failed.ErrorMessage, failed.Attempt)
	}

	var second *moonmindclient.Job
	testutil.WaitFor(t, 10*time.Second, "the retry to become claimable", func() bool {
		res, err := mm.ClaimJob(ctx, moonmindclient.ClaimParams{WorkerID: moonMindWorker, LeaseSeconds: 120})
		if err != nil {
			t.Fatalf("claim the retry: %v", err)
		}
		second = res.Job
		return second != nil
	})
	if second.ID != job.ID || second.Attempt != 2 {
		t.Fatalf("retry claim = %s attempt %d, want %s attempt 2", second.ID, second.Attempt, job.ID)
	}

	dead, err := mm.FailJob(ctx, job.ID, moonMindWorker, "transient again", true,
		&moonmindclient.Finish{OutcomeCode: "FAILED", OutcomeStage: "execute"})
	if err != nil {
		t.Fatalf("second retryable fail: %v", err)
	}
	if dead.Status != "dead_letter" || dead.FinishOutcomeStage != "execute" {
		t.Errorf("after the last attempt failed: status %q, stage %q, want dead_letter at execute", dead.Status, dead.FinishOutcomeStage)
	}
	want := []string{"claimed", "retry_scheduled", "claimed", "dead_lettered"}
	if got := eventKinds(allEvents(t, mm, job.ID)); !slices.Equal(got, want) {
		t.Errorf("event kinds = %v, want %v", got, want)
	}

	// MoonMind's worker sends retryable false by default, and such a job
	// ends failed at once.
	other := c.enqueue("task", nil)
	claimOne(t, mm, other.ID)
	final, err := mm.FailJob(ctx, other.ID, moonMindWorker, "unsupported job type", false, nil)
	if err != nil {
		t.Fatalf("non-retryable fail: %v", err)
	}
	if final.Status != "failed" || final.NextAttemptAt != nil {
		t.Errorf("after non-retryable fail: status %q, nextAttemptAt %v, want failed with no retry", final.Status, final.NextAttemptAt)
	}
	fs, err := mm.FinishSummary(ctx, other.ID)
	if err != nil {
		t.Fatalf("finish summary: %v", err)
	}
	if fs.Status != "failed" || fs.ErrorMessage != "unsupported job type" || fs.FinishOutcomeCode != "" || fs.FinishSummary != nil {
		t.Errorf("finish summary = %+v, want failed with the error and no outcome fields", fs)
	}
}

func TestMoonMindRejectsTyposAndLongFields(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	mm := moonMindClientWith(t, s, false)
	ctx := t.Context()
	job := c.enqueue("task", nil)
	claimOne(t, mm, job.ID)

	typos := []struct{ endpoint, field string }{
		{"/complete", "finishOutcomeCod"},
		{"/complete", "resultSumary"},
		{"/fail", "finishSumary"},
		{"/fail", "finishOutcomeStag"},
		{"/cancel/ack", "finishOutcomeReasn"},
		{"/cancel/ack", "mesage"},
		{"/runtime-state", "runtimestate"},
		{"/events", "paylod"},
		// These keys differ from the fields only in case, so they are typos too.
		{"/complete", "finishoutcomecode"},
		{"/fail", "ErrorMessage"},
		{"/heartbeat", "leaseseconds"},
	}
	for _, tc := range typos {
		body := map[string]any{"workerId": moonMindWorker, tc.field: "x"}
		if tc.endpoint == "/events" {
			body["message"] = "m"
		}
		_, err := mm.PostJSON(ctx, "/api/queue/jobs/"+job.ID+tc.endpoint, body)
		e := wantAPIError(t, tc.endpoint+" with "+tc.field, err, http.StatusBadRequest, "unknown_field", tc.field)
		if e != nil && !strings.Contains(e.Message, tc.field) {
			t.Errorf("%s: message %q does not name %s", tc.endpoint, e.Message, tc.field)
		}
	}

	long := []struct {
		name, field, limit string
		finish             *moonmindclient.Finish
	}{
		{"code of 65", "finishOutcomeCode", "64", &moonmindclient.Finish{OutcomeCode: strings.Repeat("C", 65)}},
		{"stage of 33", "finishOutcomeStage", "32", &moonmindclient.Finish{OutcomeStage: strings.Repeat("s", 33)}},
		{"code of 65 accented", "finishOutcomeCode", "64", &moonmindclient.Finish{OutcomeCode: strings.Repeat("é", 65)}},
	}
	for _, tc := range long {
		calls := map[string]func() error{
			"complete": func() error {
				_, err := mm.CompleteJob(ctx, job.ID, moonMindWorker, "", tc.finish)
				return err
			},
			"fail": func() error {
				_, err := mm.FailJob(ctx, job.ID, moonMindWorker, "boom", false, tc.finish)
				return err
			},
			"cancel ack": func() error {
				_, err := mm.AckCancel(ctx, job.ID, moonMindWorker, "", tc.finish)
				return err
			},
		}
		for op, call := range calls {
			e := wantAPIError(t, op+" with a "+tc.name, call(), http.StatusBadRequest, "invalid_field", tc.field)
			if e != nil && !strings.Contains(e.Message, tc.limit) {
				t.Errorf("%s with a %s: message %q does not state the limit %s", op, tc.name, e.Message, tc.limit)
			}
		}
	}
	_, err := mm.PostJSON(ctx, "/api/queue/jobs/"+job.ID+"/complete", map[string]any{"workerId": moonMindWorker, "finishSummary": []any{"not", "an", "object"}})
	wantAPIError(t, "complete with an array finishSummary", err, http.StatusBadRequest, "invalid_field", "finishSummary")

	still, err := mm.GetJob(ctx, job.ID)
	if err != nil {
		t.Fatalf("get job: %v", err)
	}
	if still.Status != "running" || still.ClaimedBy != moonMindWorker {
		t.Fatalf("after rejected requests: status %q, claimedBy %q, want running by %s", still.Status, still.ClaimedBy, moonMindWorker)
	}

	// The limits count characters, not bytes: 64 and 32 accented letters fit.
	code, stage := strings.Repeat("é", 64), strings.Repeat("ü", 32)
	done, err := mm.CompleteJob(ctx, job.ID, moonMindWorker, "", &moonmindclient.Finish{OutcomeCode: code, OutcomeStage: stage})
	if err != nil {
		t.Fatalf("complete with fields at the limits: %v", err)
	}
	if done.FinishOutcomeCode != code || done.FinishOutcomeStage != stage {
		t.Errorf("stored code %q, stage %q, want them unchanged", done.FinishOutcomeCode, done.FinishOutcomeStage)
	}
}

func TestMoonMindArtifactsNotSupported(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	mm := newMoonMindClient(t, s)
	job := c.enqueue("task", nil)
	claimOne(t, mm, job.ID)

	err := mm.UploadArtifact(t.Context(), job.ID, moonMindWorker, "logs/codex_exec.log", "text/plain", []byte("line 1\n"))
	e := wantAPIError(t, "artifact upload", err, http.StatusNotFound, "not_supported", "")
	if e != nil && !strings.Contains(e.Message, "not supported") {
		t.Errorf("artifact upload message %q does not say the feature is not supported", e.Message)
	}

	// The dashboard lists and downloads artifacts with a user token.
	for _, path := range []string{
		"/api/queue/jobs/" + job.ID + "/artifacts",
		"/api/queue/jobs/" + job.ID + "/artifacts/0b6f3a52-1c1e-4d0a-9f55-6d8f1e2a3b4c/download",
	} {
		c.expectError(request{method: http.MethodGet, path: path, token: s.ProducerToken}, http.StatusNotFound, "not_supported", "")
	}

	still, err := mm.GetJob(t.Context(), job.ID)
	if err != nil {
		t.Fatalf("get job: %v", err)
	}
	if still.Status != "running" {
		t.Errorf("status after the rejected upload = %q, want running", still.Status)
	}
}

func TestMoonMindWorkerHeaderAuth(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	job := c.enqueue("task", nil)

	for name, token := range map[string]string{"no token": "", "producer token": s.ProducerToken, "operator token": s.OperatorToken, "unknown token": "mm_not_a_token"} {
		mm, err := moonmindclient.New(moonmindclient.Config{BaseURL: s.URL, WorkerToken: token, HTTPClient: s.Client})
		if err != nil {
			t.Fatalf("create client: %v", err)
		}
		_, err = mm.ClaimJob(t.Context(), moonmindclient.ClaimParams{WorkerID: moonMindWorker, LeaseSeconds: 60})
		wantAPIError(t, "claim with "+name+" in "+moonmindclient.WorkerTokenHeader, err, http.StatusUnauthorized, "unauthorized", "")
	}

	// The rejected claims took nothing, so a real worker token gets the job.
	claimOne(t, newMoonMindClient(t, s), job.ID)
}

// jobKeys returns the Redis keys of the server's namespace that contain
// jobID, such as the job hash and its event stream.
func jobKeys(t *testing.T, s *apitest.Server, jobID string) []string {
	t.Helper()
	var keys []string
	iter := s.Redis.Scan(t.Context(), 0, "{"+s.Namespace+"}:*"+jobID+"*", 100).Iterator()
	for iter.Next(t.Context()) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("scan for the keys of job %s: %v", jobID, err)
	}
	slices.Sort(keys)
	return keys
}

func TestMoonMindEventsExpireWithJob(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{BrokerConfig: broker.Config{Retention: time.Second}})
	c := newClient(t, s)
	mm := newMoonMindClient(t, s)
	ctx := t.Context()
	job := c.enqueue("task", nil)
	claimOne(t, mm, job.ID)
	if _, err := mm.AppendEvent(ctx, job.ID, moonMindWorker, "info", "about to finish", nil); err != nil {
		t.Fatalf("append event: %v", err)
	}
	if _, err := mm.CompleteJob(ctx, job.ID, moonMindWorker, "done", nil); err != nil {
		t.Fatalf("complete: %v", err)
	}
	prefix := "{" + s.Namespace + "}:job:" + job.ID
	if got, want := jobKeys(t, s, job.ID), []string{prefix, prefix + ":events"}; !slices.Equal(got, want) {
		t.Fatalf("keys of the finished job = %v, want %v", got, want)
	}

	testutil.WaitFor(t, 15*time.Second, "the finished job to pass its retention and be purged", func() bool {
		_, err := mm.GetJob(ctx, job.ID)
		var apiErr *moonmindclient.APIError
		return errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound
	})
	_, err := mm.ListEvents(ctx, job.ID, "", 0)
	wantAPIError(t, "list events of a purged job", err, http.StatusNotFound, "not_found", "")
	if left := jobKeys(t, s, job.ID); len(left) != 0 {
		t.Errorf("keys of the purged job remain: %v", left)
	}
}

func TestMoonMindLifecycleEventKinds(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{LeaseGrace: 50 * time.Millisecond})
	c := newClient(t, s)
	mm := newMoonMindClient(t, s)
	ctx := t.Context()
	job := c.enqueue("task", nil)

	claimOne(t, mm, job.ID)
	if _, err := mm.PostJSON(ctx, "/api/queue/jobs/"+job.ID+"/release", map[string]any{"workerId": moonMindWorker}); err != nil {
		t.Fatalf("release: %v", err)
	}

	// A lease of one second that is not renewed expires, and the reaper
	// requeues the job after the grace.
	res, err := mm.ClaimJob(ctx, moonmindclient.ClaimParams{WorkerID: moonMindWorker, LeaseSeconds: 1})
	if err != nil || res.Job == nil {
		t.Fatalf("claim with a short lease: job %v, error %v", res, err)
	}
	testutil.WaitFor(t, 10*time.Second, "the reaper to requeue the abandoned job", func() bool {
		j, err := mm.GetJob(ctx, job.ID)
		return err == nil && j.Status == "queued"
	})

	claimOne(t, mm, job.ID)
	if _, err := mm.FailJob(ctx, job.ID, moonMindWorker, "permanent error", false, nil); err != nil {
		t.Fatalf("fail: %v", err)
	}
	var copyJob jobDoc
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/resubmit", s.OperatorToken, map[string]any{}, http.StatusCreated, &copyJob)

	want := []string{"claimed", "released", "claimed", "lease_lost", "claimed", "failed", "resubmitted"}
	if got := eventKinds(allEvents(t, mm, job.ID)); !slices.Equal(got, want) {
		t.Errorf("event kinds of the original job = %v, want %v", got, want)
	}
	if got := eventKinds(allEvents(t, mm, copyJob.ID)); !slices.Equal(got, []string{"resubmitted"}) {
		t.Errorf("event kinds of the copy = %v, want [resubmitted]", got)
	}
}

func TestMoonMindRecoveredEvent(t *testing.T) {
	t.Parallel()
	// A grace of an hour keeps the reaper away, so the operator recovers
	// the stale job.
	s := apitest.Start(t, apitest.Options{LeaseGrace: time.Hour})
	c := newClient(t, s)
	mm := newMoonMindClient(t, s)
	ctx := t.Context()
	job := c.enqueue("task", nil)

	res, err := mm.ClaimJob(ctx, moonmindclient.ClaimParams{WorkerID: moonMindWorker, LeaseSeconds: 1})
	if err != nil || res.Job == nil {
		t.Fatalf("claim with a short lease: job %v, error %v", res, err)
	}
	testutil.WaitFor(t, 10*time.Second, "the lease to expire", func() bool {
		var page struct {
			Items []jobDoc `json:"items"`
		}
		c.json(http.MethodGet, "/api/queue/jobs?stale=true", s.OperatorToken, nil, http.StatusOK, &page)
		return len(page.Items) == 1 && page.Items[0].ID == job.ID
	})
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/recover", s.OperatorToken, map[string]any{"mode": "requeue"}, http.StatusOK, nil)

	events := allEvents(t, mm, job.ID)
	if got, want := eventKinds(events), []string{"claimed", "recovered"}; !slices.Equal(got, want) {
		t.Fatalf("event kinds = %v, want %v", got, want)
	}
	if events[1].Level != "warn" {
		t.Errorf("recovered event level = %q, want warn", events[1].Level)
	}
}
