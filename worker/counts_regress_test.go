package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/testutil"
)

func TestCountsAddUpUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		workers = 20
		jobs    = 200
	)
	srv := apitest.Start(t, apitest.Options{
		LeaseGrace:     500 * time.Millisecond,
		ReaperInterval: 100 * time.Millisecond,
		BrokerConfig:   broker.Config{BackoffBase: 10 * time.Millisecond, BackoffCap: 50 * time.Millisecond},
	})
	ctx := context.Background()

	ids := make([]string, 0, jobs)
	for i := range jobs {
		job, _, err := srv.Broker.Enqueue(ctx, broker.EnqueueParams{
			Type: "load", Priority: 1 + i%5, MaxAttempts: 2,
		})
		if err != nil {
			t.Fatalf("enqueue job %d: %v", i, err)
		}
		ids = append(ids, job.ID)
	}

	// About 30 % of the runs fail (retryable); the rest finish in 10 to
	// 50 ms.
	var runs, failures atomic.Int64
	handler := asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		runs.Add(1)
		timer := time.NewTimer(time.Duration(10+rand.IntN(41)) * time.Millisecond)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		if rand.Float64() < 0.3 {
			failures.Add(1)
			return errors.New("simulated failure")
		}
		return nil
	})

	// Sample the counts every 50 ms while the workers run.
	stop := make(chan struct{})
	sampled := make(chan error, 1)
	var samples atomic.Int64
	go func() {
		defer close(sampled)
		ticker := time.NewTicker(50 * time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
			snap, err := srv.Broker.Snapshot(ctx)
			if err != nil {
				sampled <- fmt.Errorf("snapshot: %w", err)
				return
			}
			if err := checkCounts(snap, workers, jobs); err != nil {
				sampled <- err
				return
			}
			samples.Add(1)
		}
	}()

	var wg sync.WaitGroup
	logger, _ := newTestLogger(t)
	for i := range workers {
		cfg := testConfig(t, srv, logger)
		cfg.WorkerID = fmt.Sprintf("load-%02d", i)
		cfg.PollInterval = time.Second
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := NewServer(cfg)
			if err != nil {
				t.Errorf("NewServer: %v", err)
				return
			}
			if err := s.Start(context.Background(), handler); err != nil {
				t.Errorf("Start: %v", err)
				return
			}
			t.Cleanup(func() {
				stopCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_ = s.Shutdown(stopCtx)
			})
		}()
	}
	wg.Wait()

	var final *broker.Snapshot
	testutil.WaitFor(t, 60*time.Second, "every job to succeed or be dead-lettered", func() bool {
		snap, err := srv.Broker.Snapshot(ctx)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		final = snap
		return snap.Counts[broker.StatusSucceeded]+snap.Counts[broker.StatusDeadLetter] == jobs
	})
	close(stop)
	if err, ok := <-sampled; ok && err != nil {
		t.Fatalf("sample %d: %v", samples.Load()+1, err)
	}
	if samples.Load() == 0 {
		t.Fatal("no sample was taken while the workers ran")
	}

	m := final.Metrics
	if m.Running != 0 || m.Queued != 0 || m.StaleRunning != 0 || m.Delayed != 0 {
		t.Errorf("final metrics %+v, want running, queued, delayed and staleRunning 0", m)
	}
	if final.Counts[broker.StatusFailed] != 0 || final.Counts[broker.StatusCancelled] != 0 {
		t.Errorf("final counts %v, want only succeeded and dead_letter", final.Counts)
	}
	if m.DeadLetter != final.Counts[broker.StatusDeadLetter] {
		t.Errorf("deadLetter metric %d, dead_letter count %d, want equal", m.DeadLetter, final.Counts[broker.StatusDeadLetter])
	}
	// Every claim ends in exactly one outcome, and the handler ran once
	// per claim. A lease lost under load makes a run whose report the
	// broker rejects, but never a second success.
	outcomes := map[string]int64{}
	for _, id := range ids {
		succeeded := 0
		for _, kind := range eventKindsOf(t, srv, id) {
			outcomes[kind]++
			if kind == "succeeded" {
				succeeded++
			}
		}
		if succeeded > 1 {
			t.Errorf("job %s succeeded %d times, want at most once", id, succeeded)
		}
	}
	ended := outcomes["succeeded"] + outcomes["retry_scheduled"] + outcomes["dead_lettered"] +
		outcomes["failed"] + outcomes["lease_lost"] + outcomes["released"]
	if outcomes["claimed"] != ended {
		t.Errorf("events %v: %d claims but %d outcomes, want one outcome per claim", outcomes, outcomes["claimed"], ended)
	}
	if got := runs.Load(); got != outcomes["claimed"] {
		t.Errorf("handler runs %d, claims %d, want one run per claim", got, outcomes["claimed"])
	}
	if outcomes["succeeded"] != final.Counts[broker.StatusSucceeded] {
		t.Errorf("%d success events, %d succeeded jobs, want equal", outcomes["succeeded"], final.Counts[broker.StatusSucceeded])
	}
	if got, want := failures.Load(), outcomes["retry_scheduled"]+outcomes["dead_lettered"]; got < want {
		t.Errorf("handler failures %d, fewer than the %d failures the broker recorded", got, want)
	}
	t.Logf("%d samples; %d succeeded, %d dead-lettered, %d handler runs, %d lost leases",
		samples.Load(), final.Counts[broker.StatusSucceeded], final.Counts[broker.StatusDeadLetter], runs.Load(), outcomes["lease_lost"])
}

// checkCounts checks one snapshot taken while the workers run: no count
// is negative, at most one running job per worker, and the states add up
// to the number of jobs.
func checkCounts(snap *broker.Snapshot, workers, jobs int64) error {
	m := snap.Metrics
	for name, v := range map[string]int64{
		"queued": m.Queued, "delayed": m.Delayed, "running": m.Running,
		"staleRunning": m.StaleRunning, "quiesced": m.Quiesced, "deadLetter": m.DeadLetter,
	} {
		if v < 0 {
			return fmt.Errorf("metric %s is %d, want at least 0", name, v)
		}
	}
	if m.Running > workers || snap.Counts[broker.StatusRunning] > workers {
		return fmt.Errorf("running %d (status count %d) with %d workers", m.Running, snap.Counts[broker.StatusRunning], workers)
	}
	if m.Running+m.StaleRunning != snap.Counts[broker.StatusRunning] {
		return fmt.Errorf("running %d + staleRunning %d differ from the running status count %d",
			m.Running, m.StaleRunning, snap.Counts[broker.StatusRunning])
	}
	var total int64
	for status, n := range snap.Counts {
		if n < 0 {
			return fmt.Errorf("count of %s is %d, want at least 0", status, n)
		}
		total += n
	}
	if total != jobs {
		return fmt.Errorf("counts %v add up to %d, want %d", snap.Counts, total, jobs)
	}
	return nil
}
