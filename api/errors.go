package api

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"syscall"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"

	"github.com/moonmind/broker/broker"
)

// Error codes of the error body. docs/http-api.md lists when each is used.
const (
	CodeInvalidJSON           = "invalid_json"
	CodeUnknownField          = "unknown_field"
	CodeInvalidField          = "invalid_field"
	CodeUnauthorized          = "unauthorized"
	CodeForbidden             = "forbidden"
	CodeNotFound              = "not_found"
	CodeNotSupported          = "not_supported"
	CodeMethodNotAllowed      = "method_not_allowed"
	CodeLeaseLost             = "lease_lost"
	CodeInvalidState          = "invalid_state"
	CodeLeaseActive           = "lease_active"
	CodeAttemptsExhausted     = "attempts_exhausted"
	CodeAlreadyPaused         = "already_paused"
	CodeNotPaused             = "not_paused"
	CodeVersionConflict       = "version_conflict"
	CodeNotDrained            = "not_drained"
	CodePayloadTooLarge       = "payload_too_large"
	CodePauseStateUnavailable = "pause_state_unavailable"
	CodeUnavailable           = "unavailable"
	CodeInternal              = "internal"
)

// ErrorBody is the JSON shape of every error response.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Error is an error that already carries its HTTP status and body. Handlers
// return it for problems found in the request itself.
type Error struct {
	Status int
	Body   ErrorBody
}

func (e *Error) Error() string { return e.Body.Code + ": " + e.Body.Message }

// newError builds an *Error with a formatted message.
func newError(status int, code, field, format string, args ...any) *Error {
	return &Error{Status: status, Body: ErrorBody{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}}
}

// fieldError reports one invalid request field as 400 invalid_field.
func fieldError(field, format string, args ...any) *Error {
	return newError(http.StatusBadRequest, CodeInvalidField, field, format, args...)
}

// sentinelErrors maps each engine sentinel to its status, code and a message
// with the caller's next step.
var sentinelErrors = []struct {
	err     error
	status  int
	code    string
	message string
}{
	{broker.ErrNotFound, http.StatusNotFound, CodeNotFound, "job not found: check the job id"},
	{broker.ErrLeaseLost, http.StatusConflict, CodeLeaseLost, "lease lost: this worker and attempt no longer hold the job; stop working on it"},
	{broker.ErrInvalidState, http.StatusConflict, CodeInvalidState, "the job's state does not allow this operation: read the job to see its status"},
	{broker.ErrLeaseActive, http.StatusConflict, CodeLeaseActive, "the job's lease has not expired: wait until it is stale or cancel the job"},
	{broker.ErrAttemptsExhausted, http.StatusConflict, CodeAttemptsExhausted, "the job has no attempts left: recover it with mode cancel or resubmit it"},
	{broker.ErrAlreadyPaused, http.StatusConflict, CodeAlreadyPaused, "workers are already paused with this mode and reason"},
	{broker.ErrNotPaused, http.StatusConflict, CodeNotPaused, "workers are not paused, so there is nothing to resume"},
	{broker.ErrVersionConflict, http.StatusConflict, CodeVersionConflict, "expectedVersion is not the current pause version: read the pause state and retry"},
	{broker.ErrNotDrained, http.StatusConflict, CodeNotDrained, "drain is not finished: jobs are still running or stale; wait, recover them, or resume with forceResume true"},
	{broker.ErrPauseStateMissing, http.StatusServiceUnavailable, CodePauseStateUnavailable, "the pause state is missing in Redis and not restored yet; claims fail closed until it is restored from the audit trail"},
	{broker.ErrPayloadTooLarge, http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "the payload or checkpoint exceeds the configured maximum size"},
}

// classify turns any error from a handler into its status and body. It is
// the only place where errors become HTTP responses.
func classify(err error) (int, ErrorBody) {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr.Status, apiErr.Body
	}
	var verr *broker.ValidationError
	if errors.As(err, &verr) {
		return http.StatusBadRequest, ErrorBody{Code: CodeInvalidField, Field: verr.Field, Message: verr.Error()}
	}
	if errors.Is(err, broker.ErrInvalidArgument) {
		return http.StatusBadRequest, ErrorBody{Code: CodeInvalidField, Message: err.Error()}
	}
	for _, s := range sentinelErrors {
		if errors.Is(err, s.err) {
			return s.status, ErrorBody{Code: s.code, Message: s.message}
		}
	}
	if isUnavailable(err) {
		return http.StatusServiceUnavailable, ErrorBody{Code: CodeUnavailable, Message: "Redis or PostgreSQL is unavailable: retry later"}
	}
	return http.StatusInternalServerError, ErrorBody{Code: CodeInternal, Message: "internal error"}
}

// errDatabase marks an error from PostgreSQL that is not a validation
// error. Handlers wrap store errors with it, so any database failure is 503
// unavailable rather than a bug report.
var errDatabase = errors.New("PostgreSQL request failed")

// databaseError wraps err from a PostgreSQL store, keeping validation
// errors as they are.
func databaseError(err error) error {
	if err == nil || errors.Is(err, broker.ErrInvalidArgument) {
		return err
	}
	return fmt.Errorf("%w: %w", errDatabase, err)
}

// isUnavailable reports whether err means a backing service is unreachable
// or timed out, as opposed to a bug.
func isUnavailable(err error) bool {
	var netErr net.Error
	switch {
	case errors.Is(err, errDatabase),
		errors.As(err, &netErr),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, redis.ErrClosed),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return false
}

// abort writes the error response for err and stops the handler chain. A
// 5xx is logged with the request id (500 at error level, others at warn),
// and the message of a 500 repeats the id.
func abort(c *gin.Context, logger *slog.Logger, err error) {
	status, body := classify(err)
	if status >= 500 {
		id := requestID(c)
		if status == http.StatusInternalServerError {
			body.Message = fmt.Sprintf("internal error; report request id %s", id)
		}
		level := slog.LevelWarn
		if status == http.StatusInternalServerError {
			level = slog.LevelError
		}
		logger.Log(c.Request.Context(), level, "request failed",
			"request_id", id, "method", c.Request.Method, "path", c.FullPath(),
			"status", status, "error", err)
	}
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(status, body)
}
