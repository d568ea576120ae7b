package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hibiken/asynq"
)

// jobRun is one claimed job while its handler runs: the heartbeat loop's
// state, what the handler saved, and how the run must end.
type jobRun struct {
	server *Server
	job    *Job
	logger *slog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc

	// kick requests an immediate heartbeat from the heartbeat loop.
	kick chan struct{}

	mu sync.Mutex
	// parked counts Checkpoint calls waiting for a resume; the job is
	// reported as quiesced while it is above zero.
	parked int
	// pending is a checkpoint not yet acknowledged by a heartbeat;
	// pendingSeq distinguishes it from a newer one saved during the
	// request.
	pending    json.RawMessage
	pendingSeq uint64
	// saved is the newest checkpoint the handler saved in this attempt.
	saved           json.RawMessage
	result          string
	finish          FinishDetails
	cancelRequested bool
	leaseLost       bool
	// ended is set by the first call of end, which returns at once on
	// every later call, so the job is reported at most once.
	ended bool
}

func newJobRun(s *Server, job *Job) *jobRun {
	r := &jobRun{
		server: s,
		job:    job,
		logger: s.logger.With("job_id", job.ID, "job_type", job.Type, "attempt", job.Attempt),
		kick:   make(chan struct{}, 1),
	}
	ctx, cancel := context.WithCancelCause(s.handlerCtx)
	r.ctx = withRun(ctx, r)
	r.cancel = cancel
	return r
}

// execute runs the handler with a heartbeat loop beside it and reports
// the outcome to the broker.
func (r *jobRun) execute(handler asynq.Handler) {
	r.logger.Info("job started")
	started := time.Now()

	stopHeartbeat := make(chan struct{})
	heartbeatDone := make(chan struct{})
	go func() {
		defer close(heartbeatDone)
		r.heartbeatLoop(stopHeartbeat)
	}()

	err := r.invoke(handler)

	// The heartbeat loop must end before the final report, so no
	// heartbeat reaches the broker after the job left running.
	close(stopHeartbeat)
	<-heartbeatDone

	r.report(err, time.Since(started).Round(time.Millisecond))
	r.cancel(nil)
}

// invoke calls the handler and turns a panic into an error.
func (r *jobRun) invoke(handler asynq.Handler) (err error) {
	defer func() {
		if recovered := recover(); recovered != nil {
			r.logger.Error("handler panicked", "error", recovered, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", recovered)
		}
	}()
	task := asynq.NewTask(r.job.Type, r.job.Payload)
	return handler.ProcessTask(r.ctx, task)
}

// heartbeatLoop extends the lease every HeartbeatInterval, or sooner when
// kicked, until stop is closed or the lease is lost.
func (r *jobRun) heartbeatLoop(stop <-chan struct{}) {
	failures := newFailureLog(r.logger, "heartbeat")
	failureCount := 0
	timer := time.NewTimer(r.heartbeatInterval())
	defer timer.Stop()

	for {
		select {
		case <-stop:
			return
		case <-timer.C:
		case <-r.kick:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}

		next := r.heartbeatInterval()
		err := r.heartbeat()
		switch {
		case err == nil:
			if failureCount > 0 {
				failures.succeeded()
			}
			failureCount = 0
		case r.isLeaseLost():
			return
		default:
			failureCount++
			next = min(next, retryDelay(failureCount))
			failures.failed(err, next)
		}
		timer.Reset(next)
	}
}

// heartbeatInterval is shorter while the job is parked, so a resume is
// seen within PausePollInterval.
func (r *jobRun) heartbeatInterval() time.Duration {
	cfg := r.server.cfg
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.parked > 0 {
		return min(cfg.HeartbeatInterval, cfg.PausePollInterval)
	}
	return cfg.HeartbeatInterval
}

// heartbeat sends one heartbeat with the parked flag and any pending
// checkpoint, and acts on the response.
func (r *jobRun) heartbeat() error {
	cfg := r.server.cfg
	r.mu.Lock()
	quiesced := r.parked > 0
	checkpoint, seq := r.pending, r.pendingSeq
	r.mu.Unlock()

	req := HeartbeatRequest{
		WorkerID:     cfg.WorkerID,
		Attempt:      r.job.Attempt,
		LeaseSeconds: int(cfg.LeaseDuration / time.Second),
		Quiesced:     &quiesced,
		Checkpoint:   checkpoint,
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), cfg.RequestTimeout)
	defer cancel()
	resp, err := r.server.client.Heartbeat(ctx, r.job.ID, req)

	if err != nil && checkpoint != nil && checkpointRejected(err) {
		// A checkpoint the broker rejects would fail every later
		// heartbeat too and cost the lease, so it is dropped.
		r.logger.Error("checkpoint rejected by the broker; dropping it", "error", err)
		r.mu.Lock()
		if r.pendingSeq == seq {
			r.pending = nil
		}
		r.mu.Unlock()
		req.Checkpoint = nil
		resp, err = r.server.client.Heartbeat(ctx, r.job.ID, req)
	}
	if err != nil {
		if leaseGone(err) {
			r.loseLease(err)
		}
		return err
	}

	r.mu.Lock()
	if checkpoint != nil && r.pendingSeq == seq {
		r.pending = nil
	}
	r.mu.Unlock()

	r.server.tracker.observe(resp.System, sourceHeartbeat)
	if resp.CancelRequestedAt != nil {
		reason := ""
		if resp.CancelReason != nil {
			reason = *resp.CancelReason
		}
		r.requestCancel(reason)
	}
	return nil
}

// checkpointRejected reports whether the broker rejected a heartbeat for
// its checkpoint: too large, or not valid.
func checkpointRejected(err error) bool {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.Status == http.StatusRequestEntityTooLarge ||
		(apiErr.Status == http.StatusBadRequest && apiErr.Field == "checkpoint")
}

// leaseGone reports whether err means this worker no longer holds the
// job: lease_lost, or the job no longer exists.
func leaseGone(err error) bool {
	if errors.Is(err, ErrLeaseLost) {
		return true
	}
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound
}

func (r *jobRun) loseLease(err error) {
	r.mu.Lock()
	already := r.leaseLost
	r.leaseLost = true
	r.mu.Unlock()
	if already {
		return
	}
	r.logger.Warn("lease lost; cancelling the handler", "error", err)
	r.cancel(ErrLeaseLost)
}

func (r *jobRun) isLeaseLost() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leaseLost
}

func (r *jobRun) requestCancel(reason string) {
	r.mu.Lock()
	already := r.cancelRequested
	r.cancelRequested = true
	r.mu.Unlock()
	if already {
		return
	}
	r.logger.Info("cancel requested; cancelling the handler", "reason", reason)
	r.cancel(ErrCancelRequested)
}

// park marks the job as parked at a checkpoint and reports it at once.
func (r *jobRun) park(state SystemState) {
	r.mu.Lock()
	r.parked++
	first := r.parked == 1
	r.mu.Unlock()
	if first {
		r.logger.Info("job parked at checkpoint", "version", state.Version, "mode", state.Mode)
		r.kickHeartbeat()
	}
}

func (r *jobRun) unpark() {
	r.mu.Lock()
	r.parked--
	last := r.parked == 0
	r.mu.Unlock()
	if last {
		r.logger.Info("job left checkpoint")
		r.kickHeartbeat()
	}
}

func (r *jobRun) kickHeartbeat() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *jobRun) saveCheckpoint(data json.RawMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.saved = data
	r.pending = data
	r.pendingSeq++
}

func (r *jobRun) latestCheckpoint() json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.saved != nil {
		return r.saved
	}
	return r.job.Checkpoint
}

// report sends the outcome of the run to the broker. The order matters: a lost
// lease leaves nothing to report, an operator's cancel wins over the
// handler's outcome, and a handler cut off by shutdown is released so
// no attempt is used.
func (r *jobRun) report(handlerErr error, duration time.Duration) {
	took := duration.String()
	r.mu.Lock()
	leaseLost, cancelRequested := r.leaseLost, r.cancelRequested
	result, finish, saved := r.result, r.finish, r.saved
	r.mu.Unlock()
	shutdown := errors.Is(context.Cause(r.ctx), ErrShuttingDown)

	switch {
	case leaseLost:
		r.logger.Warn("job not reported: the lease was lost", "error", handlerErr, "took", took)

	case cancelRequested:
		message := "cancelled by request"
		if handlerErr != nil && !errors.Is(handlerErr, context.Canceled) {
			message = handlerErr.Error()
		}
		r.end("acknowledge cancel", func(ctx context.Context) error {
			_, err := r.server.client.AckCancel(ctx, r.job.ID, r.ackRequest(message, finish))
			return err
		}, "job cancelled", "took", took)

	case handlerErr == nil:
		r.end("complete", func(ctx context.Context) error {
			_, err := r.server.client.Complete(ctx, r.job.ID, CompleteRequest{
				WorkerID: r.server.cfg.WorkerID, Attempt: r.job.Attempt, ResultSummary: result, FinishDetails: finish,
			})
			var apiErr *APIError
			if errors.As(err, &apiErr) && apiErr.Code == "invalid_state" {
				// The only state a holder can meet here is a cancel
				// requested after the last heartbeat: the broker will
				// not complete such a job, so the cancel is
				// acknowledged instead.
				r.logger.Info("cancel requested before the job completed; acknowledging it")
				_, err = r.server.client.AckCancel(ctx, r.job.ID, r.ackRequest("cancel requested before the job completed", finish))
			}
			return err
		}, "job completed", "took", took)

	case shutdown:
		r.end("release", func(ctx context.Context) error {
			_, err := r.server.client.Release(ctx, r.job.ID, ReleaseRequest{
				WorkerID: r.server.cfg.WorkerID, Attempt: r.job.Attempt, Checkpoint: saved,
			})
			return err
		}, "job released for shutdown", "took", took)

	default:
		retryable := !errors.Is(handlerErr, asynq.SkipRetry) && !errors.Is(handlerErr, asynq.RevokeTask)
		if retryable {
			r.flushCheckpoint()
		}
		r.end("fail", func(ctx context.Context) error {
			_, err := r.server.client.Fail(ctx, r.job.ID, FailRequest{
				WorkerID: r.server.cfg.WorkerID, Attempt: r.job.Attempt,
				ErrorMessage: handlerErr.Error(), Retryable: retryable, FinishDetails: finish,
			})
			return err
		}, "job failed", "error", handlerErr, "retryable", retryable, "took", took)
	}
}

// flushCheckpoint sends a checkpoint saved since the last heartbeat, so
// the retry of a failed attempt resumes from it; fail carries none.
func (r *jobRun) flushCheckpoint() {
	r.mu.Lock()
	pending := r.pending != nil
	r.mu.Unlock()
	if !pending {
		return
	}
	if err := r.heartbeat(); err != nil {
		r.logger.Warn("sending the last checkpoint before the failure report failed", "error", err)
	}
}

func (r *jobRun) ackRequest(message string, finish FinishDetails) AckCancelRequest {
	return AckCancelRequest{WorkerID: r.server.cfg.WorkerID, Attempt: r.job.Attempt, Message: message, FinishDetails: finish}
}

// end sends the final report and retries temporary errors for at most one
// lease duration, because after that the lease has expired and the
// broker's reaper takes over. On success it logs done with attrs.
func (r *jobRun) end(request string, send func(context.Context) error, done string, attrs ...any) {
	r.mu.Lock()
	if r.ended {
		r.mu.Unlock()
		return
	}
	r.ended = true
	r.mu.Unlock()

	cfg := r.server.cfg
	deadline := time.Now().Add(max(cfg.LeaseDuration, cfg.RequestTimeout))
	for failures := 1; ; failures++ {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), cfg.RequestTimeout)
		err := send(ctx)
		cancel()
		if err == nil {
			r.logger.Info(done, attrs...)
			return
		}

		delay := retryDelay(failures)
		if !temporary(err) || time.Now().Add(delay).After(deadline) {
			r.logger.Error(request+" failed; giving up", "error", err, "failures", failures)
			return
		}
		r.logger.Warn(request+" failed; retrying", "error", err, "failures", failures, "retry_in", delay.Round(time.Millisecond).String())
		time.Sleep(delay)
	}
}

// forceRelease releases the job while its handler may still be running,
// for a shutdown whose deadline passed. The handler's result, if it ever
// returns, is then dropped.
func (r *jobRun) forceRelease() {
	r.mu.Lock()
	saved := r.saved
	r.mu.Unlock()
	r.end("release", func(ctx context.Context) error {
		_, err := r.server.client.Release(ctx, r.job.ID, ReleaseRequest{
			WorkerID: r.server.cfg.WorkerID, Attempt: r.job.Attempt, Checkpoint: saved,
		})
		return err
	}, "job released while its handler still ran")
}
