package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// memorySection measures Redis memory per queued job for both brokers as
// the growth of INFO used_memory divided by the number of jobs queued.
func (e *env) memorySection(ctx context.Context) error {
	metric := fmt.Sprintf("memory per queued job, %d-byte payload", e.cfg.PayloadSize)
	n := e.cfg.MemoryJobs
	for run := range e.cfg.Runs {
		e.log.Info("memory run", "run", run+1, "jobs", n)

		ours, err := e.oursMemory(ctx, n)
		if err != nil {
			return fmt.Errorf("ours: %w", err)
		}
		e.results.ours(SectionMemory, metric, "bytes/job", ours)

		peer, err := e.asynqMemory(ctx, n)
		if err != nil {
			return fmt.Errorf("asynq: %w", err)
		}
		e.results.peer(SectionMemory, metric, "bytes/job", asynqName, peer)
	}
	return nil
}

func (e *env) oursMemory(ctx context.Context, n int) (perJob float64, err error) {
	g, err := e.newEngine(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, g.close(context.WithoutCancel(ctx))) }()
	return e.memoryGrowth(ctx, n, func(ctx context.Context) error {
		_, err := g.enqueue(ctx, n, enqueueConcurrency)
		return err
	})
}

func (e *env) asynqMemory(ctx context.Context, n int) (perJob float64, err error) {
	q := e.newAsynqQueue()
	defer func() { err = errors.Join(err, q.close(context.WithoutCancel(ctx))) }()
	return e.memoryGrowth(ctx, n, func(ctx context.Context) error {
		_, err := q.enqueue(ctx, n)
		return err
	})
}

// memoryGrowth returns the growth of used_memory per job while fill queues
// n jobs.
func (e *env) memoryGrowth(ctx context.Context, n int, fill func(context.Context) error) (float64, error) {
	// Cleanup uses UNLINK or FLUSHDB ASYNC, which free memory in a
	// background thread; a baseline taken while that runs would be high.
	lazyFreeDone := func() (bool, error) {
		info, err := e.ours.InfoMap(ctx, "memory").Result()
		if err != nil {
			return false, fmt.Errorf("INFO memory: %w", err)
		}
		return info["Memory"]["lazyfree_pending_objects"] == "0", nil
	}
	if err := waitUntil(ctx, time.Minute, 10*time.Millisecond, "Redis to finish freeing deleted keys", lazyFreeDone); err != nil {
		return 0, err
	}
	before, err := usedMemory(ctx, e.ours)
	if err != nil {
		return 0, err
	}
	if err := fill(ctx); err != nil {
		return 0, err
	}
	after, err := usedMemory(ctx, e.ours)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(n), nil
}
