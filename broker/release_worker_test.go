package broker

import (
	"context"
	"slices"
	"sync"
	"testing"
)

func TestReleaseWorkerReleasesOnlyItsJobs(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	first := mustEnqueue(t, b, EnqueueParams{Priority: 5})
	second := mustEnqueue(t, b, EnqueueParams{Priority: 5})
	third := mustEnqueue(t, b, EnqueueParams{Priority: 5})
	later := mustEnqueue(t, b, EnqueueParams{Priority: 5})
	low := mustEnqueue(t, b, EnqueueParams{Priority: 1})

	mustClaim(t, b, ClaimParams{WorkerID: "w1"})
	mustClaim(t, b, ClaimParams{WorkerID: "w2"})
	mustClaim(t, b, ClaimParams{WorkerID: "w1"})
	if _, _, err := b.Heartbeat(ctx, HeartbeatParams{JobID: first.ID, WorkerID: "w1", Checkpoint: rawJSON(`{"step":2}`)}); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}

	// Releasing is the holder's own decision, so it works while paused.
	setPaused(t, b, true)
	released, err := b.ReleaseWorker(ctx, "w1")
	if err != nil {
		t.Fatalf("ReleaseWorker: %v", err)
	}
	slices.Sort(released)
	want := []string{first.ID, third.ID}
	slices.Sort(want)
	if !slices.Equal(released, want) {
		t.Fatalf("released = %v, want %v", released, want)
	}

	for _, id := range []string{first.ID, third.ID} {
		got := mustGet(t, b, id)
		wantStatus(t, got, StatusQueued)
		if got.Attempt != 0 || got.ClaimedBy != nil || got.LeaseExpiresAt != nil {
			t.Errorf("job %s: attempt %d, claimedBy %v, leaseExpiresAt %v, want 0, nil, nil", id, got.Attempt, got.ClaimedBy, got.LeaseExpiresAt)
		}
		if kinds := eventKinds(t, b, id); !slices.Equal(kinds, []string{"claimed", "released"}) {
			t.Errorf("job %s events = %v, want [claimed released]", id, kinds)
		}
	}
	if got := mustGet(t, b, first.ID); string(got.Checkpoint) != `{"step":2}` {
		t.Errorf("checkpoint = %s, want {\"step\":2} kept", got.Checkpoint)
	}
	otherJob := mustGet(t, b, second.ID)
	wantStatus(t, otherJob, StatusRunning)
	if otherJob.ClaimedBy == nil || *otherJob.ClaimedBy != "w2" || otherJob.Attempt != 1 {
		t.Errorf("w2's job: claimedBy %v attempt %d, want w2 and 1", otherJob.ClaimedBy, otherJob.Attempt)
	}
	counts := stateCounts(t, b)
	if counts[StatusQueued] != 4 || counts[StatusRunning] != 1 {
		t.Errorf("counts = %v, want 4 queued and 1 running", counts)
	}
	if n := b.rdb.ZCard(ctx, b.keys.Inflight()).Val(); n != 1 {
		t.Errorf("in-flight set size = %d, want 1", n)
	}

	// The released jobs return to their original places: ahead of the job
	// enqueued after them with the same priority.
	setPaused(t, b, false)
	order := []string{}
	for range 4 {
		order = append(order, mustClaim(t, b, ClaimParams{WorkerID: "w3"}).ID)
	}
	if wantOrder := []string{first.ID, third.ID, later.ID, low.ID}; !slices.Equal(order, wantOrder) {
		t.Errorf("claim order after release = %v, want %v", order, wantOrder)
	}
	if again := mustGet(t, b, first.ID); again.Attempt != 1 {
		t.Errorf("attempt after the next claim = %d, want 1", again.Attempt)
	}
}

func TestReleaseWorkerWithoutJobs(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	mustEnqueue(t, b, EnqueueParams{})
	mustClaim(t, b, ClaimParams{WorkerID: "w1"})

	released, err := b.ReleaseWorker(ctx, "unknown")
	if err != nil {
		t.Fatalf("ReleaseWorker: %v", err)
	}
	if len(released) != 0 {
		t.Errorf("released = %v, want none", released)
	}
	if counts := stateCounts(t, b); counts[StatusRunning] != 1 {
		t.Errorf("counts = %v, want the other worker's job still running", counts)
	}

	_, err = b.ReleaseWorker(ctx, "")
	wantErr(t, "ReleaseWorker without a worker id", err, ErrInvalidArgument)
	_, err = b.ReleaseWorker(ctx, " padded ")
	wantErr(t, "ReleaseWorker with a padded worker id", err, ErrInvalidArgument)
}

func TestReleaseWorkerEndsCancelRequestedJob(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	job := mustEnqueue(t, b, EnqueueParams{})
	mustClaim(t, b, ClaimParams{WorkerID: "w1"})
	if _, err := b.Cancel(ctx, job.ID, "not needed", "op"); err != nil {
		t.Fatalf("Cancel: %v", err)
	}

	released, err := b.ReleaseWorker(ctx, "w1")
	if err != nil {
		t.Fatalf("ReleaseWorker: %v", err)
	}
	if !slices.Equal(released, []string{job.ID}) {
		t.Fatalf("released = %v, want [%s]", released, job.ID)
	}
	got := mustGet(t, b, job.ID)
	wantStatus(t, got, StatusCancelled)
	if got.FinishedAt == nil {
		t.Error("finishedAt is null, want the release time")
	}
	if n := b.rdb.SCard(ctx, b.keys.Cancelling()).Val(); n != 0 {
		t.Errorf("cancelling set size = %d, want 0", n)
	}
	if n := b.rdb.ZCard(ctx, b.keys.Ready()).Val(); n != 0 {
		t.Errorf("ready set size = %d, want 0 (a cancelled job never runs again)", n)
	}
}

func TestResubmitTwiceReturnsFirstCopy(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	orig := mustEnqueue(t, b, EnqueueParams{MaxAttempts: 1})
	mustClaim(t, b, ClaimParams{})
	if _, err := b.Fail(ctx, FailParams{JobID: orig.ID, WorkerID: "w1", ErrorMessage: "bad"}); err != nil {
		t.Fatalf("Fail: %v", err)
	}

	first, created, err := b.Resubmit(ctx, orig.ID, "op")
	if err != nil || !created {
		t.Fatalf("first Resubmit: created %v, err %v, want a new job", created, err)
	}
	second, created, err := b.Resubmit(ctx, orig.ID, "op")
	if err != nil {
		t.Fatalf("second Resubmit: %v", err)
	}
	if created || second.ID != first.ID {
		t.Errorf("second Resubmit = %s created %v, want the first copy %s with created false", second.ID, created, first.ID)
	}
	old := mustGet(t, b, orig.ID)
	if old.ResubmittedAs == nil || *old.ResubmittedAs != first.ID {
		t.Errorf("old job resubmittedAs = %v, want %s", old.ResubmittedAs, first.ID)
	}
	wantStatus(t, old, StatusFailed)
	if first.ResubmittedAs != nil {
		t.Errorf("copy resubmittedAs = %v, want null", *first.ResubmittedAs)
	}
	if n := b.rdb.Get(ctx, b.keys.Seq()).Val(); n != "2" {
		t.Errorf("jobs created = %s, want 2 (the original and one copy)", n)
	}
	if kinds := eventKinds(t, b, orig.ID); slices.Index(kinds, "resubmitted") != len(kinds)-1 {
		t.Errorf("old job events = %v, want one resubmitted event, last", kinds)
	}

	// The copy's state does not matter: after it ran, a resubmit of the
	// original still returns it. Running the work again takes a resubmit
	// of the copy.
	mustClaim(t, b, ClaimParams{})
	if _, err := b.Complete(ctx, CompleteParams{JobID: first.ID, WorkerID: "w1"}); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	third, created, err := b.Resubmit(ctx, orig.ID, "op")
	if err != nil || created || third.ID != first.ID || third.Status != StatusSucceeded {
		t.Errorf("Resubmit after the copy ran = %+v, created %v, err %v; want the succeeded copy %s", third, created, err, first.ID)
	}
}

func TestResubmitConcurrentCreatesOneJob(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	orig := mustEnqueue(t, b, EnqueueParams{})
	if _, err := b.Cancel(ctx, orig.ID, "stop", "op"); err != nil {
		t.Fatalf("Cancel: %v", err)
	}

	const callers = 16
	ids := make([]string, callers)
	createdCount := make([]bool, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job, created, err := b.Resubmit(ctx, orig.ID, "op")
			if err != nil {
				t.Errorf("Resubmit %d: %v", i, err)
				return
			}
			ids[i], createdCount[i] = job.ID, created
		}()
	}
	wg.Wait()

	created := 0
	for i := range callers {
		if createdCount[i] {
			created++
		}
		if ids[i] != ids[0] {
			t.Errorf("Resubmit %d returned %s, want %s like the first", i, ids[i], ids[0])
		}
	}
	if created != 1 {
		t.Errorf("%d calls created a job, want 1", created)
	}
	if counts := stateCounts(t, b); counts[StatusQueued] != 1 {
		t.Errorf("counts = %v, want exactly 1 queued copy", counts)
	}
}
