package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moonmind/broker/internal/testutil"
)

// newPauseBroker returns a broker on a fresh namespace of the shared Redis,
// without a pause hash.
func newPauseBroker(t *testing.T) (*Broker, *redis.Client) {
	t.Helper()
	rdb, ns := testutil.Redis(t)
	b, err := New(rdb, Config{Namespace: ns})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b, rdb
}

// newInitializedBroker returns a broker whose pause hash exists at version 1.
func newInitializedBroker(t *testing.T) (*Broker, *redis.Client) {
	t.Helper()
	b, rdb := newPauseBroker(t)
	if _, err := b.InitPause(context.Background()); err != nil {
		t.Fatalf("InitPause: %v", err)
	}
	return b, rdb
}

func mustPause(t *testing.T, b *Broker, mode PauseMode, reason string) *PauseChange {
	t.Helper()
	change, err := b.Pause(context.Background(), PauseParams{Mode: mode, Reason: reason, Actor: "alice"})
	if err != nil {
		t.Fatalf("Pause(%s, %q): %v", mode, reason, err)
	}
	return change
}

func mustState(t *testing.T, b *Broker) PauseState {
	t.Helper()
	state, err := b.PauseState(context.Background())
	if err != nil {
		t.Fatalf("PauseState: %v", err)
	}
	return state
}

func mustDepth(t *testing.T, b *Broker) int64 {
	t.Helper()
	n, err := b.OutboxDepth(context.Background())
	if err != nil {
		t.Fatalf("OutboxDepth: %v", err)
	}
	return n
}

// stateJSON is the decoded form of an event's stateBefore or stateAfter.
type stateJSON struct {
	WorkersPaused bool    `json:"workersPaused"`
	Mode          *string `json:"mode"`
	Reason        *string `json:"reason"`
	Actor         *string `json:"actor"`
	Version       int64   `json:"version"`
}

func decodeState(t *testing.T, raw json.RawMessage) stateJSON {
	t.Helper()
	var s stateJSON
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("decode state JSON %s: %v", raw, err)
	}
	return s
}

func ptr[T any](v T) *T { return &v }

func TestInitPauseIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newPauseBroker(t)

	created, err := b.InitPause(ctx)
	if err != nil || !created {
		t.Fatalf("first InitPause = %v, %v; want true, nil", created, err)
	}
	state := mustState(t, b)
	if state.WorkersPaused || state.Mode != nil || state.Version != 1 {
		t.Fatalf("initial state = %+v, want unpaused, no mode, version 1", state)
	}
	if state.UpdatedAt == nil {
		t.Errorf("initial state has no updatedAt")
	}
	if d := mustDepth(t, b); d != 0 {
		t.Errorf("outbox depth after InitPause = %d, want 0", d)
	}

	mustPause(t, b, ModeDrain, "upgrade")
	created, err = b.InitPause(ctx)
	if err != nil || created {
		t.Fatalf("second InitPause = %v, %v; want false, nil", created, err)
	}
	state = mustState(t, b)
	if !state.WorkersPaused || state.Version != 2 {
		t.Errorf("state after second InitPause = %+v, want the pause at version 2 untouched", state)
	}
}

func TestPauseStateMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newPauseBroker(t)

	if _, err := b.PauseState(ctx); !errors.Is(err, ErrPauseStateMissing) {
		t.Errorf("PauseState error = %v, want ErrPauseStateMissing", err)
	}
	if _, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: "x"}); !errors.Is(err, ErrPauseStateMissing) {
		t.Errorf("Pause error = %v, want ErrPauseStateMissing", err)
	}
	if _, err := b.Resume(ctx, ResumeParams{Reason: "x"}); !errors.Is(err, ErrPauseStateMissing) {
		t.Errorf("Resume error = %v, want ErrPauseStateMissing", err)
	}
	if d := mustDepth(t, b); d != 0 {
		t.Errorf("outbox depth = %d, want 0", d)
	}
	exists, err := b.Redis().Exists(ctx, b.keys.Pause()).Result()
	if err != nil || exists != 0 {
		t.Errorf("pause hash exists = %d, %v; a rejected request must not create it", exists, err)
	}
}

func TestPauseResumeCycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newInitializedBroker(t)

	// Pause in drain mode: version 2, one event.
	change := mustPause(t, b, ModeDrain, "  Upgrading worker images  ")
	if !change.State.WorkersPaused || *change.State.Mode != ModeDrain || change.State.Version != 2 {
		t.Fatalf("state after pause = %+v, want paused drain version 2", change.State)
	}
	if *change.State.Reason != "Upgrading worker images" {
		t.Errorf("reason = %q, want it trimmed", *change.State.Reason)
	}
	if *change.State.RequestedBy != "alice" || change.State.RequestedAt == nil {
		t.Errorf("requestedBy/requestedAt = %v/%v, want alice and a time", change.State.RequestedBy, change.State.RequestedAt)
	}
	ev := change.Event
	if ev.Control != ControlWorkerPause || ev.Action != ActionPause || ev.Version != 2 {
		t.Errorf("event = %+v, want worker_pause pause version 2", ev)
	}
	if ev.Mode == nil || *ev.Mode != "drain" || ev.Actor == nil || *ev.Actor != "alice" {
		t.Errorf("event mode/actor = %v/%v, want drain/alice", ev.Mode, ev.Actor)
	}
	if ev.ID == "" || ev.OutboxID == "" || ev.CreatedAt.IsZero() {
		t.Errorf("event id %q, outbox id %q, createdAt %v: want all set", ev.ID, ev.OutboxID, ev.CreatedAt)
	}
	before, after := decodeState(t, ev.StateBefore), decodeState(t, ev.StateAfter)
	if before.WorkersPaused || before.Mode != nil || before.Version != 1 {
		t.Errorf("stateBefore = %s, want unpaused version 1", ev.StateBefore)
	}
	if !after.WorkersPaused || *after.Mode != "drain" || *after.Reason != "Upgrading worker images" ||
		*after.Actor != "alice" || after.Version != 2 {
		t.Errorf("stateAfter = %s, want paused drain version 2 by alice", ev.StateAfter)
	}
	if d := mustDepth(t, b); d != 1 {
		t.Errorf("outbox depth = %d, want 1", d)
	}

	// The same mode and reason again is rejected and writes nothing.
	_, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: "Upgrading worker images", Actor: "bob"})
	if !errors.Is(err, ErrAlreadyPaused) {
		t.Fatalf("repeated pause error = %v, want ErrAlreadyPaused", err)
	}
	if s := mustState(t, b); s.Version != 2 || *s.RequestedBy != "alice" {
		t.Errorf("state after rejected pause = %+v, want version 2 by alice", s)
	}
	if d := mustDepth(t, b); d != 1 {
		t.Errorf("outbox depth after rejected pause = %d, want 1", d)
	}

	// Another reason, then another mode, are changes.
	change = mustPause(t, b, ModeDrain, "Upgrading worker images, second wave")
	if change.State.Version != 3 || change.Event.Version != 3 {
		t.Errorf("version after reason change = %d (event %d), want 3", change.State.Version, change.Event.Version)
	}
	change = mustPause(t, b, ModeQuiesce, "Upgrading worker images, second wave")
	if change.State.Version != 4 || *change.State.Mode != ModeQuiesce {
		t.Errorf("state after mode change = %+v, want quiesce version 4", change.State)
	}
	if before := decodeState(t, change.Event.StateBefore); *before.Mode != "drain" || before.Version != 3 {
		t.Errorf("stateBefore of mode change = %s, want drain version 3", change.Event.StateBefore)
	}

	// Resume from quiesce: version 5, mode cleared, the event names the
	// mode that ended.
	resumed, err := b.Resume(ctx, ResumeParams{Reason: "Upgrade done", Actor: "bob"})
	if err != nil {
		t.Fatalf("Resume: %v", err)
	}
	s := resumed.State
	if s.WorkersPaused || s.Mode != nil || s.Version != 5 || *s.Reason != "Upgrade done" || *s.RequestedBy != "bob" {
		t.Errorf("state after resume = %+v, want unpaused version 5 by bob", s)
	}
	if resumed.Event.Action != ActionResume || resumed.Event.Mode == nil || *resumed.Event.Mode != "quiesce" {
		t.Errorf("resume event action/mode = %s/%v, want resume/quiesce", resumed.Event.Action, resumed.Event.Mode)
	}
	if after := decodeState(t, resumed.Event.StateAfter); after.WorkersPaused || after.Mode != nil || after.Version != 5 {
		t.Errorf("stateAfter of resume = %s, want unpaused, mode null, version 5", resumed.Event.StateAfter)
	}

	// Resume while running is rejected and writes nothing.
	if _, err := b.Resume(ctx, ResumeParams{Reason: "again", Actor: "bob"}); !errors.Is(err, ErrNotPaused) {
		t.Errorf("second resume error = %v, want ErrNotPaused", err)
	}
	if s := mustState(t, b); s.Version != 5 {
		t.Errorf("version after rejected resume = %d, want 5", s.Version)
	}

	// Four accepted changes left four events, in version order.
	events, err := b.OutboxPending(ctx, 100)
	if err != nil {
		t.Fatalf("OutboxPending: %v", err)
	}
	if len(events) != 4 {
		t.Fatalf("outbox holds %d events, want 4", len(events))
	}
	for i, e := range events {
		if e.Version != int64(i+2) {
			t.Errorf("event %d has version %d, want %d", i, e.Version, i+2)
		}
	}
}

func TestPauseExpectedVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newInitializedBroker(t)

	_, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: "r", ExpectedVersion: ptr(int64(7))})
	if !errors.Is(err, ErrVersionConflict) {
		t.Fatalf("pause with stale version error = %v, want ErrVersionConflict", err)
	}
	if !strings.Contains(err.Error(), "current version is 1") {
		t.Errorf("conflict message %q does not name the current version", err)
	}
	if s := mustState(t, b); s.WorkersPaused || s.Version != 1 {
		t.Errorf("state after conflict = %+v, want unpaused version 1", s)
	}

	if _, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: "r", ExpectedVersion: ptr(int64(1))}); err != nil {
		t.Fatalf("pause with current version: %v", err)
	}
	_, err = b.Resume(ctx, ResumeParams{Reason: "done", ExpectedVersion: ptr(int64(1))})
	if !errors.Is(err, ErrVersionConflict) {
		t.Fatalf("resume with stale version error = %v, want ErrVersionConflict", err)
	}
	if _, err := b.Resume(ctx, ResumeParams{Reason: "done", ExpectedVersion: ptr(int64(2))}); err != nil {
		t.Fatalf("resume with current version: %v", err)
	}
	if d := mustDepth(t, b); d != 2 {
		t.Errorf("outbox depth = %d, want 2 (conflicts write no event)", d)
	}
}

func TestResumeFromDrainNeedsEmptyInflight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, rdb := newInitializedBroker(t)
	mustPause(t, b, ModeDrain, "drain")

	// One live lease and one expired lease: both block the end of a drain.
	now := time.Now().UnixMilli()
	rdb.ZAdd(ctx, b.keys.Inflight(), redis.Z{Score: float64(now + 60_000), Member: "running-job"})
	_, err := b.Resume(ctx, ResumeParams{Reason: "done"})
	if !errors.Is(err, ErrNotDrained) {
		t.Fatalf("resume with a running job error = %v, want ErrNotDrained", err)
	}
	rdb.ZRem(ctx, b.keys.Inflight(), "running-job")
	rdb.ZAdd(ctx, b.keys.Inflight(), redis.Z{Score: float64(now - 60_000), Member: "stale-job"})
	if _, err := b.Resume(ctx, ResumeParams{Reason: "done"}); !errors.Is(err, ErrNotDrained) {
		t.Fatalf("resume with a stale job error = %v, want ErrNotDrained", err)
	}
	if s := mustState(t, b); !s.WorkersPaused || s.Version != 2 {
		t.Errorf("state after rejected resumes = %+v, want paused version 2", s)
	}
	if d := mustDepth(t, b); d != 1 {
		t.Errorf("outbox depth = %d, want 1", d)
	}

	change, err := b.Resume(ctx, ResumeParams{Reason: "done", Force: true})
	if err != nil {
		t.Fatalf("forced resume: %v", err)
	}
	if change.State.WorkersPaused || change.State.Version != 3 {
		t.Errorf("state after forced resume = %+v, want unpaused version 3", change.State)
	}
}

func TestResumeFromQuiesceNeedsNoForce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, rdb := newInitializedBroker(t)
	mustPause(t, b, ModeQuiesce, "park")
	rdb.ZAdd(ctx, b.keys.Inflight(), redis.Z{Score: float64(time.Now().UnixMilli() + 60_000), Member: "parked-job"})

	change, err := b.Resume(ctx, ResumeParams{Reason: "done"})
	if err != nil {
		t.Fatalf("resume from quiesce with a job in flight: %v", err)
	}
	if change.State.Version != 3 {
		t.Errorf("version = %d, want 3", change.State.Version)
	}
}

func TestResumeFromDrainWhenDrained(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newInitializedBroker(t)
	mustPause(t, b, ModeDrain, "drain")

	if _, err := b.Resume(ctx, ResumeParams{Reason: "drained"}); err != nil {
		t.Fatalf("resume from an empty drain: %v", err)
	}
}

func TestPauseRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newInitializedBroker(t)

	cases := []struct {
		name  string
		run   func() error
		field string
	}{
		{"unknown mode", func() error {
			_, err := b.Pause(ctx, PauseParams{Mode: "stop", Reason: "r"})
			return err
		}, "mode"},
		{"empty mode", func() error {
			_, err := b.Pause(ctx, PauseParams{Reason: "r"})
			return err
		}, "mode"},
		{"blank reason", func() error {
			_, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: "  \t "})
			return err
		}, "reason"},
		{"long reason", func() error {
			_, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: strings.Repeat("é", MaxReasonLength+1)})
			return err
		}, "reason"},
		{"invalid UTF-8 reason", func() error {
			_, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: "bad \xff"})
			return err
		}, "reason"},
		{"NUL in reason", func() error {
			_, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: "a\x00b"})
			return err
		}, "reason"},
		{"escape character in reason", func() error {
			_, err := b.Resume(ctx, ResumeParams{Reason: "done \x1b[31m"})
			return err
		}, "reason"},
		{"zero expected version", func() error {
			_, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: "r", ExpectedVersion: ptr(int64(0))})
			return err
		}, "expectedVersion"},
		{"resume without reason", func() error {
			_, err := b.Resume(ctx, ResumeParams{})
			return err
		}, "reason"},
	}
	for _, tc := range cases {
		err := tc.run()
		var ve *ValidationError
		if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: error = %v, want a ValidationError", tc.name, err)
			continue
		}
		if ve.Field != tc.field {
			t.Errorf("%s: field = %q, want %q", tc.name, ve.Field, tc.field)
		}
	}

	// The longest allowed reason (counted in characters) is accepted.
	if _, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: strings.Repeat("é", MaxReasonLength)}); err != nil {
		t.Errorf("pause with a %d-character reason: %v", MaxReasonLength, err)
	}
	if s := mustState(t, b); s.Version != 2 {
		t.Errorf("version = %d, want 2 (only the valid pause counts)", s.Version)
	}
}

func TestConcurrentPausesGetDistinctVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newInitializedBroker(t)

	const n = 40
	versions := make(chan int64, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			change, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: fmt.Sprintf("reason %d", i)})
			if err != nil {
				t.Errorf("Pause %d: %v", i, err)
				return
			}
			versions <- change.State.Version
		}()
	}
	wg.Wait()
	close(versions)

	seen := map[int64]bool{}
	for v := range versions {
		if seen[v] {
			t.Errorf("version %d was returned twice", v)
		}
		seen[v] = true
	}
	for v := int64(2); v <= n+1; v++ {
		if !seen[v] {
			t.Errorf("version %d is missing; want every version from 2 to %d", v, n+1)
		}
	}
	events, err := b.OutboxPending(ctx, 1000)
	if err != nil {
		t.Fatalf("OutboxPending: %v", err)
	}
	if len(events) != n {
		t.Fatalf("outbox holds %d events, want %d", len(events), n)
	}
	for i, e := range events {
		if e.Version != int64(i+2) {
			t.Errorf("outbox event %d has version %d, want %d", i, e.Version, i+2)
		}
		if before := decodeState(t, e.StateBefore); before.Version != e.Version-1 {
			t.Errorf("event version %d has stateBefore version %d", e.Version, before.Version)
		}
	}
}

func TestRestorePause(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, rdb := newInitializedBroker(t)
	paused := mustPause(t, b, ModeQuiesce, "maintenance")

	// The hash exists: nothing to restore.
	change, err := b.RestorePause(ctx, paused.Event)
	if err != nil || change != nil {
		t.Fatalf("RestorePause on an existing hash = %v, %v; want nil, nil", change, err)
	}
	if d := mustDepth(t, b); d != 1 {
		t.Errorf("outbox depth = %d, want 1", d)
	}

	// Redis lost the hash: the restore brings back the paused state with
	// version newest+1.
	rdb.Del(ctx, b.keys.Pause())
	change, err = b.RestorePause(ctx, paused.Event)
	if err != nil {
		t.Fatalf("RestorePause: %v", err)
	}
	s := change.State
	if !s.WorkersPaused || *s.Mode != ModeQuiesce || *s.Reason != "maintenance" || s.Version != 3 {
		t.Errorf("restored state = %+v, want paused quiesce 'maintenance' version 3", s)
	}
	if *s.RequestedBy != "alice" || s.RequestedAt == nil || !s.RequestedAt.Equal(paused.Event.CreatedAt) {
		t.Errorf("restored requestedBy/At = %v/%v, want alice at %v", s.RequestedBy, s.RequestedAt, paused.Event.CreatedAt)
	}
	ev := change.Event
	if ev.Action != ActionRestore || ev.Reason != RestoreReason || *ev.Actor != RestoreActor || ev.Version != 3 {
		t.Errorf("restore event = %+v, want restore by broker at version 3", ev)
	}
	if ev.StateBefore != nil {
		t.Errorf("restore stateBefore = %s, want nil", ev.StateBefore)
	}
	if after := decodeState(t, ev.StateAfter); !after.WorkersPaused || *after.Mode != "quiesce" || after.Version != 3 {
		t.Errorf("restore stateAfter = %s, want paused quiesce version 3", ev.StateAfter)
	}
	if got := mustState(t, b); got.Version != 3 || !got.WorkersPaused {
		t.Errorf("stored state = %+v, want the restored one", got)
	}
	if d := mustDepth(t, b); d != 2 {
		t.Errorf("outbox depth = %d, want 2", d)
	}

	// A second restore from the same event finds the hash and does nothing.
	if change, err := b.RestorePause(ctx, paused.Event); err != nil || change != nil {
		t.Errorf("second RestorePause = %v, %v; want nil, nil", change, err)
	}
}

func TestRestorePauseUnpausedState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, rdb := newInitializedBroker(t)
	mustPause(t, b, ModeDrain, "upgrade")
	resumed, err := b.Resume(ctx, ResumeParams{Reason: "upgrade done", Actor: "bob"})
	if err != nil {
		t.Fatalf("Resume: %v", err)
	}
	rdb.Del(ctx, b.keys.Pause())

	change, err := b.RestorePause(ctx, resumed.Event)
	if err != nil {
		t.Fatalf("RestorePause: %v", err)
	}
	if change.State.WorkersPaused || change.State.Mode != nil || change.State.Version != 4 {
		t.Errorf("restored state = %+v, want unpaused, no mode, version 4", change.State)
	}
	if change.Event.Mode != nil {
		t.Errorf("restore event mode = %q, want nil for an unpaused state", *change.Event.Mode)
	}
	// The restored hash works with the state machine.
	if _, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: "again", ExpectedVersion: ptr(int64(4))}); err != nil {
		t.Errorf("pause after restore: %v", err)
	}
}

func TestRestorePauseRejectsBadEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newPauseBroker(t)

	bad := []AuditEvent{
		{Version: 0, StateAfter: json.RawMessage(`{"workersPaused":false}`)},
		{Version: 3, StateAfter: nil},
		{Version: 3, StateAfter: json.RawMessage(`{"workersPaused":true,"mode":"stop"}`)},
	}
	for i, e := range bad {
		if _, err := b.RestorePause(ctx, e); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("event %d: error = %v, want ErrInvalidArgument", i, err)
		}
	}
	if _, err := b.PauseState(ctx); !errors.Is(err, ErrPauseStateMissing) {
		t.Errorf("PauseState after rejected restores = %v, want ErrPauseStateMissing", err)
	}
}

func TestNamespacesAreIndependent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testutil.Redis(t)
	other := testutil.RandomName("t")
	t.Cleanup(func() { testutil.DeleteNamespace(context.Background(), rdb, other) })

	first, err := New(rdb, Config{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	second, err := New(rdb, Config{Namespace: other})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []*Broker{first, second} {
		if _, err := b.InitPause(ctx); err != nil {
			t.Fatalf("InitPause: %v", err)
		}
	}
	mustPause(t, first, ModeDrain, "only the first")

	if s := mustState(t, second); s.WorkersPaused || s.Version != 1 {
		t.Errorf("second namespace state = %+v, want unpaused version 1", s)
	}
	if d := mustDepth(t, second); d != 0 {
		t.Errorf("second namespace outbox depth = %d, want 0", d)
	}
	if _, err := second.Resume(ctx, ResumeParams{Reason: "x"}); !errors.Is(err, ErrNotPaused) {
		t.Errorf("resume in second namespace = %v, want ErrNotPaused", err)
	}
}
