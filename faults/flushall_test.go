package faults

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/moonmind/broker/internal/testutil"
)

// claimTally counts the outcomes of a claim loop.
type claimTally struct {
	granted     atomic.Int64
	empty       atomic.Int64
	unavailable atomic.Int64 // 503 pause_state_unavailable
	otherErrors atomic.Int64
	grantedIDs  sync.Map
}

func (c *claimTally) String() string {
	return fmt.Sprintf("%d granted, %d empty, %d pause_state_unavailable, %d other errors",
		c.granted.Load(), c.empty.Load(), c.unavailable.Load(), c.otherErrors.Load())
}

// hammerClaims runs n claim loops without pause until ctx ends.
func hammerClaims(ctx context.Context, c *apiClient, n int, tally *claimTally) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			workerID := fmt.Sprintf("hammer-%d", i)
			for ctx.Err() == nil {
				res, _, err := c.claim(ctx, workerID, 60)
				switch {
				case err != nil && ctx.Err() != nil:
				case err != nil && errorCode(err) == "pause_state_unavailable":
					tally.unavailable.Add(1)
				case err != nil:
					tally.otherErrors.Add(1)
				case res.Job != nil:
					tally.granted.Add(1)
					tally.grantedIDs.Store(res.Job.ID, true)
				default:
					tally.empty.Add(1)
				}
			}
		}()
	}
	return &wg
}

// TestFlushAllWhilePaused pauses the workers, then runs FLUSHALL on a
// private redis-server while claims run in a loop and a producer keeps
// adding jobs. The broker must come back paused, restored from the audit
// log with a higher version, and no claim may succeed in between.
func TestFlushAllWhilePaused(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 3*time.Minute)
	started := time.Now()

	rs := testutil.StartRedisServer(t)
	_, dsn := testutil.Postgres(t)
	operatorToken, workerToken := newToken("op"), newToken("wk")
	b := startBrokerd(t, "brokerd", brokerdConfig{
		RedisURL: rs.URL(), DatabaseURL: dsn, Namespace: "faults",
		OperatorToken: operatorToken, WorkerToken: workerToken,
	})
	op := newAPIClient(b.URL, operatorToken)
	wk := newAPIClient(b.URL, workerToken)

	for i := range 20 {
		if _, _, err := op.enqueue(ctx, "demo:echo", map[string]any{"n": i}, 3); err != nil {
			t.Fatalf("enqueue job %d: %v", i, err)
		}
	}
	paused, _, err := op.changePause(ctx, "pause", "drain", "FLUSHALL fault test")
	if err != nil {
		t.Fatalf("pause: %v", err)
	}
	if paused.AuditPending {
		t.Fatalf("pause returned auditPending true with Postgres up; the restore needs the audit row")
	}

	hammerCtx, stopHammer := context.WithCancel(ctx)
	defer stopHammer()
	tally := &claimTally{}
	hammers := hammerClaims(hammerCtx, wk, 4, tally)
	load := startProducers(hammerCtx, op, 1)
	load.waitCount(t, 20, 30*time.Second)

	flushedAt := time.Now()
	if err := rs.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatalf("FLUSHALL on the private redis-server: %v", err)
	}
	var restored pauseSnapshot
	testutil.WaitFor(t, time.Minute, "the pause state to be restored", func() bool {
		snap, _, err := op.pauseState(ctx)
		restored = snap
		return err == nil && snap.Version > paused.Version
	})
	window := time.Since(flushedAt)
	// Claims keep running for a while after the restore, because a wrong
	// restore (unpaused) would show up as grants only then.
	load.waitCount(t, load.count()+20, 30*time.Second)
	stopHammer()
	hammers.Wait()
	load.finish()

	if n := tally.granted.Load(); n != 0 {
		t.Errorf("%d claims were granted while paused around FLUSHALL, want 0 (%s)", n, tally)
	}
	if tally.empty.Load()+tally.unavailable.Load() == 0 {
		t.Errorf("no claim got a response at all (%s); the loop did not test anything", tally)
	}
	if !restored.WorkersPaused || restored.Mode != "drain" || restored.Reason != paused.Reason {
		t.Errorf("restored state is paused %t, mode %q, reason %q; want paused, drain, %q",
			restored.WorkersPaused, restored.Mode, restored.Reason, paused.Reason)
	}
	if restored.Version != paused.Version+1 {
		t.Errorf("restored version is %d, want %d (one above the newest audit row)", restored.Version, paused.Version+1)
	}

	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatalf("open audit database: %v", err)
	}
	defer db.Close()
	testutil.WaitFor(t, 30*time.Second, "the restore audit row", func() bool {
		var n int
		err := db.GetContext(ctx, &n, `SELECT count(*) FROM system_control_events WHERE action = 'restore' AND version = $1`, restored.Version)
		return err == nil && n == 1
	})

	// The same loop grants jobs once the workers resume, so a zero above
	// is a real result.
	if _, _, err := op.changePause(ctx, "resume", "", "FLUSHALL fault test done"); err != nil {
		t.Fatalf("resume: %v", err)
	}
	resumed := &claimTally{}
	resumeCtx, stopResumed := context.WithTimeout(ctx, 30*time.Second)
	defer stopResumed()
	resumedHammers := hammerClaims(resumeCtx, wk, 1, resumed)
	testutil.WaitFor(t, 30*time.Second, "a claim to be granted after resume", func() bool { return resumed.granted.Load() > 0 })
	stopResumed()
	resumedHammers.Wait()

	t.Logf("claims while paused: %s; restore took %s (version %d to %d); total %s",
		tally, window.Round(time.Millisecond), paused.Version, restored.Version, time.Since(started).Round(time.Millisecond))
}
