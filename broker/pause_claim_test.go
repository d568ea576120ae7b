package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

func enqueueBuildJobs(t *testing.T, b *Broker, n int) {
	t.Helper()
	for i := range n {
		if _, _, err := b.Enqueue(context.Background(), EnqueueParams{Type: "build", Priority: i % 3}); err != nil {
			t.Fatalf("Enqueue %d: %v", i, err)
		}
	}
}

func TestNoClaimAfterPause(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newInitializedBroker(t)

	// Enough jobs that the queue cannot run dry before the pause lands.
	const jobs = 1500
	const claimers = 32
	const claimsAfterPause = 20 // per goroutine, after Pause returned
	enqueueBuildJobs(t, b, jobs)

	var (
		pauseReturned atomic.Bool
		granted       atomic.Int64
		grantedAfter  atomic.Int64 // claims that started after Pause returned and got a job
		grantedPaused atomic.Int64 // claims that got a job with a reply showing the workers paused
		mu            sync.Mutex
		grantedJobs   []*Job
		wg            sync.WaitGroup
	)
	for w := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker := fmt.Sprintf("worker-%d", w)
			after := 0
			for after < claimsAfterPause {
				startedAfterPause := pauseReturned.Load()
				res, err := b.Claim(ctx, ClaimParams{WorkerID: worker, Lease: time.Minute})
				if err != nil {
					t.Errorf("Claim by %s: %v", worker, err)
					return
				}
				if startedAfterPause {
					after++
				}
				if res.Job == nil {
					continue
				}
				granted.Add(1)
				if startedAfterPause {
					grantedAfter.Add(1)
				}
				if res.Pause.WorkersPaused {
					grantedPaused.Add(1)
				}
				mu.Lock()
				grantedJobs = append(grantedJobs, res.Job)
				mu.Unlock()
			}
		}()
	}

	// Let the claimers get going, then pause in the middle of the traffic.
	testutil.WaitFor(t, 30*time.Second, "the first 64 claims", func() bool { return granted.Load() >= 64 })
	change, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: "stress", Actor: "test"})
	if err != nil {
		t.Fatalf("Pause: %v", err)
	}
	pauseReturned.Store(true)
	wg.Wait()

	if n := grantedAfter.Load(); n != 0 {
		t.Errorf("%d jobs were granted to claims that started after Pause returned, want 0", n)
	}
	if n := grantedPaused.Load(); n != 0 {
		t.Errorf("%d jobs were granted by claims whose reply showed the workers paused, want 0", n)
	}
	if granted.Load() >= jobs {
		t.Fatalf("all %d jobs were claimed before the pause; the test needs more jobs", jobs)
	}

	// Every granted job started at or before the pause took effect, by the
	// Redis clock, which both scripts read.
	pausedAt := change.State.RequestedAt
	late := 0
	for _, job := range grantedJobs {
		if job.StartedAt == nil || job.StartedAt.After(*pausedAt) {
			if late == 0 {
				t.Errorf("job %s started at %v, after the pause at %v", job.ID, job.StartedAt, pausedAt)
			}
			late++
		}
	}
	if late != 0 {
		t.Errorf("%d of %d granted jobs started after the pause, want 0", late, len(grantedJobs))
	}

	// The running count matches the grants, so no claim changed state
	// without telling its caller.
	snap, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if snap.Metrics.Running != granted.Load() || snap.Metrics.Queued != jobs-granted.Load() {
		t.Errorf("running %d, queued %d; want %d granted and %d queued",
			snap.Metrics.Running, snap.Metrics.Queued, granted.Load(), jobs-granted.Load())
	}
}

func TestClaimRespectsPauseAndResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newInitializedBroker(t)
	enqueueBuildJobs(t, b, 2)

	mustPause(t, b, ModeQuiesce, "hold")
	res, err := b.Claim(ctx, ClaimParams{WorkerID: "w1"})
	if err != nil {
		t.Fatalf("Claim while paused: %v", err)
	}
	if res.Job != nil || !res.Pause.WorkersPaused || res.Pause.Version != 2 {
		t.Fatalf("claim while paused = job %v, pause %+v; want no job, paused version 2", res.Job, res.Pause)
	}

	if _, err := b.Resume(ctx, ResumeParams{Reason: "go"}); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	res, err = b.Claim(ctx, ClaimParams{WorkerID: "w1"})
	if err != nil {
		t.Fatalf("Claim after resume: %v", err)
	}
	if res.Job == nil || res.Pause.Version != 3 {
		t.Fatalf("claim after resume = job %v, version %d; want a job at version 3", res.Job, res.Pause.Version)
	}

	// The claim leaves one job in flight, so a drain cannot end without force.
	mustPause(t, b, ModeDrain, "drain")
	if _, err := b.Resume(ctx, ResumeParams{Reason: "early"}); !errors.Is(err, ErrNotDrained) {
		t.Errorf("resume with a claimed job = %v, want ErrNotDrained", err)
	}
	if _, err := b.Complete(ctx, CompleteParams{JobID: res.Job.ID, WorkerID: "w1", Attempt: res.Job.Attempt}); err != nil {
		t.Fatalf("Complete while paused: %v", err)
	}
	if _, err := b.Resume(ctx, ResumeParams{Reason: "drained"}); err != nil {
		t.Errorf("resume after the drain finished: %v", err)
	}
}

func TestClaimFailsClosedAfterLostPauseState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, rdb := newInitializedBroker(t)
	enqueueBuildJobs(t, b, 1)
	rdb.Del(ctx, b.keys.Pause())

	if _, err := b.Claim(ctx, ClaimParams{WorkerID: "w1"}); !errors.Is(err, ErrPauseStateMissing) {
		t.Errorf("Claim without pause state = %v, want ErrPauseStateMissing", err)
	}
	snap, _ := b.Snapshot(ctx)
	if snap == nil || snap.Metrics.Queued != 1 || snap.Metrics.Running != 0 {
		t.Errorf("snapshot = %+v, want the job still queued", snap)
	}
}

func TestPausedNamespaceLeavesOtherClaimable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testutil.Redis(t)
	otherNS := testutil.RandomName("t")
	t.Cleanup(func() { testutil.DeleteNamespace(context.Background(), rdb, otherNS) })

	paused, err := New(rdb, Config{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	running, err := New(rdb, Config{Namespace: otherNS})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []*Broker{paused, running} {
		if _, err := b.InitPause(ctx); err != nil {
			t.Fatalf("InitPause: %v", err)
		}
		enqueueBuildJobs(t, b, 1)
	}
	mustPause(t, paused, ModeDrain, "only this namespace")

	res, err := paused.Claim(ctx, ClaimParams{WorkerID: "w"})
	if err != nil || res.Job != nil {
		t.Errorf("claim in paused namespace = %+v, %v; want no job", res, err)
	}
	res, err = running.Claim(ctx, ClaimParams{WorkerID: "w"})
	if err != nil || res.Job == nil {
		t.Errorf("claim in the other namespace = %+v, %v; want a job", res, err)
	}
}

func TestSnapshotCountsRealJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newInitializedBroker(t)
	enqueueBuildJobs(t, b, 3)
	if _, _, err := b.Enqueue(ctx, EnqueueParams{Type: "build", RunAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Enqueue delayed: %v", err)
	}
	res, err := b.Claim(ctx, ClaimParams{WorkerID: "w1"})
	if err != nil || res.Job == nil {
		t.Fatalf("Claim = %+v, %v; want a job", res, err)
	}
	if err := b.TouchWorker(ctx, "w1", res.Pause.Version); err != nil {
		t.Fatalf("TouchWorker: %v", err)
	}

	snap, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	want := DrainMetrics{Queued: 2, Delayed: 1, Running: 1}
	if snap.Metrics != want {
		t.Errorf("metrics = %+v, want %+v", snap.Metrics, want)
	}
	if snap.Counts[StatusQueued] != 3 || snap.Counts[StatusRunning] != 1 {
		t.Errorf("counts = %v, want queued 3 (one delayed) and running 1", snap.Counts)
	}
	if snap.Workers != (WorkerCounts{Live: 1, Acknowledged: 1}) {
		t.Errorf("workers = %+v, want one live acknowledged worker", snap.Workers)
	}
}
