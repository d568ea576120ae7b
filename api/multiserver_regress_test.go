package api_test

import (
	"testing"
	"time"

	"github.com/moonmind/broker/audit"
	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/testutil"
)

func TestPauseOnOneServerStopsClaimsOnAnother(t *testing.T) {
	t.Parallel()
	rdb, ns := testutil.Redis(t)
	db, _ := testutil.Postgres(t)
	if err := audit.Migrate(t.Context(), db); err != nil {
		t.Fatalf("apply migrations: %v", err)
	}
	// Two API servers of one deployment: same namespace, same database.
	newServer := func() *pauseEnv {
		rb := &restartableBroker{t: t, rdb: rdb, namespace: ns, db: db, operator: "op-" + ns, worker: "wk-" + ns}
		return &pauseEnv{t: t, s: rb.start()}
	}
	first, second := newServer(), newServer()
	events := second.openPauseStream()
	nextStreamEvent(t, events, 10*time.Second, "the first snapshot", func(streamEvent) bool { return true })

	// A long poll on the second server spans a pause made on the first.
	type outcome struct {
		answer claimReply
		err    error
	}
	waiting := make(chan outcome, 1)
	go func() {
		answer, err := second.tryClaim("worker-a", map[string]any{"waitSeconds": 5})
		waiting <- outcome{answer, err}
	}()
	testutil.WaitFor(t, 10*time.Second, "the long poll on the second server to run its first claim", func() bool {
		n, _ := second.metricValue(`mmb_claims_total{result="empty"}`)
		return n >= 1
	})
	paused := first.pause(broker.ModeDrain, "upgrade")
	job := first.enqueue(map[string]any{"type": "demo:echo"})
	second.claimNothing("worker-b", nil)

	var got outcome
	select {
	case got = <-waiting:
	case <-time.After(longPollTimeout):
		t.Fatalf("the long poll did not answer within %s", longPollTimeout)
	}
	if got.err != nil {
		t.Fatalf("long poll: %v", got.err)
	}
	if got.answer.Job != nil || !got.answer.System.WorkersPaused {
		t.Fatalf("long poll on the second server: job %v paused %v, want no job and paused", got.answer.Job, got.answer.System.WorkersPaused)
	}
	ev := nextStreamEvent(t, events, 10*time.Second, "the pause on the second server's stream", func(ev streamEvent) bool {
		return ev.snap.Version >= paused.Version
	})
	if ev.name != "pause" || !ev.snap.WorkersPaused {
		t.Errorf("second server's stream: event %q paused %v, want a pause event saying paused", ev.name, ev.snap.WorkersPaused)
	}
	if snap := second.snapshot(); !snap.WorkersPaused || snap.Version != paused.Version {
		t.Errorf("second server's snapshot: paused %v version %d, want paused at %d", snap.WorkersPaused, snap.Version, paused.Version)
	}

	// Resuming on the second server lets claims on the first succeed.
	second.resume("upgrade done", false)
	if got := first.claim("worker-a", nil); got.Job == nil || got.Job.ID != job.ID || got.Job.Attempt != 1 {
		t.Fatalf("claim on the first server after the resume returned %+v, want %s on attempt 1", got.Job, job.ID)
	}
	rows := first.waitAuditRows(2)
	wantVersionsOnce(t, rows, paused.Version, paused.Version+1)
}
