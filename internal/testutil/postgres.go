package testutil

import (
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // registers the postgres driver
)

// DatabaseURL is the shared PostgreSQL database the tests use, from
// TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
func DatabaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// WithSearchPath returns dsn with its search_path set to schema, so every
// connection made from it (by sqlx, golang-migrate or a child process)
// works inside that schema.
func WithSearchPath(dsn, schema string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Postgres creates a fresh schema on the shared database and returns a
// connection pool whose search_path is that schema, and the matching DSN.
// At cleanup it drops the schema.
func Postgres(t testing.TB) (*sqlx.DB, string) {
	t.Helper()
	admin, err := sqlx.Open("postgres", DatabaseURL())
	if err != nil {
		t.Fatalf("open TEST_DATABASE_URL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL at %s does not respond: %v (start it, or set TEST_DATABASE_URL)", DatabaseURL(), err)
	}
	schema := RandomName("t_")
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema %s: %v", schema, err)
	}
	dsn := WithSearchPath(DatabaseURL(), schema)
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		t.Fatalf("open schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		_ = db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
		_ = admin.Close()
	})
	return db, dsn
}
