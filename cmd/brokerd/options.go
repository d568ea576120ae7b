package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/moonmind/broker/broker"
)

// Default listen addresses: 8443 with TLS, 8080 without.
const (
	defaultAddrTLS   = ":8443"
	defaultAddrPlain = ":8080"
	defaultRedisURL  = "redis://127.0.0.1:6379/0"
)

// options are brokerd's settings. Each has a flag and an environment
// variable; a flag given on the command line wins over the variable.
type options struct {
	Addr            string
	RedisURL        string
	DatabaseURL     string
	Namespace       string
	TLSCert         string
	TLSKey          string
	LeaseGrace      time.Duration
	ReaperInterval  time.Duration
	MaxPayloadBytes int
	Auth            string
	OperatorToken   string
	WorkerToken     string
	LogFormat       string
	LogLevel        string
	AutoMigrate     bool
}

// envFlags maps each flag to its environment variable.
var envFlags = []struct{ flag, env string }{
	{"addr", "BROKER_ADDR"},
	{"redis-url", "BROKER_REDIS_URL"},
	{"database-url", "BROKER_DATABASE_URL"},
	{"namespace", "BROKER_NAMESPACE"},
	{"tls-cert", "BROKER_TLS_CERT"},
	{"tls-key", "BROKER_TLS_KEY"},
	{"lease-grace", "BROKER_LEASE_GRACE"},
	{"reaper-interval", "BROKER_REAPER_INTERVAL"},
	{"max-payload-bytes", "BROKER_MAX_PAYLOAD_BYTES"},
	{"auth", "BROKER_AUTH"},
	{"operator-token", "BROKER_OPERATOR_TOKEN"},
	{"worker-token", "BROKER_WORKER_TOKEN"},
	{"log-format", "BROKER_LOG_FORMAT"},
	{"log-level", "BROKER_LOG_LEVEL"},
	{"auto-migrate", "BROKER_AUTO_MIGRATE"},
}

func (o *options) register(fs *pflag.FlagSet) {
	fs.StringVar(&o.Addr, "addr", "", "listen address, host:port [BROKER_ADDR] (default "+defaultAddrTLS+" with TLS, "+defaultAddrPlain+" without)")
	fs.StringVar(&o.RedisURL, "redis-url", defaultRedisURL, "Redis to use [BROKER_REDIS_URL]: redis://[user:password@]host:port/db (rediss:// for TLS); "+
		"Sentinel: redis://sentinel:26379/0?master_name=NAME&addr=sentinel2:26379; "+
		"Cluster: redis+cluster://host1:6379?addr=host2:6379&addr=host3:6379 or host1:6379,host2:6379,host3:6379")
	fs.StringVar(&o.DatabaseURL, "database-url", "", "PostgreSQL DSN, postgres://user@host:5432/db?sslmode=disable [BROKER_DATABASE_URL] (required)")
	fs.StringVar(&o.Namespace, "namespace", broker.DefaultNamespace, "prefix of every Redis key, so deployments can share a Redis [BROKER_NAMESPACE]")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "TLS certificate file in PEM; serve HTTPS when set together with --tls-key [BROKER_TLS_CERT]")
	fs.StringVar(&o.TLSKey, "tls-key", "", "TLS private key file in PEM [BROKER_TLS_KEY]")
	fs.DurationVar(&o.LeaseGrace, "lease-grace", broker.DefaultLeaseGrace, "time after a lease expired before the reaper retries the job [BROKER_LEASE_GRACE]")
	fs.DurationVar(&o.ReaperInterval, "reaper-interval", time.Second, "time between lease reaper passes [BROKER_REAPER_INTERVAL]")
	fs.IntVar(&o.MaxPayloadBytes, "max-payload-bytes", broker.DefaultMaxPayloadBytes, "maximum size of a job payload or checkpoint, in bytes [BROKER_MAX_PAYLOAD_BYTES]")
	fs.StringVar(&o.Auth, "auth", "enabled", "token authentication: enabled or disabled (every caller is an operator named local) [BROKER_AUTH]")
	fs.StringVar(&o.OperatorToken, "operator-token", "", "bootstrap operator token, actor name \"operator\" [BROKER_OPERATOR_TOKEN]")
	fs.StringVar(&o.WorkerToken, "worker-token", "", "bootstrap worker token, actor name \"worker\" [BROKER_WORKER_TOKEN]")
	fs.StringVar(&o.LogFormat, "log-format", "text", "log format: text or json [BROKER_LOG_FORMAT]")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn or error [BROKER_LOG_LEVEL]")
	fs.BoolVar(&o.AutoMigrate, "auto-migrate", true, "apply PostgreSQL migrations at start [BROKER_AUTO_MIGRATE]")
}

// load fills flags not given on the command line from their environment
// variables, then validates the result.
func (o *options) load(fs *pflag.FlagSet) error {
	for _, f := range envFlags {
		v, ok := os.LookupEnv(f.env)
		if !ok || fs.Changed(f.flag) {
			continue
		}
		if err := fs.Set(f.flag, v); err != nil {
			return fmt.Errorf("invalid %s %q: %w", f.env, v, err)
		}
	}
	return o.validate()
}

func (o *options) validate() error {
	if o.DatabaseURL == "" {
		return errors.New("missing database URL: set BROKER_DATABASE_URL or --database-url")
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errors.New("TLS needs both BROKER_TLS_CERT and BROKER_TLS_KEY (or neither for plain HTTP)")
	}
	if o.Addr == "" {
		o.Addr = defaultAddrPlain
		if o.TLSCert != "" {
			o.Addr = defaultAddrTLS
		}
	}
	switch o.Auth {
	case "enabled", "disabled":
	default:
		return fmt.Errorf("invalid BROKER_AUTH %q: use enabled or disabled", o.Auth)
	}
	switch o.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("invalid BROKER_LOG_FORMAT %q: use text or json", o.LogFormat)
	}
	if _, err := o.level(); err != nil {
		return err
	}
	if o.ReaperInterval <= 0 {
		return fmt.Errorf("invalid BROKER_REAPER_INTERVAL %s: use a positive duration such as 1s", o.ReaperInterval)
	}
	if o.LeaseGrace < 0 {
		return fmt.Errorf("invalid BROKER_LEASE_GRACE %s: use a duration of at least 0s", o.LeaseGrace)
	}
	if o.MaxPayloadBytes < 1 {
		return fmt.Errorf("invalid BROKER_MAX_PAYLOAD_BYTES %d: use a positive number of bytes", o.MaxPayloadBytes)
	}
	return nil
}

func (o *options) level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return l, fmt.Errorf("invalid BROKER_LOG_LEVEL %q: use debug, info, warn or error", o.LogLevel)
	}
	return l, nil
}

func (o *options) logger() *slog.Logger {
	level, _ := o.level()
	handlerOpts := &slog.HandlerOptions{Level: level}
	if o.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, handlerOpts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, handlerOpts))
}

// redisClient builds the client for RedisURL: a Sentinel client when the
// URL names master_name, a cluster client for redis+cluster:// URLs and
// comma-separated address lists, and a single-server client otherwise.
func redisClient(raw string) (redisUniversal, error) {
	switch {
	case !strings.Contains(raw, "://") && strings.Contains(raw, ","):
		return newClusterFromList(raw)
	case strings.HasPrefix(raw, "redis+cluster://") || strings.HasPrefix(raw, "rediss+cluster://"):
		return newClusterFromURL(strings.Replace(raw, "+cluster", "", 1))
	case strings.Contains(raw, "master_name="):
		return newFailover(raw)
	default:
		return newSingle(raw)
	}
}
