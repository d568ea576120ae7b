package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/moonmind/broker/worker"
)

// startWorkers starts the real worker runtime against s with the given
// concurrency and handler. Its logger drops records below warning level,
// because the runtime logs every job start at info level.
func (s *apiServer) startWorkers(ctx context.Context, concurrency int, handler asynq.Handler) (*worker.Server, error) {
	ws, err := worker.NewServer(worker.Config{
		BrokerURL:   s.URL,
		Token:       s.WorkerToken,
		WorkerID:    randomName("bench-worker-"),
		Concurrency: concurrency,
		Logger:      slog.New(minLevel{slog.LevelWarn, s.g.e.log.Handler()}),
		HTTPClient:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * concurrency}},
	})
	if err != nil {
		return nil, fmt.Errorf("build worker server: %w", err)
	}
	if err := ws.Start(ctx, handler); err != nil {
		return nil, fmt.Errorf("start worker server: %w", err)
	}
	return ws, nil
}

// shutdownWorkers stops ws, waiting at most a minute.
func shutdownWorkers(ctx context.Context, ws *worker.Server) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := ws.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down worker server: %w", err)
	}
	return nil
}

// oursThroughput enqueues n no-op jobs over HTTP, then processes them with
// one worker runtime of the given concurrency. It returns the enqueue rate
// and the processing rate in jobs per second. The processing time runs from
// the worker start until the snapshot shows no queued and no running job.
func (e *env) oursThroughput(ctx context.Context, n, concurrency int) (enqueueRate, processRate float64, err error) {
	g, err := e.newEngine(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer func() { err = errors.Join(err, g.close(context.WithoutCancel(ctx))) }()
	s, err := g.startAPI(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer func() { err = errors.Join(err, s.close(context.WithoutCancel(ctx))) }()

	if enqueueRate, err = s.enqueue(ctx, n, enqueueConcurrency); err != nil {
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
	start := time.Now()
	ws, err := s.startWorkers(ctx, concurrency, handler)
	if err != nil {
		return 0, 0, err
	}
	defer func() { err = errors.Join(err, shutdownWorkers(ctx, ws)) }()

	select {
	case <-allHandled:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	case <-time.After(processTimeout(n)):
		return 0, 0, fmt.Errorf("handled %d of %d jobs in %s", handled.Load(), n, processTimeout(n))
	}
	settled := func() (bool, error) {
		snap, err := g.b.Snapshot(ctx)
		if err != nil {
			return false, err
		}
		return snap.Metrics.Queued == 0 && snap.Metrics.Running == 0, nil
	}
	if err := waitUntil(ctx, time.Minute, 5*time.Millisecond, "the queue to settle", settled); err != nil {
		return 0, 0, err
	}
	return enqueueRate, perSecond(n, time.Since(start)), nil
}

// oursHTTPPauseRounds runs the pause rounds through the API: the worker
// runtime with pauseConcurrency slots claims with long polls, and each pause
// and resume is a POST /api/system/worker-pause.
func (e *env) oursHTTPPauseRounds(ctx context.Context, rounds int) (out pauseOutcome, err error) {
	g, err := e.newEngine(ctx)
	if err != nil {
		return out, err
	}
	defer func() { err = errors.Join(err, g.close(context.WithoutCancel(ctx))) }()
	s, err := g.startAPI(ctx)
	if err != nil {
		return out, err
	}
	defer func() { err = errors.Join(err, s.close(context.WithoutCancel(ctx))) }()

	log := newStartLog()
	var grantsMu sync.Mutex
	var grants []time.Time // each job's startedAt, from the Redis clock
	handler := asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		log.record(time.Now())
		if job, ok := worker.ClaimedJob(ctx); ok && job.StartedAt != nil {
			grantsMu.Lock()
			grants = append(grants, *job.StartedAt)
			grantsMu.Unlock()
		}
		select {
		case <-time.After(pauseWork):
		case <-ctx.Done():
		}
		return nil
	})
	ws, err := s.startWorkers(ctx, pauseConcurrency, handler)
	if err != nil {
		return out, err
	}
	defer func() { err = errors.Join(err, shutdownWorkers(ctx, ws)) }()

	// windows holds each paused interval as the Redis clock saw it: from
	// the pause change to the resume change.
	var windows [][2]time.Time
	target := pauseTarget{
		enqueue: func(ctx context.Context, n int) error {
			_, err := g.enqueue(ctx, n, pauseConcurrency)
			return err
		},
		pending: g.queued,
		pause: func(ctx context.Context) error {
			at, err := s.pause(ctx, fmt.Sprintf("benchmark round %d", len(windows)+1))
			windows = append(windows, [2]time.Time{at})
			return err
		},
		resume: func(ctx context.Context) error {
			at, err := s.resume(ctx, fmt.Sprintf("benchmark round %d done", len(windows)))
			windows[len(windows)-1][1] = at
			return err
		},
		log: log,
	}
	if out, err = target.rounds(ctx, rounds); err != nil {
		return out, err
	}
	if err := shutdownWorkers(ctx, ws); err != nil {
		return out, err
	}

	// Times have millisecond resolution, so a claim in the same
	// millisecond as a pause or resume cannot be ordered and is not
	// counted. Every counted claim ran strictly inside a paused interval.
	out.exactClaims = 0
	grantsMu.Lock()
	defer grantsMu.Unlock()
	for _, granted := range grants {
		for _, w := range windows {
			if granted.After(w[0]) && granted.Before(w[1]) {
				out.exactClaims++
			}
		}
	}
	return out, nil
}

// httpSnapshotRuns times GET /api/system/worker-pause on g's deep queue,
// snapshotSamples requests one after the other in each run.
func (e *env) httpSnapshotRuns(ctx context.Context, g *engine, depth string) (err error) {
	s, err := g.startAPI(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.close(context.WithoutCancel(ctx))) }()

	for run := range e.cfg.Runs {
		e.log.Info("snapshot over HTTP run", "run", run+1, "samples", snapshotSamples)
		lat, err := timeCalls(ctx, snapshotSamples, func(ctx context.Context) error {
			var body struct {
				Metrics struct {
					Queued int `json:"queued"`
				} `json:"metrics"`
			}
			if err := s.call(ctx, http.MethodGet, "/api/system/worker-pause", nil, &body); err != nil {
				return err
			}
			if body.Metrics.Queued != e.cfg.DeepQueue {
				return fmt.Errorf("GET /api/system/worker-pause reports %d queued jobs, want %d", body.Metrics.Queued, e.cfg.DeepQueue)
			}
			return nil
		})
		if err != nil {
			return err
		}
		e.results.ours(SectionSnapshot, "GET worker-pause p50, "+depth+" queued", "ms", percentile(lat, 50))
		e.results.ours(SectionSnapshot, "GET worker-pause p99, "+depth+" queued", "ms", percentile(lat, 99))
	}
	return nil
}

// minLevel is a slog handler that passes on records at or above a level.
type minLevel struct {
	level slog.Level
	next  slog.Handler
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.next.Enabled(ctx, l)
}
func (h minLevel) Handle(ctx context.Context, r slog.Record) error { return h.next.Handle(ctx, r) }
func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.level, h.next.WithAttrs(attrs)}
}
func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.level, h.next.WithGroup(name)}
}
