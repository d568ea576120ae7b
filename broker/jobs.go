package broker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// Limits of job fields, checked before any script runs.
const (
	MinPriority          = -1_000_000
	MaxPriority          = 1_000_000
	MaxAttemptsLimit     = 1000
	MaxKeyLength         = 200 // idempotency key, affinity key, worker id, capability
	MaxCapabilities      = 64
	MaxOutcomeCodeLength = 64
	MaxOutcomeStage      = 32
	MaxMessageLength     = 10_000 // error message, result summary, event message
	DefaultListLimit     = 50
	MaxListLimit         = 500
	DefaultEventsLimit   = 100
	MaxEventsLimit       = 500

	// promoteLimit bounds how many due delayed jobs one claim moves to the
	// ready sets.
	promoteLimit = 100

	// listReadLimit bounds how many members of each status set one listing
	// call reads when a type filter may skip most of them.
	listReadLimit = 1000
)

// Script status replies. Every job script returns one of these first.
const (
	replyOK                = "ok"
	replyCreated           = "created"
	replyExists            = "exists"
	replyEmpty             = "empty"
	replyPaused            = "paused"
	replyMissing           = "missing"
	replyNotFound          = "not_found"
	replyLeaseLost         = "lease_lost"
	replyInvalidState      = "invalid_state"
	replyLeaseActive       = "lease_active"
	replyAttemptsExhausted = "attempts_exhausted"
)

// Job event levels a worker may send.
var eventLevels = []string{"debug", "info", "warn", "error"}

var streamIDPattern = regexp.MustCompile(`^[0-9]+(-[0-9]+)?$`)

// Enqueue stores a new job, ready now or at p.RunAt. With an idempotency key
// that was used before, it returns the existing job and created false.
func (b *Broker) Enqueue(ctx context.Context, p EnqueueParams) (job *Job, created bool, err error) {
	payload, err := b.normalizeEnqueue(&p)
	if err != nil {
		return nil, false, err
	}
	caps, err := json.Marshal(p.RequiredCapabilities)
	if err != nil {
		return nil, false, fmt.Errorf("encode requiredCapabilities: %w", err)
	}
	var runAt int64
	if !p.RunAt.IsZero() {
		runAt = p.RunAt.UnixMilli()
	}

	id := uuid.NewString()
	reply, err := script("enqueue").Run(ctx, b.rdb, []string{b.keys.Job(id)},
		b.keys.Prefix(), id, p.Type, p.Priority, payload, p.AffinityKey, caps,
		p.MaxAttempts, runAt, p.IdempotencyKey, b.cfg.Retention.Milliseconds()).Slice()
	if err != nil {
		return nil, false, fmt.Errorf("enqueue job of type %q: %w", p.Type, err)
	}
	status, rest, err := splitReply(reply)
	if err != nil {
		return nil, false, fmt.Errorf("enqueue job of type %q: %w", p.Type, err)
	}
	if status != replyCreated && status != replyExists {
		return nil, false, fmt.Errorf("enqueue job of type %q: unexpected script status %q", p.Type, status)
	}
	job, err = decodeJobReply(rest[0])
	if err != nil {
		return nil, false, fmt.Errorf("enqueue job of type %q: %w", p.Type, err)
	}
	return job, status == replyCreated, nil
}

// normalizeEnqueue validates p, fills in defaults and returns the compacted
// payload.
func (b *Broker) normalizeEnqueue(p *EnqueueParams) (string, error) {
	if err := validateName("type", p.Type, MaxTypeLength, true); err != nil {
		return "", err
	}
	if p.Priority < MinPriority || p.Priority > MaxPriority {
		return "", invalid("priority", "must be between %d and %d, got %d", MinPriority, MaxPriority, p.Priority)
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = b.cfg.DefaultMaxAttempts
	}
	if p.MaxAttempts < 1 || p.MaxAttempts > MaxAttemptsLimit {
		return "", invalid("maxAttempts", "must be between 1 and %d, got %d", MaxAttemptsLimit, p.MaxAttempts)
	}
	if err := validateName("affinityKey", p.AffinityKey, MaxKeyLength, false); err != nil {
		return "", err
	}
	if err := validateName("idempotencyKey", p.IdempotencyKey, MaxKeyLength, false); err != nil {
		return "", err
	}
	caps, err := normalizeCapabilities("requiredCapabilities", p.RequiredCapabilities)
	if err != nil {
		return "", err
	}
	p.RequiredCapabilities = caps
	if !p.RunAt.IsZero() && p.RunAt.Before(time.Unix(0, 0)) {
		return "", invalid("runAt", "must be after 1970-01-01T00:00:00Z, got %s", p.RunAt.Format(time.RFC3339))
	}
	return b.jsonObject("payload", p.Payload, true)
}

// jsonObject checks that raw is a JSON object within the size limit and
// returns it compacted. A nil raw becomes "{}" when emptyIsObject is set and
// "" otherwise.
func (b *Broker) jsonObject(field string, raw json.RawMessage, emptyIsObject bool) (string, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		if emptyIsObject {
			return "{}", nil
		}
		return "", nil
	}
	if len(raw) > b.cfg.MaxPayloadBytes {
		return "", fmt.Errorf("%s is %d bytes, more than the limit of %d bytes: %w",
			field, len(raw), b.cfg.MaxPayloadBytes, ErrPayloadTooLarge)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", invalid(field, "must be valid JSON: %v", err)
	}
	if buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return "", invalid(field, "must be a JSON object such as {\"key\": \"value\"}")
	}
	return buf.String(), nil
}

// validateName checks a short identifier: at most max characters, valid
// UTF-8, no control characters and no surrounding spaces.
func validateName(field, value string, max int, required bool) error {
	if value == "" {
		if required {
			return invalid(field, "is required: send a non-empty string of at most %d characters", max)
		}
		return nil
	}
	if !utf8.ValidString(value) {
		return invalid(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(value); n > max {
		return invalid(field, "must be at most %d characters, got %d", max, n)
	}
	if strings.TrimSpace(value) != value {
		return invalid(field, "must not start or end with spaces, got %q", value)
	}
	if strings.IndexFunc(value, unicode.IsControl) >= 0 {
		return invalid(field, "must not contain control characters, got %q", value)
	}
	return nil
}

// normalizeCapabilities validates a capability list and removes duplicates,
// keeping the first occurrence of each.
func normalizeCapabilities(field string, caps []string) ([]string, error) {
	if len(caps) > MaxCapabilities {
		return nil, invalid(field, "must list at most %d capabilities, got %d", MaxCapabilities, len(caps))
	}
	out := make([]string, 0, len(caps))
	for i, c := range caps {
		if err := validateName(fmt.Sprintf("%s[%d]", field, i), c, MaxKeyLength, true); err != nil {
			return nil, err
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// leaseMillis validates a lease length; 0 means the default.
func leaseMillis(lease time.Duration) (int64, error) {
	if lease == 0 {
		lease = DefaultLeaseDuration
	}
	if lease < time.Second || lease > MaxLeaseDuration {
		return 0, invalid("leaseSeconds", "must be between 1 and %d seconds, got %s", int(MaxLeaseDuration/time.Second), lease)
	}
	return lease.Milliseconds(), nil
}

func validateHolder(jobID, workerID string, attempt int) error {
	if jobID == "" {
		return invalid("id", "is required: send the job id")
	}
	if err := validateName("workerId", workerID, MaxKeyLength, true); err != nil {
		return err
	}
	if attempt < 0 {
		return invalid("attempt", "must not be negative, got %d", attempt)
	}
	return nil
}

func validateMessage(field, value string) error {
	if n := utf8.RuneCountInString(value); n > MaxMessageLength {
		return invalid(field, "must be at most %d characters, got %d", MaxMessageLength, n)
	}
	return nil
}

// finishArgs validates the finish fields and returns them as script
// arguments: code, stage, reason, summary.
func (b *Broker) finishArgs(d FinishDetails) ([]any, error) {
	if n := utf8.RuneCountInString(d.OutcomeCode); n > MaxOutcomeCodeLength {
		return nil, invalid("finishOutcomeCode", "must be at most %d characters, got %d", MaxOutcomeCodeLength, n)
	}
	if n := utf8.RuneCountInString(d.OutcomeStage); n > MaxOutcomeStage {
		return nil, invalid("finishOutcomeStage", "must be at most %d characters, got %d", MaxOutcomeStage, n)
	}
	if err := validateMessage("finishOutcomeReason", d.OutcomeReason); err != nil {
		return nil, err
	}
	summary, err := b.jsonObject("finishSummary", d.Summary, false)
	if err != nil {
		return nil, err
	}
	return []any{d.OutcomeCode, d.OutcomeStage, d.OutcomeReason, summary}, nil
}

// Claim runs the claim script. When the workers are paused it changes
// nothing, and when the pause key is missing it changes nothing and returns
// ErrPauseStateMissing. Otherwise it promotes due delayed jobs and leases the
// best ready job.
func (b *Broker) Claim(ctx context.Context, p ClaimParams) (*ClaimResult, error) {
	if err := validateName("workerId", p.WorkerID, MaxKeyLength, true); err != nil {
		return nil, err
	}
	lease, err := leaseMillis(p.Lease)
	if err != nil {
		return nil, err
	}
	types := make([]string, 0, len(p.AllowedTypes))
	for i, t := range p.AllowedTypes {
		if err := validateName(fmt.Sprintf("allowedTypes[%d]", i), t, MaxTypeLength, true); err != nil {
			return nil, err
		}
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	caps, err := normalizeCapabilities("workerCapabilities", p.WorkerCapabilities)
	if err != nil {
		return nil, err
	}

	args := make([]any, 0, 9+len(types)+len(caps))
	args = append(args, b.keys.Prefix(), p.WorkerID, lease, b.cfg.ClaimScanLimit, promoteLimit,
		b.cfg.JobEventsMaxLen, len(types))
	for _, t := range types {
		args = append(args, t)
	}
	args = append(args, len(caps))
	for _, c := range caps {
		args = append(args, c)
	}

	reply, err := script("claim").Run(ctx, b.rdb, []string{b.keys.Pause()}, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("claim for worker %s: %w", p.WorkerID, err)
	}
	status, rest, err := splitReply(reply)
	if err != nil {
		return nil, fmt.Errorf("claim for worker %s: %w", p.WorkerID, err)
	}
	if status == replyMissing {
		return nil, fmt.Errorf("claim for worker %s: %w", p.WorkerID, ErrPauseStateMissing)
	}
	if len(rest) == 0 {
		return nil, fmt.Errorf("claim for worker %s: script status %q without a pause state", p.WorkerID, status)
	}
	pause, err := decodePauseReply(rest[0])
	if err != nil {
		return nil, fmt.Errorf("claim for worker %s: %w", p.WorkerID, err)
	}
	res := &ClaimResult{Pause: pause}
	switch status {
	case replyPaused, replyEmpty:
		return res, nil
	case replyOK:
		if len(rest) < 2 {
			return nil, fmt.Errorf("claim for worker %s: script returned no job", p.WorkerID)
		}
		if res.Job, err = decodeJobReply(rest[1]); err != nil {
			return nil, fmt.Errorf("claim for worker %s: %w", p.WorkerID, err)
		}
		return res, nil
	}
	return nil, fmt.Errorf("claim for worker %s: unexpected script status %q", p.WorkerID, status)
}

// Heartbeat extends the lease of the holder and returns the job with the
// current pause state, or ErrLeaseLost. When the pause hash is missing the
// lease is still extended, and Heartbeat returns the job together with
// ErrPauseStateMissing.
func (b *Broker) Heartbeat(ctx context.Context, p HeartbeatParams) (*Job, PauseState, error) {
	if err := validateHolder(p.JobID, p.WorkerID, p.Attempt); err != nil {
		return nil, PauseState{}, err
	}
	lease, err := leaseMillis(p.Lease)
	if err != nil {
		return nil, PauseState{}, err
	}
	quiesced := ""
	if p.Quiesced != nil {
		quiesced = "0"
		if *p.Quiesced {
			quiesced = "1"
		}
	}
	checkpoint, err := b.jsonObject("checkpoint", p.Checkpoint, false)
	if err != nil {
		return nil, PauseState{}, err
	}
	hasCheckpoint := "0"
	if checkpoint != "" {
		hasCheckpoint = "1"
	}

	rest, err := b.runJobScript(ctx, "heartbeat", p.JobID, []string{b.keys.Job(p.JobID), b.keys.Pause()},
		b.keys.Prefix(), p.JobID, p.WorkerID, p.Attempt, lease, quiesced, hasCheckpoint, checkpoint)
	if err != nil {
		return nil, PauseState{}, err
	}
	job, err := decodeJobReply(rest[0])
	if err != nil {
		return nil, PauseState{}, fmt.Errorf("heartbeat job %s: %w", p.JobID, err)
	}
	if len(rest) < 2 {
		return nil, PauseState{}, fmt.Errorf("heartbeat job %s: script returned no pause state", p.JobID)
	}
	if flat, ok := rest[1].([]any); ok && len(flat) == 0 {
		return job, PauseState{}, fmt.Errorf("heartbeat job %s: %w", p.JobID, ErrPauseStateMissing)
	}
	pause, err := decodePauseReply(rest[1])
	if err != nil {
		return nil, PauseState{}, fmt.Errorf("heartbeat job %s: %w", p.JobID, err)
	}
	return job, pause, nil
}

// Complete marks a held job succeeded. A job whose cancel was requested
// cannot complete (ErrInvalidState); the holder acknowledges the cancel
// instead.
func (b *Broker) Complete(ctx context.Context, p CompleteParams) (*Job, error) {
	if err := validateHolder(p.JobID, p.WorkerID, p.Attempt); err != nil {
		return nil, err
	}
	if err := validateMessage("resultSummary", p.ResultSummary); err != nil {
		return nil, err
	}
	finish, err := b.finishArgs(p.Finish)
	if err != nil {
		return nil, err
	}
	args := append([]any{b.keys.Prefix(), p.JobID, p.WorkerID, p.Attempt, p.ResultSummary}, finish...)
	args = append(args, b.cfg.JobEventsMaxLen)
	return b.runJobUpdate(ctx, "complete", p.JobID, args...)
}

// Fail records a failed attempt: retry with backoff, failed or dead_letter.
// A job whose cancel was requested ends cancelled and is never retried.
func (b *Broker) Fail(ctx context.Context, p FailParams) (*Job, error) {
	if err := validateHolder(p.JobID, p.WorkerID, p.Attempt); err != nil {
		return nil, err
	}
	if err := validateMessage("errorMessage", p.ErrorMessage); err != nil {
		return nil, err
	}
	finish, err := b.finishArgs(p.Finish)
	if err != nil {
		return nil, err
	}
	retryable := "0"
	if p.Retryable {
		retryable = "1"
	}
	args := append([]any{b.keys.Prefix(), p.JobID, p.WorkerID, p.Attempt, p.ErrorMessage, retryable}, finish...)
	args = append(args, b.cfg.JobEventsMaxLen, b.cfg.BackoffBase.Milliseconds(),
		b.cfg.BackoffCap.Milliseconds(), strconv.FormatFloat(rand.Float64(), 'f', 6, 64))
	return b.runJobUpdate(ctx, "fail", p.JobID, args...)
}

// Cancel cancels a queued job at once, or requests that the holder of a
// running job stop it. Cancelling a running job a second time changes
// nothing, and cancelling a finished job returns ErrInvalidState.
func (b *Broker) Cancel(ctx context.Context, jobID, reason, actor string) (*Job, error) {
	if jobID == "" {
		return nil, invalid("id", "is required: send the job id")
	}
	if n := utf8.RuneCountInString(reason); n > MaxReasonLength {
		return nil, invalid("reason", "must be at most %d characters, got %d", MaxReasonLength, n)
	}
	return b.runJobUpdate(ctx, "cancel", jobID, b.keys.Prefix(), jobID, reason, actor, b.cfg.JobEventsMaxLen)
}

// AckCancel ends a running job whose cancel was requested as cancelled.
// Without a cancel request it returns ErrInvalidState.
func (b *Broker) AckCancel(ctx context.Context, p AckCancelParams) (*Job, error) {
	if err := validateHolder(p.JobID, p.WorkerID, p.Attempt); err != nil {
		return nil, err
	}
	if err := validateMessage("message", p.Message); err != nil {
		return nil, err
	}
	finish, err := b.finishArgs(p.Finish)
	if err != nil {
		return nil, err
	}
	args := append([]any{b.keys.Prefix(), p.JobID, p.WorkerID, p.Attempt, p.Message}, finish...)
	args = append(args, b.cfg.JobEventsMaxLen)
	return b.runJobUpdate(ctx, "cancel_ack", p.JobID, args...)
}

// Release hands a held job back to the queue without using up an attempt.
// A job whose cancel was requested ends cancelled instead.
func (b *Broker) Release(ctx context.Context, p ReleaseParams) (*Job, error) {
	if err := validateHolder(p.JobID, p.WorkerID, p.Attempt); err != nil {
		return nil, err
	}
	checkpoint, err := b.jsonObject("checkpoint", p.Checkpoint, false)
	if err != nil {
		return nil, err
	}
	hasCheckpoint := "0"
	if checkpoint != "" {
		hasCheckpoint = "1"
	}
	return b.runJobUpdate(ctx, "release", p.JobID, b.keys.Prefix(), p.JobID, p.WorkerID, p.Attempt,
		hasCheckpoint, checkpoint, b.cfg.JobEventsMaxLen)
}

// ReleaseWorker hands every running job held by workerID back to the
// queue, as Release does for each: no attempt is used up, the job keeps its
// place and its checkpoint, and a job whose cancel was requested ends
// cancelled instead. It works while paused. It returns the ids of the jobs
// it took from the worker, empty when the worker held none. A worker calls
// it at the end of its shutdown, so a claim that was granted as the worker
// cancelled the request is handed back at once. The script reads every
// running job of the namespace, so its cost grows with the number of
// running jobs.
func (b *Broker) ReleaseWorker(ctx context.Context, workerID string) (released []string, err error) {
	if err := validateName("workerId", workerID, MaxKeyLength, true); err != nil {
		return nil, err
	}
	released, err = script("release_worker").Run(ctx, b.rdb, []string{b.keys.Inflight()},
		b.keys.Prefix(), workerID, b.cfg.JobEventsMaxLen).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("release jobs of worker %s: %w", workerID, err)
	}
	return released, nil
}

// Recover requeues or cancels a running job whose lease has expired.
// It works while paused.
func (b *Broker) Recover(ctx context.Context, jobID string, mode RecoverMode, actor string) (*Job, error) {
	if jobID == "" {
		return nil, invalid("id", "is required: send the job id")
	}
	if mode != RecoverRequeue && mode != RecoverCancel {
		return nil, invalid("mode", "must be %q or %q, got %q", RecoverRequeue, RecoverCancel, mode)
	}
	return b.runJobUpdate(ctx, "recover", jobID, b.keys.Prefix(), jobID, string(mode), actor, b.cfg.JobEventsMaxLen)
}

// Resubmit enqueues a new job copied from a failed, cancelled or
// dead_letter one and returns it with created true. While that copy exists
// (until the retention purge deletes it), a later call returns it with
// created false, so a repeated request does not run the work twice. To run
// the work again after the copy ended, resubmit the copy. It works while
// paused.
func (b *Broker) Resubmit(ctx context.Context, jobID, actor string) (job *Job, created bool, err error) {
	if jobID == "" {
		return nil, false, invalid("id", "is required: send the job id")
	}
	id := uuid.NewString()
	rest, err := b.runJobScript(ctx, "resubmit", jobID, []string{b.keys.Job(jobID), b.keys.Job(id)},
		b.keys.Prefix(), jobID, id, actor, b.cfg.JobEventsMaxLen)
	if err != nil {
		return nil, false, err
	}
	if len(rest) < 2 {
		return nil, false, fmt.Errorf("resubmit job %s: script returned %d values, want 2", jobID, len(rest))
	}
	job, err = decodeJobReply(rest[0])
	if err != nil {
		return nil, false, fmt.Errorf("resubmit job %s: %w", jobID, err)
	}
	outcome, _ := rest[1].(string)
	if outcome != replyCreated && outcome != replyExists {
		return nil, false, fmt.Errorf("resubmit job %s: unexpected script outcome %q", jobID, outcome)
	}
	return job, outcome == replyCreated, nil
}

// SaveCheckpoint stores checkpoint data for a held job, as a heartbeat with
// a checkpoint does, without extending the lease.
func (b *Broker) SaveCheckpoint(ctx context.Context, jobID, workerID string, attempt int, data json.RawMessage) (*Job, error) {
	if err := validateHolder(jobID, workerID, attempt); err != nil {
		return nil, err
	}
	checkpoint, err := b.jsonObject("runtimeState", data, false)
	if err != nil {
		return nil, err
	}
	if checkpoint == "" {
		return nil, invalid("runtimeState", "is required: send a JSON object")
	}
	return b.runJobUpdate(ctx, "checkpoint", jobID, b.keys.Prefix(), jobID, workerID, attempt, checkpoint)
}

// AppendJobEvent appends a worker's event to a held job's event stream. It
// checks the worker id only, not the attempt.
func (b *Broker) AppendJobEvent(ctx context.Context, jobID, workerID, level, message string, payload json.RawMessage) (*JobEvent, error) {
	if err := validateHolder(jobID, workerID, 0); err != nil {
		return nil, err
	}
	if !slices.Contains(eventLevels, level) {
		return nil, invalid("level", "must be one of %s, got %q", strings.Join(eventLevels, ", "), level)
	}
	if err := validateMessage("message", message); err != nil {
		return nil, err
	}
	body, err := b.jsonObject("payload", payload, true)
	if err != nil {
		return nil, err
	}
	rest, err := b.runJobScript(ctx, "job_event", jobID, []string{b.keys.Job(jobID), b.keys.JobEvents(jobID)},
		workerID, 0, level, message, body, b.cfg.JobEventsMaxLen)
	if err != nil {
		return nil, err
	}
	if len(rest) < 2 {
		return nil, fmt.Errorf("append event to job %s: script returned %d values, want 2", jobID, len(rest))
	}

	eventID, _ := rest[0].(string)
	ts, _ := rest[1].(string)
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("append event to job %s: invalid time %q", jobID, ts)
	}

	worker := workerID
	return &JobEvent{
		ID: eventID, JobID: jobID, Level: level, Kind: "worker", Message: message,
		Payload: json.RawMessage(body), WorkerID: &worker, CreatedAt: msToTime(ms),
	}, nil
}

// JobEvents returns up to limit events of a job after the cursor, an event
// id or "" for the start. The next cursor is the id of the last event
// returned, or the given cursor when there was none, so a caller can keep
// polling a growing stream. A limit of 0 means 100.
func (b *Broker) JobEvents(ctx context.Context, jobID, after string, limit int) ([]JobEvent, string, error) {
	if limit == 0 {
		limit = DefaultEventsLimit
	}
	if limit < 1 || limit > MaxEventsLimit {
		return nil, "", invalid("limit", "must be between 1 and %d, got %d", MaxEventsLimit, limit)
	}
	start := "-"
	if after != "" {
		if !streamIDPattern.MatchString(after) {
			return nil, "", invalid("after", "must be an event id such as 1733340000000-0, got %q", after)
		}
		start = "(" + after
	}

	exists, err := b.rdb.Exists(ctx, b.keys.Job(jobID)).Result()
	if err != nil {
		return nil, "", fmt.Errorf("read events of job %s: %w", jobID, err)
	}
	if exists == 0 {
		return nil, "", fmt.Errorf("read events of job %s: %w", jobID, ErrNotFound)
	}
	msgs, err := b.rdb.XRangeN(ctx, b.keys.JobEvents(jobID), start, "+", int64(limit)).Result()
	if err != nil {
		return nil, "", fmt.Errorf("read events of job %s: %w", jobID, err)
	}

	events := make([]JobEvent, 0, len(msgs))
	for _, m := range msgs {
		ev, err := decodeJobEvent(jobID, m)
		if err != nil {
			return nil, "", fmt.Errorf("read events of job %s: %w", jobID, err)
		}
		events = append(events, ev)
	}
	next := after
	if len(events) > 0 {
		next = events[len(events)-1].ID
	}
	return events, next, nil
}

func decodeJobEvent(jobID string, m redis.XMessage) (JobEvent, error) {
	str := func(k string) string {
		s, _ := m.Values[k].(string)
		return s
	}
	ev := JobEvent{
		ID: m.ID, JobID: jobID, Level: str("level"), Kind: str("kind"), Message: str("message"),
		Payload: json.RawMessage(str("payload")), WorkerID: optionalString(str("workerId")),
	}
	if len(ev.Payload) == 0 {
		ev.Payload = json.RawMessage("{}")
	}
	ms, err := strconv.ParseInt(str("ts"), 10, 64)
	if err != nil {
		return ev, fmt.Errorf("event %s has invalid ts %q", m.ID, str("ts"))
	}
	ev.CreatedAt = msToTime(ms)
	return ev, nil
}

// GetJob returns one job or ErrNotFound.
func (b *Broker) GetJob(ctx context.Context, jobID string) (*Job, error) {
	f, err := b.rdb.HGetAll(ctx, b.keys.Job(jobID)).Result()
	if err != nil {
		return nil, fmt.Errorf("read job %s: %w", jobID, err)
	}
	if len(f) == 0 {
		return nil, fmt.Errorf("read job %s: %w", jobID, ErrNotFound)
	}
	job, err := decodeJob(f)
	if err != nil {
		return nil, fmt.Errorf("read job %s: %w", jobID, err)
	}
	return job, nil
}

// ListJobs returns a page of jobs, newest first, and the next cursor
// (empty on the last page). With a type filter one call reads at most 1000
// members per status set, so a page may hold fewer jobs than the limit while
// a cursor still follows.
func (b *Broker) ListJobs(ctx context.Context, p ListParams) ([]*Job, string, error) {
	if p.Limit == 0 {
		p.Limit = DefaultListLimit
	}
	if p.Limit < 1 || p.Limit > MaxListLimit {
		return nil, "", invalid("limit", "must be between 1 and %d, got %d", MaxListLimit, p.Limit)
	}
	statuses := Statuses
	if p.Status != "" {
		if !p.Status.Valid() {
			return nil, "", invalid("status", "must be one of queued, running, succeeded, failed, cancelled, dead_letter, got %q", p.Status)
		}
		statuses = []Status{p.Status}
	}
	cursor, err := decodeCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	reads := p.Limit
	if p.Type != "" {
		reads = max(p.Limit, listReadLimit)
	}

	args := []any{b.keys.Prefix(), p.Type, cursor, p.Limit, reads}
	for _, s := range statuses {
		args = append(args, string(s))
	}
	reply, err := script("list_jobs").Run(ctx, b.rdb, []string{b.keys.Seq()}, args...).Slice()
	if err != nil {
		return nil, "", fmt.Errorf("list jobs: %w", err)
	}
	if len(reply) == 0 {
		return nil, "", errors.New("list jobs: empty script reply")
	}
	next, _ := reply[0].(string)
	jobs := make([]*Job, 0, len(reply)-1)
	for _, r := range reply[1:] {
		job, err := decodeJobReply(r)
		if err != nil {
			return nil, "", fmt.Errorf("list jobs: %w", err)
		}
		jobs = append(jobs, job)
	}
	return jobs, encodeCursor(next), nil
}

// Listing cursors wrap the enqueue sequence so callers treat them as opaque.
func encodeCursor(seq string) string {
	if seq == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte("s" + seq))
}

func decodeCursor(cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err == nil && len(raw) > 1 && raw[0] == 's' {
		if _, perr := strconv.ParseUint(string(raw[1:]), 10, 64); perr == nil {
			return string(raw[1:]), nil
		}
	}
	return "", invalid("cursor", "is not a cursor this server returned; send nextCursor from the previous page or omit it")
}

// StaleJobs returns running jobs whose lease has expired, oldest expiry
// first, at most limit of them.
func (b *Broker) StaleJobs(ctx context.Context, limit int) ([]*Job, error) {
	if limit < 1 {
		return nil, invalid("limit", "must be at least 1, got %d", limit)
	}
	now, err := b.rdb.Time(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("list stale jobs: read Redis time: %w", err)
	}
	ids, err := b.rdb.ZRangeByScore(ctx, b.keys.Inflight(), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("list stale jobs: %w", err)
	}
	return b.jobsByID(ctx, ids)
}

// RunningJobs returns running jobs (lease live or expired), at most limit,
// earliest lease expiry first.
func (b *Broker) RunningJobs(ctx context.Context, limit int) ([]*Job, error) {
	if limit < 1 {
		return nil, invalid("limit", "must be at least 1, got %d", limit)
	}
	ids, err := b.rdb.ZRange(ctx, b.keys.Inflight(), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("list running jobs: %w", err)
	}
	return b.jobsByID(ctx, ids)
}

// jobsByID reads jobs in one pipeline, skipping ids whose hash is gone.
func (b *Broker) jobsByID(ctx context.Context, ids []string) ([]*Job, error) {
	if len(ids) == 0 {
		return []*Job{}, nil
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, b.keys.Job(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read %d jobs: %w", len(ids), err)
	}
	jobs := make([]*Job, 0, len(ids))
	for i, cmd := range cmds {
		f := cmd.Val()
		if len(f) == 0 {
			continue
		}
		job, err := decodeJob(f)
		if err != nil {
			return nil, fmt.Errorf("read job %s: %w", ids[i], err)
		}
		jobs = append(jobs, job)
	}
	return jobs, nil
}

// runJobUpdate runs a script that returns {"ok", job pairs} on success.
func (b *Broker) runJobUpdate(ctx context.Context, name, jobID string, args ...any) (*Job, error) {
	rest, err := b.runJobScript(ctx, name, jobID, []string{b.keys.Job(jobID)}, args...)
	if err != nil {
		return nil, err
	}
	job, err := decodeJobReply(rest[0])
	if err != nil {
		return nil, fmt.Errorf("%s job %s: %w", verb(name), jobID, err)
	}
	return job, nil
}

// runJobScript runs a job script and maps its status reply to the sentinel
// errors. On "ok" it returns the values after the status, at least one.
func (b *Broker) runJobScript(ctx context.Context, name, jobID string, keys []string, args ...any) ([]any, error) {
	op := verb(name)
	reply, err := script(name).Run(ctx, b.rdb, keys, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("%s job %s: %w", op, jobID, err)
	}
	status, rest, err := splitReply(reply)
	if err != nil {
		return nil, fmt.Errorf("%s job %s: %w", op, jobID, err)
	}
	switch status {
	case replyOK:
		if len(rest) == 0 {
			return nil, fmt.Errorf("%s job %s: script returned no job", op, jobID)
		}
		return rest, nil
	case replyNotFound:
		return nil, fmt.Errorf("%s job %s: %w", op, jobID, ErrNotFound)
	case replyLeaseLost:
		return nil, fmt.Errorf("%s job %s: %w", op, jobID, ErrLeaseLost)
	case replyLeaseActive:
		return nil, fmt.Errorf("%s job %s: %w", op, jobID, ErrLeaseActive)
	case replyAttemptsExhausted:
		return nil, fmt.Errorf("%s job %s: %w", op, jobID, ErrAttemptsExhausted)
	case replyInvalidState:
		state := ""
		if len(rest) > 0 {
			state, _ = rest[0].(string)
		}
		return nil, fmt.Errorf("%s job %s in state %s: %w", op, jobID, state, ErrInvalidState)
	}
	return nil, fmt.Errorf("%s job %s: unexpected script status %q", op, jobID, status)
}

// verb names a script's operation in error messages.
func verb(script string) string {
	switch script {
	case "cancel_ack":
		return "acknowledge cancel of"
	case "job_event":
		return "append event to"
	case "checkpoint":
		return "save checkpoint of"
	}
	return script
}

// splitReply separates a script's status string from the values after it.
func splitReply(reply []any) (string, []any, error) {
	if len(reply) == 0 {
		return "", nil, errors.New("empty script reply")
	}
	status, ok := reply[0].(string)
	if !ok {
		return "", nil, fmt.Errorf("script status is %T, want a string", reply[0])
	}
	return status, reply[1:], nil
}

func decodePauseReply(reply any) (PauseState, error) {
	flat, ok := reply.([]any)
	if !ok {
		return PauseState{}, fmt.Errorf("pause reply is %T, want an array", reply)
	}
	f, err := hashFields(flat)
	if err != nil {
		return PauseState{}, fmt.Errorf("decode pause hash: %w", err)
	}
	return decodePause(f)
}
