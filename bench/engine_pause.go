package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moonmind/broker/broker"
)

// engineIdleWait is how long an engine worker that found nothing waits for
// a notice before it claims again; asynq's default TaskCheckInterval is the
// same second.
const engineIdleWait = time.Second

// pauseWatch records for engine workers whether a pause call has returned,
// and counts claims that got a job although they began after a pause returned
// and ended before the following resume call began.
type pauseWatch struct {
	pausedAt   atomic.Int64 // Unix ns when the pause call returned; 0 when not paused
	generation atomic.Int64 // raised just before each resume call
	violations atomic.Int64
}

// oursPauseRounds runs the pause rounds against pauseConcurrency engine
// workers that claim straight through the broker and wait on the notifier
// when they find nothing, as the API's long poll does.
func (e *env) oursPauseRounds(ctx context.Context, rounds int) (out pauseOutcome, err error) {
	g, err := e.newEngine(ctx)
	if err != nil {
		return out, err
	}
	defer func() { err = errors.Join(err, g.close(context.WithoutCancel(ctx))) }()

	notifier := g.b.NewNotifier()
	runCtx, stop := context.WithCancel(ctx)
	notifierDone := make(chan error, 1)
	go func() { notifierDone <- notifier.Start(runCtx) }()
	defer func() {
		notifier.Stop()
		if nerr := <-notifierDone; nerr != nil && !errors.Is(nerr, context.Canceled) {
			err = errors.Join(err, fmt.Errorf("notifier: %w", nerr))
		}
	}()

	log := newStartLog()
	watch := &pauseWatch{}
	var wg sync.WaitGroup
	workerErrs := make(chan error, pauseConcurrency)
	for i := range pauseConcurrency {
		wg.Go(func() {
			if werr := g.pauseWorker(runCtx, fmt.Sprintf("bench-%d", i), notifier, log, watch); werr != nil {
				workerErrs <- werr
				stop()
			}
		})
	}
	defer func() {
		stop()
		wg.Wait()
		close(workerErrs)
		for werr := range workerErrs {
			err = errors.Join(err, werr)
		}
	}()

	round := 0
	target := pauseTarget{
		enqueue: func(ctx context.Context, n int) error {
			_, err := g.enqueue(ctx, n, pauseConcurrency)
			return err
		},
		pending: g.queued,
		pause: func(ctx context.Context) error {
			round++
			if err := g.pause(ctx, fmt.Sprintf("benchmark round %d", round)); err != nil {
				return err
			}
			watch.pausedAt.Store(time.Now().UnixNano())
			return nil
		},
		resume: func(ctx context.Context) error {
			watch.generation.Add(1)
			watch.pausedAt.Store(0)
			return g.resume(ctx, fmt.Sprintf("benchmark round %d done", round))
		},
		log: log,
	}
	if out, err = target.rounds(runCtx, rounds); err != nil {
		return out, err
	}
	out.exactClaims = int(watch.violations.Load())
	return out, nil
}

// pauseWorker claims and runs jobs until ctx ends. Each job takes pauseWork.
func (g *engine) pauseWorker(ctx context.Context, workerID string, n *broker.Notifier, log *startLog, watch *pauseWatch) error {
	notices, unsubscribe := n.Subscribe()
	defer unsubscribe()
	for ctx.Err() == nil {
		pausedBefore := watch.pausedAt.Load()
		generation := watch.generation.Load()
		res, err := g.b.Claim(ctx, broker.ClaimParams{WorkerID: workerID})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("worker %s: claim: %w", workerID, err)
		}
		if res.Job == nil {
			waitForWork(ctx, notices, engineIdleWait)
			continue
		}
		// The claim began after a pause returned and no resume had begun
		// by the time it returned, so Redis ran it while paused.
		if pausedBefore != 0 && watch.generation.Load() == generation {
			watch.violations.Add(1)
		}
		log.record(time.Now())
		select {
		case <-time.After(pauseWork):
		case <-ctx.Done():
		}
		_, err = g.b.Complete(context.WithoutCancel(ctx), broker.CompleteParams{JobID: res.Job.ID, WorkerID: workerID, Attempt: res.Job.Attempt})
		if err != nil {
			return fmt.Errorf("worker %s: complete job %s: %w", workerID, res.Job.ID, err)
		}
	}
	return nil
}
