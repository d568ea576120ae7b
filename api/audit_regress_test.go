package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/moonmind/broker/api"
	"github.com/moonmind/broker/audit"
	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/testutil"
)

// restartableBroker runs the API server, relay, notifier and reaper of
// one deployment on a given Redis namespace and database, and can stop
// and start them again on the same data, as a process restart would.
type restartableBroker struct {
	t         *testing.T
	rdb       *redis.Client
	namespace string
	db        *sqlx.DB
	operator  string
	worker    string

	current *apitest.Server
	stop    func()
}

// start builds a fresh API server with its loops. It initializes or
// restores the pause key the way brokerd does at start-up. An error there,
// such as PostgreSQL down while the key is missing, is only logged because
// the relay keeps trying.
func (r *restartableBroker) start() *apitest.Server {
	r.t.Helper()
	b, err := broker.New(r.rdb, broker.Config{Namespace: r.namespace, LeaseGrace: 500 * time.Millisecond})
	if err != nil {
		r.t.Fatalf("create broker: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	store := audit.NewStore(r.db).ForNamespace(r.namespace)
	relay := audit.NewRelay(b, store, audit.RelayConfig{Interval: 100 * time.Millisecond, DeliverTimeout: time.Second}, logger)

	ctx, cancel := context.WithCancel(context.Background())
	setupCtx, setupCancel := context.WithTimeout(ctx, 10*time.Second)
	defer setupCancel()
	if err := relay.EnsurePauseState(setupCtx); err != nil {
		r.t.Logf("ensure pause state at start: %v", err)
	}

	var loops sync.WaitGroup
	notifier := b.NewNotifier()
	loops.Add(1)
	go func() {
		defer loops.Done()
		_ = notifier.Start(ctx)
	}()
	select {
	case <-notifier.Ready():
	case <-setupCtx.Done():
		cancel()
		r.t.Fatalf("notifier did not subscribe within 10s")
	}
	relay.Start(ctx)
	reaper := b.NewReaper(broker.ReaperConfig{Interval: 100 * time.Millisecond}, logger)
	reaper.Start(ctx)

	tokens := api.NewTokenStore(r.db, r.operator, r.worker, 0)
	srv, err := api.New(api.Config{}, api.Deps{
		Broker: b, Notifier: notifier, Store: store, Relay: relay, DB: r.db, Logger: logger, Tokens: tokens,
	})
	if err != nil {
		cancel()
		r.t.Fatalf("create API server: %v", err)
	}
	httpSrv := httptest.NewServer(srv.Handler())

	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			srv.Close()
			httpSrv.Close()
			reaper.Stop()
			relay.Stop()
			notifier.Stop()
			cancel()
			loops.Wait()
		})
	}
	r.t.Cleanup(r.stop)
	r.current = &apitest.Server{
		URL: httpSrv.URL, OperatorToken: r.operator, WorkerToken: r.worker,
		// Producer calls use the operator token, which may do everything
		// and needs no database lookup while PostgreSQL is down.
		ProducerToken: r.operator,
		Namespace:     r.namespace, Broker: b, Redis: r.rdb, DB: r.db, Client: httpSrv.Client(),
		API: srv, Notifier: notifier, Store: store, Relay: relay,
	}
	return r.current
}

// restart stops the running server and starts a new one on the same data.
func (r *restartableBroker) restart() *apitest.Server {
	r.t.Helper()
	r.stop()
	return r.start()
}

// wantStoresAgree fails the test unless the API snapshot, the Redis pause
// hash and the newest audit row show the same state, mode, reason and
// version.
func wantStoresAgree(t *testing.T, e *pauseEnv, what string) {
	t.Helper()
	snap := e.snapshot()
	hash, err := e.s.Redis.HGetAll(t.Context(), "{"+e.s.Namespace+"}:pause").Result()
	if err != nil {
		t.Fatalf("%s: read the pause hash: %v", what, err)
	}
	rows := e.auditTrail()
	if len(rows) == 0 {
		t.Fatalf("%s: no audit rows", what)
	}
	newest := rows[len(rows)-1]
	var after struct {
		WorkersPaused bool    `json:"workersPaused"`
		Mode          *string `json:"mode"`
		Reason        *string `json:"reason"`
	}
	if err := json.Unmarshal(newest.StateAfter, &after); err != nil {
		t.Fatalf("%s: decode stateAfter %s of audit version %d: %v", what, newest.StateAfter, newest.Version, err)
	}

	mode := ""
	if snap.Mode != nil {
		mode = string(*snap.Mode)
	}
	reason := ""
	if snap.Reason != nil {
		reason = *snap.Reason
	}
	paused := "0"
	if snap.WorkersPaused {
		paused = "1"
	}
	if hash["workersPaused"] != paused || hash["mode"] != mode || hash["reason"] != reason || hash["version"] != itoa(snap.Version) {
		t.Errorf("%s: pause hash %v disagrees with the snapshot (paused %v, mode %q, reason %q, version %d)",
			what, hash, snap.WorkersPaused, mode, reason, snap.Version)
	}
	if newest.Version != snap.Version {
		t.Errorf("%s: newest audit row has version %d, the snapshot %d", what, newest.Version, snap.Version)
	}
	if after.WorkersPaused != snap.WorkersPaused || stringOrEmpty(after.Mode) != mode || stringOrEmpty(after.Reason) != reason {
		t.Errorf("%s: newest audit row's stateAfter %s disagrees with the snapshot (paused %v, mode %q, reason %q)",
			what, newest.StateAfter, snap.WorkersPaused, mode, reason)
	}
	wantAction := broker.ActionResume
	if snap.WorkersPaused {
		wantAction = broker.ActionPause
	}
	if newest.Action != wantAction {
		t.Errorf("%s: newest audit row is a %s, want a %s", what, newest.Action, wantAction)
	}
	if snap.WorkersPaused && (stringOrEmpty(newest.Mode) != mode || newest.Reason != reason) {
		t.Errorf("%s: newest audit row has mode %q reason %q, want mode %q reason %q",
			what, stringOrEmpty(newest.Mode), newest.Reason, mode, reason)
	}
}

// wantVersionsOnce fails the test unless the audit trail holds versions
// from..to, each exactly once and in order.
func wantVersionsOnce(t *testing.T, rows []auditRow, from, to int64) {
	t.Helper()
	if int64(len(rows)) != to-from+1 {
		t.Errorf("audit trail has %d rows, want %d (versions %d to %d)", len(rows), to-from+1, from, to)
	}
	for i, row := range rows {
		if row.Version != from+int64(i) {
			t.Errorf("audit row %d has version %d, want %d (a gap or a duplicate)", i, row.Version, from+int64(i))
		}
	}
}

func stringOrEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestPauseStoresAgreeThroughPostgresOutage(t *testing.T) {
	t.Parallel()
	pg := testutil.StartPostgresServer(t)
	db, err := sqlx.Open("postgres", pg.URL())
	if err != nil {
		t.Fatalf("open the private PostgreSQL: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := audit.Migrate(t.Context(), db); err != nil {
		t.Fatalf("apply migrations: %v", err)
	}
	rdb, ns := testutil.Redis(t)
	rb := &restartableBroker{t: t, rdb: rdb, namespace: ns, db: db, operator: "op-" + ns, worker: "wk-" + ns}
	e := &pauseEnv{t: t, s: rb.start()}

	first := e.pause(broker.ModeDrain, "db maintenance")
	if first.AuditPending {
		t.Errorf("pause with PostgreSQL up: auditPending true, want false")
	}
	wantStoresAgree(t, e, "after the first pause")

	// Four more pause and resume rounds in quick succession.
	for i := 0; i < 4; i++ {
		e.resume("round done", false)
		e.pause(broker.ModeQuiesce, "round "+itoa(int64(i)))
	}
	wantStoresAgree(t, e, "after four rounds")
	last := e.snapshot().Version
	wantVersionsOnce(t, e.auditTrail(), first.Version, last)

	// PostgreSQL goes away; changes still take effect and report the audit
	// write as pending.
	pg.Stop()
	resumed := e.resume("resume while the database is down", false)
	if !resumed.AuditPending {
		t.Errorf("resume with PostgreSQL down: auditPending false, want true")
	}
	if resumed.WorkersPaused || resumed.Version != last+1 {
		t.Errorf("resume with PostgreSQL down: paused %v version %d, want running at %d", resumed.WorkersPaused, resumed.Version, last+1)
	}
	pausedDown := e.pause(broker.ModeDrain, "pause while the database is down")
	if !pausedDown.AuditPending || !pausedDown.WorkersPaused || pausedDown.Version != last+2 {
		t.Errorf("pause with PostgreSQL down: auditPending %v paused %v version %d, want pending, paused, %d",
			pausedDown.AuditPending, pausedDown.WorkersPaused, pausedDown.Version, last+2)
	}
	e.enqueue(map[string]any{"type": "demo:echo"})
	e.claimNothing("worker-a", nil)

	// The API server restarts while PostgreSQL is still down.
	e.s = rb.restart()
	if snap := e.snapshot(); !snap.WorkersPaused || snap.Version != last+2 {
		t.Errorf("after the restart with PostgreSQL down: paused %v version %d, want paused at %d", snap.WorkersPaused, snap.Version, last+2)
	}

	pg.Start()
	testutil.WaitFor(t, 30*time.Second, "the relay to write the pending audit rows", func() bool {
		rows, err := tryAuditTrail(db)
		return err == nil && len(rows) > 0 && rows[len(rows)-1].Version == last+2
	})
	testutil.WaitFor(t, 30*time.Second, "the outbox to empty", func() bool {
		depth, err := e.s.Broker.OutboxDepth(t.Context())
		return err == nil && depth == 0
	})
	wantVersionsOnce(t, e.auditTrail(), first.Version, last+2)
	wantStoresAgree(t, e, "after PostgreSQL came back")
	if snap := e.snapshot(); snap.AuditPending {
		t.Errorf("snapshot after the relay caught up: auditPending true, want false")
	}

	e.s = rb.restart()
	wantStoresAgree(t, e, "after restarting the API server")
	wantVersionsOnce(t, e.auditTrail(), first.Version, last+2)
}

func TestPauseStoresAgreeAfterRedisLosesData(t *testing.T) {
	t.Parallel()
	redisServer := testutil.StartRedisServer(t)
	db, _ := testutil.Postgres(t)
	if err := audit.Migrate(t.Context(), db); err != nil {
		t.Fatalf("apply migrations: %v", err)
	}
	ns := testutil.RandomName("t")
	rb := &restartableBroker{t: t, rdb: redisServer.Client(), namespace: ns, db: db, operator: "op-" + ns, worker: "wk-" + ns}
	e := &pauseEnv{t: t, s: rb.start()}

	paused := e.pause(broker.ModeQuiesce, "db maintenance")
	wantStoresAgree(t, e, "after the pause")

	// The private Redis loses every key, as a failover to an empty replica
	// would. Claims fail closed until the relay restores the pause state.
	if err := e.s.Redis.FlushAll(t.Context()).Err(); err != nil {
		t.Fatalf("FLUSHALL on the private Redis: %v", err)
	}
	testutil.WaitFor(t, 30*time.Second, "the relay to restore the pause state", func() bool {
		state, err := e.s.Broker.PauseState(t.Context())
		return err == nil && state.Version > paused.Version
	})
	snap := e.snapshot()
	if !snap.WorkersPaused || snap.Mode == nil || *snap.Mode != broker.ModeQuiesce || snap.Version != paused.Version+1 {
		t.Errorf("restored state: paused %v mode %v version %d, want paused in quiesce at %d",
			snap.WorkersPaused, snap.Mode, snap.Version, paused.Version+1)
	}
	e.enqueue(map[string]any{"type": "demo:echo"})
	e.claimNothing("worker-a", nil)

	rows := e.waitAuditRows(2)
	wantVersionsOnce(t, rows, paused.Version, paused.Version+1)
	if rows[len(rows)-1].Action != broker.ActionRestore {
		t.Errorf("newest audit row is a %s, want a restore", rows[len(rows)-1].Action)
	}

	resumed := e.resume("maintenance done", false)
	if resumed.Version != paused.Version+2 {
		t.Errorf("resume after the restore: version %d, want %d", resumed.Version, paused.Version+2)
	}
	wantStoresAgree(t, e, "after the resume")
	wantVersionsOnce(t, e.waitAuditRows(3), paused.Version, paused.Version+2)
}
