package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Reason and actor recorded on the audit event of a restore.
const (
	RestoreReason = "restored from the audit log"
	RestoreActor  = "broker"
)

// InitPause creates the pause hash unpaused at version 1 when it is missing
// and records no audit event. It returns true when it created the key.
func (b *Broker) InitPause(ctx context.Context) (bool, error) {
	created, err := script("init_pause").Run(ctx, b.rdb, []string{b.keys.Pause()}, b.keys.Channel()).Int()
	if err != nil {
		return false, fmt.Errorf("init pause state: %w", err)
	}
	if created == 1 {
		slog.InfoContext(ctx, "created pause state", "version", 1)
	}
	return created == 1, nil
}

// pausedState is the part of an audit event's stateAfter that a restore
// brings back.
type pausedState struct {
	WorkersPaused bool    `json:"workersPaused"`
	Mode          *string `json:"mode"`
	Reason        *string `json:"reason"`
	Actor         *string `json:"actor"`
}

// RestorePause recreates the pause hash from the newest audit event. It acts
// when the hash is missing or holds a lower version than that event, which
// means Redis lost changes that the audit log has. The new hash has the same
// paused state, mode, reason and actor, the version one higher and
// requestedAt = newest.CreatedAt, and a restore event enters the outbox.
// It returns nil and no error when the hash is at the newest audited
// version or above.
func (b *Broker) RestorePause(ctx context.Context, newest AuditEvent) (*PauseChange, error) {
	if newest.Version < 1 {
		return nil, invalid("version", "the newest audit event must have a version of at least 1, got %d", newest.Version)
	}
	var state pausedState
	if err := json.Unmarshal(newest.StateAfter, &state); err != nil {
		return nil, invalid("stateAfter", "the newest audit event (version %d) needs a JSON object stateAfter: %v", newest.Version, err)
	}
	mode := valueOrEmpty(state.Mode)
	if state.WorkersPaused && !PauseMode(mode).Valid() {
		return nil, invalid("stateAfter.mode", "a paused state needs mode drain or quiesce, got %q", mode)
	}
	if !state.WorkersPaused {
		mode = ""
	}
	requestedAt := ""
	if !newest.CreatedAt.IsZero() {
		requestedAt = strconv.FormatInt(newest.CreatedAt.UnixMilli(), 10)
	}

	args := []any{
		uuid.NewString(), pauseFlag(state.WorkersPaused), mode, valueOrEmpty(state.Reason), valueOrEmpty(state.Actor),
		requestedAt, newest.Version, RestoreReason, RestoreActor, b.keys.Channel(),
	}
	change, err := b.runPauseScript(ctx, "restore", []string{b.keys.Pause(), b.keys.Outbox()}, args)
	if errors.Is(err, errPauseStateExists) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("restore pause state: %w", err)
	}
	slog.InfoContext(ctx, "restored pause state from the audit log",
		"version", change.State.Version, "mode", mode, "actor", RestoreActor)
	return change, nil
}

// Pause pauses the workers or changes the mode or reason of a pause. It
// returns ErrAlreadyPaused when the same mode and reason are in force,
// ErrVersionConflict when p.ExpectedVersion is set and not current, and
// ErrPauseStateMissing when the pause hash does not exist.
func (b *Broker) Pause(ctx context.Context, p PauseParams) (*PauseChange, error) {
	if !p.Mode.Valid() {
		return nil, invalid("mode", "must be %q or %q, got %q", ModeDrain, ModeQuiesce, p.Mode)
	}
	reason, err := checkReason(p.Reason)
	if err != nil {
		return nil, err
	}
	if err := checkExpectedVersion(p.ExpectedVersion); err != nil {
		return nil, err
	}

	args := []any{uuid.NewString(), string(p.Mode), reason, p.Actor, versionArg(p.ExpectedVersion), b.keys.Channel()}
	change, err := b.runPauseScript(ctx, "pause", []string{b.keys.Pause(), b.keys.Outbox()}, args)
	if err != nil {
		return nil, fmt.Errorf("pause workers: %w", err)
	}
	slog.InfoContext(ctx, "paused workers",
		"version", change.State.Version, "mode", p.Mode, "actor", p.Actor)
	return change, nil
}

// Resume lets the workers claim again. It returns ErrNotPaused when the
// workers run, ErrNotDrained when a drain still has jobs in flight and
// p.Force is false, ErrVersionConflict and ErrPauseStateMissing as Pause
// does. A quiesce ends without force.
func (b *Broker) Resume(ctx context.Context, p ResumeParams) (*PauseChange, error) {
	reason, err := checkReason(p.Reason)
	if err != nil {
		return nil, err
	}
	if err := checkExpectedVersion(p.ExpectedVersion); err != nil {
		return nil, err
	}

	args := []any{uuid.NewString(), reason, p.Actor, versionArg(p.ExpectedVersion), pauseFlag(p.Force), b.keys.Channel()}
	keys := []string{b.keys.Pause(), b.keys.Outbox(), b.keys.Inflight()}
	change, err := b.runPauseScript(ctx, "resume", keys, args)
	if err != nil {
		return nil, fmt.Errorf("resume workers: %w", err)
	}
	slog.InfoContext(ctx, "resumed workers",
		"version", change.State.Version, "mode", valueOrEmpty(change.Event.Mode), "actor", p.Actor)
	return change, nil
}

// PauseState reads the pause hash, or returns ErrPauseStateMissing.
func (b *Broker) PauseState(ctx context.Context) (PauseState, error) {
	fields, err := b.rdb.HGetAll(ctx, b.keys.Pause()).Result()
	if err != nil {
		return PauseState{}, fmt.Errorf("read pause state: %w", err)
	}
	if len(fields) == 0 {
		return PauseState{}, ErrPauseStateMissing
	}
	state, err := decodePause(fields)
	if err != nil {
		return PauseState{}, fmt.Errorf("read pause state: %w", err)
	}
	return state, nil
}

// errPauseStateExists means the restore script found the pause hash, so
// there was nothing to restore.
var errPauseStateExists = errors.New("pause state exists")

// runPauseScript runs pause.lua, resume.lua or restore.lua and decodes the
// shared reply shape: {"ok", hash pairs, outbox id, event pairs} or
// {code, version, ...} for a rejected request.
func (b *Broker) runPauseScript(ctx context.Context, name string, keys []string, args []any) (*PauseChange, error) {
	reply, err := script(name).Run(ctx, b.rdb, keys, args...).Slice()
	if err != nil {
		return nil, err
	}
	if len(reply) == 0 {
		return nil, fmt.Errorf("%s script returned an empty reply", name)
	}
	code, _ := reply[0].(string)
	if code != "ok" {
		return nil, pauseScriptError(name, code, reply[1:])
	}
	if len(reply) != 4 {
		return nil, fmt.Errorf("%s script returned %d values, want 4", name, len(reply))
	}

	hashReply, _ := reply[1].([]any)
	fields, err := hashFields(hashReply)
	if err != nil {
		return nil, fmt.Errorf("decode %s reply: %w", name, err)
	}
	state, err := decodePause(fields)
	if err != nil {
		return nil, fmt.Errorf("decode %s reply: %w", name, err)
	}
	outboxID, _ := reply[2].(string)
	eventReply, _ := reply[3].([]any)
	eventFields, err := hashFields(eventReply)
	if err != nil {
		return nil, fmt.Errorf("decode %s event: %w", name, err)
	}
	event, err := decodeAuditEvent(outboxID, eventFields)
	if err != nil {
		return nil, fmt.Errorf("decode %s event: %w", name, err)
	}
	return &PauseChange{State: state, Event: event}, nil
}

// pauseScriptError maps a rejection code of a pause script to its sentinel
// error, with the current version (and the in-flight count of a drain) for
// the caller's message.
func pauseScriptError(name, code string, rest []any) error {
	version := int64(-1)
	if len(rest) > 0 {
		version, _ = rest[0].(int64)
	}
	switch code {
	case "missing":
		return ErrPauseStateMissing
	case "exists":
		return errPauseStateExists
	case "version_conflict":
		return fmt.Errorf("%w: the current version is %d", ErrVersionConflict, version)
	case "already_paused":
		return fmt.Errorf("%w (version %d)", ErrAlreadyPaused, version)
	case "not_paused":
		return fmt.Errorf("%w (version %d)", ErrNotPaused, version)
	case "not_drained":
		var inflight int64
		if len(rest) > 1 {
			inflight, _ = rest[1].(int64)
		}
		return fmt.Errorf("%w: %d jobs in flight; wait for them or resume with force", ErrNotDrained, inflight)
	}
	return fmt.Errorf("%s script returned unknown code %q", name, code)
}

// decodeAuditEvent builds an AuditEvent from the fields of an outbox entry.
// Empty mode, actor and stateBefore become nil.
func decodeAuditEvent(outboxID string, f map[string]string) (AuditEvent, error) {
	e := AuditEvent{
		ID:       f["id"],
		Control:  f["control"],
		Action:   f["action"],
		Mode:     optionalString(f["mode"]),
		Reason:   f["reason"],
		Actor:    optionalString(f["actor"]),
		OutboxID: outboxID,
	}
	var err error
	if e.Version, err = strconv.ParseInt(f["version"], 10, 64); err != nil {
		return e, fmt.Errorf("outbox entry %s has invalid version %q", outboxID, f["version"])
	}
	createdAt, err := strconv.ParseInt(f["createdAt"], 10, 64)
	if err != nil {
		return e, fmt.Errorf("outbox entry %s has invalid createdAt %q", outboxID, f["createdAt"])
	}
	e.CreatedAt = msToTime(createdAt)
	if s := f["stateBefore"]; s != "" {
		e.StateBefore = json.RawMessage(s)
	}
	if s := f["stateAfter"]; s != "" {
		e.StateAfter = json.RawMessage(s)
	}
	return e, nil
}

// checkReason trims a pause or resume reason and checks that it is present
// and short enough.
func checkReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return "", invalid("reason", "is required: say why the workers are paused or resumed")
	case !utf8.ValidString(reason):
		return "", invalid("reason", "must be valid UTF-8")
	case utf8.RuneCountInString(reason) > MaxReasonLength:
		return "", invalid("reason", "must be at most %d characters, got %d", MaxReasonLength, utf8.RuneCountInString(reason))
	case hasControlChar(reason):
		return "", invalid("reason", "must not contain control characters other than tab and line breaks")
	}
	return reason, nil
}

// hasControlChar reports whether s contains a control character other than
// tab, line feed or carriage return. Postgres text cannot store NUL, so a
// reason with NUL would block the audit outbox for good.
func hasControlChar(s string) bool {
	for _, r := range s {
		if r == '\t' || r == '\n' || r == '\r' {
			continue
		}
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

func checkExpectedVersion(v *int64) error {
	if v != nil && *v < 1 {
		return invalid("expectedVersion", "must be at least 1 (versions start at 1), got %d", *v)
	}
	return nil
}

// versionArg passes an optional expected version to a script; "" means any.
func versionArg(v *int64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(*v, 10)
}

func pauseFlag(v bool) string {
	if v {
		return "1"
	}
	return "0"
}

func valueOrEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
