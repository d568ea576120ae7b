package broker

import (
	"context"
	"encoding/json"
)

// Enqueue stores a new job, ready now or at p.RunAt. With an idempotency key
// that was used before, it returns the existing job and created false.
func (b *Broker) Enqueue(ctx context.Context, p EnqueueParams) (job *Job, created bool, err error) {
	return nil, false, errNotImplemented
}

// Claim runs the claim script: when the workers are paused (or the pause key
// is missing, which returns ErrPauseStateMissing) it changes nothing;
// otherwise it promotes due delayed jobs and leases the best ready job.
func (b *Broker) Claim(ctx context.Context, p ClaimParams) (*ClaimResult, error) {
	return nil, errNotImplemented
}

// Heartbeat extends the lease of the holder and returns the job with the
// current pause state, or ErrLeaseLost.
func (b *Broker) Heartbeat(ctx context.Context, p HeartbeatParams) (*Job, PauseState, error) {
	return nil, PauseState{}, errNotImplemented
}

// Complete marks a held job succeeded.
func (b *Broker) Complete(ctx context.Context, p CompleteParams) (*Job, error) {
	return nil, errNotImplemented
}

// Fail records a failed attempt: retry with backoff, failed or dead_letter.
func (b *Broker) Fail(ctx context.Context, p FailParams) (*Job, error) {
	return nil, errNotImplemented
}

// Cancel cancels a queued job at once or asks the holder of a running job to
// stop.
func (b *Broker) Cancel(ctx context.Context, jobID, reason, actor string) (*Job, error) {
	return nil, errNotImplemented
}

// AckCancel ends a running job whose cancel was requested as cancelled.
func (b *Broker) AckCancel(ctx context.Context, p AckCancelParams) (*Job, error) {
	return nil, errNotImplemented
}

// Release hands a held job back to the queue without using up an attempt.
func (b *Broker) Release(ctx context.Context, p ReleaseParams) (*Job, error) {
	return nil, errNotImplemented
}

// Recover requeues or cancels a running job whose lease has expired.
// It works while paused.
func (b *Broker) Recover(ctx context.Context, jobID string, mode RecoverMode, actor string) (*Job, error) {
	return nil, errNotImplemented
}

// Resubmit enqueues a new job copied from a failed, cancelled or
// dead_letter one. It works while paused.
func (b *Broker) Resubmit(ctx context.Context, jobID, actor string) (*Job, error) {
	return nil, errNotImplemented
}

// SaveCheckpoint stores checkpoint data for a held job, as a heartbeat with
// a checkpoint does, without extending the lease.
func (b *Broker) SaveCheckpoint(ctx context.Context, jobID, workerID string, attempt int, data json.RawMessage) (*Job, error) {
	return nil, errNotImplemented
}

// AppendJobEvent appends a worker's event to a held job's event stream.
func (b *Broker) AppendJobEvent(ctx context.Context, jobID, workerID, level, message string, payload json.RawMessage) (*JobEvent, error) {
	return nil, errNotImplemented
}

// JobEvents returns up to limit events of a job after the cursor (an event
// id; empty means from the start) and the cursor for the next page.
func (b *Broker) JobEvents(ctx context.Context, jobID, after string, limit int) ([]JobEvent, string, error) {
	return nil, "", errNotImplemented
}

// GetJob returns one job or ErrNotFound.
func (b *Broker) GetJob(ctx context.Context, jobID string) (*Job, error) {
	return nil, errNotImplemented
}

// ListJobs returns a page of jobs, newest first, and the next cursor
// (empty on the last page).
func (b *Broker) ListJobs(ctx context.Context, p ListParams) ([]*Job, string, error) {
	return nil, "", errNotImplemented
}

// StaleJobs returns running jobs whose lease has expired, oldest expiry
// first, at most limit of them.
func (b *Broker) StaleJobs(ctx context.Context, limit int) ([]*Job, error) {
	return nil, errNotImplemented
}

// RunningJobs returns running jobs (lease live or expired), at most limit.
func (b *Broker) RunningJobs(ctx context.Context, limit int) ([]*Job, error) {
	return nil, errNotImplemented
}

// ReapOnce runs one reaper pass. While paused it only finalizes running jobs
// whose cancel was requested and whose lease expired.
func (b *Broker) ReapOnce(ctx context.Context) (ReapResult, error) {
	return ReapResult{}, errNotImplemented
}
