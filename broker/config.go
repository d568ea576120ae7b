package broker

import (
	"fmt"
	"time"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultNamespace        = "mm"
	DefaultMaxPayloadBytes  = 1 << 20
	DefaultMaxAttempts      = 3
	DefaultLeaseDuration    = 60 * time.Second
	MaxLeaseDuration        = time.Hour
	DefaultLeaseGrace       = 30 * time.Second
	DefaultRetention        = 7 * 24 * time.Hour
	DefaultBackoffBase      = time.Second
	DefaultBackoffCap       = time.Hour
	DefaultClaimScanLimit   = 64
	DefaultJobEventsMaxLen  = 1000
	DefaultWorkerLiveWindow = 90 * time.Second
	MaxReasonLength         = 1000
	MaxTypeLength           = 200
)

// Config configures a Broker. The zero value of every field means its default.
type Config struct {
	// Namespace separates deployments that share one Redis. Every key is
	// prefixed with "{Namespace}:". Default "mm".
	Namespace string

	// MaxPayloadBytes caps the encoded size of a job payload and of a
	// checkpoint. Default 1 MiB.
	MaxPayloadBytes int

	// DefaultMaxAttempts applies to jobs enqueued without maxAttempts.
	// Default 3.
	DefaultMaxAttempts int

	// LeaseGrace is how long after its lease expired a running job waits
	// before the reaper retries or dead-letters it. Default 30 s.
	LeaseGrace time.Duration

	// Retention is how long finished jobs are kept. Default 7 days.
	Retention time.Duration

	// BackoffBase and BackoffCap bound the retry delay of a failed job:
	// the delay of attempt n is BackoffBase*2^(n-1) with up to 50 % jitter
	// added, never more than BackoffCap. Defaults 1 s and 1 h.
	BackoffBase time.Duration
	BackoffCap  time.Duration

	// ClaimScanLimit bounds how many ready jobs of one type a claim inspects
	// for a capability match. Default 64.
	ClaimScanLimit int

	// JobEventsMaxLen caps each job's event stream (approximately, as
	// XADD MAXLEN ~). Default 1000.
	JobEventsMaxLen int

	// WorkerLiveWindow is the time since a worker's latest claim or
	// heartbeat within which it counts as live. Default 90 s.
	WorkerLiveWindow time.Duration
}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if c.DefaultMaxAttempts == 0 {
		c.DefaultMaxAttempts = DefaultMaxAttempts
	}
	if c.LeaseGrace == 0 {
		c.LeaseGrace = DefaultLeaseGrace
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffCap == 0 {
		c.BackoffCap = DefaultBackoffCap
	}
	if c.ClaimScanLimit == 0 {
		c.ClaimScanLimit = DefaultClaimScanLimit
	}
	if c.JobEventsMaxLen == 0 {
		c.JobEventsMaxLen = DefaultJobEventsMaxLen
	}
	if c.WorkerLiveWindow == 0 {
		c.WorkerLiveWindow = DefaultWorkerLiveWindow
	}
	return c
}

func (c Config) validate() error {
	switch {
	case !namespaceValid(c.Namespace):
		return fmt.Errorf("broker config: Namespace %q must be 1 to 64 characters without braces, colons or spaces", c.Namespace)
	case c.MaxPayloadBytes < 0:
		return fmt.Errorf("broker config: MaxPayloadBytes must not be negative, got %d", c.MaxPayloadBytes)
	case c.DefaultMaxAttempts < 1:
		return fmt.Errorf("broker config: DefaultMaxAttempts must be at least 1, got %d", c.DefaultMaxAttempts)
	case c.LeaseGrace < 0:
		return fmt.Errorf("broker config: LeaseGrace must not be negative, got %s", c.LeaseGrace)
	case c.Retention < time.Second:
		return fmt.Errorf("broker config: Retention must be at least 1s, got %s", c.Retention)
	case c.BackoffBase <= 0 || c.BackoffCap < c.BackoffBase:
		return fmt.Errorf("broker config: need 0 < BackoffBase (%s) <= BackoffCap (%s)", c.BackoffBase, c.BackoffCap)
	case c.ClaimScanLimit < 1:
		return fmt.Errorf("broker config: ClaimScanLimit must be at least 1, got %d", c.ClaimScanLimit)
	case c.JobEventsMaxLen < 1:
		return fmt.Errorf("broker config: JobEventsMaxLen must be at least 1, got %d", c.JobEventsMaxLen)
	case c.WorkerLiveWindow <= 0:
		return fmt.Errorf("broker config: WorkerLiveWindow must be positive, got %s", c.WorkerLiveWindow)
	}
	return nil
}
