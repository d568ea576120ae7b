package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// runKey is the context key of the *jobRun a handler runs for.
type runKey struct{}

func withRun(ctx context.Context, run *jobRun) context.Context {
	return context.WithValue(ctx, runKey{}, run)
}

func runFrom(ctx context.Context) *jobRun {
	run, _ := ctx.Value(runKey{}).(*jobRun)
	return run
}

// JobID returns the id of the job whose handler received ctx. ok is false
// outside a handler run by a Server. It takes the place of
// asynq.GetTaskID, which finds nothing in a worker.Server context.
func JobID(ctx context.Context) (id string, ok bool) {
	run := runFrom(ctx)
	if run == nil {
		return "", false
	}
	return run.job.ID, true
}

// Attempt returns the attempt number of the running job, starting at 1.
// A released job's next claim gets the same number again. It takes the
// place of asynq.GetRetryCount, which is Attempt − 1 in asynq's terms.
func Attempt(ctx context.Context) (attempt int, ok bool) {
	run := runFrom(ctx)
	if run == nil {
		return 0, false
	}
	return run.job.Attempt, true
}

// ClaimedJob returns a copy of the job document as the claim returned it,
// with fields such as MaxAttempts (asynq.GetMaxRetry + 1), Priority and
// RequiredCapabilities.
func ClaimedJob(ctx context.Context) (Job, bool) {
	run := runFrom(ctx)
	if run == nil {
		return Job{}, false
	}
	return *run.job, true
}

// Checkpoint is a safe point for a pause. It returns nil at once unless
// the broker has quiesced the workers (a pause in mode "quiesce"). While
// they are quiesced it blocks: heartbeats report the job as parked
// (quiesced: true, which the broker's quiesced count includes) and keep
// its lease alive. It returns nil after a resume or a change to drain
// mode, and ctx.Err() when ctx ends first, for example because the job
// was cancelled. Outside a handler run by a Server it does not block.
//
// The worker learns of a quiesce from heartbeat and claim responses, so a
// handler may pass a checkpoint up to HeartbeatInterval after the pause.
func Checkpoint(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	run := runFrom(ctx)
	if run == nil {
		return nil
	}

	parked := false
	defer func() {
		if parked {
			run.unpark()
		}
	}()
	for {
		state, changed := run.server.tracker.current()
		if !state.Quiesced() {
			return nil
		}
		if !parked {
			parked = true
			run.park(state)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// SaveCheckpoint stores data, which must encode to a JSON object, as the
// job's progress. The next heartbeat sends it to the broker; a release on
// shutdown sends the latest one. A later attempt reads it with
// LoadCheckpoint.
func SaveCheckpoint(ctx context.Context, data any) error {
	run := runFrom(ctx)
	if run == nil {
		return ErrNoJob
	}
	encoded, err := encodeObject(data)
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	run.saveCheckpoint(encoded)
	return nil
}

// LoadCheckpoint decodes the job's latest checkpoint into v: the one this
// attempt saved, or else the one stored on the job when it was claimed. It
// returns false when there is none.
func LoadCheckpoint(ctx context.Context, v any) (bool, error) {
	run := runFrom(ctx)
	if run == nil {
		return false, ErrNoJob
	}
	data := run.latestCheckpoint()
	if len(data) == 0 || bytes.Equal(data, []byte("null")) {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("load checkpoint of job %s: %w", run.job.ID, err)
	}
	return true, nil
}

// SetResult sets the resultSummary that completing the job sends. It
// takes the place of the task's ResultWriter, which is nil in a
// worker.Server.
func SetResult(ctx context.Context, summary string) error {
	run := runFrom(ctx)
	if run == nil {
		return ErrNoJob
	}
	run.mu.Lock()
	run.result = summary
	run.mu.Unlock()
	return nil
}

// SetFinishDetails sets the outcome fields sent when the job completes,
// fails or acknowledges a cancel.
func SetFinishDetails(ctx context.Context, details FinishDetails) error {
	run := runFrom(ctx)
	if run == nil {
		return ErrNoJob
	}
	run.mu.Lock()
	run.finish = details
	run.mu.Unlock()
	return nil
}

// AppendEvent adds an entry at level (debug, info, warn or error) to the
// job's event history on the broker. payload must encode to a JSON object
// or be nil.
func AppendEvent(ctx context.Context, level, message string, payload any) error {
	run := runFrom(ctx)
	if run == nil {
		return ErrNoJob
	}
	var encoded json.RawMessage
	if payload != nil {
		var err error
		if encoded, err = encodeObject(payload); err != nil {
			return fmt.Errorf("append event: %w", err)
		}
	}
	reqCtx, cancel := context.WithTimeout(ctx, run.server.cfg.RequestTimeout)
	defer cancel()
	_, err := run.server.client.AppendEvent(reqCtx, run.job.ID, EventRequest{
		WorkerID: run.server.cfg.WorkerID, Level: level, Message: message, Payload: encoded,
	})
	return err
}

// encodeObject marshals v and checks that the result is a JSON object, as
// the broker requires for checkpoints and event payloads.
func encodeObject(v any) (json.RawMessage, error) {
	encoded, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(encoded) == 0 || encoded[0] != '{' {
		return nil, fmt.Errorf("value must encode to a JSON object, got %.40s", encoded)
	}
	return encoded, nil
}
