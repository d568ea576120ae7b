// Command queue-worker is a ready MoonMind Broker worker with demo
// handlers: demo:sleep, demo:echo and demo:fail. It claims jobs until
// SIGINT or SIGTERM, then releases unfinished jobs and exits.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moonmind/broker/worker"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "queue-worker:", err)
		os.Exit(1)
	}
}

// options are the command-line settings; each flag defaults to its
// environment variable.
type options struct {
	brokerURL       string
	token           string
	caFile          string
	workerID        string
	concurrency     int
	lease           time.Duration
	heartbeat       time.Duration
	pollWait        time.Duration
	pausePoll       time.Duration
	shutdownTimeout time.Duration
	types           string
	capabilities    string
	logFormat       string
}

func run(args []string) error {
	opts, err := parseOptions(args)
	if err != nil {
		return err
	}
	logger, err := newLogger(opts.logFormat)
	if err != nil {
		return err
	}

	server, err := worker.NewServer(worker.Config{
		BrokerURL:         opts.brokerURL,
		Token:             opts.token,
		WorkerID:          opts.workerID,
		Concurrency:       opts.concurrency,
		LeaseDuration:     opts.lease,
		HeartbeatInterval: opts.heartbeat,
		PollInterval:      opts.pollWait,
		PausePollInterval: opts.pausePoll,
		ShutdownTimeout:   opts.shutdownTimeout,
		AllowedTypes:      splitList(opts.types),
		Capabilities:      splitList(opts.capabilities),
		CAFile:            opts.caFile,
		Logger:            logger,
	})
	if err != nil {
		return err
	}
	return server.Run(demoMux(logger))
}

func parseOptions(args []string) (options, error) {
	var opts options
	fs := flag.NewFlagSet("queue-worker", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: queue-worker [flags]\n\n"+
			"Claims jobs from a MoonMind Broker and runs the demo handlers demo:sleep,\n"+
			"demo:echo and demo:fail. Every flag defaults to the environment variable\n"+
			"in brackets. Durations take Go syntax (90s, 2m) or whole seconds (90).\n\n")
		fs.PrintDefaults()
	}

	fs.StringVar(&opts.brokerURL, "broker-url", env("BROKER_URL", ""), "broker base `URL`, for example https://broker:8443 [BROKER_URL] (required)")
	fs.StringVar(&opts.token, "token", env("BROKER_TOKEN", ""), "worker `token`; prefer the environment variable, which ps does not show [BROKER_TOKEN]")
	fs.StringVar(&opts.caFile, "cacert", env("BROKER_CACERT", ""), "PEM `file` of CA certificates to trust for https, besides the system pool [BROKER_CACERT]")
	fs.StringVar(&opts.workerID, "worker-id", env("WORKER_ID", ""), "worker `id` in claims and leases, unique per live process; empty means host name + \"-\" + pid [WORKER_ID]")
	fs.StringVar(&opts.types, "types", env("WORKER_TYPES", "demo:sleep,demo:echo,demo:fail"), "comma-separated job `types` to claim; empty claims any type [WORKER_TYPES]")
	fs.StringVar(&opts.capabilities, "capabilities", env("WORKER_CAPABILITIES", ""), "comma-separated worker `capabilities` matched against a job's requiredCapabilities [WORKER_CAPABILITIES]")
	fs.StringVar(&opts.logFormat, "log-format", env("LOG_FORMAT", "text"), "log `format`: text or json [LOG_FORMAT]")

	intFlags := []struct {
		target *int
		name   string
		envVar string
		usage  string
	}{
		{&opts.concurrency, "concurrency", "WORKER_CONCURRENCY", "`number` of jobs run at once [WORKER_CONCURRENCY] (default 1)"},
	}
	for _, f := range intFlags {
		value, err := envInt(f.envVar)
		if err != nil {
			return opts, err
		}
		fs.IntVar(f.target, f.name, value, f.usage)
	}

	durationFlags := []struct {
		target *time.Duration
		name   string
		envVar string
		usage  string
	}{
		{&opts.lease, "lease", "WORKER_LEASE", "lease `duration` per claim and heartbeat, whole seconds from 1s to 1h [WORKER_LEASE] (default 60s)"},
		{&opts.heartbeat, "heartbeat", "WORKER_HEARTBEAT", "heartbeat `interval`, shorter than the lease [WORKER_HEARTBEAT] (default a third of the lease)"},
		{&opts.pollWait, "poll-wait", "WORKER_POLL_WAIT", "long-poll `wait` of a claim, whole seconds from 1s to 30s [WORKER_POLL_WAIT] (default 20s)"},
		{&opts.pausePoll, "pause-poll", "WORKER_PAUSE_POLL", "`interval` between claims while workers are paused [WORKER_PAUSE_POLL] (default 5s)"},
		{&opts.shutdownTimeout, "shutdown-timeout", "WORKER_SHUTDOWN_TIMEOUT", "`time` a shutdown waits for running jobs before releasing them [WORKER_SHUTDOWN_TIMEOUT] (default 30s)"},
	}
	for _, f := range durationFlags {
		value, err := envDuration(f.envVar)
		if err != nil {
			return opts, err
		}
		fs.Var(durationValue{f.target}, f.name, f.usage)
		*f.target = value
	}

	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("unexpected argument %q: queue-worker takes flags only (see --help)", fs.Arg(0))
	}
	if opts.brokerURL == "" {
		return opts, errors.New("the broker URL is missing: set BROKER_URL or --broker-url")
	}
	return opts, nil
}

func newLogger(format string) (*slog.Logger, error) {
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, nil)), nil
	default:
		return nil, fmt.Errorf("invalid LOG_FORMAT %q: use text or json", format)
	}
}

func env(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return fallback
}

func envInt(name string) (int, error) {
	raw := os.Getenv(name)
	if raw == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		return 0, fmt.Errorf("invalid %s %q: use a whole number", name, raw)
	}
	return n, nil
}

func envDuration(name string) (time.Duration, error) {
	raw := os.Getenv(name)
	if raw == "" {
		return 0, nil
	}
	d, err := parseDuration(raw)
	if err != nil {
		return 0, fmt.Errorf("invalid %s: %w", name, err)
	}
	return d, nil
}

// parseDuration accepts Go duration syntax or a whole number of seconds.
func parseDuration(raw string) (time.Duration, error) {
	if n, err := strconv.Atoi(raw); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: use Go syntax such as 90s or whole seconds", raw)
	}
	return d, nil
}

// durationValue is a flag.Value for parseDuration; zero means the
// worker's default.
type durationValue struct{ target *time.Duration }

func (d durationValue) String() string {
	if d.target == nil || *d.target == 0 {
		return ""
	}
	return d.target.String()
}

func (d durationValue) Set(raw string) error {
	v, err := parseDuration(raw)
	if err != nil {
		return err
	}
	*d.target = v
	return nil
}

func splitList(raw string) []string {
	var items []string
	for _, item := range strings.Split(raw, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}
