package faults

import (
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/moonmind/broker/internal/testutil"
)

// TestPostgresStoppedDuringPauseChanges stops a private PostgreSQL and
// sends 10 alternating pause and resume requests. Each change must take
// effect at once (a claim right after it is refused or granted), return
// auditPending true, and land as exactly one audit row, in version order,
// once Postgres runs again.
func TestPostgresStoppedDuringPauseChanges(t *testing.T) {
	t.Parallel()
	const changes = 10
	ctx := testContext(t, 4*time.Minute)
	started := time.Now()

	_, ns := testutil.Redis(t)
	pg := testutil.StartPostgresServer(t)
	operatorToken, workerToken := newToken("op"), newToken("wk")
	b := startBrokerd(t, "brokerd", brokerdConfig{
		RedisURL: testutil.RedisURL(), DatabaseURL: pg.URL(), Namespace: ns,
		OperatorToken: operatorToken, WorkerToken: workerToken,
	})
	op := newAPIClient(b.URL, operatorToken)
	wk := newAPIClient(b.URL, workerToken)

	for i := range changes {
		if _, _, err := op.enqueue(ctx, "demo:echo", map[string]any{"n": i}, 3); err != nil {
			t.Fatalf("enqueue job %d: %v", i, err)
		}
	}
	initial, _, err := op.pauseState(ctx)
	if err != nil {
		t.Fatalf("read pause state: %v", err)
	}

	pg.Stop()
	stoppedAt := time.Now()
	var versions []int64
	for i := range changes {
		action, wantPaused := "pause", true
		if i%2 == 1 {
			action, wantPaused = "resume", false
		}
		snap, _, err := op.changePause(ctx, action, "drain", fmt.Sprintf("Postgres outage change %d", i+1))
		if err != nil {
			t.Fatalf("change %d (%s) with Postgres stopped: %v", i+1, action, err)
		}
		if !snap.AuditPending {
			t.Errorf("change %d (%s) returned auditPending false with Postgres stopped, want true", i+1, action)
		}
		if snap.WorkersPaused != wantPaused {
			t.Errorf("change %d (%s) returned workersPaused %t, want %t", i+1, action, snap.WorkersPaused, wantPaused)
		}
		versions = append(versions, snap.Version)

		res, _, err := wk.claim(ctx, fmt.Sprintf("probe-%d", i), 60)
		if err != nil {
			t.Fatalf("claim after change %d (%s): %v", i+1, action, err)
		}
		if wantPaused && res.Job != nil {
			t.Errorf("claim right after pause %d granted job %s, want none", i+1, res.Job.ID)
		}
		if !wantPaused && res.Job == nil {
			t.Errorf("claim right after resume %d granted nothing, want a job", i+1)
		}
		if res.System.Version != snap.Version {
			t.Errorf("claim after change %d saw version %d, want %d", i+1, res.System.Version, snap.Version)
		}
	}
	for i, v := range versions {
		if want := initial.Version + int64(i) + 1; v != want {
			t.Errorf("change %d returned version %d, want %d", i+1, v, want)
		}
	}
	outage := time.Since(stoppedAt)

	pg.Start()
	db, err := sqlx.Open("postgres", pg.URL())
	if err != nil {
		t.Fatalf("open %s: %v", pg.URL(), err)
	}
	t.Cleanup(func() { _ = db.Close() })
	type row struct {
		Action  string `db:"action"`
		Version int64  `db:"version"`
	}
	var rows []row
	testutil.WaitFor(t, time.Minute, fmt.Sprintf("%d audit rows after Postgres restarted", changes), func() bool {
		rows = rows[:0]
		err := db.SelectContext(ctx, &rows, `SELECT action, version FROM system_control_events
			WHERE version > $1 ORDER BY inserted_at, version`, initial.Version)
		return err == nil && len(rows) >= changes
	})
	if len(rows) != changes {
		t.Fatalf("found %d audit rows after the outage, want %d: %+v", len(rows), changes, rows)
	}
	for i, r := range rows {
		wantAction := "pause"
		if i%2 == 1 {
			wantAction = "resume"
		}
		if r.Version != versions[i] || r.Action != wantAction {
			t.Errorf("audit row %d in insert order is %s version %d, want %s version %d", i+1, r.Action, r.Version, wantAction, versions[i])
		}
	}
	testutil.WaitFor(t, 30*time.Second, "auditPending to clear", func() bool {
		snap, _, err := op.pauseState(ctx)
		return err == nil && !snap.AuditPending
	})
	t.Logf("%d changes (versions %d to %d) returned within %s of stopping Postgres, %d rows inserted in version order after its restart; total %s",
		changes, versions[0], versions[len(versions)-1], outage.Round(time.Millisecond), len(rows), time.Since(started).Round(time.Millisecond))
}
