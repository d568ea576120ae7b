package broker

import (
	"context"
)

// InitPause creates the pause hash unpaused at version 1 when it is missing
// and records no audit event. It returns true when it created the key.
func (b *Broker) InitPause(ctx context.Context) (bool, error) {
	return false, errNotImplemented
}

// RestorePause recreates a missing pause hash from the newest audit event:
// same paused state, mode and reason, version one higher, with a restore
// event in the outbox. It returns nil and no error when the key exists.
func (b *Broker) RestorePause(ctx context.Context, newest AuditEvent) (*PauseChange, error) {
	return nil, errNotImplemented
}

// Pause pauses the workers or changes the mode or reason of a pause.
func (b *Broker) Pause(ctx context.Context, p PauseParams) (*PauseChange, error) {
	return nil, errNotImplemented
}

// Resume lets the workers claim again.
func (b *Broker) Resume(ctx context.Context, p ResumeParams) (*PauseChange, error) {
	return nil, errNotImplemented
}

// Pause state reads the pause hash, or returns ErrPauseStateMissing.
func (b *Broker) PauseState(ctx context.Context) (PauseState, error) {
	return PauseState{}, errNotImplemented
}

// Snapshot reads the pause state, drain metrics, worker counts, per-state
// job counts and outbox depth in one script call.
func (b *Broker) Snapshot(ctx context.Context) (*Snapshot, error) {
	return nil, errNotImplemented
}

// OutboxPending returns up to n audit events waiting in the outbox, oldest
// (lowest version) first.
func (b *Broker) OutboxPending(ctx context.Context, n int) ([]AuditEvent, error) {
	return nil, errNotImplemented
}

// OutboxAck removes delivered events from the outbox by their OutboxID.
func (b *Broker) OutboxAck(ctx context.Context, outboxIDs ...string) error {
	return errNotImplemented
}

// OutboxDepth returns how many audit events wait in the outbox.
func (b *Broker) OutboxDepth(ctx context.Context) (int64, error) {
	return 0, errNotImplemented
}

// TouchWorker records that a worker was just answered with the given pause
// version. It is called after every claim and heartbeat.
func (b *Broker) TouchWorker(ctx context.Context, workerID string, version int64) error {
	return errNotImplemented
}

// Workers lists the workers seen within the retention of the registry,
// most recent first.
func (b *Broker) Workers(ctx context.Context) ([]WorkerInfo, error) {
	return nil, errNotImplemented
}
