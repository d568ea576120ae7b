package faults

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

// TestTwoBrokersAlternatingPauseChanges sends 200 pause and resume
// requests from 8 concurrent clients, spread across two brokerd processes
// on one Redis and one Postgres. The versions of the accepted changes must
// form a run without gaps or repeats, and the audit table must hold one row
// per accepted change, inserted in version order.
func TestTwoBrokersAlternatingPauseChanges(t *testing.T) {
	t.Parallel()
	const (
		clients           = 8
		requestsPerClient = 25
	)
	ctx := testContext(t, 3*time.Minute)
	started := time.Now()

	_, ns := testutil.Redis(t)
	db, dsn := testutil.Postgres(t)
	operatorToken, workerToken := newToken("op"), newToken("wk")
	cfg := brokerdConfig{
		RedisURL: testutil.RedisURL(), DatabaseURL: dsn, Namespace: ns,
		OperatorToken: operatorToken, WorkerToken: workerToken,
	}
	brokers := []*apiClient{
		newAPIClient(startBrokerd(t, "brokerd-a", cfg).URL, operatorToken),
		newAPIClient(startBrokerd(t, "brokerd-b", cfg).URL, operatorToken),
	}
	initial, _, err := brokers[0].pauseState(ctx)
	if err != nil {
		t.Fatalf("read pause state: %v", err)
	}

	var (
		mu       sync.Mutex
		accepted = map[string]int64{} // reason -> version of the response snapshot
		rejected = map[string]int{}
		wg       sync.WaitGroup
	)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range requestsPerClient {
				action := "pause"
				if r%2 == 1 {
					action = "resume"
				}
				target := brokers[(c+r)%len(brokers)]
				reason := fmt.Sprintf("client %d request %d", c, r)
				snap, _, err := target.changePause(ctx, action, "drain", reason)
				mu.Lock()
				switch {
				case err == nil:
					accepted[reason] = snap.Version
				case errorCode(err) == "already_paused" || errorCode(err) == "not_paused":
					rejected[errorCode(err)]++
				default:
					t.Errorf("client %d request %d (%s): %v", c, r, action, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if len(accepted) == 0 {
		t.Fatalf("no change was accepted (rejections %v)", rejected)
	}

	// Every request has its own reason, so each accepted change can be
	// found in the audit table by it. The response carries a fresh
	// snapshot, whose version can already include later changes of other
	// clients, so the change's own version comes from its audit row.
	type row struct {
		Reason  string `db:"reason"`
		Version int64  `db:"version"`
	}
	var rows []row
	testutil.WaitFor(t, 30*time.Second, "one audit row per accepted change", func() bool {
		rows = rows[:0]
		err := db.SelectContext(ctx, &rows, `SELECT reason, version FROM system_control_events
			WHERE version > $1 ORDER BY inserted_at, version`, initial.Version)
		return err == nil && len(rows) >= len(accepted)
	})
	if len(rows) != len(accepted) {
		t.Fatalf("found %d audit rows, want %d, one per accepted change", len(rows), len(accepted))
	}
	later := 0
	seen := map[string]bool{}
	for i, r := range rows {
		if want := initial.Version + int64(i) + 1; r.Version != want {
			t.Fatalf("audit row %d in insert order has version %d, want %d: versions have a gap, a repeat or are out of order", i+1, r.Version, want)
		}
		responseVersion, ok := accepted[r.Reason]
		if !ok || seen[r.Reason] {
			t.Errorf("audit row version %d has reason %q, which is no accepted change or is repeated", r.Version, r.Reason)
			continue
		}
		seen[r.Reason] = true
		if responseVersion < r.Version {
			t.Errorf("change %q returned version %d, older than its own version %d", r.Reason, responseVersion, r.Version)
		}
		if responseVersion > r.Version {
			later++
		}
	}
	versions := []int64{rows[0].Version, rows[len(rows)-1].Version}
	t.Logf("%d requests: %d accepted (versions %d to %d), rejected %v, %d audit rows, %d responses showed a later version; total %s",
		clients*requestsPerClient, len(accepted), versions[0], versions[1], rejected, len(rows), later,
		time.Since(started).Round(time.Millisecond))
}
