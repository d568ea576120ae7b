package broker

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// WorkerRetention is how long the registry remembers a worker after its
// latest claim or heartbeat.
const WorkerRetention = 24 * time.Hour

// TouchWorker records the time of a worker's latest claim or heartbeat and
// the pause version sent in the response. Each call also removes up to 100
// workers unseen for WorkerRetention.
func (b *Broker) TouchWorker(ctx context.Context, workerID string, version int64) error {
	if workerID == "" {
		return invalid("workerId", "is required")
	}
	if version < 0 {
		return invalid("version", "must not be negative, got %d", version)
	}
	keys := []string{b.keys.Workers(), b.keys.WorkerVersions()}
	err := script("touch_worker").Run(ctx, b.rdb, keys, workerID, version, WorkerRetention.Milliseconds()).Err()
	if err != nil {
		return fmt.Errorf("record worker %s: %w", workerID, err)
	}
	return nil
}

// Workers lists the workers seen within WorkerRetention, most recent first.
// A worker is live when seen within Config.WorkerLiveWindow and
// acknowledged when it is live and its latest response carried the current
// pause version.
func (b *Broker) Workers(ctx context.Context) ([]WorkerInfo, error) {
	keys := []string{b.keys.Workers(), b.keys.WorkerVersions(), b.keys.Pause()}
	reply, err := script("list_workers").Run(ctx, b.rdb, keys).Slice()
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	workers, err := decodeWorkers(reply, b.cfg.WorkerLiveWindow)
	if err != nil {
		return nil, fmt.Errorf("decode worker list: %w", err)
	}
	return workers, nil
}

// decodeWorkers decodes {now, current version, {id, last seen, version,
// ...}} from list_workers.lua.
func decodeWorkers(reply []any, liveWindow time.Duration) ([]WorkerInfo, error) {
	if len(reply) != 3 {
		return nil, fmt.Errorf("got %d values, want 3", len(reply))
	}
	now, err := parseReplyInt(reply[0])
	if err != nil {
		return nil, fmt.Errorf("clock: %w", err)
	}
	current, err := parseReplyInt(reply[1])
	if err != nil {
		return nil, fmt.Errorf("pause version: %w", err)
	}
	rows, _ := reply[2].([]any)
	if len(rows)%3 != 0 {
		return nil, fmt.Errorf("worker rows have %d values, not a multiple of 3", len(rows))
	}

	liveSince := now - liveWindow.Milliseconds()
	workers := make([]WorkerInfo, 0, len(rows)/3)
	for i := 0; i < len(rows); i += 3 {
		id, _ := rows[i].(string)
		seen, err := parseReplyInt(rows[i+1])
		if err != nil {
			return nil, fmt.Errorf("worker %s last seen: %w", id, err)
		}
		version, err := parseReplyInt(rows[i+2])
		if err != nil {
			return nil, fmt.Errorf("worker %s version: %w", id, err)
		}
		live := seen >= liveSince
		workers = append(workers, WorkerInfo{
			ID:           id,
			LastSeenAt:   msToTime(seen),
			Version:      version,
			Live:         live,
			Acknowledged: live && current >= 1 && version == current,
		})
	}
	return workers, nil
}

// parseReplyInt reads a script reply value that is an integer or a string of
// one (sorted set scores arrive as strings).
func parseReplyInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %q: %w", x, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("got %T, want an integer", v)
}
