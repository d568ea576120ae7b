package broker

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// makeRetryDue moves a backing-off job's due time into the past, so the
// next claim promotes it at once, so the test need not wait out the delay.
func makeRetryDue(t *testing.T, b *Broker, id string) {
	t.Helper()
	if err := b.rdb.ZAddXX(context.Background(), b.keys.Delayed(), redisZ(0, id)).Err(); err != nil {
		t.Fatalf("make retry of %s due: %v", id, err)
	}
}

func TestBackoffStaysBoundedThroughMaxAttempts(t *testing.T) {
	t.Parallel()
	base, limit := 10*time.Millisecond, 5*time.Second
	b := newJobsBroker(t, Config{BackoffBase: base, BackoffCap: limit})
	ctx := context.Background()
	job := mustEnqueue(t, b, EnqueueParams{MaxAttempts: 200})

	var previous time.Duration
	for attempt := 1; attempt <= 200; attempt++ {
		claimed := mustClaim(t, b, ClaimParams{})
		if claimed.ID != job.ID || claimed.Attempt != attempt {
			t.Fatalf("claim %d = %s attempt %d, want %s attempt %d", attempt, claimed.ID, claimed.Attempt, job.ID, attempt)
		}
		before, err := b.rdb.Time(ctx).Result()
		if err != nil {
			t.Fatalf("Redis TIME: %v", err)
		}
		failed, err := b.Fail(ctx, FailParams{JobID: job.ID, WorkerID: "w1", Attempt: attempt, ErrorMessage: "boom", Retryable: true})
		if err != nil {
			t.Fatalf("Fail attempt %d: %v", attempt, err)
		}

		if attempt == 200 {
			wantStatus(t, failed, StatusDeadLetter)
			if failed.NextAttemptAt != nil {
				t.Errorf("dead-lettered job has nextAttemptAt %s, want none", failed.NextAttemptAt)
			}
			break
		}
		wantStatus(t, failed, StatusQueued)
		if failed.NextAttemptAt == nil {
			t.Fatalf("attempt %d: queued for a retry without nextAttemptAt", attempt)
		}
		// updatedAt is the Redis time the fail script ran at.
		now := failed.UpdatedAt
		delay := failed.NextAttemptAt.Sub(now)
		if now.Before(before.Truncate(time.Millisecond)) {
			t.Fatalf("attempt %d: updatedAt %s before the Redis time %s read ahead of the fail", attempt, now, before)
		}
		if !failed.NextAttemptAt.After(before) {
			t.Fatalf("attempt %d: nextAttemptAt %s is in the past (Redis time %s)", attempt, failed.NextAttemptAt, before)
		}
		if delay < base || delay > limit {
			t.Fatalf("attempt %d: delay %s, want from %s to %s", attempt, delay, base, limit)
		}
		if delay < previous {
			t.Fatalf("attempt %d: delay %s shrank from %s", attempt, delay, previous)
		}
		if previous == limit && delay != limit {
			t.Fatalf("attempt %d: delay %s left the cap %s", attempt, delay, limit)
		}
		previous = delay
		makeRetryDue(t, b, job.ID)
	}
	if previous != limit {
		t.Errorf("last delay %s, want the cap %s after 199 failures", previous, limit)
	}

	counts := stateCounts(t, b)
	if counts[StatusDeadLetter] != 1 || counts[StatusQueued] != 0 || counts[StatusRunning] != 0 {
		t.Errorf("counts %v, want only dead_letter 1", counts)
	}
	claimNone(t, b, ClaimParams{})
}

// TestBackoffExtremesStayFinite covers settings where base·2^attempt
// would overflow a 64-bit integer or exceed the range of a float's exact
// integers: the largest attempt count and a cap of 100 years.
func TestBackoffExtremesStayFinite(t *testing.T) {
	t.Parallel()
	cases := []struct {
		base, cap time.Duration
		attempt   int
	}{
		{time.Millisecond, time.Hour, MaxAttemptsLimit - 1},
		{time.Hour, 100 * 365 * 24 * time.Hour, MaxAttemptsLimit - 1},
		{time.Second, time.Second, 63},
		{time.Second, 24 * time.Hour, 64},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("base %s cap %s attempt %d", tc.base, tc.cap, tc.attempt), func(t *testing.T) {
			t.Parallel()
			b := newJobsBroker(t, Config{BackoffBase: tc.base, BackoffCap: tc.cap})
			ctx := context.Background()
			job := mustEnqueue(t, b, EnqueueParams{MaxAttempts: MaxAttemptsLimit})
			// Test hook: start at a high attempt without failing the
			// job hundreds of times first.
			if err := b.rdb.HSet(ctx, b.keys.Job(job.ID), fieldAttempt, tc.attempt-1).Err(); err != nil {
				t.Fatalf("set attempt: %v", err)
			}
			claimed := mustClaim(t, b, ClaimParams{})
			if claimed.Attempt != tc.attempt {
				t.Fatalf("claimed attempt %d, want %d", claimed.Attempt, tc.attempt)
			}
			failed, err := b.Fail(ctx, FailParams{JobID: job.ID, WorkerID: "w1", Attempt: tc.attempt, Retryable: true})
			if err != nil {
				t.Fatalf("Fail: %v", err)
			}
			wantStatus(t, failed, StatusQueued)
			if failed.NextAttemptAt == nil {
				t.Fatal("no nextAttemptAt")
			}
			if delay := failed.NextAttemptAt.Sub(failed.UpdatedAt); delay != tc.cap {
				t.Errorf("delay %s, want the cap %s", delay, tc.cap)
			}
			// The job stays delayed: a claim now gets nothing.
			claimNone(t, b, ClaimParams{})
		})
	}
}
