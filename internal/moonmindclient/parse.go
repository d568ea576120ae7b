package moonmindclient

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Defaults that MoonMind's client uses when a job document leaves attempt or
// maxAttempts out.
const (
	defaultAttempt     = 1
	defaultMaxAttempts = 3
)

// SystemStatus is the pause state sent with claim and heartbeat responses.
type SystemStatus struct {
	WorkersPaused bool
	// Mode is "drain", "quiesce" or "" when the workers run.
	Mode        string
	Reason      string
	Version     int64
	RequestedAt *time.Time
	UpdatedAt   *time.Time
}

// Job is the part of the job document that MoonMind's worker and dashboard
// read. Raw holds the whole decoded document.
type Job struct {
	ID                  string
	Type                string
	Status              string
	Payload             map[string]any
	Attempt             int
	MaxAttempts         int
	ClaimedBy           string
	ResultSummary       string
	ErrorMessage        string
	CancelReason        string
	Checkpoint          map[string]any
	FinishOutcomeCode   string
	FinishOutcomeStage  string
	FinishOutcomeReason string
	FinishSummary       map[string]any
	LeaseExpiresAt      *time.Time
	NextAttemptAt       *time.Time
	CancelRequestedAt   *time.Time
	CreatedAt           time.Time
	UpdatedAt           time.Time
	StartedAt           *time.Time
	FinishedAt          *time.Time
	Raw                 map[string]any
}

// Event is one entry of a job's event history.
type Event struct {
	ID        string
	JobID     string
	Level     string
	Kind      string
	Message   string
	Payload   map[string]any
	WorkerID  string
	CreatedAt time.Time
}

// FinishSummary is the response of GET /api/queue/jobs/{id}/finish-summary.
type FinishSummary struct {
	JobID               string
	Status              string
	FinishOutcomeCode   string
	FinishOutcomeStage  string
	FinishOutcomeReason string
	FinishSummary       map[string]any
	ResultSummary       string
	ErrorMessage        string
	FinishedAt          *time.Time
}

// invalid builds an error that wraps ErrInvalidResponse and names the field.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s", ErrInvalidResponse, field, fmt.Sprintf(format, args...))
}

// parseSystem reads the system object. MoonMind's client falls back to
// version 1 when the value is missing or below 1. This client rejects that as
// an invalid response, because the broker promises a version of at least 1.
func parseSystem(node any) (SystemStatus, error) {
	var s SystemStatus
	m, ok := node.(map[string]any)
	if !ok {
		return s, invalid("system", "must be an object, got %s", describe(node))
	}
	var err error
	if s.WorkersPaused, err = optionalBool(m, "system.workersPaused"); err != nil {
		return s, err
	}
	if s.Mode, err = optionalString(m, "system.mode"); err != nil {
		return s, err
	}
	if s.Mode != "" && s.Mode != "drain" && s.Mode != "quiesce" {
		return s, invalid("system.mode", "must be drain, quiesce or null, got %q", s.Mode)
	}
	if s.Reason, err = optionalString(m, "system.reason"); err != nil {
		return s, err
	}
	version, present, err := integer(m, "system.version")
	if err != nil {
		return s, err
	}
	if !present || version < 1 {
		return s, invalid("system.version", "must be an integer of at least 1, got %s", describe(m["version"]))
	}
	s.Version = version
	if s.RequestedAt, err = optionalTime(m, "system.requestedAt"); err != nil {
		return s, err
	}
	if s.UpdatedAt, err = optionalTime(m, "system.updatedAt"); err != nil {
		return s, err
	}
	return s, nil
}

// parseJob reads a job document. Like MoonMind's client it requires an id
// that is a UUID and a type, and takes attempt and maxAttempts as positive
// integers with defaults 1 and 3 when absent.
func parseJob(node any) (*Job, error) {
	m, ok := node.(map[string]any)
	if !ok {
		return nil, invalid("job", "must be an object, got %s", describe(node))
	}
	j := &Job{Raw: m}
	id, ok := m["id"].(string)
	if !ok {
		return nil, invalid("job.id", "must be a string, got %s", describe(m["id"]))
	}
	if _, err := uuid.Parse(id); err != nil {
		return nil, invalid("job.id", "must be a UUID, got %q", id)
	}
	j.ID = id
	if j.Type, ok = m["type"].(string); !ok || j.Type == "" {
		return nil, invalid("job.type", "must be a non-empty string, got %s", describe(m["type"]))
	}

	var err error
	if j.Attempt, err = positiveInt(m, "job.attempt", defaultAttempt); err != nil {
		return nil, err
	}
	if j.MaxAttempts, err = positiveInt(m, "job.maxAttempts", defaultMaxAttempts); err != nil {
		return nil, err
	}
	if j.Payload, err = optionalObject(m, "job.payload"); err != nil {
		return nil, err
	}
	if j.Checkpoint, err = optionalObject(m, "job.checkpoint"); err != nil {
		return nil, err
	}
	if j.FinishSummary, err = optionalObject(m, "job.finishSummary"); err != nil {
		return nil, err
	}

	strings := []struct {
		field string
		dst   *string
	}{
		{"job.status", &j.Status},
		{"job.claimedBy", &j.ClaimedBy},
		{"job.resultSummary", &j.ResultSummary},
		{"job.errorMessage", &j.ErrorMessage},
		{"job.cancelReason", &j.CancelReason},
		{"job.finishOutcomeCode", &j.FinishOutcomeCode},
		{"job.finishOutcomeStage", &j.FinishOutcomeStage},
		{"job.finishOutcomeReason", &j.FinishOutcomeReason},
	}
	for _, s := range strings {
		if *s.dst, err = optionalString(m, s.field); err != nil {
			return nil, err
		}
	}

	times := []struct {
		field string
		dst   **time.Time
	}{
		{"job.leaseExpiresAt", &j.LeaseExpiresAt},
		{"job.nextAttemptAt", &j.NextAttemptAt},
		{"job.cancelRequestedAt", &j.CancelRequestedAt},
		{"job.startedAt", &j.StartedAt},
		{"job.finishedAt", &j.FinishedAt},
	}
	for _, t := range times {
		if *t.dst, err = optionalTime(m, t.field); err != nil {
			return nil, err
		}
	}
	if j.CreatedAt, err = requiredTime(m, "job.createdAt"); err != nil {
		return nil, err
	}
	if j.UpdatedAt, err = requiredTime(m, "job.updatedAt"); err != nil {
		return nil, err
	}
	return j, nil
}

// parseEvent reads one job event.
func parseEvent(node any) (Event, error) {
	var ev Event
	m, ok := node.(map[string]any)
	if !ok {
		return ev, invalid("event", "must be an object, got %s", describe(node))
	}
	var err error
	if ev.ID, ok = m["id"].(string); !ok || ev.ID == "" {
		return ev, invalid("event.id", "must be a non-empty string, got %s", describe(m["id"]))
	}
	if ev.JobID, ok = m["jobId"].(string); !ok || ev.JobID == "" {
		return ev, invalid("event.jobId", "must be a non-empty string, got %s", describe(m["jobId"]))
	}
	switch level, _ := m["level"].(string); level {
	case "debug", "info", "warn", "error":
		ev.Level = level
	default:
		return ev, invalid("event.level", "must be debug, info, warn or error, got %s", describe(m["level"]))
	}
	if ev.Message, ok = m["message"].(string); !ok {
		return ev, invalid("event.message", "must be a string, got %s", describe(m["message"]))
	}
	if ev.Kind, err = optionalString(m, "event.kind"); err != nil {
		return ev, err
	}
	if ev.WorkerID, err = optionalString(m, "event.workerId"); err != nil {
		return ev, err
	}
	if ev.Payload, err = optionalObject(m, "event.payload"); err != nil {
		return ev, err
	}
	if ev.CreatedAt, err = requiredTime(m, "event.createdAt"); err != nil {
		return ev, err
	}
	return ev, nil
}

// parseFinishSummary reads the finish-summary document.
func parseFinishSummary(m map[string]any) (*FinishSummary, error) {
	f := &FinishSummary{}
	var ok bool
	if f.JobID, ok = m["jobId"].(string); !ok || f.JobID == "" {
		return nil, invalid("jobId", "must be a non-empty string, got %s", describe(m["jobId"]))
	}
	if f.Status, ok = m["status"].(string); !ok || f.Status == "" {
		return nil, invalid("status", "must be a non-empty string, got %s", describe(m["status"]))
	}
	var err error
	fields := []struct {
		field string
		dst   *string
	}{
		{"finishOutcomeCode", &f.FinishOutcomeCode},
		{"finishOutcomeStage", &f.FinishOutcomeStage},
		{"finishOutcomeReason", &f.FinishOutcomeReason},
		{"resultSummary", &f.ResultSummary},
		{"errorMessage", &f.ErrorMessage},
	}
	for _, s := range fields {
		if *s.dst, err = optionalString(m, s.field); err != nil {
			return nil, err
		}
	}
	if f.FinishSummary, err = optionalObject(m, "finishSummary"); err != nil {
		return nil, err
	}
	if f.FinishedAt, err = optionalTime(m, "finishedAt"); err != nil {
		return nil, err
	}
	return f, nil
}

// key returns the last dotted part of a field path, the key in its object.
func key(field string) string {
	for i := len(field) - 1; i >= 0; i-- {
		if field[i] == '.' {
			return field[i+1:]
		}
	}
	return field
}

func optionalString(m map[string]any, field string) (string, error) {
	switch v := m[key(field)].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", invalid(field, "must be a string or null, got %s", describe(v))
	}
}

func optionalBool(m map[string]any, field string) (bool, error) {
	switch v := m[key(field)].(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	default:
		return false, invalid(field, "must be a boolean, got %s", describe(v))
	}
}

func optionalObject(m map[string]any, field string) (map[string]any, error) {
	switch v := m[key(field)].(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return v, nil
	default:
		return nil, invalid(field, "must be an object or null, got %s", describe(v))
	}
}

// integer reads an integer field; present is false when it is absent or
// null. A number with a fraction or out of the int64 range is invalid.
func integer(m map[string]any, field string) (value int64, present bool, err error) {
	switch v := m[key(field)].(type) {
	case nil:
		return 0, false, nil
	case json.Number:
		n, err := strconv.ParseInt(v.String(), 10, 64)
		if err != nil {
			return 0, true, invalid(field, "must be an integer, got %s", v)
		}
		return n, true, nil
	default:
		return 0, true, invalid(field, "must be an integer, got %s", describe(v))
	}
}

// positiveInt reads an integer of at least 1, or def when it is absent.
func positiveInt(m map[string]any, field string, def int) (int, error) {
	n, present, err := integer(m, field)
	if err != nil {
		return 0, err
	}
	if !present {
		return def, nil
	}
	if n < 1 || n > math.MaxInt32 {
		return 0, invalid(field, "must be a positive integer, got %d", n)
	}
	return int(n), nil
}

// parseTimestamp accepts RFC 3339 with a Z or a numeric offset and an
// optional fraction of a second.
func parseTimestamp(field, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, invalid(field, "must be an RFC 3339 time with Z or an offset, got %q", s)
	}
	return t, nil
}

func optionalTime(m map[string]any, field string) (*time.Time, error) {
	switch v := m[key(field)].(type) {
	case nil:
		return nil, nil
	case string:
		t, err := parseTimestamp(field, v)
		if err != nil {
			return nil, err
		}
		return &t, nil
	default:
		return nil, invalid(field, "must be an RFC 3339 time or null, got %s", describe(v))
	}
}

func requiredTime(m map[string]any, field string) (time.Time, error) {
	t, err := optionalTime(m, field)
	if err != nil {
		return time.Time{}, err
	}
	if t == nil {
		return time.Time{}, invalid(field, "is required: want an RFC 3339 time")
	}
	return *t, nil
}

// describe renders a decoded JSON value for an error message.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(v)
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	default:
		return fmt.Sprintf("%T", v)
	}
}
