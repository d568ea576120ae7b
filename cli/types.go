package cli

import (
	"encoding/json"
	"time"

	"github.com/moonmind/broker/broker"
)

// pauseSnapshot is the response of GET /api/system/worker-pause.
type pauseSnapshot struct {
	WorkersPaused bool                `json:"workersPaused"`
	Mode          *string             `json:"mode"`
	Reason        *string             `json:"reason"`
	Version       int64               `json:"version"`
	RequestedBy   *string             `json:"requestedBy"`
	RequestedAt   *time.Time          `json:"requestedAt"`
	UpdatedAt     *time.Time          `json:"updatedAt"`
	Metrics       broker.DrainMetrics `json:"metrics"`
	Workers       broker.WorkerCounts `json:"workers"`
	Audit         struct {
		Latest []broker.AuditEvent `json:"latest"`
	} `json:"audit"`
	AuditPending bool `json:"auditPending"`
}

// safeToUpgrade reports whether the workers are paused and no job runs or
// sits stale, which is the condition wait-drained waits for.
func (s *pauseSnapshot) safeToUpgrade() bool {
	return s.WorkersPaused && s.Metrics.Running == 0 && s.Metrics.StaleRunning == 0
}

// modeLabel returns the pause mode, or "-" while the workers run.
func (s *pauseSnapshot) modeLabel() string {
	if s.Mode == nil || *s.Mode == "" {
		return "-"
	}
	return *s.Mode
}

// pauseRequest is the body of POST /api/system/worker-pause.
type pauseRequest struct {
	Action          string `json:"action"`
	Mode            string `json:"mode,omitempty"`
	Reason          string `json:"reason"`
	ExpectedVersion *int64 `json:"expectedVersion,omitempty"`
	ForceResume     bool   `json:"forceResume,omitempty"`
}

// jobPage is a page of GET /api/queue/jobs.
type jobPage struct {
	Items      []broker.Job `json:"items"`
	NextCursor *string      `json:"nextCursor"`
}

// auditPage is a page of GET /api/system/control-events.
type auditPage struct {
	Items      []broker.AuditEvent `json:"items"`
	NextCursor *string             `json:"nextCursor"`
}

// workerList is the response of GET /api/workers.
type workerList struct {
	Items []broker.WorkerInfo `json:"items"`
}

// tokenInfo is one API token as POST and GET /api/tokens return it. The
// API returns Token (the secret) only once, when the token is created.
type tokenInfo struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Role       string          `json:"role"`
	Token      string          `json:"token,omitempty"`
	Policy     json.RawMessage `json:"policy,omitempty"`
	CreatedAt  *time.Time      `json:"createdAt,omitempty"`
	LastUsedAt *time.Time      `json:"lastUsedAt,omitempty"`
	RevokedAt  *time.Time      `json:"revokedAt,omitempty"`
}

// tokenList is the response of GET /api/tokens.
type tokenList struct {
	Items []tokenInfo `json:"items"`
}
