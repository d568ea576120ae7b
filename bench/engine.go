package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/lua"
)

// benchActor is the actor of every pause and resume the benchmark makes.
const benchActor = "brokerbench"

// engine is one MoonMind Broker engine in a fresh namespace.
type engine struct {
	e  *env
	b  *broker.Broker
	ns string
}

// newEngine creates a broker in a fresh namespace of the benchmark database
// and initializes its pause key. Call close to delete its keys.
func (e *env) newEngine(ctx context.Context) (*engine, error) {
	ns := randomName("bench")
	b, err := broker.New(e.ours, broker.Config{Namespace: ns})
	if err != nil {
		return nil, fmt.Errorf("new broker: %w", err)
	}
	g := &engine{e: e, b: b, ns: ns}
	if _, err := b.InitPause(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("init pause key: %w", err), g.close(context.WithoutCancel(ctx)))
	}
	return g, nil
}

// close deletes every key of the namespace.
func (g *engine) close(ctx context.Context) error {
	if g.e.cfg.AllowFlush {
		return g.e.ours.FlushDBAsync(ctx).Err()
	}
	_, err := deleteMatching(ctx, g.e.ours, "{"+g.ns+"}:*")
	return err
}

// enqueue adds n no-op jobs with the benchmark payload through the engine
// and returns the enqueue rate in jobs per second.
func (g *engine) enqueue(ctx context.Context, n, concurrency int) (float64, error) {
	payload := makePayload(g.e.cfg.PayloadSize)
	elapsed, err := fanOut(ctx, n, concurrency, func(ctx context.Context, _ int) error {
		_, _, err := g.b.Enqueue(ctx, broker.EnqueueParams{Type: noopType, Payload: payload})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	return perSecond(n, elapsed), nil
}

// engineSection measures claim-and-complete cycles straight through the
// engine next to the EVALSHA ping ceiling, at each engine concurrency.
func (e *env) engineSection(ctx context.Context) error {
	ping := pingScript()
	for run := range e.cfg.Runs {
		for _, c := range engineConcurrency {
			e.log.Info("engine run", "run", run+1, "concurrency", c, "cycles", e.cfg.EngineOps)
			metric := fmt.Sprintf("claim+complete, concurrency %d", c)

			rate, err := e.engineCycles(ctx, e.cfg.EngineOps, c)
			if err != nil {
				return fmt.Errorf("concurrency %d: %w", c, err)
			}
			e.results.ours(SectionEngine, metric, "cycles/s", rate)

			// A cycle is two script calls (claim, complete), so the ceiling
			// in cycles per second is half the ping rate.
			calls := 2 * e.cfg.EngineOps
			elapsed, err := fanOut(ctx, calls, c, func(ctx context.Context, _ int) error {
				return ping.Run(ctx, e.ours, nil).Err()
			})
			if err != nil {
				return fmt.Errorf("ping at concurrency %d: %w", c, err)
			}
			e.results.peer(SectionEngine, metric, "cycles/s", "EVALSHA ping, 2 per cycle", perSecond(calls, elapsed)/2)
		}
	}
	return nil
}

// pingScript returns lua/ping.lua as a go-redis script, which sends EVALSHA.
func pingScript() *redis.Script {
	src, err := lua.FS.ReadFile("ping.lua")
	if err != nil {
		panic(fmt.Sprintf("bench: lua/ping.lua is not embedded: %v", err))
	}
	return redis.NewScript(string(src))
}

// engineCycles queues n jobs, then claims and completes all of them from
// concurrency goroutines and returns the cycles per second.
func (e *env) engineCycles(ctx context.Context, n, concurrency int) (rate float64, err error) {
	g, err := e.newEngine(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, g.close(context.WithoutCancel(ctx))) }()

	if _, err := g.enqueue(ctx, n, enqueueConcurrency); err != nil {
		return 0, err
	}
	elapsed, err := fanOut(ctx, n, concurrency, func(ctx context.Context, i int) error {
		worker := fmt.Sprintf("bench-%d", i%concurrency)
		res, err := g.b.Claim(ctx, broker.ClaimParams{WorkerID: worker})
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		if res.Job == nil {
			return fmt.Errorf("claim returned no job with %d queued", n)
		}
		_, err = g.b.Complete(ctx, broker.CompleteParams{JobID: res.Job.ID, WorkerID: worker, Attempt: res.Job.Attempt})
		if err != nil {
			return fmt.Errorf("complete job %s: %w", res.Job.ID, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return perSecond(n, elapsed), nil
}

// queued returns the number of ready jobs from the snapshot script.
func (g *engine) queued(ctx context.Context) (int, error) {
	snap, err := g.b.Snapshot(ctx)
	if err != nil {
		return 0, err
	}
	return int(snap.Metrics.Queued), nil
}

// pause pauses the workers in drain mode.
func (g *engine) pause(ctx context.Context, reason string) error {
	_, err := g.b.Pause(ctx, broker.PauseParams{Mode: broker.ModeDrain, Reason: reason, Actor: benchActor})
	return err
}

// resume lets the workers claim again. It forces the resume because the
// benchmark pauses with jobs still running.
func (g *engine) resume(ctx context.Context, reason string) error {
	_, err := g.b.Resume(ctx, broker.ResumeParams{Reason: reason, Actor: benchActor, Force: true})
	return err
}

// waitForWork blocks until a notice arrives, idle passes or ctx ends.
func waitForWork(ctx context.Context, notices <-chan broker.Notice, idle time.Duration) {
	t := time.NewTimer(idle)
	defer t.Stop()
	select {
	case <-notices:
	case <-t.C:
	case <-ctx.Done():
	}
}

// fillBatch is how many enqueue script calls one pipeline carries.
const fillBatch = 1000

// fill queues n no-op jobs fast: it sends lua/enqueue.lua with EVALSHA in
// pipelines of fillBatch calls, with the arguments its header documents,
// instead of one round trip per job. Each job is stored exactly as
// Broker.Enqueue stores it.
func (g *engine) fill(ctx context.Context, n int) error {
	src, err := lua.FS.ReadFile("enqueue.lua")
	if err != nil {
		return fmt.Errorf("read lua/enqueue.lua: %w", err)
	}
	enqueue := redis.NewScript(string(src))
	if err := enqueue.Load(ctx, g.e.ours).Err(); err != nil {
		return fmt.Errorf("load enqueue script: %w", err)
	}
	payload := string(makePayload(g.e.cfg.PayloadSize))
	prefix := "{" + g.ns + "}:"
	cfg := g.b.Config()
	batches := (n + fillBatch - 1) / fillBatch
	_, err = fanOut(ctx, batches, 4, func(ctx context.Context, batch int) error {
		pipe := g.e.ours.Pipeline()
		for i := batch * fillBatch; i < min(n, (batch+1)*fillBatch); i++ {
			id := uuid.NewString()
			enqueue.EvalSha(ctx, pipe, []string{prefix + "job:" + id},
				prefix, id, noopType, 0, payload, "", "[]",
				cfg.DefaultMaxAttempts, 0, "", cfg.Retention.Milliseconds())
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("pipelined enqueue batch %d: %w", batch, err)
		}
		return nil
	})
	return err
}
