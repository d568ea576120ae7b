package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// snapshotSamples is how many snapshot reads each run times.
const snapshotSamples = 1000

// snapshotSection fills one namespace with DeepQueue jobs, then times the
// snapshot script and, when an API server runs, GET /api/system/worker-pause.
func (e *env) snapshotSection(ctx context.Context) (err error) {
	g, err := e.newEngine(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, g.close(context.WithoutCancel(ctx))) }()

	e.log.Info("filling the queue", "jobs", e.cfg.DeepQueue)
	begin := time.Now()
	if err := g.fill(ctx, e.cfg.DeepQueue); err != nil {
		return err
	}
	e.log.Info("queue filled", "jobs", e.cfg.DeepQueue, "elapsed", time.Since(begin).Round(time.Millisecond))
	if queued, err := g.queued(ctx); err != nil {
		return err
	} else if queued != e.cfg.DeepQueue {
		return fmt.Errorf("snapshot reports %d queued jobs, want %d", queued, e.cfg.DeepQueue)
	}

	depth := humanCount(e.cfg.DeepQueue)
	for run := range e.cfg.Runs {
		e.log.Info("snapshot run", "run", run+1, "samples", snapshotSamples)
		lat, err := timeCalls(ctx, snapshotSamples, func(ctx context.Context) error {
			_, err := g.b.Snapshot(ctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("snapshot script: %w", err)
		}
		e.results.ours(SectionSnapshot, "snapshot script p50, "+depth+" queued", "ms", percentile(lat, 50))
		e.results.ours(SectionSnapshot, "snapshot script p99, "+depth+" queued", "ms", percentile(lat, 99))
	}
	return e.httpSnapshotRuns(ctx, g, depth)
}

// timeCalls calls fn n times one after the other and returns each call's
// latency in milliseconds.
func timeCalls(ctx context.Context, n int, fn func(context.Context) error) ([]float64, error) {
	lat := make([]float64, 0, n)
	for range n {
		start := time.Now()
		if err := fn(ctx); err != nil {
			return nil, err
		}
		lat = append(lat, millis(time.Since(start)))
	}
	return lat, nil
}

// humanCount writes n as 10k or 1M where that is exact.
func humanCount(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	default:
		return fmt.Sprint(n)
	}
}
