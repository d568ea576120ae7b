package api_test

import (
	"net/http"
	"testing"

	"github.com/moonmind/broker/internal/apitest"
)

// startClaim sends a long-poll claim in the background and returns a
// channel with its result.
func startClaim(t *testing.T, s *apitest.Server, workerID string, waitSeconds int) <-chan claimDoc {
	t.Helper()
	out := make(chan claimDoc, 1)
	go func() {
		c := newClient(t, s)
		var res claimDoc
		r := c.do(request{method: http.MethodPost, path: "/api/queue/jobs/claim", token: s.WorkerToken,
			body: map[string]any{"workerId": workerID, "waitSeconds": waitSeconds}})
		if r.status != http.StatusOK {
			t.Errorf("long-poll claim: status %d, body %s", r.status, r.body)
		} else {
			decode(t, r.body, &res)
		}
		out <- res
	}()
	return out
}

func TestClaimWaitWakesOnEnqueue(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	emptyBefore := metricValue(t, s, `mmb_claims_total{result="empty"}`)
	result := startClaim(t, s, "w1", 10)
	waitForClaimResult(t, s, "empty", emptyBefore)
	job := c.enqueue("demo:a", nil)

	res := <-result
	if res.Job == nil || res.Job.ID != job.ID {
		t.Fatalf("long-poll claim returned %+v, want job %s before its 10 s deadline", res.Job, job.ID)
	}
}

func TestClaimWaitWakesOnResume(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	c.pause("drain", "maintenance")
	job := c.enqueue("demo:a", nil)

	pausedBefore := metricValue(t, s, `mmb_claims_total{result="paused"}`)
	result := startClaim(t, s, "w1", 10)
	waitForClaimResult(t, s, "paused", pausedBefore)
	c.resume("maintenance done")

	res := <-result
	if res.Job == nil || res.Job.ID != job.ID {
		t.Fatalf("long-poll claim returned %+v, want job %s after the resume", res.Job, job.ID)
	}
	if res.System.WorkersPaused || res.System.Version != 3 {
		t.Errorf("claim system = %+v, want unpaused version 3", res.System)
	}
}

func TestPauseDuringLongPollGrantsNoJob(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	emptyBefore := metricValue(t, s, `mmb_claims_total{result="empty"}`)
	result := startClaim(t, s, "w1", 2)
	waitForClaimResult(t, s, "empty", emptyBefore)
	c.pause("drain", "upgrade")
	job := c.enqueue("demo:a", nil)

	res := <-result
	if res.Job != nil {
		t.Fatalf("claim granted job %s while paused", res.Job.ID)
	}
	if !res.System.WorkersPaused || res.System.Version != 2 {
		t.Errorf("claim system = %+v, want paused version 2", res.System)
	}
	var got jobDoc
	c.json(http.MethodGet, "/api/queue/jobs/"+job.ID, s.ProducerToken, nil, http.StatusOK, &got)
	if got.Status != "queued" {
		t.Errorf("job status after a paused claim = %q, want queued", got.Status)
	}
}

func TestClaimWhilePausedReturnsSystem(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	c.enqueue("demo:a", nil)
	c.pause("quiesce", "db migration")

	res := c.claim("w1", nil)
	if res.Job != nil {
		t.Fatalf("claim granted job %s while paused", res.Job.ID)
	}
	if !res.System.WorkersPaused || res.System.Mode == nil || *res.System.Mode != "quiesce" {
		t.Errorf("claim system = %+v, want paused in quiesce", res.System)
	}
	if res.System.Reason == nil || *res.System.Reason != "db migration" {
		t.Errorf("claim system reason = %v, want db migration", res.System.Reason)
	}

	var workers struct {
		Items []struct {
			ID           string `json:"id"`
			PauseVersion int64  `json:"pauseVersion"`
			Acknowledged bool   `json:"acknowledged"`
		} `json:"items"`
	}
	c.json(http.MethodGet, "/api/workers", s.OperatorToken, nil, http.StatusOK, &workers)
	if len(workers.Items) != 1 || workers.Items[0].ID != "w1" || workers.Items[0].PauseVersion != 2 || !workers.Items[0].Acknowledged {
		t.Errorf("workers = %+v, want w1 acknowledging version 2", workers.Items)
	}
}

func TestClaimFailsClosedWithoutPauseKey(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	c.enqueue("demo:a", nil)

	// Stop the relay first: it would restore the key within a second.
	s.Relay.Stop()
	if err := s.Redis.Del(t.Context(), "{"+s.Namespace+"}:pause").Err(); err != nil {
		t.Fatalf("delete the pause key: %v", err)
	}
	c.expectError(request{method: http.MethodPost, path: "/api/queue/jobs/claim", token: s.WorkerToken, body: map[string]any{"workerId": "w1"}},
		http.StatusServiceUnavailable, "pause_state_unavailable", "")

	r := c.do(request{method: http.MethodGet, path: "/readyz"})
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz without the pause key: status %d, want 503; body %s", r.status, r.body)
	}
	var ready struct {
		Failed []string `json:"failed"`
	}
	decode(t, r.body, &ready)
	if len(ready.Failed) != 1 || ready.Failed[0] != "pauseKey" {
		t.Errorf("readyz failed checks = %v, want [pauseKey]", ready.Failed)
	}
}

func TestWorkerPolicyNarrowsClaim(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	var created struct {
		Token string `json:"token"`
	}
	c.json(http.MethodPost, "/api/tokens", s.OperatorToken, map[string]any{
		"name": "only-a", "role": "worker", "policy": map[string]any{"allowedTypes": []string{"demo:a"}},
	}, http.StatusCreated, &created)
	other := c.enqueue("demo:b", nil)
	allowed := c.enqueue("demo:a", nil)

	var res claimDoc
	c.json(http.MethodPost, "/api/queue/jobs/claim", created.Token, map[string]any{"workerId": "w1", "allowedTypes": []string{"demo:b"}}, http.StatusOK, &res)
	if res.Job != nil {
		t.Errorf("claim of a type outside the policy returned job %s (%s)", res.Job.ID, res.Job.Type)
	}
	c.json(http.MethodPost, "/api/queue/jobs/claim", created.Token, map[string]any{"workerId": "w1"}, http.StatusOK, &res)
	if res.Job == nil || res.Job.ID != allowed.ID {
		t.Errorf("claim under the policy returned %+v, want %s", res.Job, allowed.ID)
	}
	var got jobDoc
	c.json(http.MethodGet, "/api/queue/jobs/"+other.ID, s.ProducerToken, nil, http.StatusOK, &got)
	if got.Status != "queued" {
		t.Errorf("job outside the policy has status %q, want queued", got.Status)
	}
}
