package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
)

// Server claims jobs from the broker and runs them with an asynq.Handler,
// Concurrency at a time. Create it with NewServer; it runs once.
type Server struct {
	cfg           Config
	client        *Client
	logger        *slog.Logger
	tracker       *pauseTracker
	claimFailures *failureLog

	mu      sync.Mutex
	started bool
	// stopping is closed when a shutdown begins; stopped when it ends.
	stopping chan struct{}
	stopped  chan struct{}
	stopErr  error
	runs     map[*jobRun]struct{}

	claimCtx      context.Context
	stopClaiming  context.CancelFunc
	handlerCtx    context.Context
	cancelHandler context.CancelCauseFunc
	slots         sync.WaitGroup
}

// NewServer checks cfg, fills in its defaults and returns a Server. It
// does not contact the broker.
func NewServer(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}

	httpClient := cfg.HTTPClient
	if httpClient == nil {
		var err error
		if httpClient, err = NewHTTPClient(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("worker config: %w", err)
		}
	}
	client, err := NewClient(cfg.BrokerURL, cfg.Token, httpClient)
	if err != nil {
		return nil, fmt.Errorf("worker config: %w", err)
	}

	logger := cfg.Logger.With("worker_id", cfg.WorkerID)
	return &Server{
		cfg:           cfg,
		client:        client,
		logger:        logger,
		tracker:       newPauseTracker(logger),
		claimFailures: newFailureLog(logger, "claim"),
		stopping:      make(chan struct{}),
		stopped:       make(chan struct{}),
		runs:          make(map[*jobRun]struct{}),
	}, nil
}

// Config returns the configuration with defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Client returns the broker client the server uses.
func (s *Server) Client() *Client { return s.client }

// Run starts the server and blocks until SIGINT or SIGTERM, then shuts
// down as Shutdown does, allowing ShutdownTimeout for running handlers and
// up to two RequestTimeouts more for releasing their jobs. A second
// signal during the shutdown ends the process at once.
func (s *Server) Run(handler asynq.Handler) error {
	signalCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	if err := s.Start(context.Background(), handler); err != nil {
		return err
	}
	<-signalCtx.Done()
	stopSignals()
	s.logger.Info("signal received; shutting down", "shutdown_timeout", s.cfg.ShutdownTimeout.String())

	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout+2*s.cfg.RequestTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// Start begins claiming and running jobs in the background and returns.
// Handler contexts carry the values of ctx. When ctx ends, the server
// stops as a Shutdown without grace period would: claims stop, handlers
// are cancelled and their jobs released.
func (s *Server) Start(ctx context.Context, handler asynq.Handler) error {
	if handler == nil {
		return errors.New("worker: Start needs a non-nil handler")
	}
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrServerStarted
	}
	s.started = true
	s.claimCtx, s.stopClaiming = context.WithCancel(ctx)
	s.handlerCtx, s.cancelHandler = context.WithCancelCause(context.WithoutCancel(ctx))
	s.mu.Unlock()

	s.logger.Info("worker started",
		"broker_url", s.cfg.BrokerURL, "concurrency", s.cfg.Concurrency,
		"allowed_types", s.cfg.AllowedTypes, "capabilities", s.cfg.Capabilities,
		"lease", s.cfg.LeaseDuration.String(), "heartbeat_interval", s.cfg.HeartbeatInterval.String())

	for range s.cfg.Concurrency {
		s.slots.Add(1)
		go func() {
			defer s.slots.Done()
			s.claimLoop(handler)
		}()
	}

	go func() {
		select {
		case <-ctx.Done():
			stopCtx, cancel := context.WithTimeout(context.Background(), 2*s.cfg.RequestTimeout)
			defer cancel()
			_ = s.stop(stopCtx, 0)
		case <-s.stopping:
		}
	}()
	return nil
}

// Shutdown stops claiming, waits up to ShutdownTimeout for running
// handlers, then cancels their contexts and releases their jobs with their
// latest checkpoint, so no attempt is used and nothing is left for the
// reaper. When ctx ends before the handlers return, it releases the jobs
// without waiting further and returns ctx's error. Calling Shutdown again
// waits for the first shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.stop(ctx, s.cfg.ShutdownTimeout)
}

func (s *Server) stop(ctx context.Context, grace time.Duration) error {
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		return ErrServerNotStarted
	}
	select {
	case <-s.stopping:
		// Another caller runs the shutdown.
		s.mu.Unlock()
		select {
		case <-s.stopped:
			return s.stopErr
		case <-ctx.Done():
			return fmt.Errorf("wait for worker shutdown: %w", ctx.Err())
		}
	default:
	}
	close(s.stopping)
	s.mu.Unlock()

	s.stopErr = s.drain(ctx, grace)
	s.releaseLeftovers(ctx)
	close(s.stopped)
	return s.stopErr
}

// drain runs the shutdown steps in order: stop claiming, wait for the
// handlers up to grace, cancel them, release what is left.
func (s *Server) drain(ctx context.Context, grace time.Duration) error {
	s.stopClaiming()
	s.logger.Info("worker stopping: no new claims", "running", s.runningCount())

	slotsDone := make(chan struct{})
	go func() {
		s.slots.Wait()
		close(slotsDone)
	}()

	graceTimer := time.NewTimer(grace)
	defer graceTimer.Stop()
	select {
	case <-slotsDone:
		s.logger.Info("worker stopped")
		return nil
	case <-graceTimer.C:
	case <-ctx.Done():
	}

	s.logger.Warn("shutdown timeout reached; cancelling running handlers to release their jobs", "running", s.runningCount())
	s.cancelHandler(ErrShuttingDown)
	select {
	case <-slotsDone:
		s.logger.Info("worker stopped")
		return nil
	case <-ctx.Done():
	}

	// Handlers that ignore their context still hold jobs; release them
	// so they run elsewhere at once rather than after the lease expires.
	var wg sync.WaitGroup
	for _, run := range s.activeRuns() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run.forceRelease()
		}()
	}
	wg.Wait()
	s.logger.Warn("worker stopped with handlers still running", "running", s.runningCount())
	return fmt.Errorf("worker shutdown: handlers did not return: %w", ctx.Err())
}

// releaseLeftovers has the broker release every job still held by this
// worker id. The claims have stopped and each handler has finished or
// released its job by now, so what is left is a ghost: a job the broker
// granted while the worker cancelled that claim request, whose response
// never arrived. Without this call it stays running until its lease
// expires and the reaper retries it, which uses up an attempt. It runs
// even after ctx ended, bounded by its own short timeout.
func (s *Server) releaseLeftovers(ctx context.Context) {
	timeout := min(s.cfg.RequestTimeout, releaseWorkerTimeout)
	releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	released, err := s.client.ReleaseWorker(releaseCtx, s.cfg.WorkerID)
	if err != nil {
		s.logger.Warn("release of the jobs left with this worker failed; the reaper retries them after their lease expires", "error", err)
		return
	}
	if len(released) > 0 {
		s.logger.Info("released jobs granted to claims cancelled at shutdown", "job_ids", released)
	}
}

// claimLoop is one concurrency slot: it claims a job, runs it, and claims
// again until the server stops claiming.
func (s *Server) claimLoop(handler asynq.Handler) {
	failures := 0
	for s.claimCtx.Err() == nil {
		sent := time.Now()
		resp, err := s.claim()
		if err != nil {
			if s.claimCtx.Err() != nil {
				return
			}
			failures++
			delay := retryDelay(failures)
			s.claimFailures.failed(err, delay)
			s.sleep(delay)
			continue
		}
		if failures > 0 {
			s.claimFailures.succeeded()
			failures = 0
		}

		s.tracker.observe(resp.System, sourceClaim)
		if resp.Job != nil {
			s.runClaimed(handler, resp.Job)
			continue
		}
		if resp.System.WorkersPaused {
			s.tracker.logPaused(resp.System)
			s.waitWhilePaused(sent)
		}
	}
}

// claim sends one long-poll claim. A shutdown cancels a claim in flight.
// When the broker granted a job just before the connection closed,
// releaseLeftovers hands it back at the end of the shutdown.
func (s *Server) claim() (*ClaimResponse, error) {
	ctx, cancel := context.WithTimeout(s.claimCtx, s.cfg.PollInterval+s.cfg.RequestTimeout)
	defer cancel()
	return s.client.Claim(ctx, ClaimRequest{
		WorkerID:           s.cfg.WorkerID,
		LeaseSeconds:       int(s.cfg.LeaseDuration / time.Second),
		AllowedTypes:       s.cfg.AllowedTypes,
		WorkerCapabilities: s.cfg.Capabilities,
		WaitSeconds:        int(s.cfg.PollInterval / time.Second),
	})
}

// runClaimed runs a claimed job, or releases it unstarted when a shutdown
// began while the claim was on its way.
func (s *Server) runClaimed(handler asynq.Handler, job *Job) {
	run := newJobRun(s, job)
	if s.claimCtx.Err() != nil {
		run.end("release", func(ctx context.Context) error {
			_, err := s.client.Release(ctx, job.ID, ReleaseRequest{WorkerID: s.cfg.WorkerID, Attempt: job.Attempt})
			return err
		}, "job released unstarted for shutdown")
		return
	}

	s.mu.Lock()
	s.runs[run] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.runs, run)
		s.mu.Unlock()
	}()
	run.execute(handler)
}

// waitWhilePaused waits until PausePollInterval has passed since the
// paused claim was sent, or less when a heartbeat or another claim
// observes that the pause was cleared. A broker that holds paused claims for the long-poll
// wait has used the interval up already, so the next claim goes at once.
func (s *Server) waitWhilePaused(sent time.Time) {
	state, changed := s.tracker.current()
	if !state.WorkersPaused {
		return
	}
	wait := s.cfg.PausePollInterval - time.Since(sent)
	if wait <= 0 {
		return
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-changed:
	case <-s.claimCtx.Done():
	}
}

// sleep waits d or until the server stops claiming.
func (s *Server) sleep(d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-s.claimCtx.Done():
	}
}

func (s *Server) runningCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runs)
}

func (s *Server) activeRuns() []*jobRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	runs := make([]*jobRun, 0, len(s.runs))
	for run := range s.runs {
		runs = append(runs, run)
	}
	return runs
}
