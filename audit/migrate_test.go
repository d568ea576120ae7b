package audit_test

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/moonmind/broker/audit"
	"github.com/moonmind/broker/internal/testutil"
)

func tableExists(t *testing.T, db *sqlx.DB, name string) bool {
	t.Helper()
	var exists bool
	err := db.Get(&exists, `SELECT to_regclass($1) IS NOT NULL`, name)
	if err != nil {
		t.Fatalf("look up table %s: %v", name, err)
	}
	return exists
}

func TestMigrateUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := testutil.Postgres(t)

	version, dirty, err := audit.MigrationVersion(ctx, db)
	if err != nil || version != 0 || dirty {
		t.Fatalf("MigrationVersion before Migrate = %d, %v, %v; want 0, false, nil", version, dirty, err)
	}

	for round := 1; round <= 2; round++ {
		if err := audit.Migrate(ctx, db); err != nil {
			t.Fatalf("round %d: Migrate: %v", round, err)
		}
		if !tableExists(t, db, "system_control_events") {
			t.Fatalf("round %d: system_control_events missing after Migrate", round)
		}
		version, dirty, err := audit.MigrationVersion(ctx, db)
		if err != nil || version < 1 || dirty {
			t.Fatalf("round %d: MigrationVersion after Migrate = %d, %v, %v; want >= 1, false, nil", round, version, dirty, err)
		}

		// A second run finds nothing to do and must not fail.
		if err := audit.Migrate(ctx, db); err != nil {
			t.Fatalf("round %d: second Migrate: %v", round, err)
		}

		if round == 2 {
			break
		}
		if err := audit.MigrateDown(ctx, db); err != nil {
			t.Fatalf("MigrateDown: %v", err)
		}
		if tableExists(t, db, "system_control_events") {
			t.Fatalf("system_control_events still exists after MigrateDown")
		}
		version, _, err = audit.MigrationVersion(ctx, db)
		if err != nil || version != 0 {
			t.Fatalf("MigrationVersion after MigrateDown = %d, %v; want 0, nil", version, err)
		}
	}
}

func TestMigrateStaysInSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := testutil.Postgres(t)
	if err := audit.Migrate(ctx, db); err != nil {
		t.Fatalf("Migrate: %v", err)
	}

	var schema string
	if err := db.Get(&schema, `SELECT current_schema()`); err != nil {
		t.Fatalf("current_schema: %v", err)
	}
	var tables []string
	err := db.Select(&tables, `
		SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_name IN ('system_control_events', 'schema_migrations') AND table_schema = $1
		ORDER BY table_name`, schema)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	if len(tables) != 2 {
		t.Fatalf("tables in schema %s = %v; want schema_migrations and system_control_events", schema, tables)
	}
}

func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := testutil.Postgres(t)

	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- audit.Migrate(ctx, db) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Migrate: %v", err)
		}
	}
	if !tableExists(t, db, "system_control_events") {
		t.Fatalf("system_control_events missing after concurrent Migrate")
	}
}
