package broker

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/moonmind/broker/internal/testutil"
)

// newJobsBroker returns a broker on a fresh namespace of the shared Redis
// with the pause hash initialized unpaused at version 1.
func newJobsBroker(t testing.TB, cfg Config) *Broker {
	t.Helper()
	rdb, ns := testutil.Redis(t)
	return newJobsBrokerOn(t, rdb, ns, cfg)
}

func newJobsBrokerOn(t testing.TB, rdb redis.UniversalClient, ns string, cfg Config) *Broker {
	t.Helper()
	cfg.Namespace = ns
	b, err := New(rdb, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := rdb.HSet(context.Background(), b.keys.Pause(), "workersPaused", "0", "version", "1").Err(); err != nil {
		t.Fatalf("initialize pause hash: %v", err)
	}
	return b
}

// setPaused writes the pause hash directly, as the pause script would.
func setPaused(t testing.TB, b *Broker, paused bool) {
	t.Helper()
	flag, version := "0", "3"
	if paused {
		flag, version = "1", "2"
	}
	if err := b.rdb.HSet(context.Background(), b.keys.Pause(), "workersPaused", flag, "mode", "drain", "version", version).Err(); err != nil {
		t.Fatalf("write pause hash: %v", err)
	}
}

// expireLease moves a running job's lease expiry to ago before the Redis
// clock, as if its worker had stopped heartbeating that long ago.
func expireLease(t testing.TB, b *Broker, id string, ago time.Duration) {
	t.Helper()
	ctx := context.Background()
	now, err := b.rdb.Time(ctx).Result()
	if err != nil {
		t.Fatalf("TIME: %v", err)
	}
	at := now.Add(-ago).UnixMilli()
	if err := b.rdb.ZAddXX(ctx, b.keys.Inflight(), redis.Z{Score: float64(at), Member: id}).Err(); err != nil {
		t.Fatalf("expire lease of %s: %v", id, err)
	}
	if err := b.rdb.HSet(ctx, b.keys.Job(id), fieldLeaseExpiresAt, at).Err(); err != nil {
		t.Fatalf("expire lease of %s: %v", id, err)
	}
}

func mustEnqueue(t testing.TB, b *Broker, p EnqueueParams) *Job {
	t.Helper()
	if p.Type == "" {
		p.Type = "demo"
	}
	job, created, err := b.Enqueue(context.Background(), p)
	if err != nil {
		t.Fatalf("Enqueue(%+v): %v", p, err)
	}
	if !created {
		t.Fatalf("Enqueue(%+v): created = false, want true", p)
	}
	return job
}

func mustClaim(t testing.TB, b *Broker, p ClaimParams) *Job {
	t.Helper()
	if p.WorkerID == "" {
		p.WorkerID = "w1"
	}
	res, err := b.Claim(context.Background(), p)
	if err != nil {
		t.Fatalf("Claim(%+v): %v", p, err)
	}
	if res.Job == nil {
		t.Fatalf("Claim(%+v): no job, want one", p)
	}
	return res.Job
}

func claimNone(t testing.TB, b *Broker, p ClaimParams) *ClaimResult {
	t.Helper()
	if p.WorkerID == "" {
		p.WorkerID = "w1"
	}
	res, err := b.Claim(context.Background(), p)
	if err != nil {
		t.Fatalf("Claim(%+v): %v", p, err)
	}
	if res.Job != nil {
		t.Fatalf("Claim(%+v) = job %s (%s), want none", p, res.Job.ID, res.Job.Type)
	}
	return res
}

func mustGet(t testing.TB, b *Broker, id string) *Job {
	t.Helper()
	job, err := b.GetJob(context.Background(), id)
	if err != nil {
		t.Fatalf("GetJob(%s): %v", id, err)
	}
	return job
}

func wantErr(t testing.TB, operation string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", operation, err, target)
	}
}

func wantStatus(t testing.TB, job *Job, want Status) {
	t.Helper()
	if job.Status != want {
		t.Fatalf("job %s status = %s, want %s", job.ID, job.Status, want)
	}
}

// stateCounts returns the cardinality of every status set.
func stateCounts(t testing.TB, b *Broker) map[Status]int64 {
	t.Helper()
	ctx := context.Background()
	pipe := b.rdb.Pipeline()
	cmds := map[Status]*redis.IntCmd{}
	for _, s := range Statuses {
		cmds[s] = pipe.ZCard(ctx, b.keys.Status(s))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("count status sets: %v", err)
	}
	out := map[Status]int64{}
	for s, c := range cmds {
		out[s] = c.Val()
	}
	return out
}

// eventKinds lists the kinds of a job's events in order.
func eventKinds(t testing.TB, b *Broker, id string) []string {
	t.Helper()
	events, _, err := b.JobEvents(context.Background(), id, "", MaxEventsLimit)
	if err != nil {
		t.Fatalf("JobEvents(%s): %v", id, err)
	}
	kinds := make([]string, len(events))
	for i, e := range events {
		kinds[i] = e.Kind
	}
	return kinds
}

func rawJSON(s string) json.RawMessage { return json.RawMessage(s) }

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }
