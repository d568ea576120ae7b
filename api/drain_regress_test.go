package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/testutil"
)

// waitPastGrace waits until the Redis clock is past job's lease expiry plus
// the lease grace plus five reaper intervals, so a running reaper had
// several chances to move the job.
func (e *pauseEnv) waitPastGrace(job broker.Job) {
	e.t.Helper()
	if job.LeaseExpiresAt == nil {
		e.t.Fatalf("job %s has no leaseExpiresAt", job.ID)
	}
	limit := job.LeaseExpiresAt.Add(e.s.Broker.Config().LeaseGrace + 5*100*time.Millisecond)
	testutil.WaitFor(e.t, 30*time.Second, "the Redis clock to pass the lease and the grace", func() bool {
		now, err := e.s.Redis.Time(e.t.Context()).Result()
		return err == nil && now.After(limit)
	})
}

// reapNothing runs one reaper pass and fails the test when it moved a job.
func (e *pauseEnv) reapNothing() {
	e.t.Helper()
	res, err := e.s.Broker.ReapOnce(e.t.Context())
	if err != nil {
		e.t.Fatalf("reaper pass: %v", err)
	}
	if !res.Paused || res.Retried != 0 || res.DeadLettered != 0 || res.Cancelled != 0 {
		e.t.Fatalf("reaper pass while paused: %+v, want paused and nothing moved", res)
	}
}

// recoverJob posts a recover of id with mode and returns the status and body.
func (e *pauseEnv) recoverJob(id string, mode broker.RecoverMode) (int, []byte) {
	e.t.Helper()
	return e.s.Do(e.t, http.MethodPost, "/api/queue/jobs/"+id+"/recover", e.s.OperatorToken, map[string]any{"mode": string(mode)})
}

func TestStaleJobDuringPauseWaitsForOperator(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	job := e.enqueue(map[string]any{"type": "demo:echo"})
	held := e.claim("worker-a", map[string]any{"leaseSeconds": 1})
	if held.Job == nil || held.Job.ID != job.ID {
		t.Fatalf("A's claim returned %+v, want %s", held.Job, job.ID)
	}
	e.pause(broker.ModeDrain, "upgrade")

	// A stops heartbeating; its lease and the grace run out.
	e.waitPastGrace(*held.Job)
	e.reapNothing()
	e.wantMetrics("after the lease and grace passed", 0, 0, 1, false)
	if got := e.job(job.ID); got.Status != broker.StatusRunning || got.Attempt != 1 {
		t.Fatalf("J while paused: status %s attempt %d, want running on attempt 1", got.Status, got.Attempt)
	}
	var stale struct {
		Items []broker.Job `json:"items"`
	}
	e.s.DoJSON(t, http.MethodGet, "/api/queue/jobs?stale=true", e.s.OperatorToken, nil, http.StatusOK, &stale)
	if len(stale.Items) != 1 || stale.Items[0].ID != job.ID {
		t.Errorf("stale job list: %+v, want only %s", stale.Items, job.ID)
	}

	// A drain with a stale job is not finished, so a plain resume is rejected.
	status, raw := e.changePause(e.s.OperatorToken, map[string]any{"action": "resume", "reason": "too early"})
	wantError(t, "resume with a stale job", status, raw, http.StatusConflict, "not_drained")

	status, raw = e.recoverJob(job.ID, broker.RecoverRequeue)
	if status != http.StatusOK {
		t.Fatalf("recover with requeue: status %d; body: %s", status, raw)
	}
	e.wantMetrics("after the requeue", 1, 0, 0, true)
	e.claimNothing("worker-b", nil)

	status, raw = e.s.Do(t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/complete", e.s.WorkerToken,
		map[string]any{"workerId": "worker-a", "attempt": 1, "resultSummary": "late"})
	wantError(t, "A's late complete", status, raw, http.StatusConflict, "lease_lost")
	status, raw = e.s.Do(t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/heartbeat", e.s.WorkerToken,
		map[string]any{"workerId": "worker-a", "attempt": 1})
	wantError(t, "A's late heartbeat", status, raw, http.StatusConflict, "lease_lost")

	e.resume("upgrade done", false)
	got := e.claim("worker-b", nil)
	if got.Job == nil || got.Job.ID != job.ID {
		t.Fatalf("B's claim after resume returned %+v, want %s", got.Job, job.ID)
	}
	if got.Job.Attempt != 2 {
		t.Errorf("B's claim: attempt %d, want 2", got.Job.Attempt)
	}
	if done := e.complete(*got.Job, "worker-b"); done.Status != broker.StatusSucceeded {
		t.Errorf("J after B's complete: status %s, want succeeded", done.Status)
	}
}

func TestPausedReaperKeepsExhaustedStaleJob(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	job := e.enqueue(map[string]any{"type": "demo:echo", "maxAttempts": 1})
	held := e.claim("worker-a", map[string]any{"leaseSeconds": 1})
	if held.Job == nil {
		t.Fatalf("A claimed no job")
	}
	e.pause(broker.ModeDrain, "upgrade")
	e.waitPastGrace(*held.Job)
	e.reapNothing()
	e.wantMetrics("after the lease and grace passed", 0, 0, 1, false)
	if got := e.job(job.ID); got.Status != broker.StatusRunning {
		t.Fatalf("J while paused: status %s, want running (not dead-lettered)", got.Status)
	}

	status, raw := e.recoverJob(job.ID, broker.RecoverRequeue)
	wantError(t, "requeue without attempts", status, raw, http.StatusConflict, "attempts_exhausted")
	status, raw = e.recoverJob(job.ID, broker.RecoverCancel)
	if status != http.StatusOK {
		t.Fatalf("recover with cancel: status %d; body: %s", status, raw)
	}
	if got := e.job(job.ID); got.Status != broker.StatusCancelled {
		t.Errorf("J after recover cancel: status %s, want cancelled", got.Status)
	}
	e.wantMetrics("after the cancel", 0, 0, 0, true)
}

func TestForcedResumeLetsReaperRequeueStaleJob(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	job := e.enqueue(map[string]any{"type": "demo:echo"})
	held := e.claim("worker-a", map[string]any{"leaseSeconds": 1})
	if held.Job == nil {
		t.Fatalf("A claimed no job")
	}
	e.pause(broker.ModeDrain, "upgrade")
	e.waitPastGrace(*held.Job)
	e.reapNothing()

	e.resume("give up on A", true)
	testutil.WaitFor(t, 15*time.Second, "the reaper to requeue the stale job after the resume", func() bool {
		return e.job(job.ID).Status == broker.StatusQueued
	})
	got := e.claim("worker-b", nil)
	if got.Job == nil || got.Job.ID != job.ID || got.Job.Attempt != 2 {
		t.Fatalf("B's claim returned %+v, want %s on attempt 2", got.Job, job.ID)
	}
}

// drainJob enqueues one job, lets worker-a claim it with lease, and pauses
// in drain mode. It returns the claimed job.
func (e *pauseEnv) drainJob(lease time.Duration) broker.Job {
	e.t.Helper()
	job := e.enqueue(map[string]any{"type": "demo:work"})
	held := e.claim("worker-a", map[string]any{"leaseSeconds": int(lease / time.Second)})
	if held.Job == nil || held.Job.ID != job.ID {
		e.t.Fatalf("A's claim returned %+v, want %s", held.Job, job.ID)
	}
	e.pause(broker.ModeDrain, "upgrade")
	e.wantMetrics("right after the pause", 0, 1, 0, false)
	return *held.Job
}

func TestDrainedOnlyWhenWorkIsOver(t *testing.T) {
	t.Parallel()

	t.Run("complete", func(t *testing.T) {
		t.Parallel()
		e := startPauseEnv(t)
		const lease, beat, work = 5 * time.Second, time.Second, 3 * time.Second
		job := e.drainJob(lease)

		// A works and heartbeats; the sleep paces the heartbeats.
		finish := time.Now().Add(work)
		for time.Now().Before(finish) {
			time.Sleep(beat)
			e.heartbeat(job, "worker-a", map[string]any{"leaseSeconds": int(lease / time.Second)})
			e.wantMetrics("while A works", 0, 1, 0, false)
		}
		e.complete(job, "worker-a")
		e.wantMetrics("after A completed", 0, 0, 0, true)
	})

	t.Run("retryable failure", func(t *testing.T) {
		t.Parallel()
		e := startPauseEnv(t)
		job := e.drainJob(10 * time.Second)

		var failed broker.Job
		e.s.DoJSON(t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/fail", e.s.WorkerToken,
			map[string]any{"workerId": "worker-a", "attempt": job.Attempt, "errorMessage": "flaky", "retryable": true},
			http.StatusOK, &failed)
		if failed.Status != broker.StatusQueued {
			t.Fatalf("J after a retryable failure: status %s, want queued", failed.Status)
		}
		m := e.metrics()
		// The retry waits out its backoff in the delayed set, which the
		// snapshot counts apart from the ready jobs.
		if m.Queued+m.Delayed != 1 || m.Running != 0 || m.StaleRunning != 0 || !m.IsDrained {
			t.Errorf("after the retryable failure: metrics %+v, want one waiting job (queued or delayed), running 0, isDrained true", m)
		}
		if queued := e.listQueued(); len(queued) != 1 || queued[0].ID != job.ID {
			t.Errorf("queued jobs after the retryable failure: %d, want only %s", len(queued), job.ID)
		}
	})

	t.Run("worker dies", func(t *testing.T) {
		t.Parallel()
		e := startPauseEnv(t)
		job := e.drainJob(time.Second)

		testutil.WaitFor(t, 15*time.Second, "the lease to expire", func() bool {
			return e.metrics().StaleRunning == 1
		})
		e.wantMetrics("after the lease expired", 0, 0, 1, false)
		e.waitPastGrace(job)
		e.reapNothing()
		e.wantMetrics("after the grace passed", 0, 0, 1, false)

		status, raw := e.recoverJob(job.ID, broker.RecoverRequeue)
		if status != http.StatusOK {
			t.Fatalf("recover with requeue: status %d; body: %s", status, raw)
		}
		e.wantMetrics("after the operator's requeue", 1, 0, 0, true)
	})

	t.Run("cancel acknowledged", func(t *testing.T) {
		t.Parallel()
		e := startPauseEnv(t)
		job := e.drainJob(10 * time.Second)

		e.s.DoJSON(t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/cancel", e.s.OperatorToken,
			map[string]any{"reason": "not needed"}, http.StatusOK, nil)
		e.wantMetrics("after the cancel request", 0, 1, 0, false)
		if got := e.job(job.ID); got.Status != broker.StatusRunning || got.CancelRequestedAt == nil {
			t.Fatalf("J after the cancel request: status %s cancelRequestedAt %v, want running with a cancel request", got.Status, got.CancelRequestedAt)
		}

		var acked broker.Job
		e.s.DoJSON(t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/cancel/ack", e.s.WorkerToken,
			map[string]any{"workerId": "worker-a", "attempt": job.Attempt, "message": "stopped"}, http.StatusOK, &acked)
		if acked.Status != broker.StatusCancelled {
			t.Errorf("J after the ack: status %s, want cancelled", acked.Status)
		}
		e.wantMetrics("after the ack", 0, 0, 0, true)
	})

	t.Run("cancel with lease expiry", func(t *testing.T) {
		t.Parallel()
		e := startPauseEnv(t)
		job := e.drainJob(2 * time.Second)

		e.s.DoJSON(t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/cancel", e.s.OperatorToken,
			map[string]any{"reason": "not needed"}, http.StatusOK, nil)
		m := e.metrics()
		if m.IsDrained || m.Running+m.StaleRunning != 1 {
			t.Errorf("after the cancel request: metrics %+v, want the job still running or stale and isDrained false", m)
		}

		// A never acknowledges. Once its lease expires, the reaper ends the
		// job cancelled although the workers are paused.
		testutil.WaitFor(t, 15*time.Second, "the reaper to cancel the job after its lease expired", func() bool {
			return e.job(job.ID).Status == broker.StatusCancelled
		})
		e.wantMetrics("after the lease expired", 0, 0, 0, true)
	})
}

func TestSlowWorkerReclaimsStaleLeaseDuringPause(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	job := e.enqueue(map[string]any{"type": "demo:echo"})
	held := e.claim("worker-a", map[string]any{"leaseSeconds": 1})
	if held.Job == nil || held.Job.ID != job.ID {
		t.Fatalf("A's claim returned %+v, want %s", held.Job, job.ID)
	}
	e.pause(broker.ModeDrain, "upgrade")
	e.waitPastGrace(*held.Job)
	e.reapNothing()
	e.wantMetrics("while A is silent", 0, 0, 1, false)

	// A was only slow. No reaper or operator moved its job, so its
	// heartbeat renews the lease and it finishes on the same attempt.
	e.heartbeat(*held.Job, "worker-a", map[string]any{"leaseSeconds": 30})
	e.wantMetrics("after A's heartbeat", 0, 1, 0, false)
	e.claimNothing("worker-b", nil)
	done := e.complete(*held.Job, "worker-a")
	if done.Status != broker.StatusSucceeded || done.Attempt != 1 {
		t.Errorf("J after A's complete: status %s attempt %d, want succeeded on attempt 1", done.Status, done.Attempt)
	}
	e.wantMetrics("after A's complete", 0, 0, 0, true)
}
