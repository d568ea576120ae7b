package audit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/moonmind/broker/audit"
	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/testutil"
)

// quietLogger drops the relay's log lines, which the failure tests would
// otherwise print for every retried pass.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newBroker returns a broker on rdb in namespace ns.
func newBroker(t *testing.T, rdb redis.UniversalClient, ns string) *broker.Broker {
	t.Helper()
	b, err := broker.New(rdb, broker.Config{Namespace: ns})
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	return b
}

// migratedStore opens dsn, migrates it and returns a Store on it.
func migratedStore(t *testing.T, dsn string) *audit.Store {
	t.Helper()
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := audit.Migrate(context.Background(), db); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return audit.NewStore(db)
}

// sharedEnv returns a broker in a fresh namespace of the shared Redis and a
// store in a fresh schema of the shared Postgres.
func sharedEnv(t *testing.T) (*broker.Broker, *audit.Store) {
	t.Helper()
	rdb, ns := testutil.Redis(t)
	return newBroker(t, rdb, ns), newStore(t).ForNamespace(ns)
}

func newRelay(t *testing.T, b *broker.Broker, s *audit.Store) *audit.Relay {
	t.Helper()
	r := audit.NewRelay(b, s, audit.RelayConfig{Interval: 10 * time.Millisecond, BatchSize: 3}, quietLogger())
	t.Cleanup(r.Stop)
	return r
}

func mustEnsure(t *testing.T, r *audit.Relay) {
	t.Helper()
	if err := r.EnsurePauseState(context.Background()); err != nil {
		t.Fatalf("EnsurePauseState: %v", err)
	}
}

// toggle makes change i: a pause for even i, a resume for odd i.
func toggle(t *testing.T, b *broker.Broker, i int) *broker.PauseChange {
	t.Helper()
	ctx := context.Background()
	var change *broker.PauseChange
	var err error
	if i%2 == 0 {
		change, err = b.Pause(ctx, broker.PauseParams{Mode: broker.ModeQuiesce, Reason: fmt.Sprintf("upgrade step %d", i), Actor: "ops"})
	} else {
		change, err = b.Resume(ctx, broker.ResumeParams{Reason: fmt.Sprintf("upgrade step %d done", i), Actor: "ops", Force: true})
	}
	if err != nil {
		t.Fatalf("change %d: %v", i, err)
	}
	return change
}

// rowVersionsByInsert returns the versions in the order Postgres inserted
// the rows: each insert is its own transaction, so xmin grows with it.
func rowVersionsByInsert(t *testing.T, s *audit.Store) []int64 {
	t.Helper()
	var versions []int64
	err := s.DB().Select(&versions, `SELECT version FROM system_control_events ORDER BY xmin::text::bigint, inserted_at`)
	if err != nil {
		t.Fatalf("read versions: %v", err)
	}
	return versions
}

func rowIDs(t *testing.T, s *audit.Store) map[string]int64 {
	t.Helper()
	var rows []struct {
		ID      string `db:"id"`
		Version int64  `db:"version"`
	}
	if err := s.DB().Select(&rows, `SELECT id::text AS id, version FROM system_control_events`); err != nil {
		t.Fatalf("read rows: %v", err)
	}
	ids := make(map[string]int64, len(rows))
	for _, r := range rows {
		ids[r.ID] = r.Version
	}
	return ids
}

func outboxDepth(t *testing.T, b *broker.Broker) int64 {
	t.Helper()
	n, err := b.OutboxDepth(context.Background())
	if err != nil {
		t.Fatalf("OutboxDepth: %v", err)
	}
	return n
}

func TestRelayConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		cfg   audit.RelayConfig
		valid bool
	}{
		{audit.RelayConfig{}, true},
		{audit.RelayConfig{BatchSize: broker.MaxOutboxBatch}, true},
		{audit.RelayConfig{BatchSize: broker.MaxOutboxBatch + 1}, false},
		{audit.RelayConfig{BatchSize: -1}, false},
		{audit.RelayConfig{Interval: -time.Second}, false},
		{audit.RelayConfig{DeliverTimeout: -time.Second}, false},
	}
	for _, tc := range cases {
		err := tc.cfg.Validate()
		if (err == nil) != tc.valid {
			t.Errorf("Validate(%+v) = %v; want valid %v", tc.cfg, err, tc.valid)
		}
	}
}

func TestRelayDeliverWritesChange(t *testing.T) {
	t.Parallel()
	b, s := sharedEnv(t)
	r := newRelay(t, b, s)
	mustEnsure(t, r)

	change := toggle(t, b, 0)
	if pending := r.Deliver(context.Background(), change); pending {
		t.Fatalf("Deliver = pending; want written")
	}
	if n := outboxDepth(t, b); n != 0 {
		t.Errorf("outbox depth after Deliver = %d; want 0", n)
	}
	got, err := s.Newest(context.Background())
	if err != nil || got == nil {
		t.Fatalf("Newest = %v, %v; want the pause", got, err)
	}
	assertEventEqual(t, *got, change.Event)

	// A second Deliver of the same change finds it written.
	if pending := r.Deliver(context.Background(), change); pending {
		t.Errorf("second Deliver = pending; want written")
	}
	if pending := r.Deliver(context.Background(), nil); pending {
		t.Errorf("Deliver(nil) = pending; want false")
	}
}

func TestRelayFlushBatches(t *testing.T) {
	t.Parallel()
	b, s := sharedEnv(t)
	r := newRelay(t, b, s) // BatchSize 3
	mustEnsure(t, r)

	for i := range 7 {
		toggle(t, b, i)
	}
	written, err := r.Flush(context.Background())
	if err != nil || written != 3 {
		t.Fatalf("Flush = %d, %v; want 3, nil", written, err)
	}
	if n := outboxDepth(t, b); n != 4 {
		t.Fatalf("outbox depth after one Flush = %d; want 4", n)
	}

	// A pass flushes until the outbox is empty.
	r.Pass(context.Background())
	if n := outboxDepth(t, b); n != 0 {
		t.Fatalf("outbox depth after Pass = %d; want 0", n)
	}
	got := fmt.Sprint(rowVersionsByInsert(t, s))
	if got != "[2 3 4 5 6 7 8]" {
		t.Fatalf("versions by insert order = %s; want [2 3 4 5 6 7 8]", got)
	}
	h := r.Health()
	if !h.PostgresOK || !h.PauseKeyPresent || h.OutboxDepth != 0 || h.LastError != "" || h.LastFlushAt.IsZero() {
		t.Fatalf("Health = %+v; want Postgres OK, key present, empty outbox, no error, a flush time", h)
	}
}

func TestRelayRaceWritesEachEventOnce(t *testing.T) {
	t.Parallel()
	b, s := sharedEnv(t)
	ctx := context.Background()

	// Two background relays (as in two API servers) and the request's
	// Deliver all race for every event.
	relayA := newRelay(t, b, s)
	relayB := newRelay(t, b, s)
	requester := newRelay(t, b, s)
	mustEnsure(t, requester)
	relayA.Start(ctx)
	relayB.Start(ctx)

	const changes = 30
	want := make(map[string]int64, changes)
	var wg sync.WaitGroup
	var written sync.Map
	for i := range changes {
		change := toggle(t, b, i)
		want[change.Event.ID] = change.Event.Version
		wg.Go(func() {
			written.Store(change.Event.ID, !requester.Deliver(ctx, change))
		})
		// Extra flushes on the same relays race with their own loops.
		wg.Go(func() {
			if _, err := relayA.Flush(ctx); err != nil {
				t.Errorf("Flush: %v", err)
			}
		})
	}
	wg.Wait()

	testutil.WaitFor(t, 10*time.Second, "outbox to drain", func() bool { return outboxDepth(t, b) == 0 })
	relayA.Stop()
	relayB.Stop()

	got := rowIDs(t, s)
	if len(got) != changes {
		t.Fatalf("rows = %d; want %d", len(got), changes)
	}
	for id, version := range want {
		if got[id] != version {
			t.Errorf("event %s: row version %d; want %d", id, got[id], version)
		}
	}
	written.Range(func(id, ok any) bool {
		if !ok.(bool) {
			t.Errorf("Deliver reported event %s pending with Postgres up", id)
		}
		return true
	})
	versions := rowVersionsByInsert(t, s)
	for i := 1; i < len(versions); i++ {
		if versions[i] != versions[i-1]+1 {
			t.Fatalf("versions by insert order = %v; want consecutive", versions)
		}
	}
}

func TestRelayStartStop(t *testing.T) {
	t.Parallel()
	b, s := sharedEnv(t)
	r := newRelay(t, b, s)

	r.Stop() // before Start: no effect
	r.Start(context.Background())
	r.Start(context.Background()) // second Start: no effect

	// The first pass creates the pause key, the loop writes a change.
	testutil.WaitFor(t, 5*time.Second, "pause key", func() bool { return r.Health().PauseKeyPresent })
	toggle(t, b, 0)
	testutil.WaitFor(t, 5*time.Second, "relay loop to write the pause", func() bool { return outboxDepth(t, b) == 0 })
	if len(rowIDs(t, s)) != 1 {
		t.Fatalf("rows after the loop ran = %d; want 1", len(rowIDs(t, s)))
	}

	r.Stop()
	r.Stop()

	// A stopped relay writes nothing more.
	toggle(t, b, 1)
	if n := outboxDepth(t, b); n != 1 {
		t.Fatalf("outbox depth after Stop = %d; want 1", n)
	}

	// Ending the context also stops the loop.
	r2 := newRelay(t, b, s)
	ctx, cancel := context.WithCancel(context.Background())
	r2.Start(ctx)
	testutil.WaitFor(t, 5*time.Second, "second relay to write the resume", func() bool { return outboxDepth(t, b) == 0 })
	cancel()
	r2.Stop()
}

func TestEnsurePauseStateInitializesWhenEmpty(t *testing.T) {
	t.Parallel()
	b, s := sharedEnv(t)
	r := newRelay(t, b, s)
	ctx := context.Background()

	if _, err := b.PauseState(ctx); !errors.Is(err, broker.ErrPauseStateMissing) {
		t.Fatalf("PauseState of a new namespace: %v; want ErrPauseStateMissing", err)
	}
	mustEnsure(t, r)

	state, err := b.PauseState(ctx)
	if err != nil {
		t.Fatalf("PauseState after EnsurePauseState: %v", err)
	}
	if state.WorkersPaused || state.Version != 1 {
		t.Fatalf("state = paused %v version %d; want unpaused version 1", state.WorkersPaused, state.Version)
	}
	if n := outboxDepth(t, b); n != 0 {
		t.Errorf("outbox depth = %d; want 0 (initialization records no event)", n)
	}
	if rows := rowIDs(t, s); len(rows) != 0 {
		t.Errorf("audit rows = %d; want 0", len(rows))
	}

	// With the key present, EnsurePauseState changes nothing.
	mustEnsure(t, r)
	again, err := b.PauseState(ctx)
	if err != nil || again.Version != 1 {
		t.Fatalf("PauseState after a second EnsurePauseState = version %d, %v; want 1", again.Version, err)
	}
}

func TestEnsurePauseStateRestoresUnicodeReason(t *testing.T) {
	t.Parallel()
	rdb, ns := testutil.Redis(t)
	b := newBroker(t, rdb, ns)
	s := newStore(t).ForNamespace(ns)
	r := newRelay(t, b, s)
	ctx := context.Background()
	mustEnsure(t, r)

	reason := `升级 🚀 "v2" — 'rollback'; DROP TABLE x; -- תחזוקה \n`
	actor := "opérateur 👩🏽‍💻"
	change, err := b.Pause(ctx, broker.PauseParams{Mode: broker.ModeDrain, Reason: reason, Actor: actor})
	if err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if r.Deliver(ctx, change) {
		t.Fatalf("Deliver = pending; want written")
	}

	// Lose the pause key (only this test's namespace; never FLUSHALL the
	// shared Redis).
	if err := rdb.Del(ctx, "{"+ns+"}:pause").Err(); err != nil {
		t.Fatalf("delete pause key: %v", err)
	}
	mustEnsure(t, r)

	state, err := b.PauseState(ctx)
	if err != nil {
		t.Fatalf("PauseState after restore: %v", err)
	}
	if !state.WorkersPaused || state.Mode == nil || *state.Mode != broker.ModeDrain {
		t.Fatalf("restored state = %+v; want paused in drain mode", state)
	}
	if state.Version != change.State.Version+1 {
		t.Errorf("restored version = %d; want %d", state.Version, change.State.Version+1)
	}
	if state.Reason == nil || *state.Reason != reason {
		t.Errorf("restored reason = %q; want %q byte for byte", deref(state.Reason), reason)
	}
	if state.RequestedBy == nil || *state.RequestedBy != actor {
		t.Errorf("restored actor = %q; want %q", deref(state.RequestedBy), actor)
	}

	events, err := s.Latest(ctx, 10)
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	if len(events) != 2 {
		t.Fatalf("audit rows = %d; want the pause and the restore", len(events))
	}
	if events[1].Reason != reason || deref(events[1].Actor) != actor {
		t.Errorf("pause row reason, actor = %q, %q; want %q, %q", events[1].Reason, deref(events[1].Actor), reason, actor)
	}
	if events[0].Action != broker.ActionRestore || events[0].Version != state.Version {
		t.Errorf("newest row = %s version %d; want restore version %d", events[0].Action, events[0].Version, state.Version)
	}
}

func TestRelayPostgresDownChangesStand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testutil.StartPostgresServer(t)
	store := migratedStore(t, pg.URL())
	rdb, ns := testutil.Redis(t)
	b := newBroker(t, rdb, ns)
	s := store.ForNamespace(ns)
	r := newRelay(t, b, s)
	mustEnsure(t, r)

	pg.Stop()

	// Every change takes effect in Redis at once, and Deliver reports it
	// pending instead of failing the change.
	var events []broker.AuditEvent
	for i := range 10 {
		change := toggle(t, b, i)
		state, err := b.PauseState(ctx)
		if err != nil {
			t.Fatalf("PauseState after change %d: %v", i, err)
		}
		if state.Version != change.State.Version || state.WorkersPaused != (i%2 == 0) {
			t.Fatalf("state after change %d = version %d paused %v; want version %d paused %v",
				i, state.Version, state.WorkersPaused, change.State.Version, i%2 == 0)
		}
		if !r.Deliver(ctx, change) {
			t.Fatalf("Deliver of change %d with Postgres down = written; want pending", i)
		}
		events = append(events, change.Event)
	}

	r.Pass(ctx)
	h := r.Health()
	if h.PostgresOK || h.OutboxDepth != 10 || h.LastError == "" || !h.PauseKeyPresent {
		t.Fatalf("Health with Postgres down = %+v; want Postgres not OK, 10 pending, an error, key present", h)
	}

	pg.Start()
	testutil.WaitFor(t, 20*time.Second, "relay to write the outbox after Postgres returned", func() bool {
		r.Pass(ctx)
		return outboxDepth(t, b) == 0
	})

	got := rowVersionsByInsert(t, s)
	if len(got) != 10 {
		t.Fatalf("rows = %v; want 10", got)
	}
	for i, ev := range events {
		if got[i] != ev.Version {
			t.Fatalf("versions by insert order = %v; want %d at position %d (version order)", got, ev.Version, i)
		}
	}
	ids := rowIDs(t, s)
	for _, ev := range events {
		if ids[ev.ID] != ev.Version {
			t.Errorf("event %s version %d missing from Postgres", ev.ID, ev.Version)
		}
	}
	h = r.Health()
	if !h.PostgresOK || h.OutboxDepth != 0 || h.LastError != "" {
		t.Fatalf("Health after Postgres returned = %+v; want OK, empty outbox, no error", h)
	}
}

func TestEnsurePauseStatePostgresDownFailsClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testutil.StartPostgresServer(t)
	store := migratedStore(t, pg.URL())
	rdb, ns := testutil.Redis(t)
	b := newBroker(t, rdb, ns)
	s := store.ForNamespace(ns)
	r := newRelay(t, b, s)

	pg.Stop()

	if err := r.EnsurePauseState(ctx); err == nil {
		t.Fatalf("EnsurePauseState with Postgres down and the key missing succeeded; want an error")
	}
	if _, err := b.PauseState(ctx); !errors.Is(err, broker.ErrPauseStateMissing) {
		t.Fatalf("PauseState after a failed EnsurePauseState: %v; want ErrPauseStateMissing (never a guessed state)", err)
	}
	if _, err := b.Claim(ctx, broker.ClaimParams{WorkerID: "w1"}); !errors.Is(err, broker.ErrPauseStateMissing) {
		t.Errorf("Claim with the key missing: %v; want ErrPauseStateMissing", err)
	}

	r.Pass(ctx)
	h := r.Health()
	if h.PauseKeyPresent || h.PostgresOK || h.LastError == "" {
		t.Fatalf("Health = %+v; want key missing, Postgres not OK, an error", h)
	}

	// Once Postgres is reachable again, the next pass initializes the key.
	pg.Start()
	testutil.WaitFor(t, 20*time.Second, "pause key after Postgres returned", func() bool {
		r.Pass(ctx)
		return r.Health().PauseKeyPresent
	})
	state, err := b.PauseState(ctx)
	if err != nil || state.WorkersPaused || state.Version != 1 {
		t.Fatalf("PauseState = %+v, %v; want unpaused version 1", state, err)
	}
}

func TestEnsurePauseStateAfterFlushAll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testutil.StartRedisServer(t)
	rdb := srv.Client()
	b := newBroker(t, rdb, "flushtest")
	s := newStore(t).ForNamespace("flushtest")
	r := newRelay(t, b, s)
	mustEnsure(t, r)

	change, err := b.Pause(ctx, broker.PauseParams{Mode: broker.ModeDrain, Reason: "database upgrade", Actor: "ops"})
	if err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if r.Deliver(ctx, change) {
		t.Fatalf("Deliver = pending; want written")
	}

	// This is a private redis-server, so FLUSHALL touches nothing shared.
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatalf("FLUSHALL: %v", err)
	}

	// A job enqueued after the data loss must not be claimed before the
	// pause is restored, nor while it is in force.
	if _, _, err := b.Enqueue(ctx, broker.EnqueueParams{Type: "build"}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if res, err := b.Claim(ctx, broker.ClaimParams{WorkerID: "w1"}); !errors.Is(err, broker.ErrPauseStateMissing) {
		t.Fatalf("Claim with the key missing = %+v, %v; want ErrPauseStateMissing", res, err)
	}

	mustEnsure(t, r)
	state, err := b.PauseState(ctx)
	if err != nil {
		t.Fatalf("PauseState after restore: %v", err)
	}
	if !state.WorkersPaused || state.Version != change.State.Version+1 {
		t.Fatalf("restored state = paused %v version %d; want paused version %d",
			state.WorkersPaused, state.Version, change.State.Version+1)
	}
	res, err := b.Claim(ctx, broker.ClaimParams{WorkerID: "w1"})
	if err != nil {
		t.Fatalf("Claim while restored pause is in force: %v", err)
	}
	if res.Job != nil {
		t.Fatalf("Claim while paused granted job %s; want none", res.Job.ID)
	}

	// The restore event reached Postgres, right after the pause.
	got := fmt.Sprint(rowVersionsByInsert(t, s))
	want := fmt.Sprint([]int64{change.State.Version, change.State.Version + 1})
	if got != want {
		t.Fatalf("versions by insert order = %s; want %s", got, want)
	}
	newest, err := s.Newest(ctx)
	if err != nil || newest == nil || newest.Action != broker.ActionRestore {
		t.Fatalf("Newest = %+v, %v; want the restore event", newest, err)
	}

	// A second relay that also finds the key present restores nothing.
	other := newRelay(t, b, s)
	mustEnsure(t, other)
	if again, _ := b.PauseState(ctx); again.Version != state.Version {
		t.Fatalf("version after a second EnsurePauseState = %d; want %d", again.Version, state.Version)
	}

	// Resuming lets the job be claimed again.
	if _, err := b.Resume(ctx, broker.ResumeParams{Reason: "upgrade done", Actor: "ops", Force: true}); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	res, err = b.Claim(ctx, broker.ClaimParams{WorkerID: "w1"})
	if err != nil || res.Job == nil {
		t.Fatalf("Claim after resume = %+v, %v; want the job", res, err)
	}
}

func TestEnsurePauseStateRacingRelays(t *testing.T) {
	t.Parallel()
	b, s := sharedEnv(t)
	ctx := context.Background()
	first := newRelay(t, b, s)
	mustEnsure(t, first)
	change := toggle(t, b, 0)
	if first.Deliver(ctx, change) {
		t.Fatalf("Deliver = pending; want written")
	}
	if err := b.Redis().Del(ctx, "{"+b.Config().Namespace+"}:pause").Err(); err != nil {
		t.Fatalf("delete pause key: %v", err)
	}

	// Four servers notice the missing key at once; one restore must win.
	var wg sync.WaitGroup
	for range 4 {
		r := newRelay(t, b, s)
		wg.Go(func() {
			if err := r.EnsurePauseState(ctx); err != nil {
				t.Errorf("EnsurePauseState: %v", err)
			}
		})
	}
	wg.Wait()
	first.Pass(ctx)

	state, err := b.PauseState(ctx)
	if err != nil || state.Version != change.State.Version+1 {
		t.Fatalf("PauseState = version %d, %v; want %d", state.Version, err, change.State.Version+1)
	}
	if rows := rowIDs(t, s); len(rows) != 2 {
		t.Fatalf("audit rows = %d; want the pause and one restore", len(rows))
	}
}

func TestRelayFlushStopsAtFailedInsert(t *testing.T) {
	t.Parallel()
	b, s := sharedEnv(t)
	ctx := context.Background()
	r := newRelay(t, b, s)
	mustEnsure(t, r)

	// Postgres already holds another event at version 2, as after a
	// diverged history. The pause at version 2 cannot be written, and the
	// resume at version 3 must wait behind it to keep version order.
	mustInsert(t, s, testEvent(2, "from another history"))
	pause := toggle(t, b, 0)
	resume := toggle(t, b, 1)
	if pause.Event.Version != 2 || resume.Event.Version != 3 {
		t.Fatalf("versions = %d, %d; want 2, 3", pause.Event.Version, resume.Event.Version)
	}

	written, err := r.Flush(ctx)
	if written != 0 || !errors.Is(err, audit.ErrVersionTaken) {
		t.Fatalf("Flush = %d, %v; want 0, ErrVersionTaken", written, err)
	}
	if n := outboxDepth(t, b); n != 2 {
		t.Fatalf("outbox depth = %d; want 2 (both events kept)", n)
	}
	if _, ok := rowIDs(t, s)[resume.Event.ID]; ok {
		t.Fatalf("resume at version 3 was written before the pause at version 2")
	}
	if !r.Deliver(ctx, resume) {
		t.Errorf("Deliver of the resume = written; want pending behind the failed pause")
	}

	r.Pass(ctx)
	h := r.Health()
	if h.OutboxDepth != 2 || h.LastError == "" || !h.PostgresOK {
		t.Fatalf("Health = %+v; want 2 pending, an error, Postgres OK", h)
	}
}
