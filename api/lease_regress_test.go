package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/testutil"
)

// startLeaseServer starts a test API whose reaper acts quickly: a short
// lease grace and frequent passes, so an expired lease is requeued within
// about half a second.
func startLeaseServer(t *testing.T) *apitest.Server {
	t.Helper()
	return apitest.Start(t, apitest.Options{
		LeaseGrace:     300 * time.Millisecond,
		ReaperInterval: 100 * time.Millisecond,
		BrokerConfig:   broker.Config{BackoffBase: 10 * time.Millisecond, BackoffCap: 50 * time.Millisecond},
	})
}

// leaseCall sends one JSON request and returns the status and body. Unlike
// apitest.Server.Do it reports failures as an error, so goroutines other
// than the test's may call it.
func leaseCall(s *apitest.Server, method, path, token string, body any, header http.Header) (int, []byte, error) {
	var reader io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("encode body: %w", err)
		}
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.URL+path, reader)
	if err != nil {
		return 0, nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.Client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	return resp.StatusCode, raw, nil
}

// leaseJob is the part of the job document the lease tests read.
type leaseJob struct {
	ID             string     `json:"id"`
	Status         string     `json:"status"`
	Attempt        int        `json:"attempt"`
	ClaimedBy      *string    `json:"claimedBy"`
	LeaseExpiresAt *time.Time `json:"leaseExpiresAt"`
	ErrorMessage   *string    `json:"errorMessage"`
}

func leaseEnqueue(t *testing.T, s *apitest.Server, maxAttempts int) leaseJob {
	t.Helper()
	var job leaseJob
	s.DoJSON(t, http.MethodPost, "/api/queue/jobs", s.ProducerToken,
		map[string]any{"type": "lease-test", "maxAttempts": maxAttempts}, http.StatusCreated, &job)
	return job
}

// leaseClaim claims as workerID with the given lease and returns the job,
// or nil when the claim returned none.
func leaseClaim(t *testing.T, s *apitest.Server, workerID string, leaseSeconds int) *leaseJob {
	t.Helper()
	var res struct {
		Job *leaseJob `json:"job"`
	}
	s.DoJSON(t, http.MethodPost, "/api/queue/jobs/claim", s.WorkerToken,
		map[string]any{"workerId": workerID, "leaseSeconds": leaseSeconds}, http.StatusOK, &res)
	return res.Job
}

func leaseGet(t *testing.T, s *apitest.Server, id string) leaseJob {
	t.Helper()
	var job leaseJob
	s.DoJSON(t, http.MethodGet, "/api/queue/jobs/"+id, s.OperatorToken, nil, http.StatusOK, &job)
	return job
}

// leaseStale returns the snapshot's staleRunning count.
func leaseStale(t *testing.T, s *apitest.Server) int64 {
	t.Helper()
	var snap struct {
		Metrics struct {
			StaleRunning int64 `json:"staleRunning"`
		} `json:"metrics"`
	}
	s.DoJSON(t, http.MethodGet, "/api/system/worker-pause", s.OperatorToken, nil, http.StatusOK, &snap)
	return snap.Metrics.StaleRunning
}

// leaseEventKinds lists the kinds of a job's events, oldest first.
func leaseEventKinds(t *testing.T, s *apitest.Server, id string) []string {
	t.Helper()
	var page struct {
		Items []struct {
			Kind string `json:"kind"`
		} `json:"items"`
	}
	s.DoJSON(t, http.MethodGet, "/api/queue/jobs/"+id+"/events?limit=500", s.OperatorToken, nil, http.StatusOK, &page)
	kinds := make([]string, len(page.Items))
	for i, e := range page.Items {
		kinds[i] = e.Kind
	}
	return kinds
}

func countKind(kinds []string, kind string) int {
	n := 0
	for _, k := range kinds {
		if k == kind {
			n++
		}
	}
	return n
}

// wantLeaseError checks that a holder call returns 409 with code.
func wantLeaseError(t *testing.T, s *apitest.Server, path string, body any, code string) {
	t.Helper()
	status, raw, err := leaseCall(s, http.MethodPost, path, s.WorkerToken, body, nil)
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(raw, &e)
	if status != http.StatusConflict || e.Code != code {
		t.Errorf("POST %s: status %d code %q, want 409 %q; body %s", path, status, e.Code, code, raw)
	}
}

// claimLoop claims as workerID every interval until stop is closed and
// returns the ids of every job it was given.
func claimLoop(s *apitest.Server, workerID string, interval time.Duration, stop <-chan struct{}) (<-chan []string, <-chan error) {
	got := make(chan []string, 1)
	failed := make(chan error, 1)
	go func() {
		var ids []string
		defer func() { got <- ids }()
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
			status, raw, err := leaseCall(s, http.MethodPost, "/api/queue/jobs/claim", s.WorkerToken,
				map[string]any{"workerId": workerID, "leaseSeconds": 30}, nil)
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("claim by %s: status %d, body %s", workerID, status, raw)
			}
			if err != nil {
				select {
				case failed <- err:
				default:
				}
				return
			}
			var res struct {
				Job *leaseJob `json:"job"`
			}
			if err := json.Unmarshal(raw, &res); err == nil && res.Job != nil {
				ids = append(ids, res.Job.ID)
			}
		}
	}()
	return got, failed
}

func TestHeartbeatingJobNeverDeliveredTwice(t *testing.T) {
	t.Parallel()
	s := startLeaseServer(t)
	job := leaseEnqueue(t, s, 3)

	a := leaseClaim(t, s, "worker-a", 2)
	if a == nil || a.ID != job.ID || a.Attempt != 1 {
		t.Fatalf("A's claim = %+v, want job %s attempt 1", a, job.ID)
	}

	// B claims every 100 ms while A heartbeats every 500 ms for 6 s
	// (three lease lengths).
	stop := make(chan struct{})
	taken, claimErr := claimLoop(s, "worker-b", 100*time.Millisecond, stop)
	heartbeats := 0
	end := time.Now().Add(6 * time.Second)
	for time.Now().Before(end) {
		time.Sleep(500 * time.Millisecond)
		var hb leaseJob
		s.DoJSON(t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/heartbeat", s.WorkerToken,
			map[string]any{"workerId": "worker-a", "attempt": 1, "leaseSeconds": 2}, http.StatusOK, &hb)
		heartbeats++
		if hb.Status != "running" || hb.ClaimedBy == nil || *hb.ClaimedBy != "worker-a" || hb.Attempt != 1 {
			t.Fatalf("heartbeat %d: status %s holder %s attempt %d, want running, worker-a, 1", heartbeats, hb.Status, orNull(hb.ClaimedBy), hb.Attempt)
		}
		if stale := leaseStale(t, s); stale != 0 {
			t.Fatalf("after heartbeat %d: staleRunning %d, want 0", heartbeats, stale)
		}
	}
	close(stop)
	select {
	case err := <-claimErr:
		t.Fatalf("B's claims: %v", err)
	default:
	}
	if ids := <-taken; len(ids) != 0 {
		t.Fatalf("B was given %v while A heartbeated, want nothing", ids)
	}

	var done leaseJob
	s.DoJSON(t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/complete", s.WorkerToken,
		map[string]any{"workerId": "worker-a", "attempt": 1}, http.StatusOK, &done)
	if done.Status != "succeeded" || done.Attempt != 1 {
		t.Errorf("completed job: status %s attempt %d, want succeeded 1", done.Status, done.Attempt)
	}
	kinds := leaseEventKinds(t, s, job.ID)
	if countKind(kinds, "claimed") != 1 || countKind(kinds, "succeeded") != 1 || countKind(kinds, "lease_lost") != 0 {
		t.Errorf("events %v, want one claim, one success and no lost lease", kinds)
	}
}

func TestExpiredLeaseRequeuedAndOldHolderFenced(t *testing.T) {
	t.Parallel()
	s := startLeaseServer(t)
	job := leaseEnqueue(t, s, 3)

	if a := leaseClaim(t, s, "worker-a", 2); a == nil || a.ID != job.ID {
		t.Fatalf("A's claim = %+v, want job %s", a, job.ID)
	}
	// A stops heartbeating. Until the lease and the grace pass, B gets
	// nothing; then the reaper requeues the job.
	if b := leaseClaim(t, s, "worker-b", 30); b != nil {
		t.Fatalf("B's claim during A's lease = job %s, want none", b.ID)
	}
	var requeued leaseJob
	testutil.WaitFor(t, 15*time.Second, "the reaper to requeue the job", func() bool {
		requeued = leaseGet(t, s, job.ID)
		return requeued.Status == "queued"
	})
	if requeued.Attempt != 1 || requeued.ClaimedBy != nil {
		t.Errorf("requeued job: attempt %d holder %s, want attempt 1 and no holder", requeued.Attempt, orNull(requeued.ClaimedBy))
	}

	b := leaseClaim(t, s, "worker-b", 30)
	if b == nil || b.ID != job.ID || b.Attempt != 2 {
		t.Fatalf("B's claim = %+v, want job %s attempt 2", b, job.ID)
	}

	// Every call of the old holder is fenced off, with or without the
	// attempt number.
	base := "/api/queue/jobs/" + job.ID
	for _, body := range []map[string]any{{"workerId": "worker-a", "attempt": 1}, {"workerId": "worker-a"}} {
		wantLeaseError(t, s, base+"/heartbeat", body, "lease_lost")
		wantLeaseError(t, s, base+"/complete", body, "lease_lost")
		wantLeaseError(t, s, base+"/release", body, "lease_lost")
		failBody := map[string]any{"errorMessage": "late", "retryable": true}
		for k, v := range body {
			failBody[k] = v
		}
		wantLeaseError(t, s, base+"/fail", failBody, "lease_lost")
	}
	// B's own attempt number is checked too: attempt 1 is not B's.
	wantLeaseError(t, s, base+"/complete", map[string]any{"workerId": "worker-b", "attempt": 1}, "lease_lost")

	var done leaseJob
	s.DoJSON(t, http.MethodPost, base+"/complete", s.WorkerToken,
		map[string]any{"workerId": "worker-b", "attempt": 2}, http.StatusOK, &done)
	if done.Status != "succeeded" || done.Attempt != 2 {
		t.Errorf("completed job: status %s attempt %d, want succeeded 2", done.Status, done.Attempt)
	}
	wantLeaseError(t, s, base+"/complete", map[string]any{"workerId": "worker-b", "attempt": 2}, "lease_lost")

	kinds := leaseEventKinds(t, s, job.ID)
	if countKind(kinds, "succeeded") != 1 || countKind(kinds, "claimed") != 2 || countKind(kinds, "lease_lost") != 1 {
		t.Errorf("events %v, want two claims, one lost lease and one success", kinds)
	}
	if got := leaseGet(t, s, job.ID); got.Status != "succeeded" {
		t.Errorf("final status %s, want succeeded", got.Status)
	}
}

func TestCrashedAttemptsCountTowardMaxAttempts(t *testing.T) {
	t.Parallel()
	s := startLeaseServer(t)
	job := leaseEnqueue(t, s, 3)

	for i, w := range []string{"worker-a", "worker-b", "worker-c"} {
		attempt := i + 1
		got := leaseClaim(t, s, w, 1)
		if got == nil || got.ID != job.ID || got.Attempt != attempt {
			t.Fatalf("claim by %s = %+v, want job %s attempt %d", w, got, job.ID, attempt)
		}
		// The worker dies: no heartbeat, no report.
		var after leaseJob
		testutil.WaitFor(t, 15*time.Second, fmt.Sprintf("the reaper to move the job after %s's lease expired", w), func() bool {
			after = leaseGet(t, s, job.ID)
			return after.Status != "running"
		})
		if attempt < 3 {
			if after.Status != "queued" || after.Attempt != attempt {
				t.Fatalf("after crash %d: status %s attempt %d, want queued with attempt %d used", attempt, after.Status, after.Attempt, attempt)
			}
			continue
		}
		if after.Status != "dead_letter" || after.Attempt != 3 {
			t.Fatalf("after crash 3: status %s attempt %d, want dead_letter after attempt 3", after.Status, after.Attempt)
		}
		if after.ErrorMessage == nil || !strings.Contains(*after.ErrorMessage, "lease expired") {
			t.Errorf("errorMessage %q, want it to say the lease expired", orNull(after.ErrorMessage))
		}
	}

	if got := leaseClaim(t, s, "worker-d", 1); got != nil {
		t.Errorf("claim after dead-lettering = job %s, want none", got.ID)
	}
	kinds := leaseEventKinds(t, s, job.ID)
	if countKind(kinds, "lease_lost") != 3 || countKind(kinds, "claimed") != 3 {
		t.Errorf("events %v, want three claims and three lost leases", kinds)
	}
}

func TestCrashAndFailureShareAttemptBudget(t *testing.T) {
	t.Parallel()
	s := startLeaseServer(t)
	job := leaseEnqueue(t, s, 3)

	// Attempt 1 crashes.
	leaseClaim(t, s, "worker-a", 1)
	testutil.WaitFor(t, 15*time.Second, "the reaper to requeue the crashed attempt", func() bool {
		return leaseGet(t, s, job.ID).Status == "queued"
	})

	// Attempt 2 fails as retryable and backs off for at most 50 ms.
	b := leaseClaim(t, s, "worker-b", 30)
	if b == nil || b.Attempt != 2 {
		t.Fatalf("B's claim = %+v, want attempt 2", b)
	}
	var failed leaseJob
	s.DoJSON(t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/fail", s.WorkerToken,
		map[string]any{"workerId": "worker-b", "attempt": 2, "errorMessage": "disk full", "retryable": true}, http.StatusOK, &failed)
	if failed.Status != "queued" {
		t.Fatalf("after a retryable failure of attempt 2: status %s, want queued", failed.Status)
	}

	// Attempt 3 crashes: no attempts are left.
	var c *leaseJob
	testutil.WaitFor(t, 10*time.Second, "the retry to become claimable", func() bool {
		c = leaseClaim(t, s, "worker-c", 1)
		return c != nil
	})
	if c.ID != job.ID || c.Attempt != 3 {
		t.Fatalf("C's claim = %s attempt %d, want %s attempt 3", c.ID, c.Attempt, job.ID)
	}
	var final leaseJob
	testutil.WaitFor(t, 15*time.Second, "the reaper to dead-letter the last crashed attempt", func() bool {
		final = leaseGet(t, s, job.ID)
		return final.Status != "running"
	})
	if final.Status != "dead_letter" || final.ErrorMessage == nil || !strings.Contains(*final.ErrorMessage, "lease expired") {
		t.Errorf("final: status %s error %q, want dead_letter with a lease-expired error", final.Status, orNull(final.ErrorMessage))
	}
}

// skewedHeader returns a Date header as a client whose clock is off by
// skew would send it.
func skewedHeader(skew time.Duration) http.Header {
	return http.Header{"Date": []string{time.Now().Add(skew).UTC().Format(http.TimeFormat)}}
}

// redisNow returns the Redis server's clock, which leases follow.
func redisNow(t *testing.T, s *apitest.Server) time.Time {
	t.Helper()
	now, err := s.Redis.Time(context.Background()).Result()
	if err != nil {
		t.Fatalf("Redis TIME: %v", err)
	}
	return now
}

// checkLeaseFollowsRedis checks that expires lies between before+lease
// and after+lease, where before and after are Redis clock readings
// taken around the request that set it.
func checkLeaseFollowsRedis(t *testing.T, what string, expires *time.Time, before, after time.Time, lease time.Duration) {
	t.Helper()
	if expires == nil {
		t.Fatalf("%s: leaseExpiresAt is null", what)
	}
	low := before.Truncate(time.Millisecond).Add(lease)
	high := after.Add(lease)
	if expires.Before(low) || expires.After(high) {
		t.Errorf("%s: leaseExpiresAt %s, want Redis time plus %s, from %s to %s",
			what, expires.Format(time.RFC3339Nano), lease, low.Format(time.RFC3339Nano), high.Format(time.RFC3339Nano))
	}
}

func TestLeaseFollowsRedisClockNotClient(t *testing.T) {
	t.Parallel()
	s := startLeaseServer(t)
	const lease = 30 * time.Second

	for _, skew := range []time.Duration{2 * time.Minute, -2 * time.Minute} {
		job := leaseEnqueue(t, s, 3)
		worker := fmt.Sprintf("worker-skew-%s", skew)

		before := redisNow(t, s)
		status, raw, err := leaseCall(s, http.MethodPost, "/api/queue/jobs/claim", s.WorkerToken,
			map[string]any{"workerId": worker, "leaseSeconds": 30}, skewedHeader(skew))
		after := redisNow(t, s)
		if err != nil || status != http.StatusOK {
			t.Fatalf("claim with a clock off by %s: status %d err %v body %s", skew, status, err, raw)
		}
		var claimed struct {
			Job *leaseJob `json:"job"`
		}
		if err := json.Unmarshal(raw, &claimed); err != nil || claimed.Job == nil || claimed.Job.ID != job.ID {
			t.Fatalf("claim with a clock off by %s: %s, want job %s", skew, raw, job.ID)
		}
		checkLeaseFollowsRedis(t, fmt.Sprintf("claim with a clock off by %s", skew), claimed.Job.LeaseExpiresAt, before, after, lease)

		before = redisNow(t, s)
		status, raw, err = leaseCall(s, http.MethodPost, "/api/queue/jobs/"+job.ID+"/heartbeat", s.WorkerToken,
			map[string]any{"workerId": worker, "attempt": 1, "leaseSeconds": 30}, skewedHeader(skew))
		after = redisNow(t, s)
		if err != nil || status != http.StatusOK {
			t.Fatalf("heartbeat with a clock off by %s: status %d err %v body %s", skew, status, err, raw)
		}
		var hb leaseJob
		if err := json.Unmarshal(raw, &hb); err != nil {
			t.Fatalf("decode heartbeat answer %s: %v", raw, err)
		}
		checkLeaseFollowsRedis(t, fmt.Sprintf("heartbeat with a clock off by %s", skew), hb.LeaseExpiresAt, before, after, lease)
	}
}

func TestWorkerTimestampsCannotSetLease(t *testing.T) {
	t.Parallel()
	s := startLeaseServer(t)
	job := leaseEnqueue(t, s, 3)
	if got := leaseClaim(t, s, "worker-a", 5); got == nil {
		t.Fatal("claim returned no job")
	}
	held := leaseGet(t, s, job.ID)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	base := "/api/queue/jobs/" + job.ID

	cases := []struct {
		path  string
		body  map[string]any
		field string
	}{
		{base + "/heartbeat", map[string]any{"workerId": "worker-a", "leaseExpiresAt": future}, "leaseExpiresAt"},
		{base + "/heartbeat", map[string]any{"workerId": "worker-a", "now": future}, "now"},
		{base + "/heartbeat", map[string]any{"workerId": "worker-a", "sentAt": future}, "sentAt"},
		{"/api/queue/jobs/claim", map[string]any{"workerId": "worker-b", "leaseExpiresAt": future}, "leaseExpiresAt"},
		{base + "/complete", map[string]any{"workerId": "worker-a", "finishedAt": future}, "finishedAt"},
		{base + "/release", map[string]any{"workerId": "worker-a", "leaseExpiresAt": future}, "leaseExpiresAt"},
	}
	for _, tc := range cases {
		status, raw, err := leaseCall(s, http.MethodPost, tc.path, s.WorkerToken, tc.body, nil)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Code  string `json:"code"`
			Field string `json:"field"`
		}
		_ = json.Unmarshal(raw, &e)
		if status != http.StatusBadRequest || e.Code != "unknown_field" || e.Field != tc.field {
			t.Errorf("POST %s with %s: status %d code %q field %q, want 400 unknown_field %s; body %s",
				tc.path, tc.field, status, e.Code, e.Field, tc.field, raw)
		}
	}

	// None of the rejected requests changed the job.
	after := leaseGet(t, s, job.ID)
	if after.Status != "running" || after.LeaseExpiresAt == nil || !after.LeaseExpiresAt.Equal(*held.LeaseExpiresAt) {
		t.Errorf("after rejected requests: status %s lease %v, want running with lease %v", after.Status, after.LeaseExpiresAt, held.LeaseExpiresAt)
	}
	if kinds := leaseEventKinds(t, s, job.ID); !slices.Equal(kinds, []string{"claimed"}) {
		t.Errorf("events %v, want only the claim", kinds)
	}
}

// orNull returns *p, or "null" when p is nil, for failure messages.
func orNull(p *string) string {
	if p == nil {
		return "null"
	}
	return *p
}
