package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"
)

// Defaults for Config fields left at their zero value, and the bounds the
// broker puts on them.
const (
	// DefaultConcurrency is 1 because MoonMind jobs are long and heavy; a
	// worker process runs one job at a time unless configured otherwise.
	DefaultConcurrency   = 1
	DefaultLeaseDuration = 60 * time.Second
	// MaxLeaseDuration is the broker's upper bound on leaseSeconds.
	MaxLeaseDuration         = time.Hour
	DefaultPollInterval      = 20 * time.Second
	MaxPollInterval          = 30 * time.Second
	DefaultPausePollInterval = 5 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultRequestTimeout    = 15 * time.Second

	// releaseWorkerTimeout bounds the release of leftover jobs at the end
	// of a shutdown, so a broker that does not respond delays the exit by
	// at most this long.
	releaseWorkerTimeout = 5 * time.Second
)

// Config configures a Server. The zero value of every field except
// BrokerURL means its default.
type Config struct {
	// BrokerURL is the broker's base URL, for example
	// "https://broker:8443". Required.
	BrokerURL string

	// Token is the worker token sent as "Authorization: Bearer". Empty
	// sends none, which only a broker with authentication disabled
	// accepts. It is never logged.
	Token string

	// WorkerID names this worker in claims, leases and the broker's worker
	// list. Default: host name + "-" + process id. Two live processes must
	// not share an id: at the end of Shutdown the server releases every
	// job held by its id, which would take the jobs of the other process
	// too.
	WorkerID string

	// Concurrency is how many jobs run at once. Each slot holds its own
	// long-poll claim while idle. Default 1.
	Concurrency int

	// LeaseDuration is the lease asked for with every claim and heartbeat.
	// Whole seconds, from 1 s to 1 h. Default 60 s.
	LeaseDuration time.Duration

	// HeartbeatInterval is how often a running job's lease is extended.
	// It must be shorter than LeaseDuration. Default LeaseDuration / 3.
	HeartbeatInterval time.Duration

	// PollInterval is the long-poll wait of a claim (waitSeconds): how long
	// the broker holds an idle claim open. Whole seconds, from 1 s to 30 s.
	// Default 20 s.
	PollInterval time.Duration

	// PausePollInterval is how often an idle worker claims again while
	// the workers are paused, and the heartbeat interval of a job parked in
	// Checkpoint when that is shorter than HeartbeatInterval. Default 5 s.
	PausePollInterval time.Duration

	// ShutdownTimeout is how long Shutdown waits for running handlers
	// before it cancels their contexts and releases their jobs. Default 30 s.
	ShutdownTimeout time.Duration

	// RequestTimeout bounds each request to the broker; a claim may take
	// PollInterval longer. Default 15 s.
	RequestTimeout time.Duration

	// AllowedTypes limits the job types this worker claims. Empty means any
	// type (the worker token's policy may still limit them).
	AllowedTypes []string

	// Capabilities are sent as workerCapabilities: the worker only gets
	// jobs whose requiredCapabilities are all among them.
	Capabilities []string

	// CAFile is a PEM file of certificate authorities to trust for an
	// https BrokerURL, in addition to the system pool. It must be empty
	// when HTTPClient is set.
	CAFile string

	// Logger receives the worker's logs. Default slog.Default().
	Logger *slog.Logger

	// HTTPClient sends the requests. Its Timeout, when set, must exceed
	// PollInterval plus RequestTimeout or long polls fail. Default: a
	// client with the default transport and CAFile.
	HTTPClient *http.Client
}

// withDefaults fills in every zero field.
func (c Config) withDefaults() Config {
	if c.WorkerID == "" {
		c.WorkerID = defaultWorkerID()
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = c.LeaseDuration / 3
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.PausePollInterval == 0 {
		c.PausePollInterval = DefaultPausePollInterval
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate names the first invalid field and how to fix it.
func (c Config) validate() error {
	if _, err := parseBrokerURL(c.BrokerURL); err != nil {
		return fmt.Errorf("worker config: %w", err)
	}
	switch {
	case len(c.WorkerID) > 200:
		return fmt.Errorf("worker config: WorkerID must be at most 200 characters, got %d", len(c.WorkerID))
	case c.Concurrency < 1 || c.Concurrency > 1000:
		return fmt.Errorf("worker config: Concurrency must be from 1 to 1000, got %d", c.Concurrency)
	case c.LeaseDuration < time.Second || c.LeaseDuration > MaxLeaseDuration || c.LeaseDuration%time.Second != 0:
		return fmt.Errorf("worker config: LeaseDuration must be whole seconds from 1s to 1h, got %s", c.LeaseDuration)
	case c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.LeaseDuration:
		return fmt.Errorf("worker config: HeartbeatInterval must be positive and shorter than LeaseDuration (%s), got %s", c.LeaseDuration, c.HeartbeatInterval)
	case c.PollInterval < time.Second || c.PollInterval > MaxPollInterval || c.PollInterval%time.Second != 0:
		return fmt.Errorf("worker config: PollInterval must be whole seconds from 1s to 30s, got %s", c.PollInterval)
	case c.PausePollInterval < 0:
		return fmt.Errorf("worker config: PausePollInterval must be positive, got %s", c.PausePollInterval)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("worker config: ShutdownTimeout must not be negative, got %s", c.ShutdownTimeout)
	case c.RequestTimeout < 0:
		return fmt.Errorf("worker config: RequestTimeout must be positive, got %s", c.RequestTimeout)
	case c.CAFile != "" && c.HTTPClient != nil:
		return errors.New("worker config: set CAFile or HTTPClient, not both: configure the CA in the HTTPClient's transport")
	}
	for i, t := range c.AllowedTypes {
		if t == "" || len(t) > 200 {
			return fmt.Errorf("worker config: AllowedTypes[%d] must be 1 to 200 characters, got %q", i, t)
		}
	}
	for i, capability := range c.Capabilities {
		if capability == "" {
			return fmt.Errorf("worker config: Capabilities[%d] must not be empty", i)
		}
	}
	return nil
}

// defaultWorkerID is the host name and process id, so two workers on one
// host differ.
func defaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}
