package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

func TestConfigValidationNamesField(t *testing.T) {
	t.Parallel()
	valid := Config{BrokerURL: "http://127.0.0.1:8080"}
	cases := []struct {
		name   string
		change func(*Config)
		field  string
	}{
		{"missing URL", func(c *Config) { c.BrokerURL = "" }, "BrokerURL"},
		{"relative URL", func(c *Config) { c.BrokerURL = "/api" }, "BrokerURL"},
		{"ftp URL", func(c *Config) { c.BrokerURL = "ftp://host" }, "BrokerURL"},
		{"negative concurrency", func(c *Config) { c.Concurrency = -1 }, "Concurrency"},
		{"short lease", func(c *Config) { c.LeaseDuration = 500 * time.Millisecond }, "LeaseDuration"},
		{"fractional lease", func(c *Config) { c.LeaseDuration = 1500 * time.Millisecond }, "LeaseDuration"},
		{"long lease", func(c *Config) { c.LeaseDuration = 2 * time.Hour }, "LeaseDuration"},
		{"heartbeat not below lease", func(c *Config) { c.HeartbeatInterval = time.Minute }, "HeartbeatInterval"},
		{"long poll", func(c *Config) { c.PollInterval = time.Minute }, "PollInterval"},
		{"negative pause poll", func(c *Config) { c.PausePollInterval = -time.Second }, "PausePollInterval"},
		{"negative shutdown timeout", func(c *Config) { c.ShutdownTimeout = -time.Second }, "ShutdownTimeout"},
		{"CAFile and HTTPClient", func(c *Config) { c.CAFile = "ca.pem"; c.HTTPClient = &http.Client{} }, "CAFile"},
		{"empty type", func(c *Config) { c.AllowedTypes = []string{"a", ""} }, "AllowedTypes[1]"},
		{"empty capability", func(c *Config) { c.Capabilities = []string{""} }, "Capabilities[0]"},
		{"missing CA file", func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }, "CAFile"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tc.change(&cfg)
			_, err := NewServer(cfg)
			if err == nil {
				t.Fatalf("NewServer accepted %+v", cfg)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	s, err := NewServer(Config{BrokerURL: "http://127.0.0.1:8080", LeaseDuration: 30 * time.Second})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	cfg := s.Config()
	if cfg.HeartbeatInterval != 10*time.Second {
		t.Errorf("HeartbeatInterval %s, want a third of the 30s lease", cfg.HeartbeatInterval)
	}
	if cfg.Concurrency != DefaultConcurrency || cfg.PollInterval != DefaultPollInterval ||
		cfg.PausePollInterval != DefaultPausePollInterval || cfg.ShutdownTimeout != DefaultShutdownTimeout {
		t.Errorf("defaults not filled in: %+v", cfg)
	}
	if !strings.Contains(cfg.WorkerID, "-") {
		t.Errorf("default WorkerID %q, want host-pid", cfg.WorkerID)
	}
}

func TestRetryDelayBounds(t *testing.T) {
	t.Parallel()
	for failures := 1; failures <= 200; failures++ {
		// Before the cap, the smallest delay of one step is the largest
		// of the step before, so delays never shrink on average.
		full := min(retryBackoffBase<<min(failures-1, 6), retryBackoffCap)
		for range 50 {
			d := retryDelay(failures)
			if d < full/2 || d >= full || d > retryBackoffCap {
				t.Fatalf("retryDelay(%d) = %s, want in [%s, %s)", failures, d, full/2, full)
			}
		}
	}
}

func TestFailureLogCountsRepeats(t *testing.T) {
	t.Parallel()
	logger, logs := newTestLogger(t)
	f := newFailureLog(logger, "claim")
	err := &APIError{Status: 503, Message: "down"}
	for range 9 {
		f.failed(err, time.Second)
	}
	f.failed(errors.New("connection refused"), time.Second)
	f.succeeded()
	f.succeeded()

	var counts []int
	for _, rec := range logs.records("claim failed; retrying") {
		counts = append(counts, int(rec["failures"].(float64)))
	}
	// Powers of two, and the changed error text at the 10th failure.
	if fmt.Sprint(counts) != "[1 2 4 8 10]" {
		t.Errorf("logged failure counts %v, want [1 2 4 8 10]", counts)
	}
	if again := logs.records("claim works again"); len(again) != 1 || int(again[0]["failures"].(float64)) != 10 {
		t.Errorf("recovery lines %v, want one with failures 10", again)
	}
}

func TestPauseTrackerLogsTransitionsOnce(t *testing.T) {
	t.Parallel()
	logger, logs := newTestLogger(t)
	p := newPauseTracker(logger)
	_, firstChange := p.current()

	p.observe(SystemState{Version: 1}, sourceClaim)
	paused := SystemState{WorkersPaused: true, Mode: ModeQuiesce, Reason: "upgrade", Version: 2}
	p.observe(paused, sourceClaim)
	select {
	case <-firstChange:
	default:
		t.Fatal("pausing did not close the change channel")
	}
	p.logPaused(paused)
	p.logPaused(paused)

	_, pausedChange := p.current()
	resumed := SystemState{Version: 3}
	p.observe(resumed, sourceHeartbeat)
	p.observe(resumed, sourceClaim)
	// A late paused response must not undo the resume.
	p.observe(paused, sourceClaim)
	p.logPaused(paused)
	select {
	case <-pausedChange:
	default:
		t.Fatal("resuming did not close the change channel")
	}
	if state, _ := p.current(); state.WorkersPaused || state.Version != 3 {
		t.Errorf("state after a stale response %+v, want version 3 running", state)
	}

	if got := len(logs.records("workers paused; not claiming")); got != 1 {
		t.Errorf("paused lines %d, want 1", got)
	}
	cleared := logs.records("pause cleared")
	if len(cleared) != 1 || cleared[0]["source"] != sourceHeartbeat || cleared[0]["version"].(float64) != 3 {
		t.Errorf("pause cleared lines %v, want one from the heartbeat at version 3", cleared)
	}
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	srv := startBroker(t)
	client, err := NewClient(srv.URL+"/", srv.WorkerToken, srv.Client)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	ctx := context.Background()
	job := enqueue(t, srv, "client:job", map[string]any{}, 3)

	_, err = client.Heartbeat(ctx, job.ID, HeartbeatRequest{WorkerID: "nobody", Attempt: 1})
	if !errors.Is(err, ErrLeaseLost) {
		t.Errorf("heartbeat of an unclaimed job: %v, want ErrLeaseLost", err)
	}

	_, err = client.Complete(ctx, "00000000-0000-4000-8000-000000000000", CompleteRequest{WorkerID: "w"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || apiErr.Code != "not_found" {
		t.Errorf("complete of an unknown job: %v, want a 404 not_found APIError", err)
	}

	_, err = client.Claim(ctx, ClaimRequest{WorkerID: "w", WaitSeconds: 31})
	if !errors.As(err, &apiErr) || apiErr.Code != "invalid_field" || apiErr.Field != "waitSeconds" {
		t.Errorf("claim with waitSeconds 31: %v, want invalid_field on waitSeconds", err)
	}

	producer, err := NewClient(srv.URL, srv.ProducerToken, srv.Client)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	_, err = producer.Claim(ctx, ClaimRequest{WorkerID: "w"})
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden {
		t.Errorf("claim with a producer token: %v, want 403", err)
	}

	claimed, err := client.Claim(ctx, ClaimRequest{WorkerID: "w", LeaseSeconds: 30})
	if err != nil || claimed.Job == nil || claimed.Job.ID != job.ID {
		t.Fatalf("claim: %+v, %v, want job %s", claimed, err, job.ID)
	}
	if claimed.System.Version < 1 || claimed.System.WorkersPaused {
		t.Errorf("claim system %+v, want running at version >= 1", claimed.System)
	}
	beat, err := client.Heartbeat(ctx, job.ID, HeartbeatRequest{WorkerID: "w", Attempt: 1, Checkpoint: []byte(`{"n":1}`)})
	if err != nil || beat.ID != job.ID || beat.System.Version != claimed.System.Version || string(beat.Checkpoint) != `{"n":1}` {
		t.Errorf("heartbeat: %+v, %v", beat, err)
	}
	if _, err := client.SetRuntimeState(ctx, job.ID, RuntimeStateRequest{WorkerID: "w", Attempt: 1, RuntimeState: []byte(`{"phase":"upload"}`)}); err != nil {
		t.Errorf("SetRuntimeState: %v", err)
	}
	event, err := client.AppendEvent(ctx, job.ID, EventRequest{WorkerID: "w", Level: "info", Message: "upload started", Payload: []byte(`{"files":2}`)})
	if err != nil || event.Message != "upload started" || event.JobID != job.ID {
		t.Errorf("AppendEvent: %+v, %v", event, err)
	}
	_, err = client.Complete(ctx, job.ID, CompleteRequest{WorkerID: "w", Attempt: 2})
	if !errors.Is(err, ErrLeaseLost) {
		t.Errorf("complete with the wrong attempt: %v, want ErrLeaseLost", err)
	}
	done, err := client.Complete(ctx, job.ID, CompleteRequest{WorkerID: "w", Attempt: 1, ResultSummary: "ok"})
	if err != nil || done.Status != "succeeded" {
		t.Errorf("complete: %+v, %v, want succeeded", done, err)
	}
}

func TestContextHelpersOutsideJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if err := Checkpoint(ctx); err != nil {
		t.Errorf("Checkpoint outside a job: %v, want nil", err)
	}
	if err := SaveCheckpoint(ctx, map[string]int{"n": 1}); !errors.Is(err, ErrNoJob) {
		t.Errorf("SaveCheckpoint outside a job: %v, want ErrNoJob", err)
	}
	if _, ok := JobID(ctx); ok {
		t.Error("JobID found an id outside a job")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := Checkpoint(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Checkpoint with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestPermanentMatchesSkipRetry(t *testing.T) {
	t.Parallel()
	err := Permanent(errors.New("bad payload"))
	if !errors.Is(err, asynq.SkipRetry) || err.Error() != "bad payload" {
		t.Errorf("Permanent: %q, Is SkipRetry %v; want the same message and true", err, errors.Is(err, asynq.SkipRetry))
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) is not nil")
	}
	if _, err := encodeObject([]int{1}); err == nil {
		t.Error("encodeObject accepted a JSON array as a checkpoint")
	}
}
