package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // registers the postgres driver

	"github.com/moonmind/broker/api"
	"github.com/moonmind/broker/audit"
	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/dashboard"
)

// startTimeout bounds connecting and migrating at start.
const startTimeout = 60 * time.Second

// migrate applies the migrations and exits.
func migrate(ctx context.Context, o *options) error {
	logger := o.logger()
	db, err := openDatabase(ctx, o.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := audit.Migrate(ctx, db); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	version, _, err := audit.MigrationVersion(ctx, db)
	if err != nil {
		return fmt.Errorf("read migration version: %w", err)
	}
	logger.Info("migrations applied", "schema_version", version)
	return nil
}

func openDatabase(ctx context.Context, dsn string) (*sqlx.DB, error) {
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid BROKER_DATABASE_URL: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	return db, nil
}

// serve starts everything in order (connect, migrate, pause state,
// notifier, reaper, relay, HTTP) and runs until ctx ends. It then stops
// accepting, ends long polls, finishes in-flight requests and stops the
// loops, in reverse order.
func serve(ctx context.Context, o *options) error {
	logger := o.logger()
	slog.SetDefault(logger)

	rdb, err := redisClient(o.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	pingCtx, cancel := context.WithTimeout(ctx, startTimeout)
	err = rdb.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("connect to Redis: %w", err)
	}

	db, err := openDatabase(ctx, o.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if o.AutoMigrate {
		if err := audit.Migrate(ctx, db); err != nil {
			return fmt.Errorf("apply migrations: %w", err)
		}
	}

	b, err := broker.New(rdb, broker.Config{
		Namespace: o.Namespace, LeaseGrace: o.LeaseGrace, MaxPayloadBytes: o.MaxPayloadBytes,
	})
	if err != nil {
		return err
	}
	store := audit.NewStore(db).ForNamespace(b.Config().Namespace)
	relay := audit.NewRelay(b, store, audit.RelayConfig{}, logger)
	if err := relay.EnsurePauseState(ctx); err != nil {
		// Claims fail closed until the relay's next pass restores the key.
		logger.Warn("pause state not ready at start; claims fail closed until it is restored", "error", err)
	}

	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	notifier := b.NewNotifier()
	notifierDone := make(chan struct{})
	go func() {
		defer close(notifierDone)
		if err := notifier.Start(loopCtx); err != nil {
			logger.Error("notifier stopped", "error", err)
		}
	}()
	reaper := b.NewReaper(broker.ReaperConfig{Interval: o.ReaperInterval}, logger)
	reaper.Start(loopCtx)
	relay.Start(loopCtx)
	defer func() {
		reaper.Stop()
		relay.Stop()
		notifier.Stop()
		<-notifierDone
		logger.Info("brokerd stopped")
	}()

	if o.Auth == "disabled" {
		logger.Warn("authentication is disabled: every caller is an operator named local; never expose this server beyond trusted callers")
	} else if o.OperatorToken == "" {
		logger.Warn("no BROKER_OPERATOR_TOKEN set: only tokens stored in PostgreSQL authenticate, and creating one needs an operator token")
	}
	server, err := api.New(api.Config{
		MaxPayloadBytes: o.MaxPayloadBytes,
		AuthDisabled:    o.Auth == "disabled",
		OperatorToken:   o.OperatorToken,
		WorkerToken:     o.WorkerToken,
	}, api.Deps{
		Broker: b, Notifier: notifier, Store: store, Relay: relay, DB: db, Logger: logger,
		Dashboard: dashboard.Handler(),
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Addr, err)
	}
	logger.Info("brokerd listening", "addr", ln.Addr().String(), "tls", o.TLSCert != "", "namespace", o.Namespace)
	err = server.Serve(ctx, ln, o.TLSCert, o.TLSKey)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	logger.Info("brokerd shutting down")
	return nil
}
