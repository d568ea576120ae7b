package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// env holds the connections every section shares.
type env struct {
	cfg Config
	log *slog.Logger

	// ours is a client of RedisURL's database, where MoonMind Broker runs.
	ours *redis.Client
	// peer is a client of AsynqDB on the same server, for cleanup and
	// memory figures; asynq itself connects through asynqOpt.
	peer     *redis.Client
	asynqOpt asynq.RedisClientOpt

	results *collector
}

// poolSize is the connection pool of every client: enough for the largest
// concurrency plus the enqueuers and the observer.
const poolSize = 128

// Run measures the selected sections and returns the table. It cleans up
// every key it created, also when it fails. When a section fails, Run
// returns the error together with a report of the rows measured so far.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("parse RedisURL: %w", err)
	}
	opts.PoolSize = poolSize
	peerOpts := *opts
	peerOpts.DB = cfg.AsynqDB

	e := &env{
		cfg:     cfg,
		log:     cfg.Logger,
		ours:    redis.NewClient(opts),
		peer:    redis.NewClient(&peerOpts),
		results: newCollector(),
		asynqOpt: asynq.RedisClientOpt{
			Network: opts.Network, Addr: opts.Addr, Username: opts.Username, Password: opts.Password,
			DB: cfg.AsynqDB, PoolSize: poolSize, TLSConfig: opts.TLSConfig,
		},
	}
	defer e.ours.Close()
	defer e.peer.Close()
	if err := e.ours.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("connect to Redis at %s: %w", opts.Addr, err)
	}

	report := &Report{Runs: cfg.Runs, Started: time.Now()}
	steps := []struct {
		section string
		run     func(context.Context) error
	}{
		{SectionEngine, e.engineSection},
		{SectionThroughput, e.throughputSection},
		{SectionPause, e.pauseSection},
		{SectionSnapshot, e.snapshotSection},
		{SectionMemory, e.memorySection},
	}
	for _, step := range steps {
		if !cfg.wants(step.section) {
			continue
		}
		e.log.Info("section started", "section", step.section)
		begin := time.Now()
		if err := step.run(ctx); err != nil {
			report.Rows = e.results.rows()
			report.Elapsed = time.Since(report.Started)
			return report, fmt.Errorf("section %s: %w", step.section, err)
		}
		e.log.Info("section finished", "section", step.section, "elapsed", time.Since(begin).Round(time.Millisecond))
	}
	report.Rows = e.results.rows()
	report.Elapsed = time.Since(report.Started)
	return report, nil
}

// collector gathers per-run samples into rows, in the order each row was
// first reported.
type collector struct {
	mu    sync.Mutex
	order []*Row
	index map[[2]string]*Row
}

func newCollector() *collector { return &collector{index: map[[2]string]*Row{}} }

func (c *collector) row(section, metric, unit string) *Row {
	k := [2]string{section, metric}
	r, ok := c.index[k]
	if !ok {
		r = &Row{Section: section, Metric: metric, Unit: unit}
		c.index[k] = r
		c.order = append(c.order, r)
	}
	return r
}

// ours records one run's value of MoonMind Broker for a metric.
func (c *collector) ours(section, metric, unit string, v float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.row(section, metric, unit)
	r.OursSamples = append(r.OursSamples, v)
}

// peer records one run's value of the peer for a metric.
func (c *collector) peer(section, metric, unit, peerName string, v float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.row(section, metric, unit)
	r.PeerName = peerName
	r.PeerSamples = append(r.PeerSamples, v)
}

func (c *collector) rows() []Row {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Row, 0, len(c.order))
	for _, r := range c.order {
		row := *r
		row.Ours = median(r.OursSamples)
		row.Peer = median(r.PeerSamples)
		if row.PeerName == "" {
			row.PeerName = "-"
			row.Peer = math.NaN()
		}
		out = append(out, row)
	}
	return out
}

// fanOut calls fn for indexes 0 to n-1 from concurrency goroutines and
// returns how long it took. The first error stops the others.
func fanOut(ctx context.Context, n, concurrency int, fn func(ctx context.Context, i int) error) (time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// The deferred cancel has not run yet, so a cause here is either an
	// error of fn or the caller's cancellation.
	return elapsed, context.Cause(ctx)
}
