package faults

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

// completers claim and complete jobs over the API from several goroutines
// until stopped, keeping the id of every job whose complete the broker
// acknowledged with 200.
type completers struct {
	mu        sync.Mutex
	completed []string
	stop      context.CancelFunc
	done      sync.WaitGroup
}

func startCompleters(ctx context.Context, c *apiClient, n int) *completers {
	ctx, cancel := context.WithCancel(ctx)
	w := &completers{stop: cancel}
	for i := range n {
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			workerID := fmt.Sprintf("completer-%d", i)
			for ctx.Err() == nil {
				res, _, err := c.claim(ctx, workerID, 30)
				if err != nil || res.Job == nil {
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
					continue
				}
				if _, status, err := c.complete(ctx, *res.Job, workerID); err == nil && status == 200 {
					w.mu.Lock()
					w.completed = append(w.completed, res.Job.ID)
					w.mu.Unlock()
				}
			}
		}()
	}
	return w
}

func (w *completers) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.completed)
}

func (w *completers) finish() []string {
	w.stop()
	w.done.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.completed...)
}

// TestRedisKilledUnderLoad kills a private redis-server (append-only file,
// appendfsync always) with SIGKILL while producers enqueue and workers
// complete jobs through brokerd, and starts it again on the same data
// directory. Every acknowledged enqueue must still exist and every
// acknowledged complete must still read succeeded. A second kill while
// paused checks that the pause state survives unchanged.
func TestRedisKilledUnderLoad(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 4*time.Minute)
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

	load := startProducers(ctx, op, 4)
	work := startCompleters(ctx, wk, 2)
	load.waitCount(t, 200, time.Minute)
	testutil.WaitFor(t, time.Minute, "100 acknowledged completes", func() bool { return work.count() >= 100 })

	down := time.Now()
	rs.Kill()
	rs.Start()
	b.waitReady(t, time.Minute)
	outage := time.Since(down).Round(time.Millisecond)
	before := load.count()
	load.waitCount(t, before+200, time.Minute)
	failures := load.failures.Load()
	accepted := load.finish()
	completed := work.finish()

	for _, id := range accepted {
		if _, status, err := op.getJob(ctx, id); err != nil {
			t.Errorf("acknowledged job %s is gone after the Redis restart: status %d, %v", id, status, err)
		}
	}
	for _, id := range completed {
		j, _, err := op.getJob(ctx, id)
		if err != nil {
			t.Errorf("read completed job %s: %v", id, err)
			continue
		}
		if j.Status != "succeeded" {
			t.Errorf("job %s was acknowledged as completed but reads %s after the Redis restart", id, j.Status)
		}
	}
	t.Logf("load: %d enqueues and %d completes acknowledged, %d failed enqueue requests, Redis outage %s",
		len(accepted), len(completed), failures, outage)

	paused, _, err := op.changePause(ctx, "pause", "quiesce", "Redis restart fault test")
	if err != nil {
		t.Fatalf("pause: %v", err)
	}
	rs.Kill()
	rs.Start()
	b.waitReady(t, time.Minute)
	after, _, err := op.pauseState(ctx)
	if err != nil {
		t.Fatalf("read pause state after the restart: %v", err)
	}
	if !after.WorkersPaused {
		t.Errorf("workersPaused is false after the Redis restart, want true")
	}
	if after.Mode != paused.Mode {
		t.Errorf("mode is %q after the Redis restart, want %q", after.Mode, paused.Mode)
	}
	if after.Reason != paused.Reason {
		t.Errorf("reason is %q after the Redis restart, want %q", after.Reason, paused.Reason)
	}
	if after.Version != paused.Version {
		t.Errorf("version is %d after the Redis restart, want %d (kept, not restored)", after.Version, paused.Version)
	}
	t.Logf("pause state kept at version %d; total %s", after.Version, time.Since(started).Round(time.Millisecond))
}
