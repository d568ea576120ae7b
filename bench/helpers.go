package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// randomName returns prefix followed by 12 random hex digits.
func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error
	return prefix + hex.EncodeToString(b[:])
}

// makePayload returns a JSON object of exactly size bytes (size >= 16).
func makePayload(size int) []byte {
	const frame = len(`{"data":""}`)
	return []byte(`{"data":"` + strings.Repeat("x", size-frame) + `"}`)
}

// deleteMatching deletes every key of rdb's database that matches pattern,
// in batches, and returns how many it deleted.
func deleteMatching(ctx context.Context, rdb *redis.Client, pattern string) (int, error) {
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	batch := make([]string, 0, 1000)
	deleted := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := rdb.Unlink(ctx, batch...).Err(); err != nil {
			return fmt.Errorf("unlink %d keys matching %s: %w", len(batch), pattern, err)
		}
		deleted += len(batch)
		batch = batch[:0]
		return nil
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return deleted, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return deleted, fmt.Errorf("scan keys matching %s: %w", pattern, err)
	}
	return deleted, flush()
}

// usedMemory returns INFO memory used_memory of the server in bytes. It is
// server-wide, so figures based on it are only exact on a Redis server that
// no other program writes to during the measurement.
func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.InfoMap(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("INFO memory: %w", err)
	}
	raw := info["Memory"]["used_memory"]
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("INFO memory used_memory %q is not a number: %w", raw, err)
	}
	return n, nil
}

// startLog records when handlers started jobs, so pause rounds can count
// starts inside a time window and wait for the first start after a moment.
type startLog struct {
	mu     sync.Mutex
	starts []time.Time
	notify chan struct{}
}

func newStartLog() *startLog { return &startLog{notify: make(chan struct{}, 1)} }

// record notes a start at time t.
func (l *startLog) record(t time.Time) {
	l.mu.Lock()
	l.starts = append(l.starts, t)
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

// count returns how many starts were recorded so far.
func (l *startLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.starts)
}

// countBetween returns how many starts happened after from and before to.
func (l *startLog) countBetween(from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.starts {
		if s.After(from) && s.Before(to) {
			n++
		}
	}
	return n
}

// firstAfter waits until a start after t is recorded and returns it.
func (l *startLog) firstAfter(ctx context.Context, t time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		var first time.Time
		l.mu.Lock()
		for _, s := range l.starts {
			if s.After(t) && (first.IsZero() || s.Before(first)) {
				first = s
			}
		}
		l.mu.Unlock()
		if !first.IsZero() {
			return first, nil
		}
		select {
		case <-l.notify:
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("no job started within %s after %s", timeout, t.Format(time.RFC3339Nano))
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// waitUntil polls cond every interval until it returns true, returns an
// error, or timeout passes.
func waitUntil(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("wait for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
