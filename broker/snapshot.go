package broker

import (
	"context"
	"fmt"
)

// Snapshot reads the pause state, drain metrics, worker counts, per-state
// job counts and outbox depth in one script call, so all numbers belong to
// one instant.
//
// When the pause hash is missing, Snapshot returns an error wrapping
// ErrPauseStateMissing together with a non-nil Snapshot whose metrics,
// counts and outbox depth are filled and whose Pause is the zero value, so
// a readiness check can still show them.
func (b *Broker) Snapshot(ctx context.Context) (*Snapshot, error) {
	keys := []string{
		b.keys.Pause(), b.keys.Ready(), b.keys.Delayed(), b.keys.Inflight(), b.keys.Quiesced(),
		b.keys.Workers(), b.keys.WorkerVersions(), b.keys.Outbox(),
	}
	args := []any{b.cfg.WorkerLiveWindow.Milliseconds()}
	for _, s := range Statuses {
		keys = append(keys, b.keys.Status(s))
		args = append(args, string(s))
	}

	reply, err := script("snapshot").Run(ctx, b.rdb, keys, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	snap, missing, err := decodeSnapshot(reply)
	if err != nil {
		return nil, fmt.Errorf("decode snapshot: %w", err)
	}
	if missing {
		return snap, fmt.Errorf("read snapshot: %w", ErrPauseStateMissing)
	}
	return snap, nil
}

// decodeSnapshot decodes the reply of snapshot.lua. missing is true when
// the pause hash does not exist.
func decodeSnapshot(reply []any) (snap *Snapshot, missing bool, err error) {
	if len(reply) != 5 {
		return nil, false, fmt.Errorf("snapshot script returned %d values, want 5", len(reply))
	}
	snap = &Snapshot{Counts: make(map[Status]int64, len(Statuses))}

	pauseReply, _ := reply[0].([]any)
	if len(pauseReply) == 0 {
		missing = true
	} else {
		fields, err := hashFields(pauseReply)
		if err != nil {
			return nil, false, err
		}
		if snap.Pause, err = decodePause(fields); err != nil {
			return nil, false, err
		}
	}

	metrics, err := replyInt64s(reply[1], 5)
	if err != nil {
		return nil, false, fmt.Errorf("metrics: %w", err)
	}
	snap.Metrics = DrainMetrics{
		Queued:       metrics[0],
		Delayed:      metrics[1],
		Running:      metrics[2],
		StaleRunning: metrics[3],
		Quiesced:     metrics[4],
		IsDrained:    metrics[2] == 0 && metrics[3] == 0,
	}

	workers, err := replyInt64s(reply[2], 2)
	if err != nil {
		return nil, false, fmt.Errorf("workers: %w", err)
	}
	snap.Workers = WorkerCounts{Live: workers[0], Acknowledged: workers[1]}

	counts, _ := reply[3].([]any)
	if len(counts) != 2*len(Statuses) {
		return nil, false, fmt.Errorf("counts has %d values, want %d", len(counts), 2*len(Statuses))
	}
	for i := 0; i < len(counts); i += 2 {
		name, _ := counts[i].(string)
		n, ok := counts[i+1].(int64)
		if !ok {
			return nil, false, fmt.Errorf("count of %q is %T, want an integer", name, counts[i+1])
		}
		snap.Counts[Status(name)] = n
	}
	snap.Metrics.DeadLetter = snap.Counts[StatusDeadLetter]

	outbox, ok := reply[4].(int64)
	if !ok {
		return nil, false, fmt.Errorf("outbox depth is %T, want an integer", reply[4])
	}
	snap.Outbox = outbox
	return snap, missing, nil
}

// replyInt64s reads a script reply that must be an array of n integers.
func replyInt64s(v any, n int) ([]int64, error) {
	arr, _ := v.([]any)
	if len(arr) != n {
		return nil, fmt.Errorf("got %d values, want %d", len(arr), n)
	}
	out := make([]int64, n)
	for i, x := range arr {
		num, ok := x.(int64)
		if !ok {
			return nil, fmt.Errorf("value %d is %T, want an integer", i, x)
		}
		out[i] = num
	}
	return out, nil
}
