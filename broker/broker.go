// Package broker is the Redis engine of MoonMind Broker: jobs, leases, the
// pause key with its version counter, and the audit outbox. Every state
// change runs as one Lua script from the lua/ folder, so each is atomic.
package broker

import (
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"
)

// Broker runs the engine's scripts against one Redis deployment namespace.
// It is safe for concurrent use; several Brokers (in several processes) may
// share one namespace.
type Broker struct {
	rdb  redis.UniversalClient
	cfg  Config
	keys keys
}

// New returns a Broker for rdb. It does not touch Redis; call InitPause or
// let the audit restorer initialize the pause key.
func New(rdb redis.UniversalClient, cfg Config) (*Broker, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Broker{rdb: rdb, cfg: cfg, keys: newKeys(cfg.Namespace)}, nil
}

// Config returns the configuration with defaults filled in.
func (b *Broker) Config() Config { return b.cfg }

// Redis returns the client the broker uses.
func (b *Broker) Redis() redis.UniversalClient { return b.rdb }

// EnqueueParams describes a new job.
type EnqueueParams struct {
	Type                 string
	Priority             int
	Payload              json.RawMessage // a JSON object; nil means {}
	AffinityKey          string
	RequiredCapabilities []string
	MaxAttempts          int       // 0 means Config.DefaultMaxAttempts
	RunAt                time.Time // zero means ready now
	IdempotencyKey       string    // optional
	ResubmittedFrom      string    // set by Resubmit
}

// ClaimParams describes a worker's claim.
type ClaimParams struct {
	WorkerID           string
	Lease              time.Duration // 0 means DefaultLeaseDuration
	AllowedTypes       []string      // empty means any type
	WorkerCapabilities []string
}

// ClaimResult is the outcome of one claim script run. Job is nil when
// nothing could be claimed or the workers are paused.
type ClaimResult struct {
	Job   *Job
	Pause PauseState
}

// HeartbeatParams extends a lease. Attempt 0 skips the attempt check.
type HeartbeatParams struct {
	JobID      string
	WorkerID   string
	Attempt    int
	Lease      time.Duration
	Quiesced   *bool           // nil leaves the parked flag as it is
	Checkpoint json.RawMessage // nil leaves the checkpoint as it is
}

// FinishDetails are the optional outcome fields a worker sends with
// complete, fail and cancel acknowledgement.
type FinishDetails struct {
	OutcomeCode   string // at most 64 characters
	OutcomeStage  string // at most 32 characters
	OutcomeReason string
	Summary       json.RawMessage // a JSON object, or nil
}

// CompleteParams finishes a job successfully.
type CompleteParams struct {
	JobID         string
	WorkerID      string
	Attempt       int
	ResultSummary string
	Finish        FinishDetails
}

// FailParams reports a failed attempt.
type FailParams struct {
	JobID        string
	WorkerID     string
	Attempt      int
	ErrorMessage string
	Retryable    bool
	Finish       FinishDetails
}

// AckCancelParams acknowledges a cancel request of a running job.
type AckCancelParams struct {
	JobID    string
	WorkerID string
	Attempt  int
	Message  string
	Finish   FinishDetails
}

// ReleaseParams hands a running job back to the queue without using up an
// attempt.
type ReleaseParams struct {
	JobID      string
	WorkerID   string
	Attempt    int
	Checkpoint json.RawMessage // nil keeps the saved checkpoint
}

// RecoverMode selects what an operator's recover does with a stale job.
type RecoverMode string

// Recover modes.
const (
	RecoverRequeue RecoverMode = "requeue"
	RecoverCancel  RecoverMode = "cancel"
)

// ListParams filters and pages the job listing.
type ListParams struct {
	Status Status // empty means every state
	Type   string // empty means every type
	Limit  int    // 1 to 500; 0 means 50
	Cursor string // from the previous page's NextCursor
}

// PauseParams are the inputs of a pause request.
type PauseParams struct {
	Mode            PauseMode
	Reason          string
	Actor           string
	ExpectedVersion *int64
}

// ResumeParams are the inputs of a resume request.
type ResumeParams struct {
	Reason          string
	Actor           string
	ExpectedVersion *int64
	Force           bool
}

// PauseChange is the result of an accepted pause, resume or restore: the
// new state and the audit event the same script appended to the outbox.
type PauseChange struct {
	State PauseState
	Event AuditEvent
}

// ReapResult counts what one reaper pass did.
type ReapResult struct {
	Retried      int
	DeadLettered int
	Cancelled    int
	Purged       int
	Promoted     int
	Paused       bool
}
