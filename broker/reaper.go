package broker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Defaults for ReaperConfig fields left at zero.
const (
	DefaultReaperInterval  = time.Second
	DefaultReaperBatchSize = 100

	// maxReapBatches bounds the script calls of one pass, so a large backlog
	// is worked off over several passes instead of blocking one.
	maxReapBatches = 20
)

// ReaperConfig configures the lease reaper. Zero or negative fields take
// their defaults.
type ReaperConfig struct {
	// Interval is the time between passes. Default 1 s.
	Interval time.Duration

	// BatchSize is the most jobs each step of one script call handles:
	// expired leases, cancelled leases, due delayed jobs and purged jobs.
	// Default 100.
	BatchSize int
}

func (c ReaperConfig) withDefaults() ReaperConfig {
	if c.Interval <= 0 {
		c.Interval = DefaultReaperInterval
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultReaperBatchSize
	}
	return c
}

// Reaper runs reaper passes in the background: it requeues or dead-letters
// jobs whose lease expired, promotes due delayed jobs and purges finished
// jobs past the retention. Every API server may run one; the passes are
// scripts, so they never move a job twice.
type Reaper struct {
	b      *Broker
	cfg    ReaperConfig
	logger *slog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewReaper returns a stopped reaper for b. A nil logger discards logs.
func (b *Broker) NewReaper(cfg ReaperConfig, logger *slog.Logger) *Reaper {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Reaper{b: b, cfg: cfg.withDefaults(), logger: logger.With("component", "reaper")}
}

// Start runs passes every Interval in a new goroutine until ctx ends or Stop
// is called. Calling Start on a running reaper does nothing.
func (r *Reaper) Start(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil {
		return
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go r.run(ctx, r.done)
}

// Stop ends the loop and waits for the running pass to return. It is safe
// to call more than once and before Start.
func (r *Reaper) Stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel, r.done = nil, nil
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (r *Reaper) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	ticker := time.NewTicker(r.cfg.Interval)
	defer ticker.Stop()
	for {
		if _, err := r.ReapOnce(ctx); err != nil && ctx.Err() == nil {
			r.logger.ErrorContext(ctx, "reaper pass failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// ReapOnce runs one pass with the reaper's batch size and logs a line when
// it changed anything. A cancelled context returns ctx.Err() unlogged.
func (r *Reaper) ReapOnce(ctx context.Context) (ReapResult, error) {
	res, err := r.b.reap(ctx, r.cfg.BatchSize)
	if err != nil {
		return res, err
	}
	if res.Retried+res.DeadLettered+res.Cancelled+res.Purged+res.Promoted > 0 {
		r.logger.InfoContext(ctx, "reaper pass changed jobs",
			"retried", res.Retried, "dead_lettered", res.DeadLettered, "cancelled", res.Cancelled,
			"purged", res.Purged, "promoted", res.Promoted, "paused", res.Paused)
	}
	return res, nil
}

// ReapOnce runs one reaper pass with the default batch size. While paused
// it only finalizes running jobs whose cancel was requested and whose lease
// expired.
func (b *Broker) ReapOnce(ctx context.Context) (ReapResult, error) {
	return b.reap(ctx, DefaultReaperBatchSize)
}

// reap runs the reap script until a call leaves every step's batch unfilled,
// at most maxReapBatches times.
func (b *Broker) reap(ctx context.Context, batch int) (ReapResult, error) {
	var total ReapResult
	for range maxReapBatches {
		vals, err := script("reap").Run(ctx, b.rdb, []string{b.keys.Pause()},
			b.keys.Prefix(), b.cfg.LeaseGrace.Milliseconds(), b.cfg.Retention.Milliseconds(),
			batch, b.cfg.JobEventsMaxLen).Int64Slice()
		if err != nil {
			return total, fmt.Errorf("reap: %w", err)
		}
		if len(vals) != 6 {
			return total, fmt.Errorf("reap: script returned %d values, want 6", len(vals))
		}
		total.Paused = vals[0] == 1
		total.Retried += int(vals[1])
		total.DeadLettered += int(vals[2])
		total.Cancelled += int(vals[3])
		total.Purged += int(vals[4])
		total.Promoted += int(vals[5])

		full := int(vals[1]+vals[2]) >= batch || int(vals[3]) >= batch ||
			int(vals[4]) >= batch || int(vals[5]) >= batch
		if !full {
			break
		}
	}
	return total, nil
}
