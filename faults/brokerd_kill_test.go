package faults

import (
	"fmt"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

// TestBrokerdKilledUnderLoad kills brokerd with SIGKILL twice while
// producers enqueue and two queue-worker processes run jobs, and starts it
// again on the same address each time. Every job acknowledged with 201
// must end succeeded with exactly one succeeded event.
func TestBrokerdKilledUnderLoad(t *testing.T) {
	t.Parallel()
	const kills = 2
	ctx := testContext(t, 4*time.Minute)
	started := time.Now()

	_, ns := testutil.Redis(t)
	_, dsn := testutil.Postgres(t)
	operatorToken, workerToken := newToken("op"), newToken("wk")
	b := startBrokerd(t, "brokerd", brokerdConfig{
		RedisURL: testutil.RedisURL(), DatabaseURL: dsn, Namespace: ns,
		OperatorToken: operatorToken, WorkerToken: workerToken,
		LeaseGrace: "1s", ReaperInterval: "200ms",
	})
	op := newAPIClient(b.URL, operatorToken)
	for i := range 2 {
		startWorker(t, workerConfig{
			BrokerURL: b.URL, Token: workerToken, WorkerID: fmt.Sprintf("worker-%d", i), Concurrency: 4, Lease: "2s",
		})
	}

	load := startProducers(ctx, op, 4)
	var outages []time.Duration
	for k := range kills {
		load.waitCount(t, (k+1)*150, time.Minute)
		down := time.Now()
		b.kill()
		b.start()
		b.waitReady(t, time.Minute)
		outages = append(outages, time.Since(down).Round(time.Millisecond))
	}
	load.waitCount(t, (kills+1)*150, time.Minute)
	failures := load.failures.Load()
	ids := load.finish()

	waitAllSucceeded(t, ctx, op, ids, 2*time.Minute)
	runs := checkSucceededOnce(t, ctx, op, ids)
	t.Logf("%d jobs acknowledged, %d failed enqueue requests, %d kills (outages %v), %d runs in all, %s",
		len(ids), failures, kills, outages, runs, time.Since(started).Round(time.Millisecond))
}
