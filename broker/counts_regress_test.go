package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

// TestCountsAddUpWithCrashesAndReleases mixes every way a running job
// leaves the running state: complete, retryable failure, release, and a
// crashed worker whose lease the reaper takes back. Every sample of the
// state counts must add up to the number of jobs.
func TestCountsAddUpWithCrashesAndReleases(t *testing.T) {
	t.Parallel()
	const (
		workers = 20
		jobs    = 200
	)
	b := newJobsBroker(t, Config{
		LeaseGrace:  50 * time.Millisecond,
		BackoffBase: 5 * time.Millisecond,
		BackoffCap:  20 * time.Millisecond,
	})
	ctx := context.Background()
	for i := range jobs {
		mustEnqueue(t, b, EnqueueParams{Type: "load", Priority: 1 + i%5, MaxAttempts: 3})
	}

	// The reaper runs often, so crashed leases come back while the
	// workers still run.
	reaper := b.NewReaper(ReaperConfig{Interval: 20 * time.Millisecond}, nil)
	reaper.Start(ctx)
	defer reaper.Stop()

	stop := make(chan struct{})
	failures := make(chan error, workers+1)
	var samples atomic.Int64
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		ticker := time.NewTicker(20 * time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
			}
			snap, err := b.Snapshot(ctx)
			if err != nil {
				failures <- fmt.Errorf("snapshot: %w", err)
				return
			}
			var total int64
			for status, n := range snap.Counts {
				if n < 0 {
					failures <- fmt.Errorf("count of %s is %d", status, n)
					return
				}
				total += n
			}
			if total != jobs {
				failures <- fmt.Errorf("counts %v add up to %d, want %d", snap.Counts, total, jobs)
				return
			}
			if snap.Metrics.Running+snap.Metrics.StaleRunning != snap.Counts[StatusRunning] {
				failures <- fmt.Errorf("running %d + staleRunning %d differ from the running count %d",
					snap.Metrics.Running, snap.Metrics.StaleRunning, snap.Counts[StatusRunning])
				return
			}
			samples.Add(1)
		}
	}()

	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runLoadWorker(ctx, b, fmt.Sprintf("w%02d", w), stop); err != nil {
				failures <- err
			}
		}()
	}

	testutil.WaitFor(t, 60*time.Second, "every job to reach a final state", func() bool {
		select {
		case err := <-failures:
			t.Fatal(err)
		default:
		}
		counts := stateCounts(t, b)
		return counts[StatusSucceeded]+counts[StatusDeadLetter] == jobs
	})
	close(stop)
	wg.Wait()
	sampler.Wait()
	select {
	case err := <-failures:
		t.Fatal(err)
	default:
	}
	if samples.Load() == 0 {
		t.Fatal("no sample was taken while the workers ran")
	}

	snap, err := b.Snapshot(ctx)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	m := snap.Metrics
	if m.Running != 0 || m.StaleRunning != 0 || m.Queued != 0 || m.Delayed != 0 {
		t.Errorf("final metrics %+v, want running, staleRunning, queued and delayed 0", m)
	}
	if snap.Counts[StatusSucceeded]+snap.Counts[StatusDeadLetter] != jobs {
		t.Errorf("final counts %v, want succeeded + dead_letter = %d", snap.Counts, jobs)
	}
}

// runLoadWorker claims until stop is closed. Each claimed job completes
// (55 %), fails as retryable (25 %), is released (10 %) or is abandoned
// with a one-second lease as a crashed worker would leave it (10 %).
func runLoadWorker(ctx context.Context, b *Broker, id string, stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		res, err := b.Claim(ctx, ClaimParams{WorkerID: id, Lease: time.Second})
		if err != nil {
			return fmt.Errorf("claim by %s: %w", id, err)
		}
		if res.Job == nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		job := res.Job
		switch roll := rand.Float64(); {
		case roll < 0.55:
			_, err = b.Complete(ctx, CompleteParams{JobID: job.ID, WorkerID: id, Attempt: job.Attempt})
		case roll < 0.80:
			_, err = b.Fail(ctx, FailParams{JobID: job.ID, WorkerID: id, Attempt: job.Attempt, ErrorMessage: "boom", Retryable: true})
		case roll < 0.90:
			_, err = b.Release(ctx, ReleaseParams{JobID: job.ID, WorkerID: id, Attempt: job.Attempt})
		default:
			// Crash: the job stays running until the reaper takes it back.
			continue
		}
		if err != nil && !errors.Is(err, ErrLeaseLost) {
			return fmt.Errorf("report job %s attempt %d by %s: %w", job.ID, job.Attempt, id, err)
		}
	}
}
