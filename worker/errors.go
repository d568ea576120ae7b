package worker

import (
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
)

// Sentinel errors of the worker package. Test them with errors.Is.
var (
	// ErrLeaseLost means the broker returned 409 lease_lost: this worker
	// and attempt no longer hold the job, because the lease was reaped,
	// recovered by an operator or given to another attempt.
	ErrLeaseLost = errors.New("lease lost: the job is not held by this worker and attempt")

	// ErrNoJob means a job helper such as SaveCheckpoint was called with a
	// context that does not come from a handler run by a Server.
	ErrNoJob = errors.New("context does not belong to a job run by worker.Server")

	// ErrServerStarted means Start or Run was called on a Server that was
	// started before. A Server runs once.
	ErrServerStarted = errors.New("worker server was already started")

	// ErrServerNotStarted means Shutdown was called before Start.
	ErrServerNotStarted = errors.New("worker server was not started")

	// ErrCancelRequested is the context.Cause of a handler context that
	// was cancelled because an operator cancelled the job.
	ErrCancelRequested = errors.New("job cancel requested by an operator")

	// ErrShuttingDown is the context.Cause of a handler context that was
	// cancelled because the shutdown timeout passed. The job is released.
	ErrShuttingDown = errors.New("worker is shutting down")
)

// APIError is an error response of the broker: the HTTP status and the
// body's stable code, message and offending field. A 409 lease_lost
// response matches ErrLeaseLost with errors.Is.
type APIError struct {
	Status  int    // HTTP status code
	Code    string // stable error code such as "invalid_field"; empty when the body was not the broker's JSON
	Message string
	Field   string // the request field the error is about, when there is one
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("broker returned HTTP %d", e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrLeaseLost) true for a lease_lost response.
func (e *APIError) Is(target error) bool {
	return target == ErrLeaseLost && e.Code == "lease_lost"
}

// Temporary reports whether repeating the same request later may succeed,
// which is the case for a 5xx or 429 status.
func (e *APIError) Temporary() bool {
	return e.Status >= 500 || e.Status == 429
}

// permanentError fails a job without a retry while keeping the message of
// the error it wraps, so the broker stores "invalid payload" rather than
// "invalid payload: skip retry for the task".
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Is makes errors.Is(err, asynq.SkipRetry) true.
func (e *permanentError) Is(target error) bool { return target == asynq.SkipRetry }

// Permanent wraps err so that a handler returning it fails the job for
// good (retryable false), exactly as an error wrapping asynq.SkipRetry
// does, without changing the error message the broker stores. It returns
// nil for a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// temporary reports whether err is worth retrying: a network error, a
// timeout, or a 5xx or 429 response. Other 4xx responses are not
// temporary.
func temporary(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Temporary()
	}
	return err != nil
}
