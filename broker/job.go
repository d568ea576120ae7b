package broker

import (
	"encoding/json"
	"time"
)

// Status is the lifecycle state of a job.
type Status string

// Job states. A job starts queued, is running while a worker holds its lease,
// and ends in one of the terminal states.
const (
	StatusQueued     Status = "queued"
	StatusRunning    Status = "running"
	StatusSucceeded  Status = "succeeded"
	StatusFailed     Status = "failed"
	StatusCancelled  Status = "cancelled"
	StatusDeadLetter Status = "dead_letter"
)

// Statuses lists every job state, in lifecycle order.
var Statuses = []Status{StatusQueued, StatusRunning, StatusSucceeded, StatusFailed, StatusCancelled, StatusDeadLetter}

// Valid reports whether s is one of the known job states.
func (s Status) Valid() bool {
	for _, known := range Statuses {
		if s == known {
			return true
		}
	}
	return false
}

// Terminal reports whether a job in state s will never run again.
func (s Status) Terminal() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCancelled || s == StatusDeadLetter
}

// Job is the document of one job as the API returns it. Optional fields are
// nil (JSON null) when unset. Times are UTC and come from the Redis clock.
type Job struct {
	ID                   string          `json:"id"`
	Type                 string          `json:"type"`
	Priority             int             `json:"priority"`
	Payload              json.RawMessage `json:"payload"`
	AffinityKey          *string         `json:"affinityKey"`
	RequiredCapabilities []string        `json:"requiredCapabilities"`
	MaxAttempts          int             `json:"maxAttempts"`
	Attempt              int             `json:"attempt"`
	Status               Status          `json:"status"`
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
	ResubmittedAs        *string         `json:"resubmittedAs"` // the copy made by the first resubmit
	FinishOutcomeCode    *string         `json:"finishOutcomeCode"`
	FinishOutcomeStage   *string         `json:"finishOutcomeStage"`
	FinishOutcomeReason  *string         `json:"finishOutcomeReason"`
	FinishSummary        json.RawMessage `json:"finishSummary"`
	CreatedAt            time.Time       `json:"createdAt"`
	UpdatedAt            time.Time       `json:"updatedAt"`
	StartedAt            *time.Time      `json:"startedAt"`
	FinishedAt           *time.Time      `json:"finishedAt"`
}

// PauseMode selects how far a pause goes.
type PauseMode string

// Pause modes. Drain stops new claims and lets running jobs finish. Quiesce
// also tells running jobs to park at their next checkpoint.
const (
	ModeDrain   PauseMode = "drain"
	ModeQuiesce PauseMode = "quiesce"
)

// Valid reports whether m is a known pause mode.
func (m PauseMode) Valid() bool { return m == ModeDrain || m == ModeQuiesce }

// PauseState is the content of the pause hash. Version starts at 1 and rises
// by exactly one on every change.
type PauseState struct {
	WorkersPaused bool       `json:"workersPaused"`
	Mode          *PauseMode `json:"mode"`
	Reason        *string    `json:"reason"`
	RequestedBy   *string    `json:"requestedBy"`
	RequestedAt   *time.Time `json:"requestedAt"`
	UpdatedAt     *time.Time `json:"updatedAt"`
	Version       int64      `json:"version"`
}

// DrainMetrics are the counts an operator watches while a pause drains.
// Each comes from a set cardinality or a range count, never from a scan.
type DrainMetrics struct {
	Queued       int64 `json:"queued"`
	Delayed      int64 `json:"delayed"`
	Running      int64 `json:"running"`
	StaleRunning int64 `json:"staleRunning"`
	Quiesced     int64 `json:"quiesced"`
	DeadLetter   int64 `json:"deadLetter"`
	IsDrained    bool  `json:"isDrained"`
}

// WorkerCounts counts the workers seen recently and those whose latest
// response carried the current pause version.
type WorkerCounts struct {
	Live         int64 `json:"live"`
	Acknowledged int64 `json:"acknowledged"`
}

// Snapshot is the pause state with its drain metrics and worker counts,
// read in one atomic script call.
type Snapshot struct {
	Pause   PauseState       `json:"pause"`
	Metrics DrainMetrics     `json:"metrics"`
	Workers WorkerCounts     `json:"workers"`
	Counts  map[Status]int64 `json:"counts"`
	Outbox  int64            `json:"outboxDepth"`
}

// AuditEvent is one pause state change as written to the Redis outbox by the
// script that made the change, and later to Postgres system_control_events.
type AuditEvent struct {
	ID          string          `json:"id" db:"id"`
	Control     string          `json:"control" db:"control"`
	Action      string          `json:"action" db:"action"`
	Mode        *string         `json:"mode" db:"mode"`
	Reason      string          `json:"reason" db:"reason"`
	Actor       *string         `json:"actor" db:"actor"`
	Version     int64           `json:"version" db:"version"`
	StateBefore json.RawMessage `json:"stateBefore" db:"state_before"`
	StateAfter  json.RawMessage `json:"stateAfter" db:"state_after"`
	CreatedAt   time.Time       `json:"createdAt" db:"created_at"`

	// OutboxID is the Redis stream entry id while the event waits in the
	// outbox; it is empty for events read from Postgres.
	OutboxID string `json:"-" db:"-"`
}

// Audit event vocabulary.
const (
	ControlWorkerPause = "worker_pause"

	ActionPause   = "pause"
	ActionResume  = "resume"
	ActionRestore = "restore"
)

// JobEvent is one entry of a job's event history: lifecycle changes that the
// broker records and messages that the worker holding the job appends.
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

// WorkerInfo is the broker's record of a worker from its latest claim or
// heartbeat.
type WorkerInfo struct {
	ID           string    `json:"id"`
	LastSeenAt   time.Time `json:"lastSeenAt"`
	Version      int64     `json:"pauseVersion"`
	Live         bool      `json:"live"`
	Acknowledged bool      `json:"acknowledged"`
}
