package bench

import (
	"context"
	"fmt"
)

// throughputSection measures, at each throughput concurrency, how fast
// Jobs no-op jobs are enqueued and then processed: MoonMind Broker through
// its HTTP API and worker runtime, asynq through its client and server.
func (e *env) throughputSection(ctx context.Context) error {
	enqueueMetric := fmt.Sprintf("enqueue, %d callers", enqueueConcurrency)
	for run := range e.cfg.Runs {
		for _, c := range throughputConcurrency {
			e.log.Info("throughput run", "run", run+1, "workers", c, "jobs", e.cfg.Jobs)
			metric := fmt.Sprintf("processed end to end, %d workers", c)

			enqueueRate, rate, err := e.oursThroughput(ctx, e.cfg.Jobs, c)
			if err != nil {
				return fmt.Errorf("ours, %d workers: %w", c, err)
			}
			e.results.ours(SectionThroughput, enqueueMetric, "jobs/s", enqueueRate)
			e.results.ours(SectionThroughput, metric, "jobs/s", rate)

			enqueueRate, rate, err = e.asynqThroughput(ctx, e.cfg.Jobs, c)
			if err != nil {
				return fmt.Errorf("asynq, %d workers: %w", c, err)
			}
			e.results.peer(SectionThroughput, enqueueMetric, "jobs/s", asynqName, enqueueRate)
			e.results.peer(SectionThroughput, metric, "jobs/s", asynqName, rate)
		}
	}
	return nil
}
