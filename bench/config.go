// Package bench measures MoonMind Broker next to hibiken/asynq on the same
// machine and the same Redis server: engine script throughput, end-to-end
// throughput, pause reaction, snapshot latency under a deep queue and Redis
// memory per queued job. cmd/brokerbench is its command-line front end.
package bench

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
	DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultAsynqDB     = 14
	DefaultRuns        = 3
	DefaultJobs        = 100_000
	DefaultEngineOps   = 10_000
	DefaultDeepQueue   = 1_000_000
	DefaultMemoryJobs  = 20_000
	DefaultPauseRounds = 20
	DefaultPayloadSize = 100
)

// Sizes used by Config.Quick, small enough for a smoke run in seconds.
const (
	quickJobs        = 2_000
	quickEngineOps   = 2_000
	quickDeepQueue   = 10_000
	quickMemoryJobs  = 2_000
	quickPauseRounds = 5
)

// Section names, in the order Run measures them.
const (
	SectionEngine     = "engine"
	SectionThroughput = "throughput"
	SectionPause      = "pause"
	SectionSnapshot   = "snapshot"
	SectionMemory     = "memory"
)

// Sections lists every section in run order.
var Sections = []string{SectionEngine, SectionThroughput, SectionPause, SectionSnapshot, SectionMemory}

// Config configures one benchmark run. The zero value of every field means
// its default.
type Config struct {
	// RedisURL is the Redis server both brokers use. MoonMind Broker works in
	// a fresh random namespace of this URL's database. Default
	// redis://127.0.0.1:6379/0.
	RedisURL string

	// AsynqDB is the logical Redis database asynq uses on the same server.
	// asynq's key names have a fixed "asynq:" prefix, so a database of its
	// own keeps them apart from anything else. Default 14.
	AsynqDB int

	// DatabaseURL is the PostgreSQL database of the API server (audit rows
	// and tokens). Run creates a fresh schema in it and drops it at the end.
	DatabaseURL string

	// Runs is how many times each figure is measured; the table shows the
	// median. Default 3.
	Runs int

	// Jobs is the number of no-op jobs of each end-to-end throughput run.
	// Default 100000.
	Jobs int

	// EngineOps is the number of claim-and-complete cycles of each engine
	// run. Default 10000.
	EngineOps int

	// DeepQueue is how many jobs are queued while the snapshot latency is
	// measured. Default 1000000.
	DeepQueue int

	// MemoryJobs is how many jobs are queued to measure memory per job.
	// Default 20000.
	MemoryJobs int

	// PauseRounds is the number of pause and resume rounds of each pause
	// run. Default 20.
	PauseRounds int

	// PayloadSize is the size in bytes of each job payload. Default 100.
	PayloadSize int

	// Quick replaces every size left at its default with a small one, for a
	// smoke run.
	Quick bool

	// Sections selects what to measure; empty means all of Sections.
	Sections []string

	// AllowFlush lets cleanup use FLUSHDB on the two databases instead of
	// deleting keys one by one. Run accepts it only when RedisURL points at
	// a server that the caller started for the benchmark (PrivateRedis).
	AllowFlush bool

	// PrivateRedis states that the caller started the Redis server at
	// RedisURL for this run and no other program uses it.
	PrivateRedis bool

	// Logger receives progress lines. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.RedisURL == "" {
		c.RedisURL = DefaultRedisURL
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = DefaultDatabaseURL
	}
	if c.AsynqDB == 0 {
		c.AsynqDB = DefaultAsynqDB
	}
	if c.Runs == 0 {
		c.Runs = DefaultRuns
	}

	pick := func(v, normal, quick int) int {
		switch {
		case v != 0:
			return v
		case c.Quick:
			return quick
		default:
			return normal
		}
	}
	c.Jobs = pick(c.Jobs, DefaultJobs, quickJobs)
	c.EngineOps = pick(c.EngineOps, DefaultEngineOps, quickEngineOps)
	c.DeepQueue = pick(c.DeepQueue, DefaultDeepQueue, quickDeepQueue)
	c.MemoryJobs = pick(c.MemoryJobs, DefaultMemoryJobs, quickMemoryJobs)
	c.PauseRounds = pick(c.PauseRounds, DefaultPauseRounds, quickPauseRounds)

	if c.PayloadSize == 0 {
		c.PayloadSize = DefaultPayloadSize
	}
	if len(c.Sections) == 0 {
		c.Sections = Sections
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

func (c Config) validate() error {
	opts, err := redis.ParseURL(c.RedisURL)
	if err != nil {
		return fmt.Errorf("bench config: RedisURL %q is invalid: %w", c.RedisURL, err)
	}
	if _, err := url.Parse(c.DatabaseURL); err != nil {
		return fmt.Errorf("bench config: DatabaseURL is invalid: %w", err)
	}
	switch {
	case c.AsynqDB < 1 || c.AsynqDB > 15:
		return fmt.Errorf("bench config: AsynqDB must be 1 to 15, got %d", c.AsynqDB)
	case c.AsynqDB == opts.DB:
		return fmt.Errorf("bench config: AsynqDB %d is the database of RedisURL; pick another so asynq keys stay apart", c.AsynqDB)
	case c.Runs < 1:
		return fmt.Errorf("bench config: Runs must be at least 1, got %d", c.Runs)
	case c.Jobs < 100:
		return fmt.Errorf("bench config: Jobs must be at least 100, got %d", c.Jobs)
	case c.EngineOps < 100:
		return fmt.Errorf("bench config: EngineOps must be at least 100, got %d", c.EngineOps)
	case c.DeepQueue < 1:
		return fmt.Errorf("bench config: DeepQueue must be at least 1, got %d", c.DeepQueue)
	case c.MemoryJobs < 100:
		return fmt.Errorf("bench config: MemoryJobs must be at least 100, got %d", c.MemoryJobs)
	case c.PauseRounds < 1:
		return fmt.Errorf("bench config: PauseRounds must be at least 1, got %d", c.PauseRounds)
	case c.PayloadSize < 16:
		return fmt.Errorf("bench config: PayloadSize must be at least 16 bytes, got %d", c.PayloadSize)
	case c.AllowFlush && !c.PrivateRedis:
		return fmt.Errorf("bench config: AllowFlush needs PrivateRedis: flush only a Redis server started for this benchmark")
	}
	for _, s := range c.Sections {
		if !slices.Contains(Sections, s) {
			return fmt.Errorf("bench config: unknown section %q; choose from %s", s, strings.Join(Sections, ", "))
		}
	}
	return nil
}

// wants reports whether section s is selected.
func (c Config) wants(s string) bool { return slices.Contains(c.Sections, s) }

// Concurrency levels of the engine and end-to-end sections.
var (
	engineConcurrency     = []int{1, 10, 50}
	throughputConcurrency = []int{10, 50}
)

// pauseConcurrency is the number of workers claiming during the pause
// rounds.
const pauseConcurrency = 10

// pauseWork is how long each job of the pause rounds runs, so the workers
// stay busy while the pause lands.
const pauseWork = 2 * time.Millisecond
