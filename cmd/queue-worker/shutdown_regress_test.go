package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/testutil"
)

// enqueueOnce enqueues a job with a single attempt, so a stop that used
// the attempt up would dead-letter it.
func enqueueOnce(t *testing.T, srv *apitest.Server, payload string) *broker.Job {
	t.Helper()
	job, _, err := srv.Broker.Enqueue(context.Background(), broker.EnqueueParams{
		Type: "demo:sleep", Payload: json.RawMessage(payload), MaxAttempts: 1,
	})
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return job
}

func countJobs(t *testing.T, srv *apitest.Server) int64 {
	t.Helper()
	snap, err := srv.Broker.Snapshot(context.Background())
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	var total int64
	for _, n := range snap.Counts {
		total += n
	}
	return total
}

func jobEventKinds(t *testing.T, srv *apitest.Server, id string) []string {
	t.Helper()
	events, _, err := srv.Broker.JobEvents(context.Background(), id, "", broker.MaxEventsLimit)
	if err != nil {
		t.Fatalf("job events: %v", err)
	}
	kinds := make([]string, len(events))
	for i, e := range events {
		kinds[i] = e.Kind
	}
	return kinds
}

func TestSIGTERMReleasesJobThatRunsUntilStopped(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	env := workerEnv(srv, testutil.RandomName("a"))
	env["WORKER_SHUTDOWN_TIMEOUT"] = "1s"
	a := startProcess(t, env)

	job := enqueueOnce(t, srv, `{"seconds":86400}`)
	held := waitJob(t, srv, job.ID, "worker A to hold the job", func(j *broker.Job) bool { return j.Status == broker.StatusRunning })
	a.stop(t)

	released, err := srv.Broker.GetJob(context.Background(), job.ID)
	if err != nil {
		t.Fatalf("get job: %v", err)
	}
	if released.Status != broker.StatusQueued || released.ClaimedBy != nil {
		t.Fatalf("after SIGTERM: status %s, has holder %v, want queued without holder", released.Status, released.ClaimedBy != nil)
	}
	if n := countJobs(t, srv); n != 1 {
		t.Errorf("job count %d after SIGTERM, want 1", n)
	}
	kinds := jobEventKinds(t, srv, job.ID)
	for _, finished := range []string{"succeeded", "failed", "dead_lettered", "lease_lost"} {
		if slices.Contains(kinds, finished) {
			t.Errorf("events %v contain %q; SIGTERM must only release the job", kinds, finished)
		}
	}

	res, err := srv.Broker.Claim(context.Background(), broker.ClaimParams{WorkerID: "worker-b", Lease: 30 * time.Second})
	if err != nil {
		t.Fatalf("B's claim: %v", err)
	}
	if res.Job == nil || res.Job.ID != job.ID || res.Job.Attempt != held.Attempt {
		t.Fatalf("B's claim = %+v, want job %s with A's attempt %d", res.Job, job.ID, held.Attempt)
	}
}

func TestSIGTERMAfterDrainKeepsFinishedJob(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	env := workerEnv(srv, testutil.RandomName("a"))
	env["WORKER_SHUTDOWN_TIMEOUT"] = "1s"
	env["WORKER_PAUSE_POLL"] = "200ms"
	a := startProcess(t, env)

	job := enqueueOnce(t, srv, `{"seconds":2}`)
	waitJob(t, srv, job.ID, "worker A to hold the job", func(j *broker.Job) bool { return j.Status == broker.StatusRunning })
	srv.DoJSON(t, http.MethodPost, "/api/system/worker-pause", srv.OperatorToken,
		map[string]any{"action": "pause", "mode": "drain", "reason": "upgrade workers"}, http.StatusOK, nil)
	done := waitJob(t, srv, job.ID, "the job to finish during the drain", func(j *broker.Job) bool { return j.Status != broker.StatusRunning })
	if done.Status != broker.StatusSucceeded {
		t.Fatalf("job ended %s during the drain, want succeeded", done.Status)
	}
	a.stop(t)

	after, err := srv.Broker.GetJob(context.Background(), job.ID)
	if err != nil {
		t.Fatalf("get job: %v", err)
	}
	if after.Status != broker.StatusSucceeded || after.Attempt != 1 {
		t.Errorf("after SIGTERM: status %s attempt %d, want succeeded 1", after.Status, after.Attempt)
	}
	if kinds := jobEventKinds(t, srv, job.ID); slices.Contains(kinds, "released") || slices.Contains(kinds, "lease_lost") {
		t.Errorf("events %v: the finished job was released or lost", kinds)
	}
}
