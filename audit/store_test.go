package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/moonmind/broker/audit"
	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/testutil"
)

// newStore returns a Store on a fresh, migrated schema.
func newStore(t *testing.T) *audit.Store {
	t.Helper()
	db, _ := testutil.Postgres(t)
	if err := audit.Migrate(context.Background(), db); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return audit.NewStore(db)
}

func strPtr(s string) *string { return &s }

// testEvent builds a pause event at version v, created v seconds after a
// fixed instant.
func testEvent(v int64, reason string) broker.AuditEvent {
	return broker.AuditEvent{
		ID:          uuid.NewString(),
		Control:     broker.ControlWorkerPause,
		Action:      broker.ActionPause,
		Mode:        strPtr("drain"),
		Reason:      reason,
		Actor:       strPtr("ops@example.test"),
		Version:     v,
		StateBefore: json.RawMessage(`{"workersPaused":false}`),
		StateAfter:  json.RawMessage(`{"workersPaused":true,"mode":"drain"}`),
		CreatedAt:   time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(v) * time.Second),
	}
}

func mustInsert(t *testing.T, s *audit.Store, ev broker.AuditEvent) {
	t.Helper()
	inserted, err := s.Insert(context.Background(), ev)
	if err != nil || !inserted {
		t.Fatalf("Insert version %d = %v, %v; want true, nil", ev.Version, inserted, err)
	}
}

// assertJSONEqual compares two JSON documents by value, because jsonb
// normalizes whitespace and key order.
func assertJSONEqual(t *testing.T, field string, got, want json.RawMessage) {
	t.Helper()
	if len(want) == 0 {
		if len(got) != 0 {
			t.Errorf("%s = %s; want empty", field, got)
		}
		return
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s = %q is not JSON: %v", field, got, err)
		return
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want %s is not JSON: %v", field, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("%s = %s; want %s", field, got, want)
	}
}

func assertEventEqual(t *testing.T, got, want broker.AuditEvent) {
	t.Helper()
	if got.ID != want.ID {
		t.Errorf("ID = %s; want %s", got.ID, want.ID)
	}
	if got.Control != want.Control || got.Action != want.Action {
		t.Errorf("control/action = %s/%s; want %s/%s", got.Control, got.Action, want.Control, want.Action)
	}
	if (got.Mode == nil) != (want.Mode == nil) || (got.Mode != nil && *got.Mode != *want.Mode) {
		t.Errorf("Mode = %v; want %v", deref(got.Mode), deref(want.Mode))
	}
	if (got.Actor == nil) != (want.Actor == nil) || (got.Actor != nil && *got.Actor != *want.Actor) {
		t.Errorf("Actor = %v; want %v", deref(got.Actor), deref(want.Actor))
	}
	if got.Reason != want.Reason {
		t.Errorf("Reason = %q; want %q", got.Reason, want.Reason)
	}
	if got.Version != want.Version {
		t.Errorf("Version = %d; want %d", got.Version, want.Version)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("CreatedAt = %s; want %s", got.CreatedAt, want.CreatedAt)
	}
	assertJSONEqual(t, "StateBefore", got.StateBefore, want.StateBefore)
	assertJSONEqual(t, "StateAfter", got.StateAfter, want.StateAfter)
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func TestStoreInsertRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()

	want := testEvent(7, "upgrade to 2.4")
	want.CreatedAt = time.Date(2026, 3, 1, 12, 0, 0, 123_000_000, time.UTC) // Redis keeps milliseconds
	mustInsert(t, s, want)

	got, err := s.Newest(ctx)
	if err != nil || got == nil {
		t.Fatalf("Newest = %v, %v; want the event", got, err)
	}
	assertEventEqual(t, *got, want)
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt location = %s; want UTC", got.CreatedAt.Location())
	}
}

func TestStoreInsertNullFields(t *testing.T) {
	t.Parallel()
	s := newStore(t)

	want := testEvent(1, "resume after maintenance")
	want.Action = broker.ActionResume
	want.Mode = nil
	want.Actor = nil
	want.StateBefore = nil
	want.StateAfter = nil
	mustInsert(t, s, want)

	got, err := s.Newest(context.Background())
	if err != nil || got == nil {
		t.Fatalf("Newest = %v, %v; want the event", got, err)
	}
	assertEventEqual(t, *got, want)
}

func TestStoreInsertDuplicateID(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()

	ev := testEvent(3, "first")
	mustInsert(t, s, ev)
	inserted, err := s.Insert(ctx, ev)
	if err != nil || inserted {
		t.Fatalf("second Insert of the same event = %v, %v; want false, nil", inserted, err)
	}
	events, err := s.Latest(ctx, 10)
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	if len(events) != 1 {
		t.Fatalf("rows after duplicate insert = %d; want 1", len(events))
	}
}

func TestStoreInsertVersionTaken(t *testing.T) {
	t.Parallel()
	s := newStore(t)

	mustInsert(t, s, testEvent(4, "original"))
	other := testEvent(4, "diverged")
	inserted, err := s.Insert(context.Background(), other)
	if inserted || !errors.Is(err, audit.ErrVersionTaken) {
		t.Fatalf("Insert of another event at version 4 = %v, %v; want false, ErrVersionTaken", inserted, err)
	}
}

func TestStoreInsertRejectsBadInput(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()

	badID := testEvent(1, "x")
	badID.ID = "not-a-uuid"
	if _, err := s.Insert(ctx, badID); err == nil {
		t.Errorf("Insert with id %q succeeded; want an error", badID.ID)
	}

	badAction := testEvent(2, "x")
	badAction.Action = "toggle"
	if _, err := s.Insert(ctx, badAction); err == nil {
		t.Errorf("Insert with action %q succeeded; want the CHECK constraint to reject it", badAction.Action)
	}
}

func TestStoreReasonRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()

	reasons := []string{
		"deploy 🚀 v2.4 — rollback plan ✅ 👩🏽‍💻",
		"升级数据库集群，预计三十分钟",
		"アップグレード中です",
		"תחזוקה מתוכננת של השרת",
		"صيانة مجدولة \u200f(rtl) with mixed ltr",
		`it's "quoted" and 'single' and \backslash\ and $1 and %s and ?`,
		"'; DROP TABLE system_control_events; --",
		"$$ dollar quoted $$ $tag$ E'\\x41' /* comment */ -- tail",
		"line one\nline two\r\n\ttabbed",
		"combining e\u0301 vs é, zero\u200bwidth, BOM\ufeff",
		"  leading and trailing spaces  ",
	}
	for i, reason := range reasons {
		mustInsert(t, s, testEvent(int64(i+1), reason))
	}

	events, err := s.Latest(ctx, len(reasons))
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	if len(events) != len(reasons) {
		t.Fatalf("Latest returned %d events; want %d", len(events), len(reasons))
	}
	for _, ev := range events {
		want := reasons[ev.Version-1]
		if !bytes.Equal([]byte(ev.Reason), []byte(want)) {
			t.Errorf("version %d reason = %q; want %q byte for byte", ev.Version, ev.Reason, want)
		}
	}
}

func TestStoreLatestNewestFirst(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()

	for v := int64(1); v <= 5; v++ {
		mustInsert(t, s, testEvent(v, fmt.Sprintf("change %d", v)))
	}
	events, err := s.Latest(ctx, 3)
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	var versions []int64
	for _, ev := range events {
		versions = append(versions, ev.Version)
	}
	if fmt.Sprint(versions) != "[5 4 3]" {
		t.Fatalf("Latest(3) versions = %v; want [5 4 3]", versions)
	}

	if _, err := s.Latest(ctx, 0); !errors.Is(err, broker.ErrInvalidArgument) {
		t.Errorf("Latest(0) error = %v; want ErrInvalidArgument", err)
	}
}

func TestStoreListPages(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()

	// Versions 6 and 7 share one created_at, so the order must fall back
	// to the version.
	for v := int64(1); v <= 7; v++ {
		ev := testEvent(v, fmt.Sprintf("change %d", v))
		if v == 7 {
			ev.CreatedAt = testEvent(6, "").CreatedAt
		}
		mustInsert(t, s, ev)
	}

	var pages [][]int64
	before := ""
	for range 10 {
		events, next, err := s.List(ctx, 3, before)
		if err != nil {
			t.Fatalf("List(3, %q): %v", before, err)
		}
		var page []int64
		for _, ev := range events {
			page = append(page, ev.Version)
		}
		pages = append(pages, page)
		if next == "" {
			break
		}
		if next != events[len(events)-1].ID {
			t.Fatalf("nextCursor = %s; want the id of the last event %s", next, events[len(events)-1].ID)
		}
		before = next
	}
	if got := fmt.Sprint(pages); got != "[[7 6 5] [4 3 2] [1]]" {
		t.Fatalf("pages = %s; want [[7 6 5] [4 3 2] [1]]", got)
	}

	// An exact multiple of the page size ends without an empty page.
	events, next, err := s.List(ctx, 7, "")
	if err != nil || len(events) != 7 || next != "" {
		t.Fatalf("List(7) = %d events, next %q, %v; want 7 events and no cursor", len(events), next, err)
	}

	// limit 0 means the default.
	events, _, err = s.List(ctx, 0, "")
	if err != nil || len(events) != 7 {
		t.Fatalf("List(0) = %d events, %v; want all 7", len(events), err)
	}
}

func TestStoreListRejectsBadInput(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()

	cases := []struct {
		name   string
		limit  int
		before string
		field  string
	}{
		{"negative limit", -1, "", "limit"},
		{"limit above max", audit.MaxListLimit + 1, "", "limit"},
		{"cursor not a uuid", 10, "abc", "before"},
		{"unknown cursor", 10, uuid.NewString(), "before"},
	}
	for _, tc := range cases {
		_, _, err := s.List(ctx, tc.limit, tc.before)
		var verr *broker.ValidationError
		if !errors.As(err, &verr) {
			t.Errorf("%s: error = %v; want a ValidationError", tc.name, err)
			continue
		}
		if verr.Field != tc.field {
			t.Errorf("%s: field = %q; want %q", tc.name, verr.Field, tc.field)
		}
	}
}

func TestStoreNewestByVersion(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()

	got, err := s.Newest(ctx)
	if err != nil || got != nil {
		t.Fatalf("Newest on an empty table = %v, %v; want nil, nil", got, err)
	}

	// Version 9 has the earlier created_at (a Redis clock that went back),
	// yet it is the newest change.
	v9 := testEvent(9, "newest")
	v9.CreatedAt = testEvent(1, "").CreatedAt
	mustInsert(t, s, testEvent(8, "older"))
	mustInsert(t, s, v9)

	other := testEvent(50, "another control")
	other.Control = "scheduler_pause"
	mustInsert(t, s, other)

	got, err = s.Newest(ctx)
	if err != nil || got == nil {
		t.Fatalf("Newest = %v, %v; want version 9", got, err)
	}
	if got.Version != 9 || got.ID != v9.ID {
		t.Fatalf("Newest = version %d id %s; want version 9 id %s", got.Version, got.ID, v9.ID)
	}
}

func TestStoreConcurrentInsertsOneRow(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()

	ev := testEvent(1, "raced")
	var wg sync.WaitGroup
	results := make(chan bool, 8)
	for range 8 {
		wg.Go(func() {
			inserted, err := s.Insert(ctx, ev)
			if err != nil {
				t.Errorf("Insert: %v", err)
			}
			results <- inserted
		})
	}
	wg.Wait()
	close(results)
	wins := 0
	for inserted := range results {
		if inserted {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("%d of 8 concurrent inserts reported a new row; want exactly 1", wins)
	}
}
