package audit

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/moonmind/broker/broker"
)

// List page sizes.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// ErrVersionTaken means Postgres already holds a different event with the
// same control and version. The Redis history then diverged from the audit
// trail, for example because Redis was restored from an older backup while
// its pause key survived, and an operator has to decide which event to keep.
var ErrVersionTaken = errors.New("audit: another event already has this control and version")

// Store reads and writes the system_control_events rows of one broker
// namespace, so deployments that share a database keep separate trails.
type Store struct {
	db        *sqlx.DB
	namespace string
}

// NewStore returns a Store on db for the default namespace. The table must
// exist (see Migrate).
func NewStore(db *sqlx.DB) *Store { return &Store{db: db, namespace: broker.DefaultNamespace} }

// ForNamespace returns a Store on the same pool that reads and writes the
// rows of namespace.
func (s *Store) ForNamespace(namespace string) *Store {
	return &Store{db: s.db, namespace: namespace}
}

// Namespace returns the broker namespace whose rows the store handles.
func (s *Store) Namespace() string { return s.namespace }

// DB returns the pool the store uses.
func (s *Store) DB() *sqlx.DB { return s.db }

// Ping checks that Postgres accepts connections.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping Postgres: %w", err)
	}
	return nil
}

// eventRow mirrors a table row. The jsonb columns scan into []byte because
// database/sql cannot store NULL into a json.RawMessage.
type eventRow struct {
	ID          string    `db:"id"`
	Control     string    `db:"control"`
	Action      string    `db:"action"`
	Mode        *string   `db:"mode"`
	Reason      string    `db:"reason"`
	Actor       *string   `db:"actor"`
	Version     int64     `db:"version"`
	StateBefore []byte    `db:"state_before"`
	StateAfter  []byte    `db:"state_after"`
	CreatedAt   time.Time `db:"created_at"`
}

func (r eventRow) event() broker.AuditEvent {
	return broker.AuditEvent{
		ID:          r.ID,
		Control:     r.Control,
		Action:      r.Action,
		Mode:        r.Mode,
		Reason:      r.Reason,
		Actor:       r.Actor,
		Version:     r.Version,
		StateBefore: json.RawMessage(r.StateBefore),
		StateAfter:  json.RawMessage(r.StateAfter),
		CreatedAt:   r.CreatedAt.UTC(),
	}
}

const eventColumns = `id::text AS id, control, action, mode, reason, actor, version,
	state_before, state_after, created_at`

// Insert writes ev unless a row with its id exists already, and reports
// whether it wrote a row. Writing the same event twice is therefore safe,
// which is what lets several relays and the request that made a change
// race for it. A different event with the same control and version yields
// ErrVersionTaken.
func (s *Store) Insert(ctx context.Context, ev broker.AuditEvent) (inserted bool, err error) {
	if _, err := uuid.Parse(ev.ID); err != nil {
		return false, fmt.Errorf("insert audit event: id %q is not a UUID: %w", ev.ID, err)
	}

	res, err := s.db.ExecContext(ctx, `
		INSERT INTO system_control_events
			(id, control, action, mode, reason, actor, version, state_before, state_after, created_at, namespace)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11)
		ON CONFLICT DO NOTHING`,
		ev.ID, ev.Control, ev.Action, ev.Mode, ev.Reason, ev.Actor, ev.Version,
		jsonParam(ev.StateBefore), jsonParam(ev.StateAfter), ev.CreatedAt.UTC(), s.namespace)
	if err != nil {
		return false, fmt.Errorf("insert audit event %s (version %d): %w", ev.ID, ev.Version, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert audit event %s: rows affected: %w", ev.ID, err)
	}
	if n == 1 {
		return true, nil
	}

	// The insert hit a conflict: on the id (a duplicate delivery, fine) or
	// on (control, version) with another id (a diverged history).
	var exists bool
	err = s.db.GetContext(ctx, &exists, `SELECT EXISTS (SELECT 1 FROM system_control_events WHERE id = $1)`, ev.ID)
	if err != nil {
		return false, fmt.Errorf("check audit event %s: %w", ev.ID, err)
	}
	if !exists {
		return false, fmt.Errorf("insert audit event %s: %s version %d: %w", ev.ID, ev.Control, ev.Version, ErrVersionTaken)
	}
	return false, nil
}

// jsonParam passes a JSON document as text, because lib/pq would send a
// []byte as bytea, and an empty document as NULL.
func jsonParam(doc json.RawMessage) any {
	if len(doc) == 0 {
		return nil
	}
	return string(doc)
}

// Latest returns up to n events, newest first.
func (s *Store) Latest(ctx context.Context, n int) ([]broker.AuditEvent, error) {
	if n < 1 {
		return nil, &broker.ValidationError{Field: "limit", Message: fmt.Sprintf("must be at least 1, got %d", n)}
	}
	events, _, err := s.list(ctx, n, "")
	return events, err
}

// List returns one page of events, newest first. before is the id of the
// last event of the previous page, or "" for the first page. nextCursor is
// the id to pass as before for the next page, or "" after the last page.
// limit 0 means DefaultListLimit.
func (s *Store) List(ctx context.Context, limit int, before string) (events []broker.AuditEvent, nextCursor string, err error) {
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 1 || limit > MaxListLimit {
		return nil, "", &broker.ValidationError{Field: "limit", Message: fmt.Sprintf("must be from 1 to %d, got %d", MaxListLimit, limit)}
	}
	if before != "" {
		if _, err := uuid.Parse(before); err != nil {
			return nil, "", &broker.ValidationError{Field: "before", Message: fmt.Sprintf("must be an event id (a UUID) from nextCursor, got %q", before)}
		}
	}
	return s.list(ctx, limit, before)
}

// list reads limit+1 rows to learn whether another page follows. The order
// (created_at, version, id) is total, so a cursor never skips or repeats a
// row.
func (s *Store) list(ctx context.Context, limit int, before string) ([]broker.AuditEvent, string, error) {
	var rows []eventRow
	var err error
	if before == "" {
		err = s.db.SelectContext(ctx, &rows, `
			SELECT `+eventColumns+` FROM system_control_events
			WHERE namespace = $2
			ORDER BY created_at DESC, version DESC, id DESC
			LIMIT $1`, limit+1, s.namespace)
	} else {
		var cursor []eventRow
		err = s.db.SelectContext(ctx, &cursor, `SELECT `+eventColumns+` FROM system_control_events WHERE id = $1 AND namespace = $2`, before, s.namespace)
		if err != nil {
			return nil, "", fmt.Errorf("list audit events: read cursor %s: %w", before, err)
		}
		if len(cursor) == 0 {
			return nil, "", &broker.ValidationError{Field: "before", Message: fmt.Sprintf("no audit event has id %s; pass nextCursor from the previous page", before)}
		}
		err = s.db.SelectContext(ctx, &rows, `
			SELECT `+eventColumns+` FROM system_control_events
			WHERE namespace = $5 AND (created_at, version, id) < ($1, $2, $3::uuid)
			ORDER BY created_at DESC, version DESC, id DESC
			LIMIT $4`, cursor[0].CreatedAt, cursor[0].Version, cursor[0].ID, limit+1, s.namespace)
	}
	if err != nil {
		return nil, "", fmt.Errorf("list audit events: %w", err)
	}

	next := ""
	if len(rows) > limit {
		rows = rows[:limit]
		next = rows[limit-1].ID
	}
	events := make([]broker.AuditEvent, len(rows))
	for i, r := range rows {
		events[i] = r.event()
	}
	return events, next, nil
}

// Newest returns the worker pause event with the highest version, or nil
// when the table holds none. Restoring a lost pause key starts from it.
func (s *Store) Newest(ctx context.Context) (*broker.AuditEvent, error) {
	var r eventRow
	err := s.db.GetContext(ctx, &r, `
		SELECT `+eventColumns+` FROM system_control_events
		WHERE namespace = $2 AND control = $1
		ORDER BY version DESC
		LIMIT 1`, broker.ControlWorkerPause, s.namespace)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read newest audit event: %w", err)
	}
	ev := r.event()
	return &ev, nil
}
