package broker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

func TestReaperRequeuesExpiredLeaseAfterGrace(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{LeaseGrace: 30 * time.Second})
	ctx := context.Background()
	job := mustEnqueue(t, b, EnqueueParams{Priority: 5, MaxAttempts: 2})
	mustEnqueue(t, b, EnqueueParams{Priority: 5})
	mustClaim(t, b, ClaimParams{})

	// Expired, but within the grace: the reaper leaves it.
	expireLease(t, b, job.ID, 10*time.Second)
	res, err := b.ReapOnce(ctx)
	if err != nil {
		t.Fatalf("ReapOnce: %v", err)
	}
	if res.Retried != 0 {
		t.Fatalf("ReapOnce within the grace retried %d jobs, want 0", res.Retried)
	}
	wantStatus(t, mustGet(t, b, job.ID), StatusRunning)

	expireLease(t, b, job.ID, 31*time.Second)
	res, err = b.ReapOnce(ctx)
	if err != nil {
		t.Fatalf("ReapOnce: %v", err)
	}
	if res.Retried != 1 || res.Paused {
		t.Fatalf("ReapOnce = %+v, want 1 retried, not paused", res)
	}
	got := mustGet(t, b, job.ID)
	wantStatus(t, got, StatusQueued)
	if got.Attempt != 1 || got.ClaimedBy != nil || got.ErrorMessage == nil || !strings.Contains(*got.ErrorMessage, "lease expired after 1 of 2 attempts") {
		t.Errorf("attempt, claimedBy, errorMessage = %d, %v, %v", got.Attempt, got.ClaimedBy, got.ErrorMessage)
	}
	if kinds := eventKinds(t, b, job.ID); !slices.Equal(kinds, []string{"claimed", "lease_lost"}) {
		t.Errorf("events = %v, want [claimed lease_lost]", kinds)
	}
	_, err = b.Complete(ctx, CompleteParams{JobID: job.ID, WorkerID: "w1", Attempt: 1})
	wantErr(t, "Complete by the reaped holder", err, ErrLeaseLost)

	// The requeued job keeps its place ahead of the later job of equal
	// priority; with no attempts left the next expiry dead-letters it.
	again := mustClaim(t, b, ClaimParams{WorkerID: "w2"})
	if again.ID != job.ID || again.Attempt != 2 {
		t.Fatalf("next claim = %s attempt %d, want %s attempt 2", again.ID, again.Attempt, job.ID)
	}
	expireLease(t, b, job.ID, time.Minute)
	res, err = b.ReapOnce(ctx)
	if err != nil {
		t.Fatalf("ReapOnce: %v", err)
	}
	if res.DeadLettered != 1 {
		t.Fatalf("ReapOnce = %+v, want 1 dead-lettered", res)
	}
	got = mustGet(t, b, job.ID)
	wantStatus(t, got, StatusDeadLetter)
	if !strings.Contains(*got.ErrorMessage, "lease expired") || !strings.Contains(*got.ErrorMessage, "no attempts left") {
		t.Errorf("errorMessage = %q, want it to say the lease expired with no attempts left", *got.ErrorMessage)
	}
	counts := stateCounts(t, b)
	if counts[StatusDeadLetter] != 1 || counts[StatusQueued] != 1 || counts[StatusRunning] != 0 {
		t.Errorf("counts = %v, want dead_letter 1, queued 1", counts)
	}
}

func TestReaperPurgesFinishedJobsAfterRetention(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{Retention: time.Hour})
	ctx := context.Background()
	old := mustEnqueue(t, b, EnqueueParams{IdempotencyKey: "old-key"})
	mustClaim(t, b, ClaimParams{})
	if _, err := b.Complete(ctx, CompleteParams{JobID: old.ID, WorkerID: "w1"}); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	recent := mustEnqueue(t, b, EnqueueParams{})
	if _, err := b.Cancel(ctx, recent.ID, "", "op"); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	// Pretend the first job finished two hours ago.
	now := b.rdb.Time(ctx).Val()
	b.rdb.ZAdd(ctx, b.keys.Finished(), redisZ(float64(now.Add(-2*time.Hour).UnixMilli()), old.ID))

	res, err := b.ReapOnce(ctx)
	if err != nil {
		t.Fatalf("ReapOnce: %v", err)
	}
	if res.Purged != 1 {
		t.Fatalf("ReapOnce = %+v, want 1 purged", res)
	}
	_, err = b.GetJob(ctx, old.ID)
	wantErr(t, "GetJob of a purged job", err, ErrNotFound)
	for _, key := range []string{b.keys.JobEvents(old.ID), b.keys.Idempotency("old-key")} {
		if n := b.rdb.Exists(ctx, key).Val(); n != 0 {
			t.Errorf("key %s still exists after the purge", key)
		}
	}
	if b.rdb.ZScore(ctx, b.keys.Status(StatusSucceeded), old.ID).Err() == nil {
		t.Error("purged job is still in status:succeeded")
	}
	wantStatus(t, mustGet(t, b, recent.ID), StatusCancelled)
	// The idempotency key is free again.
	fresh := mustEnqueue(t, b, EnqueueParams{IdempotencyKey: "old-key"})
	if fresh.ID == old.ID {
		t.Error("the purged job came back for its idempotency key")
	}
}

func TestReaperChangesNothingWhilePaused(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{Retention: time.Hour})
	ctx := context.Background()

	stale := mustEnqueue(t, b, EnqueueParams{Priority: 9})
	mustClaim(t, b, ClaimParams{})
	expireLease(t, b, stale.ID, time.Hour)
	cancelled := mustEnqueue(t, b, EnqueueParams{Priority: 8})
	mustClaim(t, b, ClaimParams{WorkerID: "w2"})
	if _, err := b.Cancel(ctx, cancelled.ID, "stop", "op"); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	expireLease(t, b, cancelled.ID, time.Millisecond)
	finished := mustEnqueue(t, b, EnqueueParams{Priority: 7})
	mustClaim(t, b, ClaimParams{WorkerID: "w3"})
	if _, err := b.Complete(ctx, CompleteParams{JobID: finished.ID, WorkerID: "w3"}); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	now := b.rdb.Time(ctx).Val()
	b.rdb.ZAdd(ctx, b.keys.Finished(), redisZ(float64(now.Add(-2*time.Hour).UnixMilli()), finished.ID))
	delayed := mustEnqueue(t, b, EnqueueParams{RunAt: time.Now().Add(50 * time.Millisecond)})
	queued := mustEnqueue(t, b, EnqueueParams{})
	testutil.WaitFor(t, 5*time.Second, "the delayed job to become due", func() bool {
		return b.rdb.Time(ctx).Val().After(*delayed.NextAttemptAt)
	})

	setPaused(t, b, true)
	for i := range 3 {
		res, err := b.ReapOnce(ctx)
		if err != nil {
			t.Fatalf("ReapOnce %d: %v", i, err)
		}
		want := ReapResult{Paused: true}
		if i == 0 {
			want.Cancelled = 1
		}
		if res != want {
			t.Fatalf("ReapOnce %d while paused = %+v, want %+v", i, res, want)
		}
	}
	wantStatus(t, mustGet(t, b, stale.ID), StatusRunning)
	wantStatus(t, mustGet(t, b, cancelled.ID), StatusCancelled)
	wantStatus(t, mustGet(t, b, finished.ID), StatusSucceeded)
	wantStatus(t, mustGet(t, b, delayed.ID), StatusQueued)
	wantStatus(t, mustGet(t, b, queued.ID), StatusQueued)
	if n := b.rdb.ZCard(ctx, b.keys.Delayed()).Val(); n != 1 {
		t.Errorf("delayed set size = %d while paused, want 1", n)
	}
	if n := b.rdb.ZCard(ctx, b.keys.Ready()).Val(); n != 1 {
		t.Errorf("ready set size = %d while paused, want 1", n)
	}
	if stale, err := b.StaleJobs(ctx, 10); err != nil || len(stale) != 1 {
		t.Errorf("StaleJobs = %d, %v, want 1 stale job", len(stale), err)
	}

	// A missing pause hash is treated as paused.
	b.rdb.Del(ctx, b.keys.Pause())
	if res, err := b.ReapOnce(ctx); err != nil || res != (ReapResult{Paused: true}) {
		t.Fatalf("ReapOnce without pause hash = %+v, %v, want paused and no change", res, err)
	}
	wantStatus(t, mustGet(t, b, stale.ID), StatusRunning)

	setPaused(t, b, false)
	res, err := b.ReapOnce(ctx)
	if err != nil {
		t.Fatalf("ReapOnce after resume: %v", err)
	}
	if res.Retried != 1 || res.Purged != 1 || res.Promoted != 1 {
		t.Errorf("ReapOnce after resume = %+v, want 1 retried, 1 purged, 1 promoted", res)
	}
}

func TestReaperLoopStartStop(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	job := mustEnqueue(t, b, EnqueueParams{})
	mustClaim(t, b, ClaimParams{})

	r := b.NewReaper(ReaperConfig{Interval: 10 * time.Millisecond}, nil)
	r.Stop() // before Start: nothing to stop
	r.Start(ctx)
	r.Start(ctx) // a second Start is ignored
	expireLease(t, b, job.ID, time.Hour)
	testutil.WaitFor(t, 5*time.Second, "the reaper loop to requeue the stale job", func() bool {
		return mustGet(t, b, job.ID).Status == StatusQueued
	})
	r.Stop()
	r.Stop()

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := r.ReapOnce(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ReapOnce with a cancelled context: err = %v, want context.Canceled", err)
	}
}

func TestReaperBatchesLargeBacklog(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	const n = 25
	for range n {
		mustEnqueue(t, b, EnqueueParams{})
	}
	var ids []string
	for range n {
		ids = append(ids, mustClaim(t, b, ClaimParams{}).ID)
	}
	for _, id := range ids {
		expireLease(t, b, id, time.Hour)
	}
	r := b.NewReaper(ReaperConfig{BatchSize: 10}, nil)
	res, err := r.ReapOnce(ctx)
	if err != nil {
		t.Fatalf("ReapOnce: %v", err)
	}
	if res.Retried != n {
		t.Fatalf("ReapOnce with batch 10 retried %d, want all %d over several script calls", res.Retried, n)
	}
}

func TestConcurrentReapersMoveEachJobOnce(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	const n = 60
	for range n {
		mustEnqueue(t, b, EnqueueParams{})
	}
	for range n {
		expireLease(t, b, mustClaim(t, b, ClaimParams{}).ID, time.Hour)
	}

	results := make(chan ReapResult, 4)
	for range cap(results) {
		go func() {
			r := b.NewReaper(ReaperConfig{BatchSize: 7}, nil)
			res, err := r.ReapOnce(ctx)
			if err != nil {
				t.Errorf("ReapOnce: %v", err)
			}
			results <- res
		}()
	}
	total := 0
	for range cap(results) {
		total += (<-results).Retried
	}
	if total != n {
		t.Fatalf("four concurrent reapers retried %d jobs in total, want exactly %d", total, n)
	}
	if counts := stateCounts(t, b); counts[StatusQueued] != n || counts[StatusRunning] != 0 {
		t.Errorf("counts = %v, want %d queued", counts, n)
	}
	if n := b.rdb.ZCard(ctx, b.keys.Ready()).Val(); n != 60 {
		t.Errorf("ready set size = %d, want 60", n)
	}
}
