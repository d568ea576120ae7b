package audit_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/testutil"
)

// Two deployments on one Redis and one database each keep their own
// version sequence and their own audit trail.
func TestNamespacesShareDatabaseApart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, nsA := testutil.Redis(t)
	nsB := nsA + "b"
	t.Cleanup(func() { testutil.DeleteNamespace(context.Background(), rdb, nsB) })
	base := newStore(t)

	bA, bB := newBroker(t, rdb, nsA), newBroker(t, rdb, nsB)
	rA, rB := newRelay(t, bA, base), newRelay(t, bB, base)
	mustEnsure(t, rA)
	mustEnsure(t, rB)

	changeA, err := bA.Pause(ctx, broker.PauseParams{Mode: broker.ModeDrain, Reason: "upgrade A", Actor: "ops-a"})
	if err != nil {
		t.Fatalf("pause A: %v", err)
	}
	changeB, err := bB.Pause(ctx, broker.PauseParams{Mode: broker.ModeQuiesce, Reason: "upgrade B", Actor: "ops-b"})
	if err != nil {
		t.Fatalf("pause B: %v", err)
	}
	if changeA.State.Version != 2 || changeB.State.Version != 2 {
		t.Fatalf("versions = %d and %d, want 2 in both namespaces", changeA.State.Version, changeB.State.Version)
	}
	if pending := rA.Deliver(ctx, changeA); pending {
		t.Fatal("pause A still pending after Deliver")
	}
	if pending := rB.Deliver(ctx, changeB); pending {
		t.Fatal("pause B still pending after Deliver: the same version in another namespace must not collide")
	}

	for _, tc := range []struct {
		ns, reason string
	}{{nsA, "upgrade A"}, {nsB, "upgrade B"}} {
		events, err := base.ForNamespace(tc.ns).Latest(ctx, 10)
		if err != nil {
			t.Fatalf("Latest(%s): %v", tc.ns, err)
		}
		if len(events) != 1 {
			t.Fatalf("namespace %s has %d audit rows, want 1", tc.ns, len(events))
		}
		if events[0].Reason != tc.reason {
			t.Errorf("namespace %s row reason = %q, want %q", tc.ns, events[0].Reason, tc.reason)
		}
	}
}

// A pause hash that exists but lags the audit log (Redis lost the newest
// change) is restored from the log with a higher version, so the lost
// decision comes back and no audited version is reused.
func TestEnsurePauseStateCatchesUpLaggingRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testutil.Redis(t)
	b := newBroker(t, rdb, ns)
	s := newStore(t).ForNamespace(ns)
	r := newRelay(t, b, s)
	mustEnsure(t, r)

	change, err := b.Pause(ctx, broker.PauseParams{Mode: broker.ModeDrain, Reason: "schema migration", Actor: "ops"})
	if err != nil {
		t.Fatalf("pause: %v", err)
	}
	if pending := r.Deliver(ctx, change); pending {
		t.Fatal("pause still pending after Deliver")
	}

	// Simulate Redis losing the pause: the hash is back at version 1, running.
	if err := rdb.HSet(ctx, "{"+ns+"}:pause", "workersPaused", "0", "mode", "", "reason", "", "version", "1").Err(); err != nil {
		t.Fatalf("rewind pause hash: %v", err)
	}
	mustEnsure(t, r)

	state, err := b.PauseState(ctx)
	if err != nil {
		t.Fatalf("PauseState: %v", err)
	}
	if !state.WorkersPaused {
		t.Error("restored state is not paused, want the audited pause back")
	}
	if state.Version != change.State.Version+1 {
		t.Errorf("restored version = %d, want %d", state.Version, change.State.Version+1)
	}
	if res, err := b.Claim(ctx, broker.ClaimParams{WorkerID: "w1"}); err != nil || res.Job != nil {
		t.Errorf("claim after catch-up = %+v, %v; want no job while paused", res, err)
	}

	newest, err := s.Newest(ctx)
	if err != nil || newest == nil {
		t.Fatalf("Newest = %v, %v; want the restore event", newest, err)
	}
	if newest.Action != broker.ActionRestore || newest.Version != state.Version {
		t.Errorf("newest row = %s version %d, want restore version %d", newest.Action, newest.Version, state.Version)
	}
	var before struct {
		WorkersPaused bool  `json:"workersPaused"`
		Version       int64 `json:"version"`
	}
	if err := json.Unmarshal(newest.StateBefore, &before); err != nil {
		t.Fatalf("restore stateBefore %s: %v", newest.StateBefore, err)
	}
	if before.WorkersPaused || before.Version != 1 {
		t.Errorf("restore stateBefore = %+v, want the lagging state (running, version 1)", before)
	}

	// A second pass finds Redis up to date and writes nothing.
	mustEnsure(t, r)
	if again, _ := b.PauseState(ctx); again.Version != state.Version {
		t.Errorf("version after a second pass = %d, want %d", again.Version, state.Version)
	}
}
