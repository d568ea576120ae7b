package broker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The benchmarks run against the shared Redis on 127.0.0.1, each in its own
// namespace, so they measure a real round trip plus the script.

func BenchmarkEnqueue(b *testing.B) {
	br := newJobsBroker(b, Config{})
	ctx := context.Background()
	p := EnqueueParams{Type: "bench", Payload: rawJSON(`{"n":1}`)}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := br.Enqueue(ctx, p); err != nil {
			b.Fatalf("Enqueue: %v", err)
		}
	}
}

func BenchmarkClaimComplete(b *testing.B) {
	br := newJobsBroker(b, Config{})
	ctx := context.Background()
	enqueueForBench(b, br, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		claimCompleteOnce(b, br, ctx, "w1")
	}
}

func BenchmarkClaimCompleteParallel(b *testing.B) {
	br := newJobsBroker(b, Config{})
	ctx := context.Background()
	enqueueForBench(b, br, b.N)
	var workers atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		worker := fmt.Sprintf("w%d", workers.Add(1))
		for pb.Next() {
			claimCompleteOnce(b, br, ctx, worker)
		}
	})
}

// BenchmarkPing is the round-trip floor of one script call.
func BenchmarkPing(b *testing.B) {
	br := newJobsBroker(b, Config{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := script("ping").Run(ctx, br.rdb, nil).Err(); err != nil {
			b.Fatalf("ping: %v", err)
		}
	}
}

func claimCompleteOnce(b *testing.B, br *Broker, ctx context.Context, worker string) {
	res, err := br.Claim(ctx, ClaimParams{WorkerID: worker, Lease: time.Minute})
	if err != nil {
		b.Fatalf("Claim: %v", err)
	}
	if res.Job == nil {
		b.Fatal("Claim found no job; the queue ran dry")
	}
	if _, err := br.Complete(ctx, CompleteParams{JobID: res.Job.ID, WorkerID: worker, Attempt: res.Job.Attempt}); err != nil {
		b.Fatalf("Complete: %v", err)
	}
}

// enqueueForBench fills the queue with n jobs through a pipeline, outside
// the timed part.
func enqueueForBench(b *testing.B, br *Broker, n int) {
	b.Helper()
	ctx := context.Background()
	// A pipelined EVALSHA cannot fall back to EVAL, so load the script first.
	if err := script("enqueue").Load(ctx, br.rdb).Err(); err != nil {
		b.Fatalf("load enqueue script: %v", err)
	}
	for start := 0; start < n; start += 1000 {
		pipe := br.rdb.Pipeline()
		for i := start; i < min(n, start+1000); i++ {
			id := fmt.Sprintf("bench-%08d", i)
			script("enqueue").Run(ctx, pipe, []string{br.keys.Job(id)}, br.keys.Prefix(), id, "bench", 0,
				`{"n":1}`, "", "[]", 3, 0, "", br.cfg.Retention.Milliseconds())
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatalf("enqueue %d jobs: %v", n, err)
		}
	}
}

// BenchmarkSnapshotMillionQueued reads the drain metrics with 1,000,000
// queued jobs. The snapshot script only takes set cardinalities and range
// counts, so the ready and status sets are filled directly, in pipelined
// batches, instead of enqueuing a million job hashes.
func BenchmarkSnapshotMillionQueued(b *testing.B) {
	br := newJobsBroker(b, Config{})
	ctx := context.Background()
	if _, err := br.InitPause(ctx); err != nil {
		b.Fatalf("InitPause: %v", err)
	}

	const queued, batch = 1_000_000, 10_000
	for start := 0; start < queued; start += batch {
		ready := make([]redis.Z, batch)
		status := make([]redis.Z, batch)
		for i := range batch {
			seq := start + i
			id := fmt.Sprintf("bench-%d", seq)
			ready[i] = redis.Z{Score: 0, Member: fmt.Sprintf("%020d:%s", seq, id)}
			status[i] = redis.Z{Score: float64(seq), Member: id}
		}
		pipe := br.rdb.Pipeline()
		pipe.ZAdd(ctx, br.keys.Ready(), ready...)
		pipe.ZAdd(ctx, br.keys.Status(StatusQueued), status...)
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatalf("fill the ready set: %v", err)
		}
	}

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		snap, err := br.Snapshot(ctx)
		if err != nil {
			b.Fatalf("Snapshot: %v", err)
		}
		if snap.Metrics.Queued != queued {
			b.Fatalf("queued = %d, want %d", snap.Metrics.Queued, queued)
		}
	}
}
