package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
)

// asynqName is the peer's name in the table.
const asynqName = "asynq v0.26.0"

// noopType is the job type of every benchmark job, for both brokers.
const noopType = "bench:noop"

// enqueueConcurrency is how many goroutines enqueue jobs before a
// throughput run, for both brokers.
const enqueueConcurrency = 50

// asynqQueue is one asynq queue created for a measurement, with the client
// and inspector that use it.
type asynqQueue struct {
	e         *env
	name      string
	client    *asynq.Client
	inspector *asynq.Inspector
}

// newAsynqQueue names a fresh queue. Call close to delete its keys.
func (e *env) newAsynqQueue() *asynqQueue {
	return &asynqQueue{
		e:         e,
		name:      randomName("bench_"),
		client:    asynq.NewClient(e.asynqOpt),
		inspector: asynq.NewInspector(e.asynqOpt),
	}
}

// close deletes every key of the queue and closes the connections. asynq
// names a queue's keys "asynq:{queue}:..." and lists queues in the set
// "asynq:queues"; a stopped server removes its own server and worker keys.
func (q *asynqQueue) close(ctx context.Context) error {
	defer q.client.Close()
	defer q.inspector.Close()
	if q.e.cfg.AllowFlush {
		return q.e.peer.FlushDBAsync(ctx).Err()
	}
	if _, err := deleteMatching(ctx, q.e.peer, "asynq:{"+q.name+"}:*"); err != nil {
		return err
	}
	return q.e.peer.SRem(ctx, "asynq:queues", q.name).Err()
}

// enqueue adds n no-op tasks with the benchmark payload and returns the
// enqueue rate in tasks per second.
func (q *asynqQueue) enqueue(ctx context.Context, n int) (float64, error) {
	payload := makePayload(q.e.cfg.PayloadSize)
	elapsed, err := fanOut(ctx, n, enqueueConcurrency, func(ctx context.Context, _ int) error {
		_, err := q.client.EnqueueContext(ctx, asynq.NewTask(noopType, payload), asynq.Queue(q.name))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("asynq enqueue: %w", err)
	}
	return perSecond(n, elapsed), nil
}

// server returns an asynq server with its defaults except the concurrency,
// the queue and a quieter log level.
func (q *asynqQueue) server(concurrency int) *asynq.Server {
	return asynq.NewServer(q.e.asynqOpt, asynq.Config{
		Concurrency: concurrency,
		Queues:      map[string]int{q.name: 1},
		LogLevel:    asynq.WarnLevel,
	})
}

// settled reports whether the queue has no pending and no active task.
func (q *asynqQueue) settled() (bool, error) {
	info, err := q.inspector.GetQueueInfo(q.name)
	if err != nil {
		return false, err
	}
	return info.Pending == 0 && info.Active == 0, nil
}

// asynqThroughput enqueues n no-op tasks, then processes them with one
// asynq server of the given concurrency. It returns the enqueue rate and the
// processing rate, both in tasks per second. The processing time runs from
// Server.Start until Redis shows no pending and no active task.
func (e *env) asynqThroughput(ctx context.Context, n, concurrency int) (enqueueRate, processRate float64, err error) {
	q := e.newAsynqQueue()
	defer func() { err = errors.Join(err, q.close(context.WithoutCancel(ctx))) }()

	if enqueueRate, err = q.enqueue(ctx, n); err != nil {
		return 0, 0, err
	}

	var handled atomic.Int64
	allHandled := make(chan struct{})
	handler := asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		if handled.Add(1) == int64(n) {
			close(allHandled)
		}
		return nil
	})
	srv := q.server(concurrency)
	start := time.Now()
	if err := srv.Start(handler); err != nil {
		return 0, 0, fmt.Errorf("start asynq server: %w", err)
	}
	defer srv.Shutdown()

	select {
	case <-allHandled:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-time.After(processTimeout(n)):
		return 0, 0, fmt.Errorf("asynq handled %d of %d tasks in %s", handled.Load(), n, processTimeout(n))
	}
	if err := waitUntil(ctx, time.Minute, 5*time.Millisecond, "asynq queue to settle", q.settled); err != nil {
		return 0, 0, err
	}
	return enqueueRate, perSecond(n, time.Since(start)), nil
}

// processTimeout bounds one throughput run: two minutes plus 1 ms a job,
// far above any rate this benchmark has seen.
func processTimeout(n int) time.Duration {
	return 2*time.Minute + time.Duration(n)*time.Millisecond
}

// asynqPauseRounds runs rounds of pause and resume against one asynq server
// with pauseConcurrency workers, using the queue pause of Inspector because
// asynq has no fleet-wide pause. It returns the handler starts seen while
// the queue was paused and the delay from each resume call's return to the
// first handler start.
func (e *env) asynqPauseRounds(ctx context.Context, rounds int) (out pauseOutcome, err error) {
	q := e.newAsynqQueue()
	defer func() { err = errors.Join(err, q.close(context.WithoutCancel(ctx))) }()

	log := newStartLog()
	handler := asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		log.record(time.Now())
		select {
		case <-time.After(pauseWork):
		case <-ctx.Done():
		}
		return nil
	})
	srv := q.server(pauseConcurrency)
	if err := srv.Start(handler); err != nil {
		return out, fmt.Errorf("start asynq server: %w", err)
	}
	defer srv.Shutdown()

	peer := pauseTarget{
		enqueue: func(ctx context.Context, n int) error {
			_, err := q.enqueue(ctx, n)
			return err
		},
		pending: func(ctx context.Context) (int, error) {
			info, err := q.inspector.GetQueueInfo(q.name)
			if err != nil {
				return 0, err
			}
			return info.Pending, nil
		},
		pause:  func(ctx context.Context) error { return q.inspector.PauseQueue(q.name) },
		resume: func(ctx context.Context) error { return q.inspector.UnpauseQueue(q.name) },
		log:    log,
	}
	if out, err = peer.rounds(ctx, rounds); err != nil {
		return out, err
	}
	out.exactClaims = -1
	return out, nil
}
