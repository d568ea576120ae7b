package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// seedQueueSets fills the sets that Snapshot counts directly, without
// running the job scripts, so the expected counts are known exactly.
func seedQueueSets(t *testing.T, b *Broker, rdb *redis.Client) {
	t.Helper()
	ctx := context.Background()
	now := float64(time.Now().UnixMilli())
	future, past := now+10*60_000, now-10*60_000

	pipe := rdb.TxPipeline()
	pipe.ZAdd(ctx, b.keys.Ready(), redis.Z{Score: 0, Member: "a"}, redis.Z{Score: -1, Member: "b"}, redis.Z{Score: 0, Member: "c"})
	pipe.ZAdd(ctx, b.keys.Delayed(), redis.Z{Score: future, Member: "d"}, redis.Z{Score: future, Member: "e"})
	pipe.ZAdd(ctx, b.keys.Inflight(),
		redis.Z{Score: future, Member: "r1"}, redis.Z{Score: future, Member: "r2"},
		redis.Z{Score: future, Member: "r3"}, redis.Z{Score: past, Member: "s1"})
	pipe.SAdd(ctx, b.keys.Quiesced(), "r1")
	for status, n := range map[Status]int{
		StatusQueued: 5, StatusRunning: 4, StatusSucceeded: 7, StatusFailed: 1, StatusDeadLetter: 2,
	} {
		for i := range n {
			pipe.ZAdd(ctx, b.keys.Status(status), redis.Z{Score: float64(i), Member: string(status) + string(rune('a'+i))})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("seed queue sets: %v", err)
	}
}

func TestSnapshotCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, rdb := newInitializedBroker(t)
	seedQueueSets(t, b, rdb)
	mustPause(t, b, ModeDrain, "count")

	snap, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if !snap.Pause.WorkersPaused || snap.Pause.Version != 2 {
		t.Errorf("pause = %+v, want paused version 2", snap.Pause)
	}
	want := DrainMetrics{Queued: 3, Delayed: 2, Running: 3, StaleRunning: 1, Quiesced: 1, DeadLetter: 2, IsDrained: false}
	if snap.Metrics != want {
		t.Errorf("metrics = %+v, want %+v", snap.Metrics, want)
	}
	wantCounts := map[Status]int64{
		StatusQueued: 5, StatusRunning: 4, StatusSucceeded: 7, StatusFailed: 1, StatusCancelled: 0, StatusDeadLetter: 2,
	}
	for _, s := range Statuses {
		if snap.Counts[s] != wantCounts[s] {
			t.Errorf("count of %s = %d, want %d", s, snap.Counts[s], wantCounts[s])
		}
	}
	if snap.Outbox != 1 {
		t.Errorf("outbox depth = %d, want 1", snap.Outbox)
	}
}

func TestSnapshotDrainedOnlyWithoutStaleJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, rdb := newInitializedBroker(t)

	snap, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if !snap.Metrics.IsDrained {
		t.Errorf("empty namespace isDrained = false, want true")
	}

	rdb.ZAdd(ctx, b.keys.Inflight(), redis.Z{Score: float64(time.Now().UnixMilli() - 1000), Member: "stale"})
	snap, err = b.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if snap.Metrics.IsDrained || snap.Metrics.StaleRunning != 1 || snap.Metrics.Running != 0 {
		t.Errorf("metrics with one stale job = %+v, want staleRunning 1 and not drained", snap.Metrics)
	}
}

func TestSnapshotWithoutPauseState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, rdb := newPauseBroker(t)
	seedQueueSets(t, b, rdb)

	snap, err := b.Snapshot(ctx)
	if !errors.Is(err, ErrPauseStateMissing) {
		t.Fatalf("Snapshot error = %v, want ErrPauseStateMissing", err)
	}
	if snap == nil {
		t.Fatalf("Snapshot returned no metrics with the missing pause state")
	}
	if snap.Metrics.Queued != 3 || snap.Metrics.Running != 3 || snap.Counts[StatusSucceeded] != 7 {
		t.Errorf("metrics = %+v, counts = %v: want the seeded counts", snap.Metrics, snap.Counts)
	}
	if snap.Pause.Version != 0 {
		t.Errorf("pause = %+v, want the zero value", snap.Pause)
	}
}

func TestWorkersLiveAndAcknowledged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, rdb := newInitializedBroker(t)

	// A worker seen 10 minutes ago is remembered but not live.
	old := time.Now().Add(-10 * time.Minute).UnixMilli()
	rdb.ZAdd(ctx, b.keys.Workers(), redis.Z{Score: float64(old), Member: "w-old"})
	rdb.ZAdd(ctx, b.keys.WorkerVersions(), redis.Z{Score: 2, Member: "w-old"})

	if err := b.TouchWorker(ctx, "w-stale-version", 1); err != nil {
		t.Fatalf("TouchWorker: %v", err)
	}
	mustPause(t, b, ModeDrain, "ack")
	if err := b.TouchWorker(ctx, "w-current", 2); err != nil {
		t.Fatalf("TouchWorker: %v", err)
	}

	workers, err := b.Workers(ctx)
	if err != nil {
		t.Fatalf("Workers: %v", err)
	}
	if len(workers) != 3 {
		t.Fatalf("Workers returned %d workers, want 3: %+v", len(workers), workers)
	}
	byID := map[string]WorkerInfo{}
	for _, w := range workers {
		byID[w.ID] = w
	}
	if w := byID["w-current"]; !w.Live || !w.Acknowledged || w.Version != 2 {
		t.Errorf("w-current = %+v, want live, acknowledged, version 2", w)
	}
	if w := byID["w-stale-version"]; !w.Live || w.Acknowledged || w.Version != 1 {
		t.Errorf("w-stale-version = %+v, want live, not acknowledged, version 1", w)
	}
	if w := byID["w-old"]; w.Live || w.Acknowledged || w.LastSeenAt.UnixMilli() != old {
		t.Errorf("w-old = %+v, want not live, not acknowledged, seen at %d", w, old)
	}
	for i := 1; i < len(workers); i++ {
		if workers[i].LastSeenAt.After(workers[i-1].LastSeenAt) {
			t.Errorf("workers not most recent first: %s before %s", workers[i-1].ID, workers[i].ID)
		}
	}
	if workers[2].ID != "w-old" {
		t.Errorf("last worker = %s, want w-old", workers[2].ID)
	}

	snap, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if snap.Workers != (WorkerCounts{Live: 2, Acknowledged: 1}) {
		t.Errorf("snapshot workers = %+v, want live 2, acknowledged 1", snap.Workers)
	}

	// After a resume no worker has been sent version 3 yet.
	if _, err := b.Resume(ctx, ResumeParams{Reason: "done"}); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	snap, err = b.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if snap.Workers.Acknowledged != 0 {
		t.Errorf("acknowledged after resume = %d, want 0", snap.Workers.Acknowledged)
	}
}

func TestTouchWorkerForgetsExpiredWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, rdb := newInitializedBroker(t)

	expired := time.Now().Add(-WorkerRetention - time.Hour).UnixMilli()
	recent := time.Now().Add(-WorkerRetention + time.Hour).UnixMilli()
	rdb.ZAdd(ctx, b.keys.Workers(), redis.Z{Score: float64(expired), Member: "gone"}, redis.Z{Score: float64(recent), Member: "kept"})
	rdb.ZAdd(ctx, b.keys.WorkerVersions(), redis.Z{Score: 1, Member: "gone"}, redis.Z{Score: 1, Member: "kept"})

	if err := b.TouchWorker(ctx, "new", 1); err != nil {
		t.Fatalf("TouchWorker: %v", err)
	}
	for _, key := range []string{b.keys.Workers(), b.keys.WorkerVersions()} {
		members, err := rdb.ZRange(ctx, key, 0, -1).Result()
		if err != nil {
			t.Fatalf("ZRANGE %s: %v", key, err)
		}
		got := map[string]bool{}
		for _, m := range members {
			got[m] = true
		}
		if got["gone"] || !got["kept"] || !got["new"] || len(members) != 2 {
			t.Errorf("%s members = %v, want kept and new", key, members)
		}
	}
}

func TestTouchWorkerRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newInitializedBroker(t)

	if err := b.TouchWorker(ctx, "", 1); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("empty worker id error = %v, want ErrInvalidArgument", err)
	}
	if err := b.TouchWorker(ctx, "w", -1); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("negative version error = %v, want ErrInvalidArgument", err)
	}
}

func TestOutboxPendingAndAck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _ := newInitializedBroker(t)
	mustPause(t, b, ModeDrain, "one")
	mustPause(t, b, ModeDrain, "two")
	mustPause(t, b, ModeQuiesce, "two")

	first, err := b.OutboxPending(ctx, 2)
	if err != nil {
		t.Fatalf("OutboxPending: %v", err)
	}
	if len(first) != 2 || first[0].Version != 2 || first[1].Version != 3 {
		t.Fatalf("first page = %+v, want versions 2 and 3", first)
	}
	if first[0].Reason != "one" || first[0].ID == "" || first[0].StateAfter == nil {
		t.Errorf("decoded event = %+v, want reason one with id and stateAfter", first[0])
	}

	if err := b.OutboxAck(ctx, first[0].OutboxID, first[1].OutboxID); err != nil {
		t.Fatalf("OutboxAck: %v", err)
	}
	if d := mustDepth(t, b); d != 1 {
		t.Errorf("depth after ack = %d, want 1", d)
	}
	// A repeated acknowledgement is harmless.
	if err := b.OutboxAck(ctx, first[0].OutboxID); err != nil {
		t.Errorf("repeated OutboxAck: %v", err)
	}
	rest, err := b.OutboxPending(ctx, 10)
	if err != nil {
		t.Fatalf("OutboxPending: %v", err)
	}
	if len(rest) != 1 || rest[0].Version != 4 || *rest[0].Mode != "quiesce" {
		t.Errorf("remaining events = %+v, want version 4 quiesce", rest)
	}

	if _, err := b.OutboxPending(ctx, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("OutboxPending(0) error = %v, want ErrInvalidArgument", err)
	}
	if _, err := b.OutboxPending(ctx, MaxOutboxBatch+1); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("OutboxPending(%d) error = %v, want ErrInvalidArgument", MaxOutboxBatch+1, err)
	}
	if err := b.OutboxAck(ctx, ""); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("OutboxAck(\"\") error = %v, want ErrInvalidArgument", err)
	}
	if err := b.OutboxAck(ctx); err != nil {
		t.Errorf("OutboxAck() with no ids: %v", err)
	}
}
