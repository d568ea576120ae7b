package worker

import (
	"context"
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

// claimCounter counts claim requests, so a test can wait until a long poll
// is open.
type claimCounter struct {
	next   http.RoundTripper
	claims atomic.Int64
}

func (c *claimCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/claim") {
		c.claims.Add(1)
	}
	return c.next.RoundTrip(req)
}

// A job that arrives just as an idle worker stops may be granted to the
// claim the worker is cancelling. The response is lost, so without the
// release at the end of Shutdown the job stays running under a worker that
// is gone until its lease expires, and with one attempt it is
// dead-lettered.
func TestShutdownDuringClaimLeavesNoJobBehind(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, _ := newTestLogger(t)
	ctx := context.Background()

	for round := range 40 {
		counter := &claimCounter{next: srv.Client.Transport}
		cfg := testConfig(t, srv, logger)
		cfg.HTTPClient = &http.Client{Transport: counter}
		cfg.PollInterval = 5 * time.Second
		s, err := NewServer(cfg)
		if err != nil {
			t.Fatalf("NewServer: %v", err)
		}
		if err := s.Start(ctx, asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })); err != nil {
			t.Fatalf("Start: %v", err)
		}
		testutil.WaitFor(t, 10*time.Second, "the worker's first claim", func() bool {
			return counter.claims.Load() > 0
		})
		// These pauses only place the enqueue and the shutdown inside the
		// race window at varying offsets. The checks below do not depend
		// on them.
		time.Sleep(30 * time.Millisecond)
		job := enqueue(t, srv, "arrives-at-shutdown", map[string]any{}, 1)
		time.Sleep(time.Duration(round%10) * 200 * time.Microsecond)

		stopCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		if err := s.Shutdown(stopCtx); err != nil {
			t.Fatalf("round %d: Shutdown: %v", round, err)
		}
		cancel()

		// The job ran to the end, or is queued for the next worker. A job
		// still running belongs to the stopped worker.
		got := getJob(t, srv, job.ID)
		if got.Status != broker.StatusSucceeded && got.Status != broker.StatusQueued {
			t.Fatalf("round %d: job %s is %s, held by the stopped worker %s", round, job.ID, got.Status, holderName(got))
		}
		if got.Status == broker.StatusQueued {
			if got.Attempt != 0 {
				t.Errorf("round %d: queued job %s at attempt %d, want 0 (a release gives the attempt back)", round, job.ID, got.Attempt)
			}
			res, err := srv.Broker.Claim(ctx, broker.ClaimParams{WorkerID: "cleanup"})
			if err != nil || res.Job == nil {
				t.Fatalf("round %d: claim the queued job: %+v, %v", round, res, err)
			}
			if _, err := srv.Broker.Complete(ctx, broker.CompleteParams{JobID: res.Job.ID, WorkerID: "cleanup"}); err != nil {
				t.Fatalf("round %d: complete: %v", round, err)
			}
		}
	}

	// A grant that reached Redis only after the worker's release would
	// show up here as a running job of an earlier round.
	running, err := srv.Broker.RunningJobs(ctx, 10)
	if err != nil {
		t.Fatalf("RunningJobs: %v", err)
	}
	for _, job := range running {
		t.Errorf("job %s is still running, held by %s", job.ID, holderName(job))
	}
}

func TestShutdownReleasesJobHeldUnderItsID(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, logs := newTestLogger(t)
	ctx := context.Background()

	// The worker claims only a type that is never enqueued, and the test
	// claims a job under the worker's id, as a claim whose response was
	// lost would.
	cfg := testConfig(t, srv, logger)
	cfg.AllowedTypes = []string{"never-enqueued"}
	s := startWorker(t, cfg, asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	job := enqueue(t, srv, "ghost", map[string]any{}, 1)
	res, err := srv.Broker.Claim(ctx, broker.ClaimParams{WorkerID: cfg.WorkerID, AllowedTypes: []string{"ghost"}})
	if err != nil || res.Job == nil || res.Job.ID != job.ID {
		t.Fatalf("claim under the worker's id = %+v, %v; want job %s", res, err, job.ID)
	}
	other := enqueue(t, srv, "ghost", map[string]any{}, 1)
	if _, err := srv.Broker.Claim(ctx, broker.ClaimParams{WorkerID: "another-worker", AllowedTypes: []string{"ghost"}}); err != nil {
		t.Fatalf("claim by another worker: %v", err)
	}

	stopCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.Shutdown(stopCtx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	got := getJob(t, srv, job.ID)
	if got.Status != broker.StatusQueued || got.Attempt != 0 || got.ClaimedBy != nil {
		t.Errorf("job after shutdown: status %s attempt %d holder %s, want queued, 0, none", got.Status, got.Attempt, holderName(got))
	}
	if kinds := eventKindsOf(t, srv, job.ID); !slices.Equal(kinds, []string{"claimed", "released"}) {
		t.Errorf("events = %v, want [claimed released]", kinds)
	}
	if otherJob := getJob(t, srv, other.ID); otherJob.Status != broker.StatusRunning || holderName(otherJob) != "another-worker" {
		t.Errorf("other worker's job: status %s holder %s, want running under another-worker", otherJob.Status, holderName(otherJob))
	}

	records := logs.records("released jobs granted to claims cancelled at shutdown")
	if len(records) != 1 {
		t.Fatalf("release log records = %d, want 1", len(records))
	}
	ids, _ := records[0]["job_ids"].([]any)
	if len(ids) != 1 || ids[0] != job.ID {
		t.Errorf("logged job_ids = %v, want [%s]", records[0]["job_ids"], job.ID)
	}
}

func TestClientReleaseWorkerEscapesID(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	ctx := context.Background()
	client, err := NewClient(srv.URL, srv.WorkerToken, srv.Client)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}

	// A space and a "%" must reach the broker as they are, escaped once.
	const workerID = "host a%1"
	job := enqueue(t, srv, "escaped", map[string]any{}, 1)
	if res, err := srv.Broker.Claim(ctx, broker.ClaimParams{WorkerID: workerID}); err != nil || res.Job == nil {
		t.Fatalf("claim as %q = %+v, %v; want job %s", workerID, res, err, job.ID)
	}

	released, err := client.ReleaseWorker(ctx, workerID)
	if err != nil {
		t.Fatalf("ReleaseWorker: %v", err)
	}
	if !slices.Equal(released, []string{job.ID}) {
		t.Errorf("released = %v, want [%s]", released, job.ID)
	}
	if got := getJob(t, srv, job.ID); got.Status != broker.StatusQueued {
		t.Errorf("job status = %s, want queued", got.Status)
	}

	none, err := client.ReleaseWorker(ctx, "never-seen")
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("ReleaseWorker of an unknown id = %v, %v; want an empty list", none, err)
	}
}
