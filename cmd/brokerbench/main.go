// Command brokerbench measures MoonMind Broker next to asynq on the same
// Redis server and prints one table of medians with the ratio to the peer.
//
//	brokerbench -start-redis -allow-flush        # a private redis-server, full sizes
//	brokerbench -quick -sections engine,memory   # a short smoke run on the shared Redis
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/moonmind/broker/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "brokerbench:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg bench.Config
	var sections string
	var startRedis, verbose bool
	var cpuProfile string
	flag.StringVar(&cfg.RedisURL, "redis", bench.DefaultRedisURL, "Redis URL both brokers use; MoonMind Broker works in a fresh namespace of its database")
	flag.IntVar(&cfg.AsynqDB, "asynq-db", bench.DefaultAsynqDB, "logical Redis database for asynq, whose key names are fixed")
	flag.StringVar(&cfg.DatabaseURL, "database", bench.DefaultDatabaseURL, "PostgreSQL URL for the API server's audit trail; a fresh schema is created and dropped")
	flag.IntVar(&cfg.Runs, "runs", bench.DefaultRuns, "runs per figure; the table shows the median")
	flag.IntVar(&cfg.Jobs, "jobs", 0, fmt.Sprintf("jobs per end-to-end throughput run (default %d, or 2000 with -quick)", bench.DefaultJobs))
	flag.IntVar(&cfg.EngineOps, "engine-ops", 0, fmt.Sprintf("claim-and-complete cycles per engine run (default %d)", bench.DefaultEngineOps))
	flag.IntVar(&cfg.DeepQueue, "deep-queue", 0, fmt.Sprintf("queued jobs while the snapshot latency is measured (default %d)", bench.DefaultDeepQueue))
	flag.IntVar(&cfg.MemoryJobs, "memory-jobs", 0, fmt.Sprintf("jobs queued to measure memory per job (default %d)", bench.DefaultMemoryJobs))
	flag.IntVar(&cfg.PauseRounds, "pause-rounds", 0, fmt.Sprintf("pause and resume rounds per run (default %d)", bench.DefaultPauseRounds))
	flag.IntVar(&cfg.PayloadSize, "payload", bench.DefaultPayloadSize, "payload size in bytes")
	flag.BoolVar(&cfg.Quick, "quick", false, "use small sizes for every size flag left unset (a smoke run)")
	flag.StringVar(&sections, "sections", strings.Join(bench.Sections, ","), "comma-separated sections to run")
	flag.BoolVar(&cfg.AllowFlush, "allow-flush", false, "clean up with FLUSHDB; only with -start-redis or a -redis server used by nobody else")
	flag.BoolVar(&startRedis, "start-redis", false, "start a private redis-server on a free loopback port for this run (ignores -redis)")
	flag.BoolVar(&verbose, "v", false, "log progress to standard error")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (benchmark, API server and workers share this process) to this file")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: every option is a flag, see -h", flag.Args())
	}
	for _, s := range strings.Split(sections, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Sections = append(cfg.Sections, s)
		}
	}
	// The engine logs each pause and resume through the default logger;
	// without -v only warnings and errors reach standard error.
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)
	cfg.Logger = logger

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	redisSetting := "shared"
	if startRedis {
		local, err := bench.StartLocalRedis(ctx)
		if err != nil {
			return err
		}
		defer local.Stop()
		cfg.RedisURL = local.URL()
		cfg.PrivateRedis = true
		redisSetting = "private, started by brokerbench"
	} else if cfg.AllowFlush {
		if err := bench.CheckFlushTarget(cfg.RedisURL); err != nil {
			return err
		}
		cfg.PrivateRedis = true
		redisSetting = "private, named by -redis"
	}

	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("create CPU profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("start CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	version, err := bench.RedisVersion(ctx, cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("redis at %s: %w", cfg.RedisURL, err)
	}
	fmt.Printf("brokerbench: Redis %s (%s), asynq db %d, sections %s\n", version, redisSetting, cfg.AsynqDB, sections)
	report, err := bench.Run(ctx, cfg)
	if report != nil && len(report.Rows) > 0 {
		if werr := report.WriteTable(os.Stdout); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}
