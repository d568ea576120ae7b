package api_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
)

// releasedDoc is the body of POST /api/queue/workers/{workerId}/release.
type releasedDoc struct {
	Released []string `json:"released"`
}

func TestReleaseWorkerOverHTTP(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	mine := c.enqueue("demo:a", nil)
	theirs := c.enqueue("demo:a", nil)
	if claim := c.claim("w1", nil); claim.Job == nil || claim.Job.ID != mine.ID {
		t.Fatalf("claim by w1 = %+v, want %s", claim.Job, mine.ID)
	}
	if claim := c.claim("w2", nil); claim.Job == nil || claim.Job.ID != theirs.ID {
		t.Fatalf("claim by w2 = %+v, want %s", claim.Job, theirs.ID)
	}

	c.expectError(request{method: http.MethodPost, path: "/api/queue/workers/w1/release", token: s.ProducerToken, body: map[string]any{}},
		http.StatusForbidden, "forbidden", "")
	c.expectError(request{method: http.MethodPost, path: "/api/queue/workers/w1/release", body: map[string]any{}},
		http.StatusUnauthorized, "unauthorized", "")
	c.expectError(request{method: http.MethodPost, path: "/api/queue/workers/w1/release", token: s.WorkerToken, body: map[string]any{"force": true}, invalid: true},
		http.StatusBadRequest, "unknown_field", "force")
	if got := c.getJob(mine.ID); got.Status != "running" {
		t.Fatalf("status after rejected releases = %s, want running", got.Status)
	}

	var unknown releasedDoc
	r := c.json(http.MethodPost, "/api/queue/workers/nobody/release", s.WorkerToken, nil, http.StatusOK, &unknown)
	if unknown.Released == nil || len(unknown.Released) != 0 {
		t.Errorf("release of an unknown worker = %s, want {\"released\": []}", r.body)
	}

	var done releasedDoc
	c.json(http.MethodPost, "/api/queue/workers/w1/release", s.WorkerToken, map[string]any{}, http.StatusOK, &done)
	if !slices.Equal(done.Released, []string{mine.ID}) {
		t.Fatalf("released = %v, want [%s]", done.Released, mine.ID)
	}
	if got := c.getJob(mine.ID); got.Status != "queued" || got.Attempt != 0 || got.ClaimedBy != nil {
		t.Errorf("w1's job after release: status %s attempt %d claimedBy %v, want queued, 0, null", got.Status, got.Attempt, got.ClaimedBy)
	}
	if got := c.getJob(theirs.ID); got.Status != "running" {
		t.Errorf("w2's job after w1's release: status %s, want running", got.Status)
	}
}

func TestReleaseWorkerWhilePaused(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	job := c.enqueue("demo:a", nil)
	c.claim("w1", nil)
	c.pause("drain", "upgrade workers")

	var done releasedDoc
	c.json(http.MethodPost, "/api/queue/workers/w1/release", s.WorkerToken, map[string]any{}, http.StatusOK, &done)
	if !slices.Equal(done.Released, []string{job.ID}) {
		t.Fatalf("released while paused = %v, want [%s]", done.Released, job.ID)
	}
	if claim := c.claim("w2", nil); claim.Job != nil {
		t.Errorf("claim while paused returned job %s, want none", claim.Job.ID)
	}
	if snap := c.snapshot(); !snap.WorkersPaused {
		t.Error("workersPaused = false after the release, want true")
	}
}

func (c *client) getJob(id string) jobDoc {
	c.t.Helper()
	var j jobDoc
	c.json(http.MethodGet, "/api/queue/jobs/"+id, c.s.ProducerToken, nil, http.StatusOK, &j)
	return j
}

func TestResubmitTwiceReturnsSameJob(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	job := c.enqueue("demo:a", nil)
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/cancel", s.OperatorToken, map[string]any{"reason": "retry later"}, http.StatusOK, nil)

	var first, second jobDoc
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/resubmit", s.OperatorToken, map[string]any{}, http.StatusCreated, &first)
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/resubmit", s.OperatorToken, map[string]any{}, http.StatusOK, &second)
	if second.ID != first.ID {
		t.Errorf("second resubmit returned %s, want the first copy %s", second.ID, first.ID)
	}
	if old := c.getJob(job.ID); old.ResubmittedAs == nil || *old.ResubmittedAs != first.ID {
		t.Errorf("old job resubmittedAs = %v, want %s", old.ResubmittedAs, first.ID)
	}
	if n := countJobs(t, s, broker.StatusQueued); n != 1 {
		t.Errorf("queued jobs = %d, want 1", n)
	}
}

func TestResubmitConcurrentOverHTTP(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	job := c.enqueue("demo:a", nil)
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/cancel", s.OperatorToken, map[string]any{"reason": "retry later"}, http.StatusOK, nil)

	const callers = 8
	results := make([]response, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.do(request{method: http.MethodPost, path: "/api/queue/jobs/" + job.ID + "/resubmit", token: s.OperatorToken, body: map[string]any{}})
		}()
	}
	wg.Wait()

	created := 0
	ids := map[string]bool{}
	for i, r := range results {
		switch r.status {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Fatalf("resubmit %d: status %d, body %s", i, r.status, r.body)
		}
		var doc jobDoc
		decode(t, r.body, &doc)
		ids[doc.ID] = true
	}
	if created != 1 || len(ids) != 1 {
		t.Errorf("%d responses were 201 and %d distinct jobs returned, want 1 and 1", created, len(ids))
	}
	if n := countJobs(t, s, broker.StatusQueued); n != 1 {
		t.Errorf("queued jobs = %d, want 1", n)
	}
}

// countJobs counts the jobs in state status.
func countJobs(t *testing.T, s *apitest.Server, status broker.Status) int64 {
	t.Helper()
	snap, err := s.Broker.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return snap.Counts[status]
}
