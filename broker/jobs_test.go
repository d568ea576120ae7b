package broker

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

func TestEnqueueStoresQueuedJob(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()

	job, created, err := b.Enqueue(ctx, EnqueueParams{
		Type: "demo:sleep", Priority: 5, Payload: rawJSON(`{ "seconds": 5 }`),
		AffinityKey: "repo-1", RequiredCapabilities: []string{"gpu", "gpu", "docker"},
	})
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if !created {
		t.Fatal("created = false, want true")
	}
	wantStatus(t, job, StatusQueued)
	if string(job.Payload) != `{"seconds":5}` {
		t.Errorf("payload = %s, want compacted {\"seconds\":5}", job.Payload)
	}
	if job.MaxAttempts != DefaultMaxAttempts || job.Attempt != 0 || job.Priority != 5 {
		t.Errorf("maxAttempts, attempt, priority = %d, %d, %d, want %d, 0, 5", job.MaxAttempts, job.Attempt, job.Priority, DefaultMaxAttempts)
	}
	if !slices.Equal(job.RequiredCapabilities, []string{"gpu", "docker"}) {
		t.Errorf("requiredCapabilities = %v, want [gpu docker]", job.RequiredCapabilities)
	}
	if job.AffinityKey == nil || *job.AffinityKey != "repo-1" {
		t.Errorf("affinityKey = %v, want repo-1", job.AffinityKey)
	}
	if job.NextAttemptAt != nil || job.ClaimedBy != nil || job.IdempotencyKey != nil {
		t.Errorf("nextAttemptAt, claimedBy, idempotencyKey = %v, %v, %v, want all nil", job.NextAttemptAt, job.ClaimedBy, job.IdempotencyKey)
	}
	if job.CreatedAt.IsZero() || time.Since(job.CreatedAt).Abs() > time.Minute {
		t.Errorf("createdAt = %s, want about now", job.CreatedAt)
	}

	got := mustGet(t, b, job.ID)
	if got.ID != job.ID || got.Type != "demo:sleep" {
		t.Errorf("GetJob = %+v, want the enqueued job", got)
	}
	counts := stateCounts(t, b)
	if counts[StatusQueued] != 1 {
		t.Errorf("queued count = %d, want 1", counts[StatusQueued])
	}
	if n := b.rdb.ZCard(ctx, b.keys.Ready()).Val(); n != 1 {
		t.Errorf("ready set size = %d, want 1", n)
	}
	if n := b.rdb.ZCard(ctx, b.keys.ReadyType("demo:sleep")).Val(); n != 1 {
		t.Errorf("ready:demo:sleep size = %d, want 1", n)
	}
}

func TestEnqueueNilPayloadIsEmptyObject(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	job := mustEnqueue(t, b, EnqueueParams{})
	if string(job.Payload) != "{}" {
		t.Fatalf("payload = %s, want {}", job.Payload)
	}
}

func TestEnqueueRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	cases := []struct {
		name  string
		p     EnqueueParams
		field string
	}{
		{"missing type", EnqueueParams{}, "type"},
		{"long type", EnqueueParams{Type: strings.Repeat("t", MaxTypeLength+1)}, "type"},
		{"type with spaces", EnqueueParams{Type: " demo"}, "type"},
		{"type with newline", EnqueueParams{Type: "de\nmo"}, "type"},
		{"priority too high", EnqueueParams{Type: "demo", Priority: MaxPriority + 1}, "priority"},
		{"priority too low", EnqueueParams{Type: "demo", Priority: MinPriority - 1}, "priority"},
		{"payload array", EnqueueParams{Type: "demo", Payload: rawJSON(`[1]`)}, "payload"},
		{"payload invalid", EnqueueParams{Type: "demo", Payload: rawJSON(`{"a":`)}, "payload"},
		{"maxAttempts negative", EnqueueParams{Type: "demo", MaxAttempts: -1}, "maxAttempts"},
		{"maxAttempts too high", EnqueueParams{Type: "demo", MaxAttempts: MaxAttemptsLimit + 1}, "maxAttempts"},
		{"empty capability", EnqueueParams{Type: "demo", RequiredCapabilities: []string{""}}, "requiredCapabilities[0]"},
		{"long idempotency key", EnqueueParams{Type: "demo", IdempotencyKey: strings.Repeat("k", MaxKeyLength+1)}, "idempotencyKey"},
		{"runAt before 1970", EnqueueParams{Type: "demo", RunAt: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)}, "runAt"},
	}
	for _, tc := range cases {
		_, _, err := b.Enqueue(context.Background(), tc.p)
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: err = %v, want a ValidationError", tc.name, err)
			continue
		}
		if ve.Field != tc.field {
			t.Errorf("%s: field = %q, want %q (message %q)", tc.name, ve.Field, tc.field, ve.Message)
		}
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: errors.Is(err, ErrInvalidArgument) = false", tc.name)
		}
	}
	if counts := stateCounts(t, b); counts[StatusQueued] != 0 {
		t.Errorf("queued count = %d after invalid enqueues, want 0", counts[StatusQueued])
	}
}

func TestEnqueuePayloadCap(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{MaxPayloadBytes: 64})
	ctx := context.Background()

	fits := `{"data":"` + strings.Repeat("x", 64-len(`{"data":""}`)) + `"}`
	if _, _, err := b.Enqueue(ctx, EnqueueParams{Type: "demo", Payload: rawJSON(fits)}); err != nil {
		t.Fatalf("Enqueue with a %d-byte payload: %v", len(fits), err)
	}
	tooBig := `{"data":"` + strings.Repeat("x", 64) + `"}`
	_, _, err := b.Enqueue(ctx, EnqueueParams{Type: "demo", Payload: rawJSON(tooBig)})
	wantErr(t, "Enqueue with a 75-byte payload", err, ErrPayloadTooLarge)
	if counts := stateCounts(t, b); counts[StatusQueued] != 1 {
		t.Errorf("queued count = %d, want 1 (the oversized job must not be stored)", counts[StatusQueued])
	}
}

func TestEnqueueIdempotencyKeyReturnsExistingJob(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()

	first := mustEnqueue(t, b, EnqueueParams{Payload: rawJSON(`{"n":1}`), IdempotencyKey: "order-7"})
	again, created, err := b.Enqueue(ctx, EnqueueParams{Type: "demo", Payload: rawJSON(`{"n":2}`), IdempotencyKey: "order-7"})
	if err != nil {
		t.Fatalf("second Enqueue: %v", err)
	}
	if created {
		t.Error("second Enqueue: created = true, want false")
	}
	if again.ID != first.ID || string(again.Payload) != `{"n":1}` {
		t.Errorf("second Enqueue returned %s %s, want the first job %s {\"n\":1}", again.ID, again.Payload, first.ID)
	}
	if first.IdempotencyKey == nil || *first.IdempotencyKey != "order-7" {
		t.Errorf("idempotencyKey = %v, want order-7", first.IdempotencyKey)
	}
	other := mustEnqueue(t, b, EnqueueParams{IdempotencyKey: "order-8"})
	if other.ID == first.ID {
		t.Error("a different idempotency key returned the same job")
	}
	if counts := stateCounts(t, b); counts[StatusQueued] != 2 {
		t.Errorf("queued count = %d, want 2", counts[StatusQueued])
	}
	ttl := b.rdb.PTTL(ctx, b.keys.Idempotency("order-7")).Val()
	if ttl <= 0 || ttl > DefaultRetention {
		t.Errorf("idempotency key TTL = %s, want within (0, %s]", ttl, DefaultRetention)
	}
}

func TestEnqueueRunAtDelaysUntilDue(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()

	later := mustEnqueue(t, b, EnqueueParams{RunAt: time.Now().Add(time.Hour)})
	if later.NextAttemptAt == nil {
		t.Fatal("nextAttemptAt = nil for a job scheduled an hour ahead")
	}
	soon := mustEnqueue(t, b, EnqueueParams{RunAt: time.Now().Add(300 * time.Millisecond)})
	if n := b.rdb.ZCard(ctx, b.keys.Delayed()).Val(); n != 2 {
		t.Fatalf("delayed set size = %d, want 2", n)
	}
	claimNone(t, b, ClaimParams{})

	var got *Job
	testutil.WaitFor(t, 5*time.Second, "the job scheduled 300 ms ahead to become claimable", func() bool {
		res, err := b.Claim(ctx, ClaimParams{WorkerID: "w1"})
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		got = res.Job
		return got != nil
	})
	if got.ID != soon.ID {
		t.Fatalf("claimed %s, want the due job %s", got.ID, soon.ID)
	}
	if n := b.rdb.ZCard(ctx, b.keys.Delayed()).Val(); n != 1 {
		t.Errorf("delayed set size = %d, want 1 (the job an hour ahead)", n)
	}
}

func TestClaimOrdersByPriorityThenFIFO(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	low1 := mustEnqueue(t, b, EnqueueParams{Priority: -1})
	mid1 := mustEnqueue(t, b, EnqueueParams{})
	high := mustEnqueue(t, b, EnqueueParams{Priority: 10})
	mid2 := mustEnqueue(t, b, EnqueueParams{})
	low2 := mustEnqueue(t, b, EnqueueParams{Priority: -1})

	want := []string{high.ID, mid1.ID, mid2.ID, low1.ID, low2.ID}
	for i, id := range want {
		got := mustClaim(t, b, ClaimParams{})
		if got.ID != id {
			t.Fatalf("claim %d = %s (priority %d), want %s", i, got.ID, got.Priority, id)
		}
	}
	claimNone(t, b, ClaimParams{})
}

func TestClaimMarksJobRunning(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	job := mustEnqueue(t, b, EnqueueParams{})

	res, err := b.Claim(ctx, ClaimParams{WorkerID: "w1", Lease: 30 * time.Second})
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if res.Pause.Version != 1 || res.Pause.WorkersPaused {
		t.Errorf("pause = %+v, want unpaused version 1", res.Pause)
	}
	got := res.Job
	wantStatus(t, got, StatusRunning)
	if got.ID != job.ID || got.Attempt != 1 || got.ClaimedBy == nil || *got.ClaimedBy != "w1" {
		t.Fatalf("claimed %+v, want job %s attempt 1 by w1", got, job.ID)
	}
	if got.StartedAt == nil || got.LeaseExpiresAt == nil {
		t.Fatalf("startedAt, leaseExpiresAt = %v, %v, want both set", got.StartedAt, got.LeaseExpiresAt)
	}
	if d := got.LeaseExpiresAt.Sub(*got.StartedAt); d != 30*time.Second {
		t.Errorf("lease = %s after start, want 30s", d)
	}
	score := b.rdb.ZScore(ctx, b.keys.Inflight(), job.ID).Val()
	if int64(score) != got.LeaseExpiresAt.UnixMilli() {
		t.Errorf("in-flight score = %.0f, want the lease expiry %d", score, got.LeaseExpiresAt.UnixMilli())
	}
	counts := stateCounts(t, b)
	if counts[StatusQueued] != 0 || counts[StatusRunning] != 1 {
		t.Errorf("counts = %v, want running 1 and queued 0", counts)
	}
	if n := b.rdb.ZCard(ctx, b.keys.ReadyType("demo")).Val(); n != 0 {
		t.Errorf("ready:demo size = %d, want 0", n)
	}
	if kinds := eventKinds(t, b, job.ID); !slices.Equal(kinds, []string{"claimed"}) {
		t.Errorf("events = %v, want [claimed]", kinds)
	}
}

func TestClaimRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	cases := []struct {
		p     ClaimParams
		field string
	}{
		{ClaimParams{}, "workerId"},
		{ClaimParams{WorkerID: "w1", Lease: -time.Second}, "leaseSeconds"},
		{ClaimParams{WorkerID: "w1", Lease: MaxLeaseDuration + time.Second}, "leaseSeconds"},
		{ClaimParams{WorkerID: "w1", Lease: 500 * time.Millisecond}, "leaseSeconds"},
		{ClaimParams{WorkerID: "w1", AllowedTypes: []string{""}}, "allowedTypes[0]"},
		{ClaimParams{WorkerID: "w1", WorkerCapabilities: []string{"ok", " x"}}, "workerCapabilities[1]"},
	}
	for _, tc := range cases {
		_, err := b.Claim(context.Background(), tc.p)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field {
			t.Errorf("Claim(%+v): err = %v, want a ValidationError for %s", tc.p, err, tc.field)
		}
	}
}

func TestClaimFiltersByTypeAndCapabilities(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})

	gpu := mustEnqueue(t, b, EnqueueParams{Type: "render", Priority: 9, RequiredCapabilities: []string{"gpu"}})
	plain := mustEnqueue(t, b, EnqueueParams{Type: "render"})
	mail := mustEnqueue(t, b, EnqueueParams{Type: "mail", Priority: 1})
	both := mustEnqueue(t, b, EnqueueParams{Type: "mail", RequiredCapabilities: []string{"gpu", "smtp"}})

	// A worker without capabilities skips the gpu job at the head.
	if got := mustClaim(t, b, ClaimParams{AllowedTypes: []string{"render"}}); got.ID != plain.ID {
		t.Fatalf("claim render without gpu = %s, want %s", got.ID, plain.ID)
	}
	// Across types the higher priority wins.
	if got := mustClaim(t, b, ClaimParams{AllowedTypes: []string{"mail", "render"}, WorkerCapabilities: []string{"gpu"}}); got.ID != gpu.ID {
		t.Fatalf("claim mail+render with gpu = %s, want %s", got.ID, gpu.ID)
	}
	if got := mustClaim(t, b, ClaimParams{AllowedTypes: []string{"mail"}, WorkerCapabilities: []string{"gpu"}}); got.ID != mail.ID {
		t.Fatalf("claim mail with gpu = %s, want %s", got.ID, mail.ID)
	}
	claimNone(t, b, ClaimParams{AllowedTypes: []string{"mail"}, WorkerCapabilities: []string{"gpu"}})
	claimNone(t, b, ClaimParams{AllowedTypes: []string{"render"}, WorkerCapabilities: []string{"gpu", "smtp"}})
	if got := mustClaim(t, b, ClaimParams{WorkerCapabilities: []string{"smtp", "gpu"}}); got.ID != both.ID {
		t.Fatalf("claim any type with gpu+smtp = %s, want %s", got.ID, both.ID)
	}
}

func TestClaimScanLimitBoundsCapabilitySearch(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{ClaimScanLimit: 3})
	for range 3 {
		mustEnqueue(t, b, EnqueueParams{RequiredCapabilities: []string{"gpu"}})
	}
	plain := mustEnqueue(t, b, EnqueueParams{})

	// The plain job sits fourth, beyond the scan limit of 3.
	claimNone(t, b, ClaimParams{})
	if got := mustClaim(t, b, ClaimParams{WorkerCapabilities: []string{"gpu"}}); got.ID == plain.ID {
		t.Fatal("a gpu worker claimed the plain job before the gpu jobs ahead of it")
	}
	if got := mustClaim(t, b, ClaimParams{}); got.ID != plain.ID {
		t.Fatalf("claim = %s, want the plain job %s now within the scan limit", got.ID, plain.ID)
	}
}

func TestClaimWhilePausedChangesNothing(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	mustEnqueue(t, b, EnqueueParams{})
	scheduled := mustEnqueue(t, b, EnqueueParams{RunAt: time.Now().Add(100 * time.Millisecond)})
	before := stateCounts(t, b)
	setPaused(t, b, true)
	testutil.WaitFor(t, 5*time.Second, "the scheduled job to become due", func() bool {
		return b.rdb.Time(ctx).Val().After(*scheduled.NextAttemptAt)
	})

	res := claimNone(t, b, ClaimParams{})
	if !res.Pause.WorkersPaused || res.Pause.Version != 2 || res.Pause.Mode == nil || *res.Pause.Mode != ModeDrain {
		t.Errorf("pause = %+v, want paused drain version 2", res.Pause)
	}
	if n := b.rdb.ZCard(ctx, b.keys.Delayed()).Val(); n != 1 {
		t.Errorf("delayed set size = %d while paused, want 1 (no promotion)", n)
	}
	if n := b.rdb.ZCard(ctx, b.keys.Ready()).Val(); n != 1 {
		t.Errorf("ready set size = %d while paused, want 1", n)
	}
	if after := stateCounts(t, b); !mapsEqual(before, after) {
		t.Errorf("counts changed while paused: %v -> %v", before, after)
	}

	setPaused(t, b, false)
	mustClaim(t, b, ClaimParams{})
}

func TestClaimFailsClosedWithoutPauseHash(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	job := mustEnqueue(t, b, EnqueueParams{})
	if err := b.rdb.Del(ctx, b.keys.Pause()).Err(); err != nil {
		t.Fatalf("DEL pause: %v", err)
	}

	res, err := b.Claim(ctx, ClaimParams{WorkerID: "w1"})
	wantErr(t, "Claim without pause hash", err, ErrPauseStateMissing)
	if res != nil {
		t.Errorf("result = %+v, want nil", res)
	}
	wantStatus(t, mustGet(t, b, job.ID), StatusQueued)
}

func TestHeartbeatExtendsLeaseAndReportsPause(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	mustEnqueue(t, b, EnqueueParams{})
	job := mustClaim(t, b, ClaimParams{Lease: 5 * time.Second})

	parked := true
	got, pause, err := b.Heartbeat(ctx, HeartbeatParams{
		JobID: job.ID, WorkerID: "w1", Attempt: 1, Lease: time.Hour,
		Quiesced: &parked, Checkpoint: rawJSON(`{"step": 3}`),
	})
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	if pause.Version != 1 {
		t.Errorf("pause version = %d, want 1", pause.Version)
	}
	if !got.LeaseExpiresAt.After(job.LeaseExpiresAt.Add(50 * time.Minute)) {
		t.Errorf("lease = %s, want about an hour after %s", got.LeaseExpiresAt, job.LeaseExpiresAt)
	}
	if !got.Quiesced || string(got.Checkpoint) != `{"step":3}` {
		t.Errorf("quiesced, checkpoint = %v, %s, want true, {\"step\":3}", got.Quiesced, got.Checkpoint)
	}
	if !b.rdb.SIsMember(ctx, b.keys.Quiesced(), job.ID).Val() {
		t.Error("job is not in the quiesced set")
	}

	// A heartbeat without the optional fields keeps them.
	got, _, err = b.Heartbeat(ctx, HeartbeatParams{JobID: job.ID, WorkerID: "w1"})
	if err != nil {
		t.Fatalf("second Heartbeat: %v", err)
	}
	if !got.Quiesced || string(got.Checkpoint) != `{"step":3}` {
		t.Errorf("after a plain heartbeat quiesced, checkpoint = %v, %s, want them kept", got.Quiesced, got.Checkpoint)
	}
	parked = false
	got, _, err = b.Heartbeat(ctx, HeartbeatParams{JobID: job.ID, WorkerID: "w1", Quiesced: &parked})
	if err != nil {
		t.Fatalf("third Heartbeat: %v", err)
	}
	if got.Quiesced || b.rdb.SIsMember(ctx, b.keys.Quiesced(), job.ID).Val() {
		t.Error("quiesced=false left the job parked")
	}
}

func TestHeartbeatFencesOtherHolders(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	mustEnqueue(t, b, EnqueueParams{})
	job := mustClaim(t, b, ClaimParams{})

	_, _, err := b.Heartbeat(ctx, HeartbeatParams{JobID: job.ID, WorkerID: "w2"})
	wantErr(t, "heartbeat by another worker", err, ErrLeaseLost)
	_, _, err = b.Heartbeat(ctx, HeartbeatParams{JobID: job.ID, WorkerID: "w1", Attempt: 2})
	wantErr(t, "heartbeat with another attempt", err, ErrLeaseLost)
	_, _, err = b.Heartbeat(ctx, HeartbeatParams{JobID: "no-such-job", WorkerID: "w1"})
	wantErr(t, "heartbeat of a missing job", err, ErrNotFound)
	_, _, err = b.Heartbeat(ctx, HeartbeatParams{JobID: job.ID, WorkerID: "w1", Checkpoint: rawJSON(`"text"`)})
	wantErr(t, "heartbeat with a string checkpoint", err, ErrInvalidArgument)

	// The true holder may still heartbeat after its lease expired, as long
	// as no other process moved the job.
	expireLease(t, b, job.ID, time.Minute)
	got, _, err := b.Heartbeat(ctx, HeartbeatParams{JobID: job.ID, WorkerID: "w1", Attempt: 1})
	if err != nil {
		t.Fatalf("late heartbeat by the holder: %v", err)
	}
	if !got.LeaseExpiresAt.After(time.Now().Add(30 * time.Second)) {
		t.Errorf("lease after late heartbeat = %s, want about a minute ahead", got.LeaseExpiresAt)
	}
}

func TestHeartbeatWithoutPauseStateStillExtends(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	mustEnqueue(t, b, EnqueueParams{})
	job := mustClaim(t, b, ClaimParams{})
	b.rdb.Del(ctx, b.keys.Pause())

	got, _, err := b.Heartbeat(ctx, HeartbeatParams{JobID: job.ID, WorkerID: "w1"})
	wantErr(t, "heartbeat without pause hash", err, ErrPauseStateMissing)
	if got == nil || got.ID != job.ID {
		t.Fatalf("job = %v, want the job with the error", got)
	}
}

func TestCompleteFinishesJobOnce(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	mustEnqueue(t, b, EnqueueParams{})
	job := mustClaim(t, b, ClaimParams{})
	parked := true
	if _, _, err := b.Heartbeat(ctx, HeartbeatParams{JobID: job.ID, WorkerID: "w1", Quiesced: &parked}); err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}

	got, err := b.Complete(ctx, CompleteParams{
		JobID: job.ID, WorkerID: "w1", Attempt: 1, ResultSummary: "done",
		Finish: FinishDetails{OutcomeCode: "ok", OutcomeStage: "final", OutcomeReason: "all good", Summary: rawJSON(`{"files":2}`)},
	})
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	wantStatus(t, got, StatusSucceeded)
	if got.FinishedAt == nil || got.LeaseExpiresAt != nil || got.Quiesced {
		t.Errorf("finishedAt, leaseExpiresAt, quiesced = %v, %v, %v, want set, nil, false", got.FinishedAt, got.LeaseExpiresAt, got.Quiesced)
	}
	if *got.ResultSummary != "done" || *got.FinishOutcomeCode != "ok" || *got.FinishOutcomeStage != "final" ||
		*got.FinishOutcomeReason != "all good" || string(got.FinishSummary) != `{"files":2}` {
		t.Errorf("finish fields = %q %q %q %q %s", *got.ResultSummary, *got.FinishOutcomeCode, *got.FinishOutcomeStage, *got.FinishOutcomeReason, got.FinishSummary)
	}
	if n := b.rdb.ZCard(ctx, b.keys.Inflight()).Val() + b.rdb.SCard(ctx, b.keys.Quiesced()).Val(); n != 0 {
		t.Errorf("in-flight plus quiesced = %d, want 0", n)
	}
	if score, err := b.rdb.ZScore(ctx, b.keys.Finished(), job.ID).Result(); err != nil || int64(score) != got.FinishedAt.UnixMilli() {
		t.Errorf("finished score = %.0f (%v), want %d", score, err, got.FinishedAt.UnixMilli())
	}

	_, err = b.Complete(ctx, CompleteParams{JobID: job.ID, WorkerID: "w1"})
	wantErr(t, "second Complete", err, ErrLeaseLost)
	counts := stateCounts(t, b)
	if counts[StatusSucceeded] != 1 || counts[StatusRunning] != 0 {
		t.Errorf("counts = %v, want succeeded 1", counts)
	}
	if kinds := eventKinds(t, b, job.ID); !slices.Equal(kinds, []string{"claimed", "succeeded"}) {
		t.Errorf("events = %v, want [claimed succeeded]", kinds)
	}
}

func TestCompleteRejectsBadFinishFields(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	mustEnqueue(t, b, EnqueueParams{})
	job := mustClaim(t, b, ClaimParams{})
	cases := []struct {
		d     FinishDetails
		field string
	}{
		{FinishDetails{OutcomeCode: strings.Repeat("c", 65)}, "finishOutcomeCode"},
		{FinishDetails{OutcomeStage: strings.Repeat("s", 33)}, "finishOutcomeStage"},
		{FinishDetails{Summary: rawJSON(`[1,2]`)}, "finishSummary"},
	}
	for _, tc := range cases {
		_, err := b.Complete(context.Background(), CompleteParams{JobID: job.ID, WorkerID: "w1", Finish: tc.d})
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != tc.field {
			t.Errorf("Complete with %+v: err = %v, want a ValidationError for %s", tc.d, err, tc.field)
		}
	}
	wantStatus(t, mustGet(t, b, job.ID), StatusRunning)
}

func TestFailRetriesThenDeadLetters(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{BackoffBase: time.Millisecond, BackoffCap: 5 * time.Millisecond})
	ctx := context.Background()
	job := mustEnqueue(t, b, EnqueueParams{MaxAttempts: 2, Priority: 7})

	claimed := mustClaim(t, b, ClaimParams{})
	got, err := b.Fail(ctx, FailParams{JobID: job.ID, WorkerID: "w1", Attempt: 1, ErrorMessage: "boom", Retryable: true})
	if err != nil {
		t.Fatalf("Fail: %v", err)
	}
	wantStatus(t, got, StatusQueued)
	if got.NextAttemptAt == nil || got.NextAttemptAt.Before(*claimed.StartedAt) || got.ErrorMessage == nil || *got.ErrorMessage != "boom" {
		t.Fatalf("after retryable fail nextAttemptAt, errorMessage = %v, %v", got.NextAttemptAt, got.ErrorMessage)
	}
	if got.ClaimedBy != nil || got.Attempt != 1 || got.Priority != 7 {
		t.Errorf("claimedBy, attempt, priority = %v, %d, %d, want nil, 1, 7", got.ClaimedBy, got.Attempt, got.Priority)
	}

	var second *Job
	testutil.WaitFor(t, 5*time.Second, "the retried job to become claimable", func() bool {
		res, err := b.Claim(ctx, ClaimParams{WorkerID: "w2"})
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		second = res.Job
		return second != nil
	})
	if second.ID != job.ID || second.Attempt != 2 {
		t.Fatalf("claimed %s attempt %d, want %s attempt 2", second.ID, second.Attempt, job.ID)
	}
	got, err = b.Fail(ctx, FailParams{JobID: job.ID, WorkerID: "w2", ErrorMessage: "boom again", Retryable: true})
	if err != nil {
		t.Fatalf("second Fail: %v", err)
	}
	wantStatus(t, got, StatusDeadLetter)
	if got.FinishedAt == nil {
		t.Error("finishedAt = nil for a dead-lettered job")
	}
	want := []string{"claimed", "retry_scheduled", "claimed", "dead_lettered"}
	if kinds := eventKinds(t, b, job.ID); !slices.Equal(kinds, want) {
		t.Errorf("events = %v, want %v", kinds, want)
	}
}

func TestFailNotRetryableEndsFailed(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	mustEnqueue(t, b, EnqueueParams{MaxAttempts: 5})
	job := mustClaim(t, b, ClaimParams{})

	_, err := b.Fail(ctx, FailParams{JobID: job.ID, WorkerID: "w9", ErrorMessage: "x"})
	wantErr(t, "Fail by another worker", err, ErrLeaseLost)
	got, err := b.Fail(ctx, FailParams{JobID: job.ID, WorkerID: "w1", ErrorMessage: "bad input", Finish: FinishDetails{OutcomeCode: "invalid_input"}})
	if err != nil {
		t.Fatalf("Fail: %v", err)
	}
	wantStatus(t, got, StatusFailed)
	if *got.FinishOutcomeCode != "invalid_input" {
		t.Errorf("finishOutcomeCode = %q, want invalid_input", *got.FinishOutcomeCode)
	}
	if n := b.rdb.ZCard(ctx, b.keys.Delayed()).Val(); n != 0 {
		t.Errorf("delayed set size = %d, want 0", n)
	}
}

func TestFailBackoffStaysWithinBounds(t *testing.T) {
	t.Parallel()
	base, cap := 100*time.Millisecond, time.Hour
	b := newJobsBroker(t, Config{BackoffBase: base, BackoffCap: cap})
	ctx := context.Background()
	job := mustEnqueue(t, b, EnqueueParams{MaxAttempts: MaxAttemptsLimit})

	var prevMin time.Duration
	for attempt := 1; attempt <= 200; attempt++ {
		mustClaim(t, b, ClaimParams{})
		// Jump the attempt counter so the test covers high attempts.
		if err := b.rdb.HSet(ctx, b.keys.Job(job.ID), fieldAttempt, attempt).Err(); err != nil {
			t.Fatalf("HSET attempt: %v", err)
		}
		got, err := b.Fail(ctx, FailParams{JobID: job.ID, WorkerID: "w1", Attempt: attempt, Retryable: true})
		if err != nil {
			t.Fatalf("Fail at attempt %d: %v", attempt, err)
		}
		delay := got.NextAttemptAt.Sub(got.UpdatedAt)
		if delay < base || delay > cap {
			t.Fatalf("attempt %d: delay %s outside [%s, %s]", attempt, delay, base, cap)
		}
		// The smallest delay of attempt n is base*2^(n-1); jitter only adds.
		exact := base << min(attempt-1, 30)
		if exact < cap && (delay < exact || float64(delay) > 1.5*float64(exact)+1) {
			t.Fatalf("attempt %d: delay %s outside [%s, 1.5x]", attempt, delay, exact)
		}
		if delay < prevMin {
			t.Fatalf("attempt %d: delay %s shorter than the smallest delay %s of an earlier attempt", attempt, delay, prevMin)
		}
		prevMin = min(exact, cap)

		// Make the retry due at once for the next round.
		b.rdb.ZAdd(ctx, b.keys.Delayed(), redisZ(0, job.ID))
	}
}

func TestCancelQueuedJobAtOnce(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	ready := mustEnqueue(t, b, EnqueueParams{})
	delayed := mustEnqueue(t, b, EnqueueParams{RunAt: time.Now().Add(time.Hour)})

	for _, job := range []*Job{ready, delayed} {
		got, err := b.Cancel(ctx, job.ID, "not needed", "op")
		if err != nil {
			t.Fatalf("Cancel(%s): %v", job.ID, err)
		}
		wantStatus(t, got, StatusCancelled)
		if got.CancelReason == nil || *got.CancelReason != "not needed" || got.FinishedAt == nil {
			t.Errorf("cancelReason, finishedAt = %v, %v", got.CancelReason, got.FinishedAt)
		}
	}
	claimNone(t, b, ClaimParams{})
	if n := b.rdb.ZCard(ctx, b.keys.Ready()).Val() + b.rdb.ZCard(ctx, b.keys.Delayed()).Val(); n != 0 {
		t.Errorf("ready plus delayed = %d, want 0", n)
	}
	_, err := b.Cancel(ctx, ready.ID, "again", "op")
	wantErr(t, "Cancel of a cancelled job", err, ErrInvalidState)
	_, err = b.Cancel(ctx, "missing", "", "op")
	wantErr(t, "Cancel of a missing job", err, ErrNotFound)
	_, err = b.Cancel(ctx, ready.ID, strings.Repeat("r", MaxReasonLength+1), "op")
	wantErr(t, "Cancel with a long reason", err, ErrInvalidArgument)
}

func TestCancelRunningJobNeedsAck(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	mustEnqueue(t, b, EnqueueParams{})
	job := mustClaim(t, b, ClaimParams{})

	_, err := b.AckCancel(ctx, AckCancelParams{JobID: job.ID, WorkerID: "w1"})
	wantErr(t, "AckCancel without a request", err, ErrInvalidState)

	got, err := b.Cancel(ctx, job.ID, "stop it", "op")
	if err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	wantStatus(t, got, StatusRunning)
	if got.CancelRequestedAt == nil {
		t.Fatal("cancelRequestedAt = nil after a cancel of a running job")
	}
	if !b.rdb.SIsMember(ctx, b.keys.Cancelling(), job.ID).Val() {
		t.Error("job is not in the cancelling set")
	}
	again, err := b.Cancel(ctx, job.ID, "other reason", "op")
	if err != nil || !again.CancelRequestedAt.Equal(*got.CancelRequestedAt) || *again.CancelReason != "stop it" {
		t.Errorf("second Cancel = %v, %v, want the first request unchanged", again, err)
	}
	hb, _, err := b.Heartbeat(ctx, HeartbeatParams{JobID: job.ID, WorkerID: "w1"})
	if err != nil || hb.CancelRequestedAt == nil {
		t.Fatalf("Heartbeat = %v, %v, want cancelRequestedAt set", hb, err)
	}
	_, err = b.Complete(ctx, CompleteParams{JobID: job.ID, WorkerID: "w1"})
	wantErr(t, "Complete after a cancel request", err, ErrInvalidState)
	_, err = b.AckCancel(ctx, AckCancelParams{JobID: job.ID, WorkerID: "w2"})
	wantErr(t, "AckCancel by another worker", err, ErrLeaseLost)

	got, err = b.AckCancel(ctx, AckCancelParams{JobID: job.ID, WorkerID: "w1", Attempt: 1, Message: "stopped", Finish: FinishDetails{OutcomeStage: "cleanup"}})
	if err != nil {
		t.Fatalf("AckCancel: %v", err)
	}
	wantStatus(t, got, StatusCancelled)
	if b.rdb.SIsMember(ctx, b.keys.Cancelling(), job.ID).Val() || b.rdb.ZCard(ctx, b.keys.Inflight()).Val() != 0 {
		t.Error("cancelled job is still in the cancelling or in-flight set")
	}
	want := []string{"claimed", "cancel_requested", "cancelled"}
	if kinds := eventKinds(t, b, job.ID); !slices.Equal(kinds, want) {
		t.Errorf("events = %v, want %v", kinds, want)
	}
}

func TestFailAfterCancelRequestEndsCancelled(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	mustEnqueue(t, b, EnqueueParams{MaxAttempts: 5})
	job := mustClaim(t, b, ClaimParams{})
	if _, err := b.Cancel(ctx, job.ID, "", "op"); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	got, err := b.Fail(ctx, FailParams{JobID: job.ID, WorkerID: "w1", ErrorMessage: "interrupted", Retryable: true})
	if err != nil {
		t.Fatalf("Fail: %v", err)
	}
	wantStatus(t, got, StatusCancelled)
	if n := b.rdb.ZCard(ctx, b.keys.Delayed()).Val(); n != 0 {
		t.Errorf("delayed set size = %d, want 0 (never retried)", n)
	}
}

func TestReleaseKeepsPlaceAndAttempt(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	first := mustEnqueue(t, b, EnqueueParams{Priority: 3})
	mustEnqueue(t, b, EnqueueParams{Priority: 3})
	mustEnqueue(t, b, EnqueueParams{Priority: 1})
	job := mustClaim(t, b, ClaimParams{})
	if job.ID != first.ID {
		t.Fatalf("claimed %s, want %s", job.ID, first.ID)
	}

	_, err := b.Release(ctx, ReleaseParams{JobID: job.ID, WorkerID: "w2"})
	wantErr(t, "Release by another worker", err, ErrLeaseLost)
	got, err := b.Release(ctx, ReleaseParams{JobID: job.ID, WorkerID: "w1", Attempt: 1, Checkpoint: rawJSON(`{"offset":10}`)})
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	wantStatus(t, got, StatusQueued)
	if got.Attempt != 0 || got.ClaimedBy != nil || string(got.Checkpoint) != `{"offset":10}` {
		t.Errorf("attempt, claimedBy, checkpoint = %d, %v, %s, want 0, nil, {\"offset\":10}", got.Attempt, got.ClaimedBy, got.Checkpoint)
	}
	again := mustClaim(t, b, ClaimParams{WorkerID: "w2"})
	if again.ID != first.ID || again.Attempt != 1 {
		t.Errorf("next claim = %s attempt %d, want the released job %s attempt 1", again.ID, again.Attempt, first.ID)
	}
	want := []string{"claimed", "released", "claimed"}
	if kinds := eventKinds(t, b, job.ID); !slices.Equal(kinds, want) {
		t.Errorf("events = %v, want %v", kinds, want)
	}
}

func TestRecoverStaleJob(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	job := mustEnqueue(t, b, EnqueueParams{Priority: 4})
	mustEnqueue(t, b, EnqueueParams{Priority: 4})
	claimed := mustClaim(t, b, ClaimParams{})

	_, err := b.Recover(ctx, job.ID, RecoverRequeue, "op")
	wantErr(t, "Recover with a live lease", err, ErrLeaseActive)
	_, err = b.Recover(ctx, job.ID, "restart", "op")
	wantErr(t, "Recover with an unknown mode", err, ErrInvalidArgument)

	expireLease(t, b, claimed.ID, time.Second)
	setPaused(t, b, true) // recover works while paused
	got, err := b.Recover(ctx, job.ID, RecoverRequeue, "op")
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	wantStatus(t, got, StatusQueued)
	if got.Attempt != 1 || got.Priority != 4 {
		t.Errorf("attempt, priority = %d, %d, want 1 (still counted), 4", got.Attempt, got.Priority)
	}

	// The old holder is fenced out.
	_, _, err = b.Heartbeat(ctx, HeartbeatParams{JobID: job.ID, WorkerID: "w1", Attempt: 1})
	wantErr(t, "heartbeat after recover", err, ErrLeaseLost)
	_, err = b.Complete(ctx, CompleteParams{JobID: job.ID, WorkerID: "w1", Attempt: 1})
	wantErr(t, "complete after recover", err, ErrLeaseLost)
	_, err = b.Recover(ctx, job.ID, RecoverRequeue, "op")
	wantErr(t, "Recover of a queued job", err, ErrInvalidState)

	setPaused(t, b, false)
	again := mustClaim(t, b, ClaimParams{WorkerID: "w2"})
	if again.ID != job.ID || again.Attempt != 2 {
		t.Errorf("next claim = %s attempt %d, want the recovered job %s first (original place) at attempt 2", again.ID, again.Attempt, job.ID)
	}
	_, err = b.Complete(ctx, CompleteParams{JobID: job.ID, WorkerID: "w1", Attempt: 1})
	wantErr(t, "complete by the old holder after a new claim", err, ErrLeaseLost)
	if kinds := eventKinds(t, b, job.ID); !slices.Contains(kinds, "recovered") {
		t.Errorf("events = %v, want a recovered event", kinds)
	}
}

func TestRecoverCancelAndExhausted(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	mustEnqueue(t, b, EnqueueParams{MaxAttempts: 1})
	job := mustClaim(t, b, ClaimParams{})
	expireLease(t, b, job.ID, time.Millisecond)

	_, err := b.Recover(ctx, job.ID, RecoverRequeue, "op")
	wantErr(t, "requeue with no attempts left", err, ErrAttemptsExhausted)
	got, err := b.Recover(ctx, job.ID, RecoverCancel, "op")
	if err != nil {
		t.Fatalf("Recover cancel: %v", err)
	}
	wantStatus(t, got, StatusCancelled)
	_, err = b.Recover(ctx, "missing", RecoverCancel, "op")
	wantErr(t, "Recover of a missing job", err, ErrNotFound)
}

func TestResubmitCopiesFinishedJob(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	orig := mustEnqueue(t, b, EnqueueParams{Type: "render", Priority: 2, Payload: rawJSON(`{"a":1}`), RequiredCapabilities: []string{"gpu"}, MaxAttempts: 4, IdempotencyKey: "k1"})

	_, _, err := b.Resubmit(ctx, orig.ID, "op")
	wantErr(t, "Resubmit of a queued job", err, ErrInvalidState)
	mustClaim(t, b, ClaimParams{WorkerCapabilities: []string{"gpu"}})
	if _, err := b.Fail(ctx, FailParams{JobID: orig.ID, WorkerID: "w1", ErrorMessage: "bad"}); err != nil {
		t.Fatalf("Fail: %v", err)
	}

	setPaused(t, b, true) // resubmit works while paused
	got, created, err := b.Resubmit(ctx, orig.ID, "op")
	if err != nil || !created {
		t.Fatalf("Resubmit: created %v, err %v, want a new job", created, err)
	}
	wantStatus(t, got, StatusQueued)
	if got.ID == orig.ID || got.ResubmittedFrom == nil || *got.ResubmittedFrom != orig.ID {
		t.Fatalf("new job %s resubmittedFrom %v, want a new id from %s", got.ID, got.ResubmittedFrom, orig.ID)
	}
	if got.Type != "render" || got.Priority != 2 || string(got.Payload) != `{"a":1}` || got.MaxAttempts != 4 ||
		got.Attempt != 0 || !slices.Equal(got.RequiredCapabilities, []string{"gpu"}) || got.IdempotencyKey != nil {
		t.Errorf("resubmitted job = %+v, want a copy at attempt 0 without the idempotency key", got)
	}
	if kinds := eventKinds(t, b, orig.ID); kinds[len(kinds)-1] != "resubmitted" {
		t.Errorf("old job events = %v, want resubmitted last", kinds)
	}
	if kinds := eventKinds(t, b, got.ID); !slices.Equal(kinds, []string{"resubmitted"}) {
		t.Errorf("new job events = %v, want [resubmitted]", kinds)
	}
	_, _, err = b.Resubmit(ctx, "missing", "op")
	wantErr(t, "Resubmit of a missing job", err, ErrNotFound)
}

func TestSaveCheckpointAndJobEvents(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	mustEnqueue(t, b, EnqueueParams{})
	job := mustClaim(t, b, ClaimParams{})

	got, err := b.SaveCheckpoint(ctx, job.ID, "w1", 1, rawJSON(`{"cursor":"abc"}`))
	if err != nil {
		t.Fatalf("SaveCheckpoint: %v", err)
	}
	if string(got.Checkpoint) != `{"cursor":"abc"}` || !got.LeaseExpiresAt.Equal(*job.LeaseExpiresAt) {
		t.Errorf("checkpoint, lease = %s, %s, want the data and the old lease %s", got.Checkpoint, got.LeaseExpiresAt, job.LeaseExpiresAt)
	}
	_, err = b.SaveCheckpoint(ctx, job.ID, "w2", 0, rawJSON(`{}`))
	wantErr(t, "SaveCheckpoint by another worker", err, ErrLeaseLost)
	_, err = b.SaveCheckpoint(ctx, job.ID, "w1", 0, nil)
	wantErr(t, "SaveCheckpoint without data", err, ErrInvalidArgument)

	for i := range 5 {
		ev, err := b.AppendJobEvent(ctx, job.ID, "w1", "info", "step", rawJSON(`{"i":`+string(rune('0'+i))+`}`))
		if err != nil {
			t.Fatalf("AppendJobEvent %d: %v", i, err)
		}
		if ev.Kind != "worker" || *ev.WorkerID != "w1" || ev.ID == "" {
			t.Errorf("event = %+v", ev)
		}
	}
	_, err = b.AppendJobEvent(ctx, job.ID, "w1", "fatal", "x", nil)
	wantErr(t, "AppendJobEvent with level fatal", err, ErrInvalidArgument)
	_, err = b.AppendJobEvent(ctx, job.ID, "w2", "info", "x", nil)
	wantErr(t, "AppendJobEvent by another worker", err, ErrLeaseLost)

	page1, cursor, err := b.JobEvents(ctx, job.ID, "", 4)
	if err != nil {
		t.Fatalf("JobEvents: %v", err)
	}
	if len(page1) != 4 || page1[0].Kind != "claimed" || cursor != page1[3].ID {
		t.Fatalf("page 1 = %d events starting %q, cursor %q", len(page1), page1[0].Kind, cursor)
	}
	page2, cursor2, err := b.JobEvents(ctx, job.ID, cursor, 4)
	if err != nil {
		t.Fatalf("JobEvents page 2: %v", err)
	}
	if len(page2) != 2 || string(page2[1].Payload) != `{"i":4}` {
		t.Fatalf("page 2 = %+v, want the last 2 worker events", page2)
	}
	if page3, cursor3, err := b.JobEvents(ctx, job.ID, cursor2, 4); err != nil || len(page3) != 0 || cursor3 != cursor2 {
		t.Errorf("page 3 = %d events, cursor %q, %v, want none and the same cursor", len(page3), cursor3, err)
	}
	_, _, err = b.JobEvents(ctx, job.ID, "bogus", 4)
	wantErr(t, "JobEvents with a bad cursor", err, ErrInvalidArgument)
	_, _, err = b.JobEvents(ctx, job.ID, "", 501)
	wantErr(t, "JobEvents with limit 501", err, ErrInvalidArgument)
	_, _, err = b.JobEvents(ctx, "missing", "", 0)
	wantErr(t, "JobEvents of a missing job", err, ErrNotFound)
}

func TestJobEventsStreamIsCapped(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{JobEventsMaxLen: 10})
	ctx := context.Background()
	mustEnqueue(t, b, EnqueueParams{})
	job := mustClaim(t, b, ClaimParams{})
	for range 500 {
		if _, err := b.AppendJobEvent(ctx, job.ID, "w1", "debug", "tick", nil); err != nil {
			t.Fatalf("AppendJobEvent: %v", err)
		}
	}
	// MAXLEN ~ trims whole radix-tree nodes (100 entries by default), so
	// the length stays near the cap rather than exactly at it.
	if n := b.rdb.XLen(ctx, b.keys.JobEvents(job.ID)).Val(); n > 200 {
		t.Errorf("event stream length = %d after 500 appends with a cap of 10, want it trimmed", n)
	}
}

func TestListJobsFiltersAndPages(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	var all []*Job
	for i := range 12 {
		typ := "a"
		if i%3 == 0 {
			typ = "b"
		}
		all = append(all, mustEnqueue(t, b, EnqueueParams{Type: typ}))
	}
	running := mustClaim(t, b, ClaimParams{AllowedTypes: []string{"b"}})

	// Every state, newest first, in pages of 5.
	var ids []string
	cursor := ""
	for page := 0; ; page++ {
		jobs, next, err := b.ListJobs(ctx, ListParams{Limit: 5, Cursor: cursor})
		if err != nil {
			t.Fatalf("ListJobs page %d: %v", page, err)
		}
		for _, j := range jobs {
			ids = append(ids, j.ID)
		}
		if next == "" {
			break
		}
		cursor = next
		if page > 5 {
			t.Fatal("ListJobs does not end")
		}
	}
	if len(ids) != 12 {
		t.Fatalf("listed %d jobs, want 12", len(ids))
	}
	for i, id := range ids {
		if want := all[11-i].ID; id != want {
			t.Fatalf("item %d = %s, want %s (newest first)", i, id, want)
		}
	}

	jobs, _, err := b.ListJobs(ctx, ListParams{Status: StatusRunning})
	if err != nil || len(jobs) != 1 || jobs[0].ID != running.ID {
		t.Errorf("ListJobs(running) = %d jobs, %v, want only %s", len(jobs), err, running.ID)
	}
	jobs, _, err = b.ListJobs(ctx, ListParams{Type: "b", Status: StatusQueued})
	if err != nil || len(jobs) != 3 {
		t.Errorf("ListJobs(type b, queued) = %d jobs, %v, want 3", len(jobs), err)
	}
	for _, j := range jobs {
		if j.Type != "b" || j.Status != StatusQueued {
			t.Errorf("ListJobs(type b, queued) returned a %s job in %s", j.Type, j.Status)
		}
	}
	_, _, err = b.ListJobs(ctx, ListParams{Cursor: "not-a-cursor"})
	wantErr(t, "ListJobs with a bad cursor", err, ErrInvalidArgument)
	_, _, err = b.ListJobs(ctx, ListParams{Status: "done"})
	wantErr(t, "ListJobs with an unknown status", err, ErrInvalidArgument)
	_, _, err = b.ListJobs(ctx, ListParams{Limit: MaxListLimit + 1})
	wantErr(t, "ListJobs with limit 501", err, ErrInvalidArgument)
}

func TestListJobsTypeFilterBoundsWork(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	rare := mustEnqueue(t, b, EnqueueParams{Type: "rare"})
	// Enqueue through the script, pipelined, to keep the test quick. A
	// pipelined EVALSHA cannot fall back to EVAL, so load the script first.
	if err := script("enqueue").Load(ctx, b.rdb).Err(); err != nil {
		t.Fatalf("load enqueue script: %v", err)
	}
	pipe := b.rdb.Pipeline()
	for range listReadLimit + 50 {
		id := "filler-" + testutil.RandomName("")
		script("enqueue").Run(ctx, pipe, []string{b.keys.Job(id)}, b.keys.Prefix(), id, "common", 0, "{}", "", "[]", 1, 0, "", 1000)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("enqueue fillers: %v", err)
	}

	jobs, next, err := b.ListJobs(ctx, ListParams{Type: "rare"})
	if err != nil {
		t.Fatalf("ListJobs: %v", err)
	}
	if len(jobs) != 0 || next == "" {
		t.Fatalf("first page = %d jobs, cursor %q, want none and a cursor (read limit reached)", len(jobs), next)
	}
	jobs, next, err = b.ListJobs(ctx, ListParams{Type: "rare", Cursor: next})
	if err != nil || len(jobs) != 1 || jobs[0].ID != rare.ID || next != "" {
		t.Fatalf("second page = %d jobs, cursor %q, %v, want the rare job and no cursor", len(jobs), next, err)
	}
}

func TestStaleAndRunningJobs(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	for range 3 {
		mustEnqueue(t, b, EnqueueParams{})
	}
	a := mustClaim(t, b, ClaimParams{})
	mustClaim(t, b, ClaimParams{})
	expireLease(t, b, a.ID, time.Second)

	stale, err := b.StaleJobs(ctx, 10)
	if err != nil || len(stale) != 1 || stale[0].ID != a.ID {
		t.Fatalf("StaleJobs = %d jobs, %v, want only %s", len(stale), err, a.ID)
	}
	running, err := b.RunningJobs(ctx, 10)
	if err != nil || len(running) != 2 || running[0].ID != a.ID {
		t.Fatalf("RunningJobs = %d jobs, %v, want 2 with the stale one first", len(running), err)
	}
}

func TestJobNamespacesAreIndependent(t *testing.T) {
	t.Parallel()
	rdb, ns := testutil.Redis(t)
	b1 := newJobsBrokerOn(t, rdb, ns, Config{})
	ns2 := testutil.RandomName("t")
	t.Cleanup(func() { testutil.DeleteNamespace(context.Background(), rdb, ns2) })
	b2 := newJobsBrokerOn(t, rdb, ns2, Config{})

	job := mustEnqueue(t, b1, EnqueueParams{IdempotencyKey: "same"})
	claimNone(t, b2, ClaimParams{})
	other := mustEnqueue(t, b2, EnqueueParams{IdempotencyKey: "same"})
	if other.ID == job.ID {
		t.Fatal("the idempotency key of one namespace matched in another")
	}
	setPaused(t, b2, true)
	if got := mustClaim(t, b1, ClaimParams{}); got.ID != job.ID {
		t.Fatalf("claim in namespace 1 = %s, want %s", got.ID, job.ID)
	}
	_, err := b2.GetJob(context.Background(), job.ID)
	wantErr(t, "GetJob across namespaces", err, ErrNotFound)
}

func mapsEqual(a, b map[Status]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestJobDocumentJSONShape(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	job := mustEnqueue(t, b, EnqueueParams{})
	raw, err := json.Marshal(job)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if caps, ok := doc["requiredCapabilities"].([]any); !ok || len(caps) != 0 {
		t.Errorf("requiredCapabilities = %v, want []", doc["requiredCapabilities"])
	}
	if doc["checkpoint"] != nil || doc["leaseExpiresAt"] != nil {
		t.Errorf("checkpoint, leaseExpiresAt = %v, %v, want null", doc["checkpoint"], doc["leaseExpiresAt"])
	}
}

func TestClaimDropsOrphanReadyMember(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	orphan := mustEnqueue(t, b, EnqueueParams{Priority: 9})
	job := mustEnqueue(t, b, EnqueueParams{})
	b.rdb.Del(ctx, b.keys.Job(orphan.ID))

	if got := mustClaim(t, b, ClaimParams{AllowedTypes: []string{"demo"}}); got.ID != job.ID {
		t.Fatalf("claim = %s, want %s behind the orphan", got.ID, job.ID)
	}
	if n := b.rdb.ZCard(ctx, b.keys.Ready()).Val() + b.rdb.ZCard(ctx, b.keys.ReadyType("demo")).Val(); n != 0 {
		t.Errorf("ready sets hold %d members, want 0 (orphan dropped)", n)
	}
	if n := b.rdb.Exists(ctx, b.keys.Job(orphan.ID)).Val(); n != 0 {
		t.Error("the claim recreated the deleted job hash")
	}
}

func TestRetriedJobKeepsPriority(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{BackoffBase: time.Millisecond, BackoffCap: 2 * time.Millisecond})
	ctx := context.Background()
	high := mustEnqueue(t, b, EnqueueParams{Priority: 5})
	low := mustEnqueue(t, b, EnqueueParams{Priority: 0})

	mustClaim(t, b, ClaimParams{})
	retried, err := b.Fail(ctx, FailParams{JobID: high.ID, WorkerID: "w1", Retryable: true})
	if err != nil {
		t.Fatalf("Fail: %v", err)
	}
	testutil.WaitFor(t, 5*time.Second, "the retry to become due", func() bool {
		return b.rdb.Time(ctx).Val().After(*retried.NextAttemptAt)
	})
	if got := mustClaim(t, b, ClaimParams{}); got.ID != high.ID || got.Priority != 5 {
		t.Fatalf("claim after the retry = %s (priority %d), want the retried job %s ahead of %s", got.ID, got.Priority, high.ID, low.ID)
	}
}
