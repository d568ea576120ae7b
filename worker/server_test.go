package worker

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/testutil"
)

func TestPausedClaimIdlesAndLogsOncePerVersion(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, logs := newTestLogger(t)
	first := setPause(t, srv, "pause", "drain", "upgrade step one")

	transport := &countingTransport{next: srv.Client.Transport}
	if transport.next == nil {
		transport.next = http.DefaultTransport
	}
	cfg := testConfig(t, srv, logger)
	cfg.PollInterval = time.Second
	cfg.HTTPClient = &http.Client{Transport: transport}
	var ran atomic.Int32
	startWorker(t, cfg, asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		ran.Add(1)
		return nil
	}))
	job := enqueue(t, srv, "paused:job", map[string]any{}, 3)

	testutil.WaitFor(t, 15*time.Second, "three paused claims", func() bool {
		return transport.count("/api/queue/jobs/claim") >= 3
	})
	second := setPause(t, srv, "pause", "drain", "upgrade step two")
	claimsBefore := transport.count("/api/queue/jobs/claim")
	testutil.WaitFor(t, 15*time.Second, "two claims after the second pause", func() bool {
		return transport.count("/api/queue/jobs/claim") >= claimsBefore+2
	})

	paused := logs.records("workers paused; not claiming")
	if len(paused) != 2 {
		t.Fatalf("got %d %q lines, want 2 (one per pause version)", len(paused), "workers paused; not claiming")
	}
	for i, want := range []struct {
		version int64
		reason  string
	}{{first.Version, "upgrade step one"}, {second.Version, "upgrade step two"}} {
		if got := int64(paused[i]["version"].(float64)); got != want.version {
			t.Errorf("line %d: version %d, want %d", i, got, want.version)
		}
		if got := paused[i]["reason"]; got != want.reason {
			t.Errorf("line %d: reason %v, want %q", i, got, want.reason)
		}
		if got := paused[i]["mode"]; got != "drain" {
			t.Errorf("line %d: mode %v, want drain", i, got)
		}
		if got := paused[i]["level"]; got != "INFO" {
			t.Errorf("line %d: level %v, want INFO", i, got)
		}
	}
	if failures := logs.records("claim failed; retrying"); len(failures) != 0 {
		t.Errorf("a paused claim was logged as a failure: %v", failures)
	}
	if ran.Load() != 0 {
		t.Errorf("handler ran %d times while paused, want 0", ran.Load())
	}
	if got := getJob(t, srv, job.ID); got.Status != broker.StatusQueued || got.Attempt != 0 {
		t.Errorf("job after paused claims: status %s attempt %d, want queued attempt 0", got.Status, got.Attempt)
	}
}

func TestResumeWakesIdleWorkerPromptly(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, logs := newTestLogger(t)
	setPause(t, srv, "pause", "drain", "before resume test")

	cfg := testConfig(t, srv, logger)
	// The broker holds a paused claim for the whole long-poll wait, so
	// the worker logs the pause only when its first claim returns.
	cfg.PollInterval = 5 * time.Second
	cfg.PausePollInterval = 5 * time.Second
	started := make(chan time.Time, 1)
	startWorker(t, cfg, asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		started <- time.Now()
		return nil
	}))
	job := enqueue(t, srv, "resume:job", map[string]any{}, 3)
	testutil.WaitFor(t, 3*cfg.PollInterval, "the worker to see the pause", func() bool {
		return len(logs.records("workers paused; not claiming")) == 1
	})

	// The worker may start the job before the resume's response reaches
	// the test, so the latency counts from the request.
	resumedAt := time.Now()
	resumed := setPause(t, srv, "resume", "", "resume test")
	var startedAt time.Time
	select {
	case startedAt = <-started:
	case <-time.After(cfg.PollInterval):
		t.Fatalf("no job started within the long-poll wait of %s after the resume", cfg.PollInterval)
	}
	latency := startedAt.Sub(resumedAt)
	t.Logf("resume request to handler start: %s", latency)
	if latency >= cfg.PollInterval/2 {
		t.Errorf("resume to handler start took %s, want well below the long-poll wait %s", latency, cfg.PollInterval)
	}
	waitStatus(t, srv, job.ID, broker.StatusSucceeded, 10*time.Second)

	cleared := logs.records("pause cleared")
	if len(cleared) != 1 {
		t.Fatalf("got %d %q lines, want 1", len(cleared), "pause cleared")
	}
	if got := int64(cleared[0]["version"].(float64)); got != resumed.Version {
		t.Errorf("pause cleared version %d, want %d", got, resumed.Version)
	}
	if got := cleared[0]["source"]; got != sourceClaim {
		t.Errorf("pause cleared source %v, want %s", got, sourceClaim)
	}
}

func TestQuiesceParksJobAndKeepsLease(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, logs := newTestLogger(t)
	cfg := testConfig(t, srv, logger)
	cfg.LeaseDuration = time.Second
	cfg.HeartbeatInterval = 300 * time.Millisecond

	started := make(chan struct{})
	var parkedReturns atomic.Int32
	finish := make(chan struct{})
	startWorker(t, cfg, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		close(started)
		for {
			before := time.Now()
			if err := Checkpoint(ctx); err != nil {
				return err
			}
			if time.Since(before) > 500*time.Millisecond {
				parkedReturns.Add(1)
			}
			select {
			case <-finish:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	job := enqueue(t, srv, "quiesce:job", map[string]any{}, 3)
	<-started

	setPause(t, srv, "pause", "quiesce", "quiesce test")
	testutil.WaitFor(t, 10*time.Second, "the broker to count the job as quiesced", func() bool {
		return readPause(t, srv).Metrics.Quiesced == 1
	})

	// Watch for three lease durations: a parked job keeps its lease, so
	// it never turns stale and stays running with its first attempt.
	watchUntil := time.Now().Add(3 * cfg.LeaseDuration)
	for time.Now().Before(watchUntil) {
		snap := readPause(t, srv)
		if snap.Metrics.StaleRunning != 0 || snap.Metrics.Running != 1 || snap.Metrics.Quiesced != 1 {
			t.Fatalf("while parked: running %d stale %d quiesced %d, want 1, 0, 1",
				snap.Metrics.Running, snap.Metrics.StaleRunning, snap.Metrics.Quiesced)
		}
		got := getJob(t, srv, job.ID)
		if got.Status != broker.StatusRunning || got.Attempt != 1 || !got.Quiesced {
			t.Fatalf("while parked: status %s attempt %d quiesced %v, want running, 1, true", got.Status, got.Attempt, got.Quiesced)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if parkedReturns.Load() != 0 {
		t.Fatalf("Checkpoint returned while quiesced")
	}

	resumed := setPause(t, srv, "resume", "", "quiesce test done")
	testutil.WaitFor(t, 10*time.Second, "Checkpoint to return after the resume", func() bool {
		return parkedReturns.Load() == 1
	})
	close(finish)
	done := waitStatus(t, srv, job.ID, broker.StatusSucceeded, 10*time.Second)
	if done.Attempt != 1 {
		t.Errorf("attempt after the resume %d, want 1", done.Attempt)
	}
	if snap := readPause(t, srv); snap.Metrics.Quiesced != 0 {
		t.Errorf("quiesced after the job finished %d, want 0", snap.Metrics.Quiesced)
	}

	cleared := logs.records("pause cleared")
	if len(cleared) != 1 {
		t.Fatalf("got %d %q lines, want 1", len(cleared), "pause cleared")
	}
	if got := int64(cleared[0]["version"].(float64)); got != resumed.Version {
		t.Errorf("pause cleared version %d, want %d", got, resumed.Version)
	}
	// The only slot was busy with the job, so a heartbeat saw it first.
	if got := cleared[0]["source"]; got != sourceHeartbeat {
		t.Errorf("pause cleared source %v, want %s", got, sourceHeartbeat)
	}
}

func TestCheckpointReturnsAtOnceInDrain(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, _ := newTestLogger(t)
	cfg := testConfig(t, srv, logger)
	cfg.LeaseDuration = time.Second
	cfg.HeartbeatInterval = 200 * time.Millisecond

	started := make(chan struct{})
	proceed := make(chan struct{})
	checkpointErr := make(chan error, 1)
	s := startWorker(t, cfg, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		close(started)
		<-proceed
		checkpointErr <- Checkpoint(ctx)
		return nil
	}))
	job := enqueue(t, srv, "drain:job", map[string]any{}, 3)
	<-started

	paused := setPause(t, srv, "pause", "drain", "drain test")
	testutil.WaitFor(t, 10*time.Second, "a heartbeat to bring the pause", func() bool {
		state, _ := s.tracker.current()
		return state.Version >= paused.Version
	})
	close(proceed)
	select {
	case err := <-checkpointErr:
		if err != nil {
			t.Fatalf("Checkpoint in drain mode: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Checkpoint blocked in drain mode")
	}
	waitStatus(t, srv, job.ID, broker.StatusSucceeded, 10*time.Second)
}

func TestCancelStopsHandler(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, _ := newTestLogger(t)
	cfg := testConfig(t, srv, logger)
	cfg.LeaseDuration = 2 * time.Second

	started := make(chan struct{})
	cause := make(chan error, 1)
	startWorker(t, cfg, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		close(started)
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	}))
	job := enqueue(t, srv, "cancel:job", map[string]any{}, 3)
	<-started

	srv.DoJSON(t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/cancel", srv.OperatorToken,
		map[string]any{"reason": "operator changed plans"}, http.StatusOK, nil)
	select {
	case err := <-cause:
		if !errors.Is(err, ErrCancelRequested) {
			t.Errorf("handler context cause %v, want %v", err, ErrCancelRequested)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler context was not cancelled after the cancel request")
	}
	done := waitStatus(t, srv, job.ID, broker.StatusCancelled, 10*time.Second)
	if done.Attempt != 1 {
		t.Errorf("attempt %d, want 1", done.Attempt)
	}
}

func TestShutdownReleasesJobWithCheckpoint(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, _ := newTestLogger(t)
	cfg := testConfig(t, srv, logger)
	cfg.ShutdownTimeout = 200 * time.Millisecond

	type progress struct {
		Step int `json:"step"`
	}
	saved := make(chan struct{})
	cause := make(chan error, 1)
	first, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	err = first.Start(context.Background(), asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		if err := SaveCheckpoint(ctx, progress{Step: 3}); err != nil {
			return err
		}
		close(saved)
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	}))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	job := enqueue(t, srv, "shutdown:job", map[string]any{}, 3)
	<-saved

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-cause; !errors.Is(err, ErrShuttingDown) {
		t.Errorf("handler context cause %v, want %v", err, ErrShuttingDown)
	}
	released := getJob(t, srv, job.ID)
	if released.Status != broker.StatusQueued || released.Attempt != 0 {
		t.Fatalf("after shutdown: status %s attempt %d, want queued attempt 0", released.Status, released.Attempt)
	}
	if string(released.Checkpoint) != `{"step":3}` {
		t.Errorf("released checkpoint %s, want {\"step\":3}", released.Checkpoint)
	}

	// A second worker resumes from the checkpoint with the same attempt.
	resumedFrom := make(chan progress, 1)
	secondCfg := testConfig(t, srv, logger)
	startWorker(t, secondCfg, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		var p progress
		if ok, err := LoadCheckpoint(ctx, &p); err != nil || !ok {
			return fmt.Errorf("LoadCheckpoint: ok %v, error %v", ok, err)
		}
		resumedFrom <- p
		return nil
	}))
	done := waitStatus(t, srv, job.ID, broker.StatusSucceeded, 15*time.Second)
	if p := <-resumedFrom; p.Step != 3 {
		t.Errorf("second worker resumed from step %d, want 3", p.Step)
	}
	if done.Attempt != 1 {
		t.Errorf("final attempt %d, want 1", done.Attempt)
	}
	if done.ClaimedBy == nil || *done.ClaimedBy != secondCfg.WorkerID {
		t.Errorf("finished by %v, want %s", done.ClaimedBy, secondCfg.WorkerID)
	}
}

func TestShutdownWaitsForRunningHandler(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, _ := newTestLogger(t)
	cfg := testConfig(t, srv, logger)
	cfg.ShutdownTimeout = 20 * time.Second

	started := make(chan struct{})
	finish := make(chan struct{})
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := s.Start(context.Background(), asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		close(started)
		<-finish
		return ctx.Err()
	})); err != nil {
		t.Fatalf("Start: %v", err)
	}
	job := enqueue(t, srv, "graceful:job", map[string]any{}, 3)
	<-started

	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- s.Shutdown(context.Background()) }()
	select {
	case err := <-shutdownErr:
		t.Fatalf("Shutdown returned %v before the handler finished", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(finish)
	if err := <-shutdownErr; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := getJob(t, srv, job.ID); got.Status != broker.StatusSucceeded {
		t.Errorf("job after a graceful shutdown: %s, want succeeded", got.Status)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v, want nil", err)
	}
}

func TestServeMuxRoutesAndOutcomes(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, _ := newTestLogger(t)
	cfg := testConfig(t, srv, logger)
	cfg.Concurrency = 4

	type seen struct {
		pattern   string
		jobType   string
		jobID     string
		asynqID   bool
		attempt   int
		payload   string
		hasWriter bool
	}
	calls := make(chan seen, 16)
	record := func(pattern string) func(context.Context, *asynq.Task) {
		return func(ctx context.Context, task *asynq.Task) {
			id, _ := JobID(ctx)
			attempt, _ := Attempt(ctx)
			_, asynqOK := asynq.GetTaskID(ctx)
			calls <- seen{pattern, task.Type(), id, asynqOK, attempt, string(task.Payload()), task.ResultWriter() != nil}
		}
	}
	mux := asynq.NewServeMux()
	mux.HandleFunc("email:", func(ctx context.Context, task *asynq.Task) error {
		record("email:")(ctx, task)
		if err := AppendEvent(ctx, "info", "email sent", map[string]any{"provider": "test"}); err != nil {
			return err
		}
		return SetResult(ctx, "sent")
	})
	mux.HandleFunc("report:", func(ctx context.Context, task *asynq.Task) error {
		record("report:")(ctx, task)
		return fmt.Errorf("report template missing: %w", asynq.SkipRetry)
	})
	mux.HandleFunc("import:", func(ctx context.Context, task *asynq.Task) error {
		record("import:")(ctx, task)
		return Permanent(errors.New("import file is empty"))
	})
	mux.HandleFunc("crash:", func(ctx context.Context, task *asynq.Task) error {
		record("crash:")(ctx, task)
		panic("index out of range in test handler")
	})
	mux.HandleFunc("flaky:", func(ctx context.Context, task *asynq.Task) error {
		record("flaky:")(ctx, task)
		return errors.New("upstream timed out")
	})
	startWorker(t, cfg, mux)

	email := enqueue(t, srv, "email:welcome", map[string]any{"to": "a@example.test"}, 3)
	report := enqueue(t, srv, "report:monthly", map[string]any{}, 3)
	imported := enqueue(t, srv, "import:csv", map[string]any{}, 3)
	crash := enqueue(t, srv, "crash:now", map[string]any{}, 1)
	flaky := enqueue(t, srv, "flaky:call", map[string]any{}, 2)

	done := waitStatus(t, srv, email.ID, broker.StatusSucceeded, 15*time.Second)
	if done.ResultSummary == nil || *done.ResultSummary != "sent" {
		t.Errorf("email resultSummary %v, want sent", done.ResultSummary)
	}
	events, _, err := srv.Broker.JobEvents(context.Background(), email.ID, "", 100)
	if err != nil {
		t.Fatalf("JobEvents: %v", err)
	}
	var sentEvents int
	for _, e := range events {
		if e.Message == "email sent" && e.Level == "info" && string(e.Payload) == `{"provider":"test"}` {
			sentEvents++
		}
	}
	if sentEvents != 1 {
		t.Errorf("email job has %d %q events, want 1: %+v", sentEvents, "email sent", events)
	}

	failed := waitStatus(t, srv, report.ID, broker.StatusFailed, 15*time.Second)
	if failed.Attempt != 1 || failed.ErrorMessage == nil || !strings.Contains(*failed.ErrorMessage, "report template missing") {
		t.Errorf("SkipRetry job: attempt %d error %v, want attempt 1 and the handler's message", failed.Attempt, failed.ErrorMessage)
	}

	permanent := waitStatus(t, srv, imported.ID, broker.StatusFailed, 15*time.Second)
	if permanent.ErrorMessage == nil || *permanent.ErrorMessage != "import file is empty" {
		t.Errorf("Permanent job error %v, want exactly %q", permanent.ErrorMessage, "import file is empty")
	}

	// A retryable failure with no attempts left is dead-lettered, which
	// distinguishes it from the non-retryable failures above.
	crashed := waitStatus(t, srv, crash.ID, broker.StatusDeadLetter, 15*time.Second)
	if crashed.ErrorMessage == nil || !strings.Contains(*crashed.ErrorMessage, "panic: index out of range in test handler") {
		t.Errorf("panicking job error %v, want the panic message", crashed.ErrorMessage)
	}

	retried := waitStatus(t, srv, flaky.ID, broker.StatusDeadLetter, 20*time.Second)
	if retried.Attempt != 2 {
		t.Errorf("retryable job attempts %d, want 2 (retried once)", retried.Attempt)
	}

	close(calls)
	count := map[string]int{}
	for c := range calls {
		count[c.pattern]++
		if !strings.HasPrefix(c.jobType, c.pattern) {
			t.Errorf("type %s reached the %s handler", c.jobType, c.pattern)
		}
		if c.jobID == "" || c.attempt < 1 {
			t.Errorf("%s: JobID %q Attempt %d, want both set", c.jobType, c.jobID, c.attempt)
		}
		if c.asynqID {
			t.Errorf("%s: asynq.GetTaskID found an id in a worker context", c.jobType)
		}
		if c.hasWriter {
			t.Errorf("%s: ResultWriter is not nil", c.jobType)
		}
		if c.jobType == "email:welcome" && c.payload != `{"to":"a@example.test"}` {
			t.Errorf("email payload %s, want the enqueued JSON", c.payload)
		}
	}
	want := map[string]int{"email:": 1, "report:": 1, "import:": 1, "crash:": 1, "flaky:": 2}
	for pattern, n := range want {
		if count[pattern] != n {
			t.Errorf("%s handler ran %d times, want %d", pattern, count[pattern], n)
		}
	}
}

func TestLostLeaseCancelsHandlerWithoutReport(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, logs := newTestLogger(t)
	cfg := testConfig(t, srv, logger)
	cfg.LeaseDuration = time.Second
	cfg.HeartbeatInterval = 300 * time.Millisecond

	// The recovered job runs again on the same worker, so the handler
	// signals without blocking.
	started := make(chan struct{}, 1)
	cause := make(chan error, 1)
	startWorker(t, cfg, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		select {
		case cause <- context.Cause(ctx):
		default:
		}
		return nil
	}))
	job := enqueue(t, srv, "lease:job", map[string]any{}, 3)
	<-started

	// Recovering a running job needs an expired lease, so the lease is
	// shortened in Redis to make the operator's recover possible now.
	// A heartbeat may extend the lease again between the two steps, so
	// they repeat until the recover is accepted.
	key := "{" + srv.Namespace + "}:inflight"
	testutil.WaitFor(t, 10*time.Second, "the recover to be accepted", func() bool {
		if err := srv.Redis.ZAdd(context.Background(), key, redis.Z{Score: 0, Member: job.ID}).Err(); err != nil {
			t.Fatalf("expire lease: %v", err)
		}
		status, _ := srv.Do(t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/recover", srv.OperatorToken, map[string]any{"mode": "requeue"})
		return status == http.StatusOK
	})

	select {
	case err := <-cause:
		if !errors.Is(err, ErrLeaseLost) {
			t.Errorf("handler context cause %v, want ErrLeaseLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler context was not cancelled after the lease was lost")
	}
	testutil.WaitFor(t, 5*time.Second, "the lost lease to be logged", func() bool {
		return len(logs.records("job not reported: the lease was lost")) == 1
	})
	if got := len(logs.records("job completed")); got != 0 {
		t.Errorf("a job whose lease was lost was completed %d times", got)
	}
}

func TestClaimRetriesServerErrorsWithBackoff(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, logs := newTestLogger(t)

	// A proxy in front of the broker returns 503 for the first three
	// claims, as a load balancer does while the broker restarts.
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var claims atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/queue/jobs/claim" && claims.Add(1) <= 3 {
			http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	cfg := testConfig(t, srv, logger)
	cfg.BrokerURL = front.URL
	cfg.HTTPClient = front.Client()
	startWorker(t, cfg, asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	job := enqueue(t, srv, "retry:job", map[string]any{}, 3)
	waitStatus(t, srv, job.ID, broker.StatusSucceeded, 20*time.Second)

	failures := logs.records("claim failed; retrying")
	// Failures 1 and 2 are logged; the 3rd is not a power of two and has
	// the same error text.
	if len(failures) != 2 {
		t.Fatalf("got %d %q lines for 3 failures, want 2", len(failures), "claim failed; retrying")
	}
	for i, rec := range failures {
		if got := int(rec["failures"].(float64)); got != i+1 {
			t.Errorf("line %d: failures %d, want %d", i, got, i+1)
		}
		if !strings.Contains(fmt.Sprint(rec["error"]), "503") {
			t.Errorf("line %d: error %v, want the 503", i, rec["error"])
		}
	}
	if again := logs.records("claim works again"); len(again) != 1 || int(again[0]["failures"].(float64)) != 3 {
		t.Errorf("recovery lines %v, want one with failures 3", again)
	}
}

func TestCAFileTrustsBrokerCertificate(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{TLS: true})
	logger, logs := newTestLogger(t)

	// Read the test server's self-signed certificate to write the CA file
	// an operator would distribute. Skipping verification is only for
	// this read.
	host := strings.TrimPrefix(srv.URL, "https://")
	conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial %s: %v", host, err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o600); err != nil {
		t.Fatalf("write CA file: %v", err)
	}

	untrusted := testConfig(t, srv, logger)
	untrusted.HTTPClient = nil
	startWorker(t, untrusted, asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	testutil.WaitFor(t, 10*time.Second, "a claim failure without the CA file", func() bool {
		for _, rec := range logs.records("claim failed; retrying") {
			if strings.Contains(fmt.Sprint(rec["error"]), "certificate") {
				return true
			}
		}
		return false
	})

	trusted := testConfig(t, srv, logger)
	trusted.HTTPClient = nil
	trusted.CAFile = caFile
	startWorker(t, trusted, asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
	job := enqueue(t, srv, "tls:job", map[string]any{}, 3)
	done := waitStatus(t, srv, job.ID, broker.StatusSucceeded, 15*time.Second)
	if done.ClaimedBy == nil || *done.ClaimedBy != trusted.WorkerID {
		t.Errorf("job finished by %v, want the worker with the CA file %s", done.ClaimedBy, trusted.WorkerID)
	}
}

func TestRetryResumesFromLastCheckpoint(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	logger, _ := newTestLogger(t)
	cfg := testConfig(t, srv, logger)
	cfg.LeaseDuration = 60 * time.Second

	type progress struct {
		Step int `json:"step"`
	}
	loaded := make(chan progress, 2)
	startWorker(t, cfg, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		var p progress
		if _, err := LoadCheckpoint(ctx, &p); err != nil {
			return Permanent(err)
		}
		loaded <- p
		if attempt, _ := Attempt(ctx); attempt > 1 {
			return nil
		}
		// The 20 s heartbeat interval has not come round yet, so only
		// the report of the failure can carry this checkpoint.
		if err := SaveCheckpoint(ctx, progress{Step: 7}); err != nil {
			return Permanent(err)
		}
		return errors.New("transient failure after step 7")
	}))
	job := enqueue(t, srv, "retry:checkpoint", map[string]any{}, 2)

	done := waitStatus(t, srv, job.ID, broker.StatusSucceeded, 20*time.Second)
	if done.Attempt != 2 {
		t.Errorf("attempt %d, want 2", done.Attempt)
	}
	if first := <-loaded; first.Step != 0 {
		t.Errorf("first attempt loaded step %d, want none", first.Step)
	}
	if second := <-loaded; second.Step != 7 {
		t.Errorf("second attempt loaded step %d, want 7", second.Step)
	}
}
