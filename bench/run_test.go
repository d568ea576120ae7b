package bench

import (
	"context"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

// TestRunEngineAndPause runs the concurrent sections with tiny sizes, so
// `go test -race` checks the goroutines that drive both brokers.
func TestRunEngineAndPause(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a redis-server and runs two benchmark sections")
	}
	t.Parallel()
	srv := testutil.StartRedisServer(t, "--appendonly", "no")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	report, err := Run(ctx, Config{
		RedisURL: srv.URL(), DatabaseURL: testutil.DatabaseURL(), PrivateRedis: true, AllowFlush: true,
		Runs: 1, EngineOps: 200, PauseRounds: 2, Quick: true,
		Sections: []string{SectionEngine, SectionPause},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}

	for _, metric := range []string{"claim+complete, concurrency 1", "claim+complete, concurrency 50"} {
		row, ok := report.Row(SectionEngine, metric)
		if !ok {
			t.Fatalf("row %q is missing", metric)
		}
		if !(row.Ours > 0) || !(row.Peer > 0) {
			t.Errorf("%s: ours %v, peer %v, want both > 0", metric, row.Ours, row.Peer)
		}
	}
	for _, metric := range []string{"claims granted while paused, Redis clock", "claims granted after pause returned, engine"} {
		row, ok := report.Row(SectionPause, metric)
		if !ok {
			t.Fatalf("row %q is missing", metric)
		}
		if row.Ours != 0 {
			t.Errorf("%s: ours = %v, want 0", metric, row.Ours)
		}
	}

	keys, err := srv.Client().DBSize(ctx).Result()
	if err != nil {
		t.Fatalf("DBSIZE: %v", err)
	}
	if keys != 0 {
		t.Errorf("%d keys left in the benchmark database after Run, want 0", keys)
	}
}
