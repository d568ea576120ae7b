package broker

import (
	"fmt"
	"strconv"
	"time"
)

// Redis stores times as Unix milliseconds taken from the server's TIME.

func msToTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// optionalTime parses a millisecond string; "" or "0" is nil.
func optionalTime(s string) (*time.Time, error) {
	if s == "" || s == "0" {
		return nil, nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("parse time %q: %w", s, err)
	}
	t := msToTime(ms)
	return &t, nil
}

// optionalString returns nil for "".
func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// hashFields turns a flat HGETALL-style reply into a map.
func hashFields(reply []any) (map[string]string, error) {
	if len(reply)%2 != 0 {
		return nil, fmt.Errorf("hash reply has odd length %d", len(reply))
	}
	m := make(map[string]string, len(reply)/2)
	for i := 0; i < len(reply); i += 2 {
		k, ok1 := reply[i].(string)
		v, ok2 := reply[i+1].(string)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("hash reply entry %d is %T/%T, want strings", i/2, reply[i], reply[i+1])
		}
		m[k] = v
	}
	return m, nil
}

// decodePause builds a PauseState from the fields of the pause hash:
// workersPaused ("0"/"1"), mode, reason, actor, requestedAt and updatedAt
// (Unix ms) and version.
func decodePause(f map[string]string) (PauseState, error) {
	var p PauseState
	version, err := strconv.ParseInt(f["version"], 10, 64)
	if err != nil || version < 1 {
		return p, fmt.Errorf("pause hash has invalid version %q", f["version"])
	}
	p.Version = version
	p.WorkersPaused = f["workersPaused"] == "1"
	if m := PauseMode(f["mode"]); m != "" {
		p.Mode = &m
	}
	p.Reason = optionalString(f["reason"])
	p.RequestedBy = optionalString(f["actor"])
	if p.RequestedAt, err = optionalTime(f["requestedAt"]); err != nil {
		return p, err
	}
	if p.UpdatedAt, err = optionalTime(f["updatedAt"]); err != nil {
		return p, err
	}
	return p, nil
}
