package worker

import (
	"context"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/testutil"
)

// skewedClockTransport stamps every request with a Date header from a
// clock that runs skew ahead (or behind, when negative) of the host's.
//
// NOTE: libfaketime cannot skew a Go worker: the Go runtime reads the
// clock through the vDSO, not through libc, so faketime 0.9.10 (Debian
// bookworm) leaves time.Now unchanged. A worker's clock reaches the
// broker only through what the worker sends, so the skewed time travels
// in the one timestamp an HTTP client sends by itself: the Date header.
type skewedClockTransport struct {
	next http.RoundTripper
	skew time.Duration
	sent atomic.Int64
}

func (s *skewedClockTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Date", time.Now().Add(s.skew).UTC().Format(http.TimeFormat))
	s.sent.Add(1)
	return s.next.RoundTrip(req)
}

func TestSkewedWorkerClocksDoNotShortenLeases(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, _ := newTestLogger(t)
	ctx := context.Background()

	// Lease 2 s and 6 s of work stand for a 30 s lease held for 90 s.
	const (
		lease = 2 * time.Second
		work  = 6 * time.Second
	)
	handler := asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		timer := time.NewTimer(work)
		defer timer.Stop()
		select {
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})

	holders := map[string]*skewedClockTransport{}
	for _, skew := range []time.Duration{2 * time.Minute, -2 * time.Minute} {
		cfg := testConfig(t, srv, logger)
		cfg.WorkerID = "skew" + skew.String()
		cfg.LeaseDuration = lease
		cfg.HeartbeatInterval = 500 * time.Millisecond
		cfg.PollInterval = time.Second
		transport := &skewedClockTransport{next: srv.Client.Transport, skew: skew}
		if transport.next == nil {
			transport.next = http.DefaultTransport
		}
		cfg.HTTPClient = &http.Client{Transport: transport}
		holders[cfg.WorkerID] = transport
		startWorker(t, cfg, handler)
	}

	j1 := enqueue(t, srv, "clock", map[string]any{"n": 1}, 3)
	j2 := enqueue(t, srv, "clock", map[string]any{"n": 2}, 3)
	ids := []string{j1.ID, j2.ID}
	testutil.WaitFor(t, 30*time.Second, "both skewed workers to hold a job", func() bool {
		return getJob(t, srv, j1.ID).Status == broker.StatusRunning && getJob(t, srv, j2.ID).Status == broker.StatusRunning
	})
	holderOf := map[string]string{}
	for _, id := range ids {
		job := getJob(t, srv, id)
		if job.ClaimedBy == nil || holders[*job.ClaimedBy] == nil {
			t.Fatalf("job %s held by %s, want one of the skewed workers", id, holderName(job))
		}
		holderOf[id] = *job.ClaimedBy
	}
	if holderOf[j1.ID] == holderOf[j2.ID] {
		t.Fatalf("both jobs held by %s, want one per worker", holderOf[j1.ID])
	}

	// While the jobs run, a third worker claims every 100 ms and never
	// gets one; each lease stays within (Redis now, Redis now + lease].
	for {
		res, err := srv.Broker.Claim(ctx, broker.ClaimParams{WorkerID: "worker-c", Lease: 30 * time.Second})
		if err != nil {
			t.Fatalf("C's claim: %v", err)
		}
		if res.Job != nil {
			t.Fatalf("C was given job %s while the skewed workers held it (attempt %d)", res.Job.ID, res.Job.Attempt)
		}

		now, err := srv.Redis.Time(ctx).Result()
		if err != nil {
			t.Fatalf("Redis TIME: %v", err)
		}
		running := 0
		for _, id := range ids {
			job := getJob(t, srv, id)
			if job.Status != broker.StatusRunning {
				continue
			}
			running++
			if job.ClaimedBy == nil || *job.ClaimedBy != holderOf[id] || job.Attempt != 1 {
				t.Fatalf("job %s: holder %s attempt %d, want %s attempt 1", id, holderName(job), job.Attempt, holderOf[id])
			}
			left := job.LeaseExpiresAt.Sub(now)
			// The read of the job and of TIME are two round trips apart, so
			// allow a little slack above the lease.
			if left <= 0 || left > lease+100*time.Millisecond {
				t.Fatalf("job %s: lease expires %s after Redis now, want within (0, %s]", id, left, lease)
			}
		}
		if snap := readPause(t, srv); snap.Metrics.StaleRunning != 0 {
			t.Fatalf("staleRunning %d while the skewed workers heartbeat, want 0", snap.Metrics.StaleRunning)
		}
		if running == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	for _, id := range ids {
		job := waitStatus(t, srv, id, broker.StatusSucceeded, 30*time.Second)
		if job.Attempt != 1 || job.ClaimedBy == nil || *job.ClaimedBy != holderOf[id] {
			t.Errorf("job %s: attempt %d holder %s, want attempt 1 by %s", id, job.Attempt, holderName(job), holderOf[id])
		}
		if kinds := eventKindsOf(t, srv, id); slices.Contains(kinds, "lease_lost") || len(kinds) != 2 {
			t.Errorf("job %s events %v, want [claimed succeeded]", id, kinds)
		}
	}
	for id, transport := range holders {
		// Claims and at least eight heartbeats went through the skewed
		// clock.
		if n := transport.sent.Load(); n < 10 {
			t.Errorf("worker %s sent %d requests, want at least 10 with the skewed Date header", id, n)
		}
	}
}
