package worker

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/testutil"
)

// heartbeatBlocker fails every heartbeat request while blocked is set, as
// a network partition between one worker and the broker would. It also
// counts the worker's final reports.
type heartbeatBlocker struct {
	next    http.RoundTripper
	blocked atomic.Bool
	dropped atomic.Int64
	reports atomic.Int64
}

func (h *heartbeatBlocker) RoundTrip(req *http.Request) (*http.Response, error) {
	if h.blocked.Load() && strings.HasSuffix(req.URL.Path, "/heartbeat") {
		h.dropped.Add(1)
		return nil, errors.New("heartbeat dropped by the test")
	}
	for _, report := range []string{"/complete", "/fail", "/release", "/cancel/ack"} {
		if strings.HasSuffix(req.URL.Path, report) {
			h.reports.Add(1)
		}
	}
	return h.next.RoundTrip(req)
}

func TestReapedWorkerStopsAndReportsNothing(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, _ := newTestLogger(t)
	ctx := context.Background()

	blocker := &heartbeatBlocker{next: srv.Client.Transport}
	if blocker.next == nil {
		blocker.next = http.DefaultTransport
	}
	blocker.blocked.Store(true)
	cfg := testConfig(t, srv, logger)
	cfg.LeaseDuration = 2 * time.Second
	cfg.HeartbeatInterval = 500 * time.Millisecond
	cfg.HTTPClient = &http.Client{Transport: blocker}

	cause := make(chan error, 1)
	a := startWorker(t, cfg, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		<-ctx.Done()
		cause <- context.Cause(ctx)
		// A handler that returns success after losing its lease must not
		// complete the job.
		return nil
	}))
	job := enqueue(t, srv, "partitioned", map[string]any{}, 3)

	// With its heartbeats cut off, A's lease expires and the reaper
	// requeues the job; B claims it.
	waitStatus(t, srv, job.ID, broker.StatusRunning, 30*time.Second)
	requeued := waitStatus(t, srv, job.ID, broker.StatusQueued, 30*time.Second)
	if requeued.Attempt != 1 {
		t.Fatalf("requeued job attempt %d, want 1", requeued.Attempt)
	}
	res, err := srv.Broker.Claim(ctx, broker.ClaimParams{WorkerID: "worker-b", Lease: 30 * time.Second})
	if err != nil || res.Job == nil || res.Job.ID != job.ID || res.Job.Attempt != 2 {
		t.Fatalf("B's claim = %+v, %v; want job %s attempt 2", res, err, job.ID)
	}

	// The partition heals: A's next heartbeat gets lease_lost and its
	// handler is cancelled with ErrLeaseLost.
	blocker.blocked.Store(false)
	select {
	case got := <-cause:
		if !errors.Is(got, ErrLeaseLost) {
			t.Fatalf("handler context cause %v, want ErrLeaseLost", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("A's handler was not cancelled within 30s of the partition healing")
	}
	if blocker.dropped.Load() == 0 {
		t.Fatal("no heartbeat was dropped, so the test did not cut A off")
	}
	// A's handler returned success, but A saw that it lost the lease, so it
	// sends no report at all.
	testutil.WaitFor(t, 10*time.Second, "A's run to end", func() bool {
		return len(a.activeRuns()) == 0
	})
	if n := blocker.reports.Load(); n != 0 {
		t.Errorf("A sent %d final reports after losing its lease, want 0", n)
	}

	done, err := srv.Broker.Complete(ctx, broker.CompleteParams{JobID: job.ID, WorkerID: "worker-b", Attempt: 2})
	if err != nil {
		t.Fatalf("B's complete: %v", err)
	}
	if done.Status != broker.StatusSucceeded || done.ClaimedBy == nil || *done.ClaimedBy != "worker-b" {
		t.Fatalf("B's complete: status %s holder %s, want succeeded by worker-b", done.Status, holderName(done))
	}
	kinds := eventKindsOf(t, srv, job.ID)
	succeeded := 0
	for _, k := range kinds {
		if k == "succeeded" {
			succeeded++
		}
	}
	if succeeded != 1 || !slices.Contains(kinds, "lease_lost") {
		t.Errorf("events %v, want one lost lease and exactly one success", kinds)
	}
}
