package broker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// TestCompleteRacingReaper runs a complete against a reaper pass for a job
// whose lease expired past the grace, 500 times. Exactly one of them must
// win each round: the job ends succeeded or requeued, never both and never
// lost.
func TestCompleteRacingReaper(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{})
	ctx := context.Background()
	completed, requeued := 0, 0

	for round := range 500 {
		job := mustEnqueue(t, b, EnqueueParams{MaxAttempts: 2})
		mustClaim(t, b, ClaimParams{})
		expireLease(t, b, job.ID, time.Hour)

		var wg sync.WaitGroup
		var completeErr, reapErr error
		var reaped ReapResult
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, completeErr = b.Complete(ctx, CompleteParams{JobID: job.ID, WorkerID: "w1", Attempt: 1})
		}()
		go func() {
			defer wg.Done()
			reaped, reapErr = b.ReapOnce(ctx)
		}()
		wg.Wait()
		if reapErr != nil {
			t.Fatalf("round %d: ReapOnce: %v", round, reapErr)
		}

		got := mustGet(t, b, job.ID)
		switch {
		case completeErr == nil:
			if got.Status != StatusSucceeded || reaped.Retried != 0 {
				t.Fatalf("round %d: complete won but status = %s and the reaper retried %d", round, got.Status, reaped.Retried)
			}
			completed++
		case errors.Is(completeErr, ErrLeaseLost):
			if got.Status != StatusQueued || reaped.Retried != 1 {
				t.Fatalf("round %d: reaper won but status = %s and retried = %d", round, got.Status, reaped.Retried)
			}
			requeued++
			// Take the job out of the queue so the next round claims its own.
			if _, err := b.Cancel(ctx, job.ID, "", "test"); err != nil {
				t.Fatalf("round %d: Cancel: %v", round, err)
			}
		default:
			t.Fatalf("round %d: Complete: %v", round, completeErr)
		}
		if n := b.rdb.ZCard(ctx, b.keys.Inflight()).Val(); n != 0 {
			t.Fatalf("round %d: in-flight set holds %d jobs, want 0", round, n)
		}
	}

	counts := stateCounts(t, b)
	if counts[StatusSucceeded] != int64(completed) || counts[StatusCancelled] != int64(requeued) || completed+requeued != 500 {
		t.Fatalf("counts = %v, want succeeded %d and cancelled %d", counts, completed, requeued)
	}
	t.Logf("complete won %d rounds, the reaper %d", completed, requeued)
}

// checkCounts reads every set in one MULTI and checks that each job is in
// exactly one status set, that queued jobs are exactly the ready plus
// delayed ones and running jobs exactly the in-flight ones.
func checkCounts(t *testing.T, b *Broker) {
	t.Helper()
	ctx := context.Background()
	pipe := b.rdb.TxPipeline()
	seq := pipe.Get(ctx, b.keys.Seq())
	ready := pipe.ZCard(ctx, b.keys.Ready())
	delayed := pipe.ZCard(ctx, b.keys.Delayed())
	inflight := pipe.ZCard(ctx, b.keys.Inflight())

	statuses := make([]interface{ Val() int64 }, len(Statuses))
	for i, s := range Statuses {
		statuses[i] = pipe.ZCard(ctx, b.keys.Status(s))
	}
	if _, err := pipe.Exec(ctx); err != nil && seq.Err() == nil {
		t.Errorf("read counts: %v", err)
		return
	}

	jobs, _ := seq.Int64()
	var sum int64
	for i, c := range statuses {
		if c.Val() < 0 {
			t.Errorf("count of %s = %d, want at least 0", Statuses[i], c.Val())
		}
		sum += c.Val()
	}
	if sum != jobs {
		t.Errorf("status sets hold %d jobs, want %d (one set per job)", sum, jobs)
	}
	if q := statuses[0].Val(); ready.Val()+delayed.Val() != q {
		t.Errorf("ready %d + delayed %d != queued %d", ready.Val(), delayed.Val(), q)
	}
	if r := statuses[1].Val(); inflight.Val() != r {
		t.Errorf("in-flight %d != running %d", inflight.Val(), r)
	}
}

// TestRandomOperationsKeepCountsConsistent runs many goroutines doing random
// operations and checks the set invariants while they run and at the end.
func TestRandomOperationsKeepCountsConsistent(t *testing.T) {
	t.Parallel()
	b := newJobsBroker(t, Config{BackoffBase: time.Millisecond, BackoffCap: 20 * time.Millisecond, ClaimScanLimit: 4})
	ctx := context.Background()
	types := []string{"a", "b", "c"}
	caps := []string{"gpu", "ssd"}

	const goroutines = 12
	const opsEach = 300
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			worker := fmt.Sprintf("w%d", g)
			var heldJobs []*Job
			pick := func() *Job {
				if len(heldJobs) == 0 {
					return nil
				}
				i := rng.IntN(len(heldJobs))
				j := heldJobs[i]
				heldJobs = append(heldJobs[:i], heldJobs[i+1:]...)
				return j
			}
			for op := range opsEach {
				var err error
				switch r := rng.IntN(100); {
				case r < 25:
					p := EnqueueParams{Type: types[rng.IntN(3)], Priority: rng.IntN(5) - 2, MaxAttempts: 1 + rng.IntN(3)}
					if rng.IntN(4) == 0 {
						p.RequiredCapabilities = []string{caps[rng.IntN(2)]}
					}
					if rng.IntN(5) == 0 {
						p.RunAt = time.Now().Add(time.Duration(rng.IntN(30)) * time.Millisecond)
					}
					if rng.IntN(10) == 0 {
						p.IdempotencyKey = fmt.Sprintf("k%d", rng.IntN(20))
					}
					_, _, err = b.Enqueue(ctx, p)
				case r < 50:
					var res *ClaimResult
					res, err = b.Claim(ctx, ClaimParams{WorkerID: worker, AllowedTypes: types[:1+rng.IntN(3)], WorkerCapabilities: caps[:rng.IntN(3)]})
					if err == nil && res.Job != nil {
						heldJobs = append(heldJobs, res.Job)
					}
				case r < 60:
					if j := pick(); j != nil {
						_, err = b.Complete(ctx, CompleteParams{JobID: j.ID, WorkerID: worker, Attempt: j.Attempt})
						if errors.Is(err, ErrInvalidState) {
							// A cancel was requested: acknowledge it instead.
							_, err = b.AckCancel(ctx, AckCancelParams{JobID: j.ID, WorkerID: worker, Attempt: j.Attempt})
						}
					}
				case r < 70:
					if j := pick(); j != nil {
						_, err = b.Fail(ctx, FailParams{JobID: j.ID, WorkerID: worker, Attempt: j.Attempt, Retryable: rng.IntN(3) > 0})
					}
				case r < 74:
					if j := pick(); j != nil {
						_, err = b.Release(ctx, ReleaseParams{JobID: j.ID, WorkerID: worker, Attempt: j.Attempt})
					}
				case r < 78:
					if len(heldJobs) > 0 {
						j := heldJobs[rng.IntN(len(heldJobs))]
						_, _, err = b.Heartbeat(ctx, HeartbeatParams{JobID: j.ID, WorkerID: worker, Attempt: j.Attempt})
					}
				case r < 82:
					if len(heldJobs) > 0 {
						j := heldJobs[rng.IntN(len(heldJobs))]
						_, err = b.Cancel(ctx, j.ID, "random", "test")
						if errors.Is(err, ErrInvalidState) {
							err = nil
						}
					}
				case r < 86:
					if j := pick(); j != nil {
						_, err = b.AckCancel(ctx, AckCancelParams{JobID: j.ID, WorkerID: worker, Attempt: j.Attempt})
						if errors.Is(err, ErrInvalidState) {
							heldJobs = append(heldJobs, j)
							err = nil
						}
					}
				case r < 90:
					if len(heldJobs) > 0 {
						expireLease(t, b, heldJobs[rng.IntN(len(heldJobs))].ID, time.Hour)
					}
				case r < 94:
					if j := pick(); j != nil {
						_, err = b.Recover(ctx, j.ID, []RecoverMode{RecoverRequeue, RecoverCancel}[rng.IntN(2)], "test")
						if errors.Is(err, ErrLeaseActive) || errors.Is(err, ErrAttemptsExhausted) || errors.Is(err, ErrInvalidState) {
							err = nil
						}
					}
				case r < 97:
					_, err = b.ReapOnce(ctx)
				default:
					jobs, _, lerr := b.ListJobs(ctx, ListParams{Status: StatusFailed, Limit: 1})
					err = lerr
					if err == nil && len(jobs) == 1 {
						_, _, err = b.Resubmit(ctx, jobs[0].ID, "test")
						if errors.Is(err, ErrInvalidState) {
							err = nil
						}
					}
				}
				// Another goroutine's recover, reap or cancel may take a
				// job away; its holder then gets lease_lost, which is fine.
				if err != nil && !errors.Is(err, ErrLeaseLost) {
					t.Errorf("goroutine %d op %d: %v", g, op, err)
					return
				}
				if op%50 == 0 {
					checkCounts(t, b)
				}
			}
		}()
	}
	wg.Wait()
	checkCounts(t, b)
	t.Logf("final counts: %v", stateCounts(t, b))
}
