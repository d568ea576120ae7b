package broker

import (
	"context"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

func TestNamespacesOnOneRedisStayApart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testutil.Redis(t)
	// The second namespace name starts with the first, so a key prefix or
	// pattern that lacked the closing brace would cover both.
	other := ns + "b"
	t.Cleanup(func() { testutil.DeleteNamespace(context.Background(), rdb, other) })
	cfg := Config{LeaseGrace: time.Second}
	first := newJobsBrokerOn(t, rdb, ns, cfg)
	second := newJobsBrokerOn(t, rdb, other, cfg)

	// Each deployment has one stale job, past its lease and the grace.
	staleFirst := mustEnqueue(t, first, EnqueueParams{Type: "demo:echo"})
	staleSecond := mustEnqueue(t, second, EnqueueParams{Type: "demo:echo"})
	mustClaim(t, first, ClaimParams{WorkerID: "worker-a"})
	mustClaim(t, second, ClaimParams{WorkerID: "worker-a"})
	expireLease(t, first, staleFirst.ID, time.Minute)
	expireLease(t, second, staleSecond.ID, time.Minute)
	queuedSecond := mustEnqueue(t, second, EnqueueParams{Type: "demo:echo"})

	if _, err := first.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: "upgrade first", Actor: "op"}); err != nil {
		t.Fatalf("pause the first deployment: %v", err)
	}

	// The second deployment's reaper and claims keep working, and the
	// first deployment's stop.
	res, err := second.ReapOnce(ctx)
	if err != nil {
		t.Fatalf("reap the second deployment: %v", err)
	}
	if res.Paused || res.Retried != 1 {
		t.Errorf("second deployment's reaper pass: %+v, want not paused and 1 retried", res)
	}
	res, err = first.ReapOnce(ctx)
	if err != nil {
		t.Fatalf("reap the first deployment: %v", err)
	}
	if !res.Paused || res.Retried != 0 || res.DeadLettered != 0 {
		t.Errorf("first deployment's reaper pass: %+v, want paused and nothing moved", res)
	}
	wantStatus(t, mustGet(t, first, staleFirst.ID), StatusRunning)
	wantStatus(t, mustGet(t, second, staleSecond.ID), StatusQueued)

	claimNone(t, first, ClaimParams{WorkerID: "worker-b"})
	got := mustClaim(t, second, ClaimParams{WorkerID: "worker-b"})
	if got.ID != staleSecond.ID && got.ID != queuedSecond.ID {
		t.Errorf("second deployment's claim returned %s, want one of its own jobs", got.ID)
	}

	snapFirst, err := first.Snapshot(ctx)
	if err != nil {
		t.Fatalf("snapshot of the first deployment: %v", err)
	}
	snapSecond, err := second.Snapshot(ctx)
	if err != nil {
		t.Fatalf("snapshot of the second deployment: %v", err)
	}
	if !snapFirst.Pause.WorkersPaused || snapFirst.Pause.Version != 2 || snapFirst.Metrics.StaleRunning != 1 || snapFirst.Outbox != 1 {
		t.Errorf("first snapshot: paused %v version %d stale %d outbox %d, want paused at 2 with 1 stale job and 1 outbox event",
			snapFirst.Pause.WorkersPaused, snapFirst.Pause.Version, snapFirst.Metrics.StaleRunning, snapFirst.Outbox)
	}
	if snapSecond.Pause.WorkersPaused || snapSecond.Pause.Version != 1 || snapSecond.Metrics.StaleRunning != 0 || snapSecond.Outbox != 0 {
		t.Errorf("second snapshot: paused %v version %d stale %d outbox %d, want running at 1 with no stale job and an empty outbox",
			snapSecond.Pause.WorkersPaused, snapSecond.Pause.Version, snapSecond.Metrics.StaleRunning, snapSecond.Outbox)
	}
}
