// Package audit keeps the audit trail of the worker pause switch in
// PostgreSQL: the schema migrations, the system_control_events store, the
// relay that moves events from the Redis outbox into Postgres, and the
// restore of a lost pause key from the newest audit row.
package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database/postgres"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jmoiron/sqlx"

	"github.com/moonmind/broker/migrations"
)

// Migrate applies every migration in migrations.FS that db has not applied
// yet. The version table lives in the current schema of db's connections,
// so a DSN whose search_path names a schema migrates that schema. Several
// processes may call Migrate at once: golang-migrate serializes them with
// a Postgres advisory lock.
func Migrate(ctx context.Context, db *sqlx.DB) error {
	return runMigration(ctx, db, "up", func(m *migrate.Migrate) error { return m.Up() })
}

// MigrateDown reverts every applied migration. It is meant for tests,
// because on a deployment it drops the audit trail.
func MigrateDown(ctx context.Context, db *sqlx.DB) error {
	return runMigration(ctx, db, "down", func(m *migrate.Migrate) error { return m.Down() })
}

// MigrationVersion returns the applied schema version and whether a
// migration failed halfway (dirty). It returns 0 and false when no
// migration ran yet. Unlike Migrate it changes nothing, so readiness
// checks may call it.
func MigrationVersion(ctx context.Context, db *sqlx.DB) (version uint, dirty bool, err error) {
	var table sql.NullString
	if err := db.GetContext(ctx, &table, `SELECT to_regclass('schema_migrations')::text`); err != nil {
		return 0, false, fmt.Errorf("look up schema_migrations: %w", err)
	}
	if !table.Valid {
		return 0, false, nil
	}

	var row struct {
		Version int64 `db:"version"`
		Dirty   bool  `db:"dirty"`
	}
	err = db.GetContext(ctx, &row, `SELECT version, dirty FROM schema_migrations LIMIT 1`)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read schema_migrations: %w", err)
	}
	if row.Version < 0 {
		// golang-migrate stores version -1 only when a failed revert of the
		// first migration left the table dirty.
		return 0, row.Dirty, nil
	}
	return uint(row.Version), row.Dirty, nil
}

// runMigration runs step on a migrate instance bound to one pooled
// connection of db, so search_path and the advisory lock apply to the same
// session. golang-migrate takes no context, so a cancelled ctx makes it
// stop after the migration it is running.
func runMigration(ctx context.Context, db *sqlx.DB, direction string, step func(*migrate.Migrate) error) error {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return fmt.Errorf("migrate %s: read embedded migrations: %w", direction, err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		_ = src.Close()
		return fmt.Errorf("migrate %s: connect to Postgres: %w", direction, err)
	}
	driver, err := postgres.WithConnection(ctx, conn, &postgres.Config{})
	if err != nil {
		_ = src.Close()
		_ = conn.Close()
		return fmt.Errorf("migrate %s: prepare the version table: %w", direction, err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "postgres", driver)
	if err != nil {
		_ = src.Close()
		_ = driver.Close()
		return fmt.Errorf("migrate %s: %w", direction, err)
	}
	defer m.Close() // closes src and returns conn to the pool

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			m.GracefulStop <- true
		case <-done:
		}
	}()

	if err := step(m); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate %s: %w", direction, err)
	}
	return ctx.Err()
}
