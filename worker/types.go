package worker

import (
	"encoding/json"
	"time"
)

// Job is the job document the broker returns (see docs/http-api.md).
// Optional fields are nil when the broker sent null. It mirrors broker.Job
// on purpose: worker programs talk HTTP only and should not import the
// Redis engine and its dependencies.
type Job struct {
	ID                   string          `json:"id"`
	Type                 string          `json:"type"`
	Priority             int             `json:"priority"`
	Payload              json.RawMessage `json:"payload"`
	AffinityKey          *string         `json:"affinityKey"`
	RequiredCapabilities []string        `json:"requiredCapabilities"`
	MaxAttempts          int             `json:"maxAttempts"`
	Attempt              int             `json:"attempt"`
	Status               string          `json:"status"`
	ClaimedBy            *string         `json:"claimedBy"`
	LeaseExpiresAt       *time.Time      `json:"leaseExpiresAt"`
	NextAttemptAt        *time.Time      `json:"nextAttemptAt"`
	ResultSummary        *string         `json:"resultSummary"`
	ErrorMessage         *string         `json:"errorMessage"`
	CancelRequestedAt    *time.Time      `json:"cancelRequestedAt"`
	CancelReason         *string         `json:"cancelReason"`
	CancelAckMessage     *string         `json:"cancelAckMessage"`
	Checkpoint           json.RawMessage `json:"checkpoint"`
	Quiesced             bool            `json:"quiesced"`
	IdempotencyKey       *string         `json:"idempotencyKey"`
	ResubmittedFrom      *string         `json:"resubmittedFrom"`
	ResubmittedAs        *string         `json:"resubmittedAs"`
	FinishOutcomeCode    *string         `json:"finishOutcomeCode"`
	FinishOutcomeStage   *string         `json:"finishOutcomeStage"`
	FinishOutcomeReason  *string         `json:"finishOutcomeReason"`
	FinishSummary        json.RawMessage `json:"finishSummary"`
	CreatedAt            time.Time       `json:"createdAt"`
	UpdatedAt            time.Time       `json:"updatedAt"`
	StartedAt            *time.Time      `json:"startedAt"`
	FinishedAt           *time.Time      `json:"finishedAt"`
}

// SystemState is the broker's pause state as claim and heartbeat responses
// carry it in their "system" object. Mode is "drain", "quiesce" or empty;
// Version rises by one on every pause, resume or restore.
type SystemState struct {
	WorkersPaused bool       `json:"workersPaused"`
	Mode          string     `json:"mode"`
	Reason        string     `json:"reason"`
	Version       int64      `json:"version"`
	RequestedAt   *time.Time `json:"requestedAt"`
	UpdatedAt     *time.Time `json:"updatedAt"`
}

// Quiesced reports whether the broker requests that running jobs park at
// their next checkpoint.
func (s SystemState) Quiesced() bool {
	return s.WorkersPaused && s.Mode == ModeQuiesce
}

// Pause modes as the broker names them.
const (
	ModeDrain   = "drain"
	ModeQuiesce = "quiesce"
)

// ClaimRequest is the body of POST /api/queue/jobs/claim.
type ClaimRequest struct {
	WorkerID           string   `json:"workerId"`
	LeaseSeconds       int      `json:"leaseSeconds,omitempty"`
	AllowedTypes       []string `json:"allowedTypes,omitempty"`
	WorkerCapabilities []string `json:"workerCapabilities,omitempty"`
	// WaitSeconds makes the broker hold the request up to this many
	// seconds (0 to 30) until a job can be claimed.
	WaitSeconds int `json:"waitSeconds,omitempty"`
}

// ClaimResponse is the response to a claim. Job is nil when nothing could
// be claimed, which includes every claim while the workers are paused.
type ClaimResponse struct {
	Job    *Job        `json:"job"`
	System SystemState `json:"system"`
}

// HeartbeatRequest is the body of POST /api/queue/jobs/{id}/heartbeat.
type HeartbeatRequest struct {
	WorkerID     string `json:"workerId"`
	Attempt      int    `json:"attempt,omitempty"`
	LeaseSeconds int    `json:"leaseSeconds,omitempty"`
	// Quiesced reports the job as parked at a checkpoint (true) or
	// running (false); nil leaves the broker's flag as it is.
	Quiesced *bool `json:"quiesced,omitempty"`
	// Checkpoint is a JSON object to store as the job's checkpoint; nil
	// keeps the stored one.
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
}

// HeartbeatResponse is the job document with the pause state added.
type HeartbeatResponse struct {
	Job
	System SystemState `json:"system"`
}

// FinishDetails are the optional outcome fields of complete, fail and
// cancel acknowledgement.
type FinishDetails struct {
	OutcomeCode   string          `json:"finishOutcomeCode,omitempty"`  // at most 64 characters
	OutcomeStage  string          `json:"finishOutcomeStage,omitempty"` // at most 32 characters
	OutcomeReason string          `json:"finishOutcomeReason,omitempty"`
	Summary       json.RawMessage `json:"finishSummary,omitempty"` // a JSON object
}

// CompleteRequest is the body of POST /api/queue/jobs/{id}/complete.
type CompleteRequest struct {
	WorkerID      string `json:"workerId"`
	Attempt       int    `json:"attempt,omitempty"`
	ResultSummary string `json:"resultSummary,omitempty"`
	FinishDetails
}

// FailRequest is the body of POST /api/queue/jobs/{id}/fail.
type FailRequest struct {
	WorkerID     string `json:"workerId"`
	Attempt      int    `json:"attempt,omitempty"`
	ErrorMessage string `json:"errorMessage"`
	Retryable    bool   `json:"retryable"`
	FinishDetails
}

// AckCancelRequest is the body of POST /api/queue/jobs/{id}/cancel/ack.
type AckCancelRequest struct {
	WorkerID string `json:"workerId"`
	Attempt  int    `json:"attempt,omitempty"`
	Message  string `json:"message,omitempty"`
	FinishDetails
}

// ReleaseRequest is the body of POST /api/queue/jobs/{id}/release.
type ReleaseRequest struct {
	WorkerID string `json:"workerId"`
	Attempt  int    `json:"attempt,omitempty"`
	// Checkpoint is a JSON object to store with the released job; nil
	// keeps the stored one.
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
}

// RuntimeStateRequest is the body of POST /api/queue/jobs/{id}/runtime-state.
type RuntimeStateRequest struct {
	WorkerID     string          `json:"workerId"`
	Attempt      int             `json:"attempt,omitempty"`
	RuntimeState json.RawMessage `json:"runtimeState"` // a JSON object
}

// EventRequest is the body of POST /api/queue/jobs/{id}/events.
type EventRequest struct {
	WorkerID string          `json:"workerId"`
	Level    string          `json:"level"` // debug, info, warn or error
	Message  string          `json:"message"`
	Payload  json.RawMessage `json:"payload,omitempty"` // a JSON object
}

// JobEvent is one entry of a job's event history.
type JobEvent struct {
	ID        string          `json:"id"`
	JobID     string          `json:"jobId"`
	Level     string          `json:"level"`
	Kind      string          `json:"kind"`
	Message   string          `json:"message"`
	Payload   json.RawMessage `json:"payload"`
	WorkerID  *string         `json:"workerId"`
	CreatedAt time.Time       `json:"createdAt"`
}

// EnqueueRequest is the body of POST /api/queue/jobs. It needs a producer
// or operator token.
type EnqueueRequest struct {
	Type                 string          `json:"type"`
	Priority             int             `json:"priority,omitempty"`
	Payload              json.RawMessage `json:"payload,omitempty"` // a JSON object
	AffinityKey          string          `json:"affinityKey,omitempty"`
	RequiredCapabilities []string        `json:"requiredCapabilities,omitempty"`
	MaxAttempts          int             `json:"maxAttempts,omitempty"`
	RunAt                *time.Time      `json:"runAt,omitempty"`
	IdempotencyKey       string          `json:"idempotencyKey,omitempty"`
}
