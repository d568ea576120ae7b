// Package testutil gives tests isolated real services: a Redis namespace or
// a Postgres schema of their own on the shared servers, or a private
// redis-server or PostgreSQL instance for destructive tests.
package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisURL is the shared Redis server the tests use, from TEST_REDIS_URL
// (default redis://127.0.0.1:6379/0).
func RedisURL() string {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// RandomName returns prefix followed by 12 random hex digits, usable as a
// Redis namespace or a Postgres schema name.
func RandomName(prefix string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// Redis connects to the shared Redis server and returns the client with a
// fresh namespace. At cleanup it deletes every key of that namespace.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	opts, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("parse TEST_REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s does not respond: %v (start it, or set TEST_REDIS_URL)", RedisURL(), err)
	}
	ns := RandomName("t")
	t.Cleanup(func() {
		DeleteNamespace(context.Background(), rdb, ns)
		_ = rdb.Close()
	})
	return rdb, ns
}

// DeleteNamespace removes every key under "{ns}:".
func DeleteNamespace(ctx context.Context, rdb redis.UniversalClient, ns string) {
	iter := rdb.Scan(ctx, 0, "{"+ns+"}:*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			rdb.Del(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		rdb.Del(ctx, batch...)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitFor polls cond every 10 ms until it returns true or timeout passes,
// then fails the test with msg.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fmtAddr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
