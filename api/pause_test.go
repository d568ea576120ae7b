package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/apitest"
)

func TestPauseAndResumeAreAudited(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	reason := "  Upgrading worker images 🚀 «ü» '; DROP TABLE x; --  "

	paused := c.pause("drain", reason)
	if !paused.WorkersPaused || paused.Version != 2 || paused.Mode == nil || *paused.Mode != "drain" {
		t.Errorf("after pause = %+v, want paused drain version 2", paused.systemDoc)
	}
	if paused.Reason == nil || *paused.Reason != strings.TrimSpace(reason) {
		t.Errorf("reason = %v, want the trimmed reason", paused.Reason)
	}
	if paused.AuditPending {
		t.Errorf("auditPending = true with PostgreSQL up, want false")
	}
	if !paused.AuditAvailable || len(paused.Audit.Latest) != 1 || paused.Audit.Latest[0].Action != "pause" {
		t.Errorf("audit.latest = %+v, want the pause event", paused.Audit.Latest)
	}
	if paused.RequestedBy == nil || *paused.RequestedBy != "operator" {
		t.Errorf("requestedBy = %v, want operator", paused.RequestedBy)
	}

	c.expectError(request{method: http.MethodPost, path: "/api/system/worker-pause", token: s.OperatorToken,
		body: map[string]any{"action": "pause", "mode": "drain", "reason": reason}}, http.StatusConflict, "already_paused", "")
	c.expectError(request{method: http.MethodPost, path: "/api/system/worker-pause", token: s.OperatorToken,
		body: map[string]any{"action": "resume", "reason": "r", "expectedVersion": 7}}, http.StatusConflict, "version_conflict", "")

	job := c.enqueue("demo:a", nil)
	c.resume("let one claim")
	if claim := c.claim("w1", nil); claim.Job == nil || claim.Job.ID != job.ID {
		t.Fatalf("claim after resume returned %+v", claim.Job)
	}
	c.pause("drain", "second pause")
	c.expectError(request{method: http.MethodPost, path: "/api/system/worker-pause", token: s.OperatorToken,
		body: map[string]any{"action": "resume", "reason": "too early"}}, http.StatusConflict, "not_drained", "")

	var resumed snapshotDoc
	c.json(http.MethodPost, "/api/system/worker-pause", s.OperatorToken, map[string]any{
		"action": "resume", "reason": "forced", "forceResume": true, "expectedVersion": 4,
	}, http.StatusOK, &resumed)
	if resumed.WorkersPaused || resumed.Version != 5 {
		t.Errorf("after forced resume = %+v, want unpaused version 5", resumed.systemDoc)
	}
	c.expectError(request{method: http.MethodPost, path: "/api/system/worker-pause", token: s.OperatorToken,
		body: map[string]any{"action": "resume", "reason": "again"}}, http.StatusConflict, "not_paused", "")

	var rows []struct {
		Version int64  `db:"version"`
		Action  string `db:"action"`
		Reason  string `db:"reason"`
		Actor   string `db:"actor"`
	}
	if err := s.DB.Select(&rows, "SELECT version, action, reason, actor FROM system_control_events ORDER BY version"); err != nil {
		t.Fatalf("read audit rows: %v", err)
	}
	wantActions := []string{"pause", "resume", "pause", "resume"}
	if len(rows) != len(wantActions) {
		t.Fatalf("audit rows = %+v, want %d", rows, len(wantActions))
	}
	for i, row := range rows {
		if row.Version != int64(i+2) || row.Action != wantActions[i] || row.Actor != "operator" {
			t.Errorf("audit row %d = %+v, want version %d action %s actor operator", i, row, i+2, wantActions[i])
		}
	}
	if rows[0].Reason != strings.TrimSpace(reason) {
		t.Errorf("stored reason %q, want %q byte for byte", rows[0].Reason, strings.TrimSpace(reason))
	}

	var page struct {
		Items []struct {
			ID      string `json:"id"`
			Version int64  `json:"version"`
		} `json:"items"`
		NextCursor *string `json:"nextCursor"`
	}
	c.json(http.MethodGet, "/api/system/control-events?limit=3", s.OperatorToken, nil, http.StatusOK, &page)
	if len(page.Items) != 3 || page.Items[0].Version != 5 || page.NextCursor == nil {
		t.Fatalf("first audit page = %+v, want versions 5, 4, 3 and a cursor", page)
	}
	c.json(http.MethodGet, "/api/system/control-events?limit=3&before="+*page.NextCursor, s.OperatorToken, nil, http.StatusOK, &page)
	if len(page.Items) != 1 || page.Items[0].Version != 2 || page.NextCursor != nil {
		t.Errorf("second audit page = %+v, want only version 2 and no cursor", page)
	}
}

func TestWaitVersionReturnsOnChange(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	result := make(chan snapshotDoc, 1)
	go func() {
		c := newClient(t, s)
		var snap snapshotDoc
		r := c.do(request{method: http.MethodGet, path: "/api/system/worker-pause?waitVersion=1&waitSeconds=20", token: s.OperatorToken})
		if r.status == http.StatusOK {
			decode(t, r.body, &snap)
		} else {
			t.Errorf("wait for version: status %d, body %s", r.status, r.body)
		}
		result <- snap
	}()

	c.pause("quiesce", "wait test")
	select {
	case snap := <-result:
		if snap.Version != 2 || !snap.WorkersPaused {
			t.Errorf("waited snapshot = %+v, want paused version 2", snap.systemDoc)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("wait for version 2 did not return before its 20 s deadline after 15 s")
	}

	// A version already past waitVersion returns at once.
	var snap snapshotDoc
	c.json(http.MethodGet, "/api/system/worker-pause?waitVersion=1&waitSeconds=30", s.OperatorToken, nil, http.StatusOK, &snap)
	if snap.Version != 2 {
		t.Errorf("snapshot version = %d, want 2", snap.Version)
	}
}

func TestPauseEventStreamInOrder(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/api/system/worker-pause/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.OperatorToken)
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("open pause event stream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("pause event stream: status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := readEvents(resp.Body)

	// next returns the next event with the given name, skipping others.
	next := func(name string) snapshotDoc {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("event stream ended while waiting for %q", name)
				}
				if ev.name != name {
					continue
				}
				var snap snapshotDoc
				if err := json.Unmarshal([]byte(ev.data), &snap); err != nil {
					t.Fatalf("decode %s event %s: %v", name, ev.data, err)
				}
				return snap
			case <-timeout:
				t.Fatalf("no %q event within 10 s", name)
			}
		}
	}

	if first := next("snapshot"); first.Version != 1 {
		t.Errorf("first snapshot version = %d, want 1", first.Version)
	}
	c.pause("drain", "stream test")
	if ev := next("pause"); !ev.WorkersPaused || ev.Version != 2 {
		t.Errorf("first pause event = %+v, want paused version 2", ev.systemDoc)
	}
	c.resume("stream test done")
	if ev := next("pause"); ev.WorkersPaused || ev.Version != 3 {
		t.Errorf("second pause event = %+v, want unpaused version 3", ev.systemDoc)
	}
	if ev := next("snapshot"); ev.Version != 3 {
		t.Errorf("snapshot after resume has version %d, want 3", ev.Version)
	}
}

func TestCloseEndsLongPolls(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})

	emptyBefore := metricValue(t, s, `mmb_claims_total{result="empty"}`)
	result := startClaim(t, s, "w1", 30)
	waitForClaimResult(t, s, "empty", emptyBefore)
	s.API.Close()

	select {
	case res := <-result:
		if res.Job != nil {
			t.Errorf("claim ended by shutdown returned job %s, want none", res.Job.ID)
		}
		if res.System.Version != 1 {
			t.Errorf("claim ended by shutdown has system version %d, want 1", res.System.Version)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("claim with waitSeconds 30 did not end within 20 s of Close")
	}
}
