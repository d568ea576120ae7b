package faults

import (
	"fmt"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

// TestWorkerKilledMidJob kills a queue-worker process with SIGKILL while
// it runs jobs, round after round, until each of 50 jobs has lost a run
// that way. A last worker then finishes them: each job must succeed once,
// after its lease and the grace passed.
func TestWorkerKilledMidJob(t *testing.T) {
	t.Parallel()
	const (
		jobCount    = 50
		concurrency = 10
		// sleepSeconds keeps each run long enough to be killed in its
		// middle: a run lasts 3 s, and a round kills about 500 ms after
		// its first claim.
		sleepSeconds = 3
		maxRounds    = 40
	)
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

	var ids []string
	for i := range jobCount {
		j, _, err := op.enqueue(ctx, "demo:sleep", map[string]any{"seconds": sleepSeconds, "n": i}, 10)
		if err != nil {
			t.Fatalf("enqueue job %d: %v", i, err)
		}
		ids = append(ids, j.ID)
	}

	// interrupted holds the jobs a killed worker was running at the moment
	// of its SIGKILL.
	interrupted := map[string]bool{}
	rounds := 0
	for len(interrupted) < jobCount {
		if rounds == maxRounds {
			t.Fatalf("after %d rounds only %d of %d jobs were interrupted", rounds, len(interrupted), jobCount)
		}
		rounds++
		workerID := fmt.Sprintf("doomed-%d", rounds)
		w := startWorker(t, workerConfig{
			BrokerURL: b.URL, Token: workerToken, WorkerID: workerID, Concurrency: concurrency, Lease: "1s",
		})
		var heldJobs []string
		var firstHeld time.Time
		testutil.WaitFor(t, 30*time.Second, workerID+" to run jobs", func() bool {
			running, err := op.listJobs(ctx, "running")
			if err != nil {
				return false
			}
			heldJobs = heldJobs[:0]
			for _, j := range running {
				if j.ClaimedBy != nil && *j.ClaimedBy == workerID {
					heldJobs = append(heldJobs, j.ID)
				}
			}
			if len(heldJobs) > 0 && firstHeld.IsZero() {
				firstHeld = time.Now()
			}
			// Wait for a full set of claims, or 500 ms after the first
			// when fewer jobs are ready, so the kill comes well before
			// a 3 s run can finish.
			return len(heldJobs) == concurrency || (len(heldJobs) > 0 && time.Since(firstHeld) > 500*time.Millisecond)
		})
		w.kill()
		for _, id := range heldJobs {
			interrupted[id] = true
		}

		// A job that finished on a worker before its kill can never be
		// interrupted, so the loop would not end.
		succeeded, err := op.listJobs(ctx, "succeeded")
		if err != nil {
			t.Fatalf("list succeeded jobs: %v", err)
		}
		for _, j := range succeeded {
			if !interrupted[j.ID] {
				t.Fatalf("job %s finished on %s before any kill: the machine ran a %d s job before the test could kill it",
					j.ID, derefString(j.ClaimedBy), sleepSeconds)
			}
		}
	}
	t.Logf("interrupted all %d jobs in %d rounds", jobCount, rounds)

	startWorker(t, workerConfig{
		BrokerURL: b.URL, Token: workerToken, WorkerID: "survivor", Concurrency: 25, Lease: "2s",
	})
	waitAllSucceeded(t, ctx, op, ids, 2*time.Minute)

	claims := checkSucceededOnce(t, ctx, op, ids)
	for _, id := range ids {
		events, err := op.events(ctx, id)
		if err != nil {
			t.Fatalf("read events of job %s: %v", id, err)
		}
		if countKind(events, "lease_lost") < 1 {
			t.Errorf("job %s has no lease_lost event, want at least 1 from the killed worker", id)
		}
		if last := events[len(events)-1]; last.Kind != "succeeded" {
			t.Errorf("job %s ends with a %s event, want succeeded last", id, last.Kind)
		}
	}
	t.Logf("%d jobs, %d kill rounds, %d runs in all, %s", jobCount, rounds, claims, time.Since(started).Round(time.Millisecond))
}

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
