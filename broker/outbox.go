package broker

import (
	"context"
	"fmt"
)

// MaxOutboxBatch caps how many events one OutboxPending call returns.
const MaxOutboxBatch = 1000

// OutboxPending returns up to n audit events waiting in the outbox, oldest
// (lowest version) first. n must be between 1 and MaxOutboxBatch.
func (b *Broker) OutboxPending(ctx context.Context, n int) ([]AuditEvent, error) {
	if n < 1 || n > MaxOutboxBatch {
		return nil, invalid("n", "must be between 1 and %d, got %d", MaxOutboxBatch, n)
	}
	entries, err := b.rdb.XRangeN(ctx, b.keys.Outbox(), "-", "+", int64(n)).Result()
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}

	events := make([]AuditEvent, 0, len(entries))
	for _, entry := range entries {
		fields := make(map[string]string, len(entry.Values))
		for k, v := range entry.Values {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("outbox entry %s field %s is %T, want a string", entry.ID, k, v)
			}
			fields[k] = s
		}
		event, err := decodeAuditEvent(entry.ID, fields)
		if err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		events = append(events, event)
	}
	return events, nil
}

// OutboxAck removes delivered events from the outbox by their OutboxID.
// Ids that are no longer in the outbox are skipped.
func (b *Broker) OutboxAck(ctx context.Context, outboxIDs ...string) error {
	if len(outboxIDs) == 0 {
		return nil
	}
	args := make([]any, len(outboxIDs))
	for i, id := range outboxIDs {
		if id == "" {
			return invalid("outboxIDs", "entry %d is empty; pass the OutboxID of an event from OutboxPending", i)
		}
		args[i] = id
	}
	if err := script("outbox_ack").Run(ctx, b.rdb, []string{b.keys.Outbox()}, args...).Err(); err != nil {
		return fmt.Errorf("acknowledge %d outbox events: %w", len(outboxIDs), err)
	}
	return nil
}

// OutboxDepth returns how many audit events wait in the outbox.
func (b *Broker) OutboxDepth(ctx context.Context) (int64, error) {
	n, err := b.rdb.XLen(ctx, b.keys.Outbox()).Result()
	if err != nil {
		return 0, fmt.Errorf("read outbox depth: %w", err)
	}
	return n, nil
}
