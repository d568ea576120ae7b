package broker

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by the engine. Callers test them with errors.Is;
// the API maps each to one HTTP status and error code.
var (
	// ErrNotFound means no job has the given id (or it expired after
	// the retention period).
	ErrNotFound = errors.New("job not found")

	// ErrLeaseLost means the caller is not the current holder of the job's
	// lease: the lease was recovered, reaped or given to another attempt.
	ErrLeaseLost = errors.New("lease lost: the job is not held by this worker and attempt")

	// ErrInvalidState means the job is not in a state that allows the
	// operation, for example completing a job that was cancelled.
	ErrInvalidState = errors.New("job is not in a state that allows this operation")

	// ErrLeaseActive means an operator asked to recover a running job whose
	// lease has not expired yet.
	ErrLeaseActive = errors.New("lease is still active")

	// ErrAttemptsExhausted means a requeue was asked for a job that has no
	// attempts left.
	ErrAttemptsExhausted = errors.New("job has no attempts left")

	// ErrAlreadyPaused means a pause was asked with the mode and reason
	// already in force.
	ErrAlreadyPaused = errors.New("workers are already paused with this mode and reason")

	// ErrNotPaused means a resume was asked while the workers run.
	ErrNotPaused = errors.New("workers are not paused")

	// ErrVersionConflict means the caller's expected pause version is not
	// the current one.
	ErrVersionConflict = errors.New("pause version does not match the expected version")

	// ErrNotDrained means a resume from drain mode was asked while jobs are
	// still running or stale, without force.
	ErrNotDrained = errors.New("drain is not finished: jobs are still running or stale")

	// ErrPauseStateMissing means the pause hash does not exist in Redis, so
	// the broker fails closed until it is initialized or restored.
	ErrPauseStateMissing = errors.New("pause state is missing in Redis")

	// ErrPayloadTooLarge means a payload or checkpoint exceeds the
	// configured maximum size.
	ErrPayloadTooLarge = errors.New("payload too large")

	// ErrInvalidArgument is the parent of every ValidationError.
	ErrInvalidArgument = errors.New("invalid argument")
)

// ValidationError reports one invalid input field. It matches
// ErrInvalidArgument with errors.Is.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Message)
}

// Is makes errors.Is(err, ErrInvalidArgument) true for validation errors.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidArgument }

// invalid builds a ValidationError for field with a formatted message.
func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}
