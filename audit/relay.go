package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/moonmind/broker/broker"
)

// Defaults for RelayConfig fields left at their zero value.
const (
	DefaultRelayInterval  = time.Second
	DefaultRelayBatchSize = 100
	DefaultDeliverTimeout = 2 * time.Second
)

// RelayConfig configures a Relay. The zero value of every field means its
// default.
type RelayConfig struct {
	// Interval is the time between two passes of the background loop.
	// Default 1 s.
	Interval time.Duration

	// BatchSize caps how many outbox events one Flush reads and writes,
	// from 1 to broker.MaxOutboxBatch. Default 100.
	BatchSize int

	// DeliverTimeout bounds how long Deliver tries to write the events of
	// the request's change before it reports them pending, so a slow
	// Postgres delays an API response by at most this much. Default 2 s.
	DeliverTimeout time.Duration
}

func (c RelayConfig) withDefaults() RelayConfig {
	if c.Interval == 0 {
		c.Interval = DefaultRelayInterval
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultRelayBatchSize
	}
	if c.DeliverTimeout == 0 {
		c.DeliverTimeout = DefaultDeliverTimeout
	}
	return c
}

// Validate reports the first invalid field of c after defaults are
// applied, so callers can check user input before NewRelay.
func (c RelayConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Interval < 0:
		return fmt.Errorf("relay config: Interval must be positive, got %s", c.Interval)
	case c.BatchSize < 1 || c.BatchSize > broker.MaxOutboxBatch:
		return fmt.Errorf("relay config: BatchSize must be from 1 to %d, got %d", broker.MaxOutboxBatch, c.BatchSize)
	case c.DeliverTimeout < 0:
		return fmt.Errorf("relay config: DeliverTimeout must be positive, got %s", c.DeliverTimeout)
	}
	return nil
}

// RelayHealth is the relay's view after its latest pass, for readiness
// checks and metrics.
type RelayHealth struct {
	// OutboxDepth counts the audit events not yet written to Postgres.
	OutboxDepth int64
	// PauseKeyPresent is false while the pause hash is missing and claims
	// fail closed.
	PauseKeyPresent bool
	// PostgresOK is true when Postgres returned the ping of the latest
	// pass.
	PostgresOK bool
	// LastError is the first error of the latest pass, "" when it succeeded.
	LastError string
	// LastFlushAt is when a Flush last finished without an error.
	LastFlushAt time.Time
}

// Relay moves audit events from the Redis outbox into Postgres and keeps
// the pause hash present. Several relays, in one process or many, may work
// on one namespace and one database at once. Store.Insert ignores an event
// that has a row already, and an event leaves the outbox only after its row
// exists, so each event lands exactly once unless Redis loses the outbox.
type Relay struct {
	b      *broker.Broker
	store  *Store
	cfg    RelayConfig
	logger *slog.Logger

	mu     sync.Mutex
	health RelayHealth
	cancel context.CancelFunc
	done   chan struct{}
}

// NewRelay returns a relay for b and store. A nil logger means
// slog.Default(). It panics on an invalid cfg, because that is a
// programming error: check configuration from users with Validate first.
func NewRelay(b *broker.Broker, store *Store, cfg RelayConfig, logger *slog.Logger) *Relay {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.Default()
	}
	// The relay writes the events of b's namespace, so it always uses the
	// rows of that namespace, whatever namespace store was made for.
	store = store.ForNamespace(b.Config().Namespace)
	return &Relay{b: b, store: store, cfg: cfg, logger: logger}
}

// Flush writes up to BatchSize outbox events to Postgres, oldest first,
// and removes the written ones from the outbox. It stops at the first
// failed insert, so rows always land in version order, and returns how
// many rows it wrote itself (events another relay wrote first are removed
// but not counted).
func (r *Relay) Flush(ctx context.Context) (written int, err error) {
	written, _, err = r.flush(ctx, 0)
	return written, err
}

// flush writes the outbox head as Flush does. A positive upTo stops after
// the event with that version. delivered counts the events removed from
// the outbox.
func (r *Relay) flush(ctx context.Context, upTo int64) (written, delivered int, err error) {
	events, err := r.b.OutboxPending(ctx, r.cfg.BatchSize)
	if err != nil {
		return 0, 0, fmt.Errorf("flush audit outbox: %w", err)
	}

	var acks []string
	for _, ev := range events {
		if upTo > 0 && ev.Version > upTo {
			break
		}
		inserted, insertErr := r.store.Insert(ctx, ev)
		if insertErr != nil {
			err = fmt.Errorf("flush audit outbox: %w", insertErr)
			break
		}
		if inserted {
			written++
		}
		acks = append(acks, ev.OutboxID)
	}

	// The rows exist now, so the acknowledgement runs even when the
	// caller's context ended. A missed one only costs a no-op insert on
	// the next pass.
	if len(acks) > 0 {
		ackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if ackErr := r.b.OutboxAck(ackCtx, acks...); ackErr != nil {
			return written, 0, errors.Join(err, fmt.Errorf("flush audit outbox: %w", ackErr))
		}
	}
	return written, len(acks), err
}

// Deliver writes the audit event of change, and every older event still in
// the outbox, to Postgres. The request that made the change calls it and
// returns pending to its client as auditPending. Pending means the row is
// not written yet, but the change is in force in Redis and a relay pass
// writes the row later. Deliver gives up after DeliverTimeout or when ctx
// ends.
func (r *Relay) Deliver(ctx context.Context, change *broker.PauseChange) (pending bool) {
	if change == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.DeliverTimeout)
	defer cancel()

	target := change.Event.Version
	for {
		events, err := r.b.OutboxPending(ctx, 1)
		if err != nil {
			r.logger.WarnContext(ctx, "audit event not delivered; a relay pass will retry",
				"version", target, "error", err)
			return true
		}
		// The outbox is ordered by version, so once its head is newer than
		// the change, the change's event has been written and removed.
		if len(events) == 0 || events[0].Version > target {
			return false
		}

		_, delivered, err := r.flush(ctx, target)
		if err != nil {
			r.logger.WarnContext(ctx, "audit event not delivered; a relay pass will retry",
				"version", target, "error", err)
			r.recordError(err)
			return true
		}
		if delivered == 0 {
			// Another relay emptied the head between the two reads, so
			// look again.
			continue
		}
	}
}

// EnsurePauseState recreates the pause hash when it is missing: from the
// newest audit row (a restore, with its own audit event) or, when the
// table is empty, unpaused at version 1. When Postgres cannot be read it
// leaves the hash missing, so claims keep failing closed, because guessing
// "unpaused" could start workers during an upgrade.
func (r *Relay) EnsurePauseState(ctx context.Context) error {
	state, err := r.b.PauseState(ctx)
	if err == nil {
		r.setPauseKeyPresent(true)
		return r.catchUpPauseState(ctx, state)
	}
	if !errors.Is(err, broker.ErrPauseStateMissing) {
		return fmt.Errorf("ensure pause state: %w", err)
	}
	r.setPauseKeyPresent(false)

	// Without the audit log the state to restore is unknown, so the key
	// stays missing and claims stay blocked.
	newest, err := r.store.Newest(ctx)
	if err != nil {
		return fmt.Errorf("ensure pause state: pause state is missing in Redis and the audit log cannot be read, so claims stay blocked: %w", err)
	}

	if newest == nil {
		created, err := r.b.InitPause(ctx)
		if err != nil {
			return fmt.Errorf("ensure pause state: %w", err)
		}
		if created {
			r.logger.InfoContext(ctx, "pause state was missing and the audit log is empty; created it unpaused", "version", 1)
		}
		r.setPauseKeyPresent(true)
		return nil
	}

	change, err := r.b.RestorePause(ctx, *newest)
	if err != nil {
		return fmt.Errorf("ensure pause state: restore from audit version %d: %w", newest.Version, err)
	}
	r.setPauseKeyPresent(true)
	if change == nil {
		// Another relay restored or initialized the hash first.
		return nil
	}
	r.logger.WarnContext(ctx, "pause state was missing in Redis; restored it from the audit log",
		"version", change.State.Version, "mode", deref(change.Event.Mode), "actor", deref(newest.Actor))
	r.Deliver(ctx, change)
	return nil
}

// catchUpPauseState restores the pause hash when Redis holds an older
// version than the audit log. Redis then lost changes, for example to an
// AOF fsynced once a second or a failover to a lagging replica. Left alone,
// the hash would undo an operator's decision and reuse audited versions.
// An unreadable audit log leaves the present hash as it is.
func (r *Relay) catchUpPauseState(ctx context.Context, state broker.PauseState) error {
	newest, err := r.store.Newest(ctx)
	if err != nil || newest == nil || newest.Version <= state.Version {
		return nil
	}
	change, err := r.b.RestorePause(ctx, *newest)
	if err != nil {
		return fmt.Errorf("ensure pause state: Redis is at version %d behind audit version %d, and the restore failed: %w",
			state.Version, newest.Version, err)
	}
	if change == nil {
		return nil
	}
	r.logger.WarnContext(ctx, "pause state in Redis was behind the audit log; restored it from the newest audit event",
		"lost_version", state.Version, "version", change.State.Version, "mode", deref(change.Event.Mode), "actor", deref(newest.Actor))
	r.Deliver(ctx, change)
	return nil
}

// Start runs a pass at once and then every Interval, in a goroutine, until
// ctx ends or Stop is called. A pass flushes the outbox until it is empty
// or an insert fails, and then runs EnsurePauseState. Calling Start again,
// also after Stop, does nothing.
func (r *Relay) Start(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go r.run(ctx, r.done)
}

// Stop ends the loop and waits for the running pass to return. It is safe
// to call more than once, and before Start.
func (r *Relay) Stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (r *Relay) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	ticker := time.NewTicker(r.cfg.Interval)
	defer ticker.Stop()
	for {
		r.Pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Pass runs one relay pass: it flushes the outbox until it is empty or an
// insert fails, runs EnsurePauseState, and records the outcome for
// Health. Start calls it every Interval, and tests and start-up code may
// call it directly. It logs a failure when it begins and when it ends, not on
// every pass in between.
func (r *Relay) Pass(ctx context.Context) {
	var firstErr error
	note := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}

	flushed := false
	total := 0
	for {
		written, delivered, err := r.flush(ctx, 0)
		total += written
		if err != nil {
			note(err)
			break
		}
		if delivered < r.cfg.BatchSize {
			flushed = true
			break
		}
	}
	if total > 0 {
		r.logger.InfoContext(ctx, "wrote audit events from the outbox", "count", total)
	}

	note(r.EnsurePauseState(ctx))

	pingErr := r.store.Ping(ctx)
	note(pingErr)

	depth, depthErr := r.b.OutboxDepth(ctx)
	note(depthErr)

	if ctx.Err() != nil {
		return // errors of a cancelled pass tell nothing about the services
	}

	r.mu.Lock()
	previous := r.health.LastError
	r.health.PostgresOK = pingErr == nil
	if depthErr == nil {
		r.health.OutboxDepth = depth
	}
	if flushed {
		r.health.LastFlushAt = time.Now()
	}
	r.health.LastError = ""
	if firstErr != nil {
		r.health.LastError = firstErr.Error()
	}
	r.mu.Unlock()

	switch {
	case firstErr != nil && previous != firstErr.Error():
		r.logger.ErrorContext(ctx, "audit relay pass failed; it retries every interval until the services recover (a missing pause key keeps claims blocked)",
			"error", firstErr, "outbox_depth", depth)
	case firstErr == nil && previous != "":
		r.logger.InfoContext(ctx, "audit relay recovered", "outbox_depth", depth)
	}
}

// Health returns the outcome of the latest pass. Before the first pass it
// reports PostgresOK false and PauseKeyPresent false.
func (r *Relay) Health() RelayHealth {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.health
}

func (r *Relay) setPauseKeyPresent(present bool) {
	r.mu.Lock()
	r.health.PauseKeyPresent = present
	r.mu.Unlock()
}

func (r *Relay) recordError(err error) {
	r.mu.Lock()
	r.health.LastError = err.Error()
	r.mu.Unlock()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
