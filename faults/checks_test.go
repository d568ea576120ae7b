package faults

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

// countKind returns how many events of kind the history holds.
func countKind(events []jobEvent, kind string) int {
	n := 0
	for _, e := range events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// waitAllSucceeded polls until every job in ids reads succeeded, failing
// the test after timeout with the first job that has not.
func waitAllSucceeded(t *testing.T, ctx context.Context, c *apiClient, ids []string, timeout time.Duration) {
	t.Helper()
	pending := map[string]bool{}
	for _, id := range ids {
		pending[id] = true
	}
	lastState := ""
	testutil.WaitFor(t, timeout, "every accepted job to succeed", func() bool {
		for id := range pending {
			j, _, err := c.getJob(ctx, id)
			if err != nil {
				lastState = fmt.Sprintf("job %s: %v", id, err)
				return false
			}
			if j.Status != "succeeded" {
				lastState = fmt.Sprintf("job %s is %s at attempt %d", id, j.Status, j.Attempt)
				return false
			}
			delete(pending, id)
		}
		return true
	})
	if len(pending) > 0 {
		t.Fatalf("%d jobs did not succeed; last seen: %s", len(pending), lastState)
	}
}

// checkSucceededOnce checks that every job in ids succeeded and that its
// history holds exactly one succeeded event, so no run was counted twice.
// It returns the total of claimed events, the number of runs.
func checkSucceededOnce(t *testing.T, ctx context.Context, c *apiClient, ids []string) (claims int) {
	t.Helper()
	for _, id := range ids {
		j, _, err := c.getJob(ctx, id)
		if err != nil {
			t.Errorf("read job %s: %v", id, err)
			continue
		}
		if j.Status != "succeeded" {
			t.Errorf("job %s is %s, want succeeded", id, j.Status)
		}
		events, err := c.events(ctx, id)
		if err != nil {
			t.Errorf("read events of job %s: %v", id, err)
			continue
		}
		if n := countKind(events, "succeeded"); n != 1 {
			t.Errorf("job %s has %d succeeded events, want exactly 1", id, n)
		}
		if n := countKind(events, "claimed"); n != j.Attempt {
			t.Errorf("job %s has %d claimed events but attempt %d", id, n, j.Attempt)
		}
		claims += countKind(events, "claimed")
	}
	return claims
}
