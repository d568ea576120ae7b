package api_test

import (
	"testing"

	"github.com/moonmind/broker/broker"
)

func TestDeploymentsSharingRedisPauseIndependently(t *testing.T) {
	t.Parallel()
	// Both servers use the shared Redis server, each with its own
	// namespace, and each its own PostgreSQL schema.
	first, second := startPauseEnv(t), startPauseEnv(t)
	if first.s.Namespace == second.s.Namespace {
		t.Fatalf("both deployments got namespace %q", first.s.Namespace)
	}
	jobFirst := first.enqueue(map[string]any{"type": "demo:echo"})
	jobSecond := second.enqueue(map[string]any{"type": "demo:echo"})

	pausedFirst := first.pause(broker.ModeDrain, "upgrade first")
	first.claimNothing("worker-a", nil)
	got := second.claim("worker-a", nil)
	if got.Job == nil || got.Job.ID != jobSecond.ID {
		t.Fatalf("second deployment's claim while the first is paused returned %+v, want %s", got.Job, jobSecond.ID)
	}
	if got.System.WorkersPaused || got.System.Version != 1 {
		t.Errorf("second deployment's claim: system %+v, want running at its own version 1", got.System)
	}
	snapSecond := second.snapshot()
	if snapSecond.WorkersPaused || snapSecond.Version != 1 {
		t.Errorf("second deployment's snapshot: paused %v version %d, want running at version 1", snapSecond.WorkersPaused, snapSecond.Version)
	}
	snapFirst := first.snapshot()
	if !snapFirst.WorkersPaused || snapFirst.Version != pausedFirst.Version {
		t.Errorf("first deployment's snapshot: paused %v version %d, want paused at version %d", snapFirst.WorkersPaused, snapFirst.Version, pausedFirst.Version)
	}
	if snapFirst.Metrics.Queued != 1 || snapFirst.Metrics.Running != 0 {
		t.Errorf("first deployment's metrics %+v, want its own job queued and nothing running", snapFirst.Metrics)
	}

	// Reverse: resume the first, pause the second.
	first.resume("first done", false)
	second.complete(*got.Job, "worker-a")
	pausedSecond := second.pause(broker.ModeQuiesce, "upgrade second")
	if pausedSecond.Version != 2 {
		t.Errorf("second deployment's pause: version %d, want 2", pausedSecond.Version)
	}
	laterSecond := second.enqueue(map[string]any{"type": "demo:echo"})
	got = first.claim("worker-b", nil)
	if got.Job == nil || got.Job.ID != jobFirst.ID {
		t.Fatalf("first deployment's claim after the reversal returned %+v, want %s", got.Job, jobFirst.ID)
	}
	second.claimNothing("worker-b", nil)
	if m := second.metrics(); m.Queued != 1 {
		t.Errorf("second deployment's queued = %d, want its job %s waiting", m.Queued, laterSecond.ID)
	}

	// Each audit trail holds only its own deployment's changes.
	rowsFirst := first.waitAuditRows(2)
	rowsSecond := second.waitAuditRows(1)
	if len(rowsFirst) != 2 || rowsFirst[0].Reason != "upgrade first" || rowsFirst[1].Reason != "first done" {
		t.Errorf("first deployment's audit trail: %+v, want its pause and resume only", rowsFirst)
	}
	if len(rowsSecond) != 1 || rowsSecond[0].Reason != "upgrade second" {
		t.Errorf("second deployment's audit trail: %+v, want its pause only", rowsSecond)
	}
}
