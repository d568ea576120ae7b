package broker

import (
	"context"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

// TestJobScriptsOnRedisCluster runs every job script not covered by the
// pause helper's cluster test through a ClusterClient, so each one is routed
// to the namespace's slot and touches only keys of that slot.
func TestJobScriptsOnRedisCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	ctx := context.Background()
	cluster := testutil.StartRedisCluster(t)
	b, err := New(cluster.Client, Config{Namespace: "jobs"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := cluster.Client.HSet(ctx, b.keys.Pause(), "workersPaused", "0", "version", "1").Err(); err != nil {
		t.Fatalf("initialize pause hash: %v", err)
	}

	job := mustEnqueue(t, b, EnqueueParams{Type: "build", IdempotencyKey: "k"})
	claimed := mustClaim(t, b, ClaimParams{AllowedTypes: []string{"build"}})
	if _, err := b.SaveCheckpoint(ctx, job.ID, "w1", claimed.Attempt, rawJSON(`{"step":1}`)); err != nil {
		t.Fatalf("SaveCheckpoint: %v", err)
	}
	if _, err := b.AppendJobEvent(ctx, job.ID, "w1", "info", "hello", nil); err != nil {
		t.Fatalf("AppendJobEvent: %v", err)
	}
	if _, err := b.Release(ctx, ReleaseParams{JobID: job.ID, WorkerID: "w1"}); err != nil {
		t.Fatalf("Release: %v", err)
	}
	mustClaim(t, b, ClaimParams{})
	expireLease(t, b, job.ID, time.Hour)
	if _, err := b.Recover(ctx, job.ID, RecoverRequeue, "op"); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	mustClaim(t, b, ClaimParams{})
	if _, err := b.Cancel(ctx, job.ID, "stop", "op"); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if _, err := b.AckCancel(ctx, AckCancelParams{JobID: job.ID, WorkerID: "w1"}); err != nil {
		t.Fatalf("AckCancel: %v", err)
	}
	copied, _, err := b.Resubmit(ctx, job.ID, "op")
	if err != nil {
		t.Fatalf("Resubmit: %v", err)
	}
	if _, err := b.ReapOnce(ctx); err != nil {
		t.Fatalf("ReapOnce: %v", err)
	}
	jobs, _, err := b.ListJobs(ctx, ListParams{Type: "build"})
	if err != nil || len(jobs) != 2 || jobs[0].ID != copied.ID {
		t.Fatalf("ListJobs = %d jobs, %v, want the copy then the original", len(jobs), err)
	}
	if kinds := eventKinds(t, b, job.ID); len(kinds) < 7 {
		t.Errorf("events of the original = %v, want the whole history", kinds)
	}
}
