package worker

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/testutil"
)

// jobTotal returns the number of jobs in every state together.
func jobTotal(t *testing.T, srv *apitest.Server) int64 {
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

// eventKindsOf lists the kinds of a job's events, oldest first.
func eventKindsOf(t *testing.T, srv *apitest.Server, id string) []string {
	t.Helper()
	events, _, err := srv.Broker.JobEvents(context.Background(), id, "", broker.MaxEventsLimit)
	if err != nil {
		t.Fatalf("job events of %s: %v", id, err)
	}
	kinds := make([]string, len(events))
	for i, e := range events {
		kinds[i] = e.Kind
	}
	return kinds
}

// checkReleasedNotFinished checks that a job stopped by a shutdown is
// queued again with its attempt given back, and was never completed,
// failed or dead-lettered.
func checkReleasedNotFinished(t *testing.T, srv *apitest.Server, id string) {
	t.Helper()
	job := getJob(t, srv, id)
	if job.Status != broker.StatusQueued || job.Attempt != 0 || job.ClaimedBy != nil {
		t.Fatalf("after shutdown: status %s attempt %d holder %s, want queued, attempt 0, no holder", job.Status, job.Attempt, holderName(job))
	}
	if total := jobTotal(t, srv); total != 1 {
		t.Errorf("job count %d after shutdown, want 1", total)
	}
	kinds := eventKindsOf(t, srv, id)
	for _, finished := range []string{"succeeded", "failed", "dead_lettered", "retry_scheduled", "lease_lost"} {
		if slices.Contains(kinds, finished) {
			t.Errorf("events %v contain %q; a shutdown must only release the job", kinds, finished)
		}
	}
	if !slices.Contains(kinds, "released") {
		t.Errorf("events %v, want a release", kinds)
	}
}

// claimAsB claims the released job as another worker and checks that it
// gets the attempt number the stopped worker had, then completes it.
func claimAsB(t *testing.T, srv *apitest.Server, id string, wantAttempt int) {
	t.Helper()
	ctx := context.Background()
	res, err := srv.Broker.Claim(ctx, broker.ClaimParams{WorkerID: "worker-b", Lease: 30 * time.Second})
	if err != nil {
		t.Fatalf("B's claim: %v", err)
	}
	if res.Job == nil || res.Job.ID != id || res.Job.Attempt != wantAttempt {
		t.Fatalf("B's claim = %+v, want job %s attempt %d", res.Job, id, wantAttempt)
	}
	done, err := srv.Broker.Complete(ctx, broker.CompleteParams{JobID: id, WorkerID: "worker-b", Attempt: wantAttempt})
	if err != nil {
		t.Fatalf("B's complete: %v", err)
	}
	if done.Status != broker.StatusSucceeded {
		t.Fatalf("B's complete: status %s, want succeeded", done.Status)
	}
}

func TestShutdownReleasesJobThatRunsUntilStopped(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, _ := newTestLogger(t)
	cfg := testConfig(t, srv, logger)
	cfg.ShutdownTimeout = time.Second

	started := make(chan int, 1)
	a := startWorker(t, cfg, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		attempt, _ := Attempt(ctx)
		started <- attempt
		<-ctx.Done()
		return ctx.Err()
	}))
	// One attempt only: a shutdown that used it up would dead-letter the
	// job.
	job := enqueue(t, srv, "until-stopped", map[string]any{}, 1)
	var attempt int
	select {
	case attempt = <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler did not start within 30s")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	checkReleasedNotFinished(t, srv, job.ID)
	claimAsB(t, srv, job.ID, attempt)
}

func TestShutdownReleasesJobWhoseHandlerIgnoresContext(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, _ := newTestLogger(t)
	cfg := testConfig(t, srv, logger)
	cfg.ShutdownTimeout = time.Second

	started := make(chan int, 1)
	unblock := make(chan struct{})
	returned := make(chan struct{})
	a := startWorker(t, cfg, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		defer close(returned)
		attempt, _ := Attempt(ctx)
		started <- attempt
		<-unblock // ignores ctx on purpose
		return nil
	}))
	t.Cleanup(func() {
		select {
		case <-unblock:
		default:
			close(unblock)
		}
	})
	job := enqueue(t, srv, "stubborn", map[string]any{}, 1)
	var attempt int
	select {
	case attempt = <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler did not start within 30s")
	}

	// The shutdown deadline passes while the handler still runs: the job
	// is released anyway, and Shutdown reports that the handler did not return.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned nil while a handler ignored its context, want an error")
	}
	checkReleasedNotFinished(t, srv, job.ID)

	// B takes the job over. When the stubborn handler finally returns
	// success, that result is dropped: the job stays B's.
	res, err := srv.Broker.Claim(context.Background(), broker.ClaimParams{WorkerID: "worker-b", Lease: 30 * time.Second})
	if err != nil || res.Job == nil || res.Job.ID != job.ID || res.Job.Attempt != attempt {
		t.Fatalf("B's claim = %+v, %v; want job %s attempt %d", res, err, job.ID, attempt)
	}
	close(unblock)
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler did not return after unblocking")
	}
	held := getJob(t, srv, job.ID)
	if held.Status != broker.StatusRunning || held.ClaimedBy == nil || *held.ClaimedBy != "worker-b" {
		t.Fatalf("after the stopped worker's handler returned: status %s holder %s, want running by worker-b", held.Status, holderName(held))
	}
	if kinds := eventKindsOf(t, srv, job.ID); slices.Contains(kinds, "succeeded") {
		t.Errorf("events %v: the stopped worker's late result was reported", kinds)
	}
}

func TestShutdownAfterDrainPauseKeepsFinishedJob(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, _ := newTestLogger(t)
	cfg := testConfig(t, srv, logger)
	cfg.ShutdownTimeout = time.Second

	started := make(chan struct{}, 1)
	finish := make(chan struct{})
	a := startWorker(t, cfg, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		started <- struct{}{}
		select {
		case <-finish:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	job := enqueue(t, srv, "graceful", map[string]any{}, 1)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the handler did not start within 30s")
	}

	// Pause in drain mode, let the job finish, then stop the worker.
	setPause(t, srv, "pause", "drain", "upgrade workers")
	close(finish)
	done := waitStatus(t, srv, job.ID, broker.StatusSucceeded, 30*time.Second)
	testutil.WaitFor(t, 10*time.Second, "the drain to finish", func() bool {
		return readPause(t, srv).Metrics.Running == 0
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	after := getJob(t, srv, job.ID)
	if after.Status != broker.StatusSucceeded || after.Attempt != 1 || !after.FinishedAt.Equal(*done.FinishedAt) {
		t.Errorf("after shutdown: status %s attempt %d, want succeeded with attempt 1, finished once", after.Status, after.Attempt)
	}
	if kinds := eventKindsOf(t, srv, job.ID); slices.Contains(kinds, "released") {
		t.Errorf("events %v: a finished job was released", kinds)
	}
	if total := jobTotal(t, srv); total != 1 {
		t.Errorf("job count %d, want 1", total)
	}
}

// holderName returns a job's holder, or "none", for failure messages.
func holderName(job *broker.Job) string {
	if job.ClaimedBy == nil {
		return "none"
	}
	return *job.ClaimedBy
}

func TestShutdownReleasesJobParkedByQuiesce(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, _ := newTestLogger(t)
	cfg := testConfig(t, srv, logger)
	cfg.ShutdownTimeout = time.Second
	cfg.HeartbeatInterval = 300 * time.Millisecond
	ctx := context.Background()

	a := startWorker(t, cfg, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		for {
			if err := Checkpoint(ctx); err != nil {
				return err
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}))
	job := enqueue(t, srv, "parkable", map[string]any{}, 1)
	waitStatus(t, srv, job.ID, broker.StatusRunning, 30*time.Second)

	setPause(t, srv, "pause", "quiesce", "upgrade workers")
	testutil.WaitFor(t, 30*time.Second, "the job to park at its checkpoint", func() bool {
		return readPause(t, srv).Metrics.Quiesced == 1
	})

	stopCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := a.Shutdown(stopCtx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	checkReleasedNotFinished(t, srv, job.ID)
	snap := readPause(t, srv)
	if snap.Metrics.Quiesced != 0 || snap.Metrics.Running != 0 || snap.Metrics.StaleRunning != 0 {
		t.Errorf("after shutdown: quiesced %d running %d staleRunning %d, want all 0",
			snap.Metrics.Quiesced, snap.Metrics.Running, snap.Metrics.StaleRunning)
	}

	// The released job waits out the pause like any queued job.
	res, err := srv.Broker.Claim(ctx, broker.ClaimParams{WorkerID: "worker-b", Lease: 30 * time.Second})
	if err != nil || res.Job != nil {
		t.Fatalf("B's claim while paused = %+v, %v; want no job", res, err)
	}
	setPause(t, srv, "resume", "", "upgrade done")
	claimAsB(t, srv, job.ID, 1)
}
