package bench

import (
	"context"
	"fmt"
	"time"
)

// pauseObserve is how long each round keeps the workers paused while it
// watches for job starts.
const pauseObserve = 100 * time.Millisecond

// pauseStartTimeout bounds each wait for a job start in the pause rounds.
const pauseStartTimeout = 30 * time.Second

// pauseTarget is one broker under the pause rounds: how to add jobs, count
// the pending ones, pause, resume, and the log its handlers write when a job
// starts.
type pauseTarget struct {
	enqueue func(ctx context.Context, n int) error
	pending func(ctx context.Context) (int, error)
	pause   func(ctx context.Context) error
	resume  func(ctx context.Context) error
	log     *startLog
}

// rounds runs the pause rounds. Each round adds a batch of jobs, waits
// until the workers are busy, pauses, watches for pauseObserve, makes sure
// jobs are still pending, resumes and waits for the first job start.
//
// out.startsWhilePaused counts handler starts after a pause call returned and
// before the following resume call began. A handler start is later than its
// claim, so this is an upper bound on claims granted while paused: a job
// claimed just before the pause can start just after it.
func (p pauseTarget) rounds(ctx context.Context, rounds int) (out pauseOutcome, err error) {
	batch := pauseConcurrency * 50
	for round := range rounds {
		busySince := p.log.count()
		if err := p.enqueue(ctx, batch); err != nil {
			return out, fmt.Errorf("round %d: enqueue: %w", round, err)
		}
		busy := func() (bool, error) { return p.log.count() >= busySince+pauseConcurrency, nil }
		if err := waitUntil(ctx, pauseStartTimeout, time.Millisecond, "workers to start jobs", busy); err != nil {
			return out, fmt.Errorf("round %d: %w", round, err)
		}

		if err := p.pause(ctx); err != nil {
			return out, fmt.Errorf("round %d: pause: %w", round, err)
		}
		pausedAt := time.Now()
		select {
		case <-time.After(pauseObserve):
		case <-ctx.Done():
			return out, ctx.Err()
		}
		pending, err := p.pending(ctx)
		if err != nil {
			return out, fmt.Errorf("round %d: count pending jobs: %w", round, err)
		}
		if pending < pauseConcurrency {
			if err := p.enqueue(ctx, pauseConcurrency); err != nil {
				return out, fmt.Errorf("round %d: enqueue while paused: %w", round, err)
			}
		}

		resumeCalled := time.Now()
		if err := p.resume(ctx); err != nil {
			return out, fmt.Errorf("round %d: resume: %w", round, err)
		}
		resumed := time.Now()
		out.startsWhilePaused += p.log.countBetween(pausedAt, resumeCalled)
		first, err := p.log.firstAfter(ctx, resumeCalled, pauseStartTimeout)
		if err != nil {
			return out, fmt.Errorf("round %d: after resume: %w", round, err)
		}
		// A job may start while the resume response is still on its way;
		// that counts as no delay after the return.
		out.resumeDelays = append(out.resumeDelays, max(0, first.Sub(resumed)))
		out.sentDelays = append(out.sentDelays, first.Sub(resumeCalled))
	}
	return out, nil
}

// pauseSection measures both brokers' pause rounds and records the starts
// seen while paused and the p50 and p99 delay from resume to first start.
func (e *env) pauseSection(ctx context.Context) error {
	for run := range e.cfg.Runs {
		e.log.Info("pause run", "run", run+1, "rounds", e.cfg.PauseRounds)

		ours, err := e.oursHTTPPauseRounds(ctx, e.cfg.PauseRounds)
		if err != nil {
			return fmt.Errorf("ours over HTTP: %w", err)
		}
		e.recordPause(ours, true)
		e.results.ours(SectionPause, "claims granted while paused, Redis clock", "claims", float64(ours.exactClaims))

		// Engine workers see when each claim call began, so they count
		// the claims that began after a pause returned and got a job.
		engine, err := e.oursPauseRounds(ctx, e.cfg.PauseRounds)
		if err != nil {
			return fmt.Errorf("ours through the engine: %w", err)
		}
		e.results.ours(SectionPause, "claims granted after pause returned, engine", "claims", float64(engine.exactClaims))

		peer, err := e.asynqPauseRounds(ctx, e.cfg.PauseRounds)
		if err != nil {
			return fmt.Errorf("asynq: %w", err)
		}
		e.recordPause(peer, false)
	}
	return nil
}

// pauseOutcome holds the results of one run of pause rounds: the handler starts
// while paused, and the delays to the first start after each resume,
// counted from the resume call's return and from its start. exactClaims
// counts claims known to have been granted while paused, or is -1 where
// the broker gives no way to see it.
type pauseOutcome struct {
	startsWhilePaused int
	resumeDelays      []time.Duration
	sentDelays        []time.Duration
	exactClaims       int
}

func (e *env) recordPause(o pauseOutcome, ours bool) {
	delays := durationsInMillis(o.resumeDelays)
	sent := durationsInMillis(o.sentDelays)
	add := func(metric, unit string, v float64) {
		if ours {
			e.results.ours(SectionPause, metric, unit, v)
		} else {
			e.results.peer(SectionPause, metric, unit, asynqName+" (queue pause)", v)
		}
	}
	add("handler starts after pause returned", "jobs", float64(o.startsWhilePaused))
	add("resume to first start, p50", "ms", percentile(delays, 50))
	add("resume to first start, p99", "ms", percentile(delays, 99))
	add("resume sent to first start, p50", "ms", percentile(sent, 50))
	add("resume sent to first start, p99", "ms", percentile(sent, 99))
}

func durationsInMillis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = millis(d)
	}
	return out
}
