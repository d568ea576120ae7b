package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

// TestScriptsOnRedisCluster runs the main scripts through a ClusterClient
// against three primaries. The hash tag puts every key of a namespace in
// one slot, so each script must run on the slot's primary without a
// CROSSSLOT error.
func TestScriptsOnRedisCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	ctx := context.Background()
	cluster := testutil.StartRedisCluster(t)
	b, err := New(cluster.Client, Config{Namespace: "cluster"})
	if err != nil {
		t.Fatal(err)
	}

	if created, err := b.InitPause(ctx); err != nil || !created {
		t.Fatalf("InitPause = %v, %v; want true, nil", created, err)
	}
	n := b.NewNotifier()
	notices, unsubscribe := n.Subscribe()
	defer unsubscribe()
	startNotifier(t, n)

	// Enqueue, claim, heartbeat and complete one job.
	job, _, err := b.Enqueue(ctx, EnqueueParams{Type: "build"})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if got := nextNotice(t, notices); got.Kind != NoticeJobReady {
		t.Errorf("notice after enqueue = %+v, want a job notice", got)
	}
	res, err := b.Claim(ctx, ClaimParams{WorkerID: "w1", Lease: time.Minute})
	if err != nil || res.Job == nil || res.Job.ID != job.ID {
		t.Fatalf("Claim = %+v, %v; want job %s", res, err, job.ID)
	}
	if err := b.TouchWorker(ctx, "w1", res.Pause.Version); err != nil {
		t.Fatalf("TouchWorker: %v", err)
	}
	if _, _, err := b.Heartbeat(ctx, HeartbeatParams{JobID: job.ID, WorkerID: "w1", Attempt: res.Job.Attempt, Lease: time.Minute}); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	if _, err := b.Complete(ctx, CompleteParams{JobID: job.ID, WorkerID: "w1", Attempt: res.Job.Attempt}); err != nil {
		t.Fatalf("Complete: %v", err)
	}

	// A second job fails without retry.
	failing, _, err := b.Enqueue(ctx, EnqueueParams{Type: "build", MaxAttempts: 1})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	res, err = b.Claim(ctx, ClaimParams{WorkerID: "w1"})
	if err != nil || res.Job == nil || res.Job.ID != failing.ID {
		t.Fatalf("Claim = %+v, %v; want job %s", res, err, failing.ID)
	}
	if _, err := b.Fail(ctx, FailParams{JobID: failing.ID, WorkerID: "w1", Attempt: res.Job.Attempt, ErrorMessage: "boom"}); err != nil {
		t.Fatalf("Fail: %v", err)
	}

	// Pause, check that claims stop, and resume.
	if _, _, err := b.Enqueue(ctx, EnqueueParams{Type: "build"}); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	paused, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: "cluster upgrade", Actor: "ops"})
	if err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if res, err := b.Claim(ctx, ClaimParams{WorkerID: "w1"}); err != nil || res.Job != nil {
		t.Fatalf("Claim while paused = %+v, %v; want no job", res, err)
	}
	snap, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if !snap.Pause.WorkersPaused || snap.Metrics.Queued != 1 || !snap.Metrics.IsDrained || snap.Outbox != 1 {
		t.Errorf("snapshot = %+v, want paused, 1 queued, drained, 1 outbox event", snap)
	}
	if snap.Counts[StatusSucceeded] != 1 || snap.Counts[StatusFailed]+snap.Counts[StatusDeadLetter] != 1 {
		t.Errorf("counts = %v, want 1 succeeded and 1 failed or dead_letter", snap.Counts)
	}
	if snap.Workers.Live != 1 {
		t.Errorf("live workers = %d, want 1", snap.Workers.Live)
	}

	// Lose the hash and restore it from the newest event.
	if err := cluster.Client.Del(ctx, b.keys.Pause()).Err(); err != nil {
		t.Fatalf("DEL pause: %v", err)
	}
	if _, err := b.Claim(ctx, ClaimParams{WorkerID: "w1"}); !errors.Is(err, ErrPauseStateMissing) {
		t.Errorf("Claim without pause state = %v, want ErrPauseStateMissing", err)
	}
	restored, err := b.RestorePause(ctx, paused.Event)
	if err != nil || restored == nil {
		t.Fatalf("RestorePause = %v, %v; want a change", restored, err)
	}
	if restored.State.Version != 3 || !restored.State.WorkersPaused {
		t.Errorf("restored state = %+v, want paused version 3", restored.State)
	}
	if _, err := b.Resume(ctx, ResumeParams{Reason: "done", Actor: "ops"}); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if res, err := b.Claim(ctx, ClaimParams{WorkerID: "w1"}); err != nil || res.Job == nil {
		t.Fatalf("Claim after resume = %+v, %v; want a job", res, err)
	}

	// Every accepted change reached the outbox, and the notifier saw the
	// pause versions in order.
	events, err := b.OutboxPending(ctx, 10)
	if err != nil {
		t.Fatalf("OutboxPending: %v", err)
	}
	if len(events) != 3 || events[0].Action != ActionPause || events[1].Action != ActionRestore || events[2].Action != ActionResume {
		t.Fatalf("outbox = %+v, want pause, restore, resume", events)
	}
	for _, e := range events {
		if err := b.OutboxAck(ctx, e.OutboxID); err != nil {
			t.Fatalf("OutboxAck: %v", err)
		}
	}
	if d := mustDepth(t, b); d != 0 {
		t.Errorf("outbox depth after ack = %d, want 0", d)
	}
	var versions []int64
	for len(versions) < 3 {
		if notice := nextNotice(t, notices); notice.Kind == NoticePause {
			versions = append(versions, notice.Version)
		}
	}
	if versions[0] != 2 || versions[1] != 3 || versions[2] != 4 {
		t.Errorf("pause notices = %v, want [2 3 4]", versions)
	}
	workers, err := b.Workers(ctx)
	if err != nil || len(workers) != 1 || workers[0].ID != "w1" {
		t.Errorf("Workers = %+v, %v; want w1", workers, err)
	}
}
