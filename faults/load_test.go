package faults

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// producers enqueue demo:echo jobs from several goroutines until stopped,
// keeping the id of every job the broker acknowledged with 201.
type producers struct {
	mu       sync.Mutex
	accepted []string
	failures atomic.Int64
	// unavailable counts the failures with status 503 and code unavailable.
	unavailable atomic.Int64
	stop        context.CancelFunc
	done        sync.WaitGroup
}

// startProducers runs n producer loops against c. A failed request is
// counted and retried after a short pause, as a real producer would.
func startProducers(ctx context.Context, c *apiClient, n int) *producers {
	ctx, cancel := context.WithCancel(ctx)
	p := &producers{stop: cancel}
	for i := range n {
		p.done.Add(1)
		go func() {
			defer p.done.Done()
			for seq := 0; ctx.Err() == nil; seq++ {
				j, status, err := c.enqueue(ctx, "demo:echo", map[string]any{"producer": i, "seq": seq}, 25)
				if err == nil && status == 201 {
					p.mu.Lock()
					p.accepted = append(p.accepted, j.ID)
					p.mu.Unlock()
					continue
				}
				p.failures.Add(1)
				if errorCode(err) == "unavailable" {
					p.unavailable.Add(1)
				}
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	return p
}

// count returns how many enqueues were acknowledged so far.
func (p *producers) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.accepted)
}

// finish stops the loops and returns the acknowledged job ids.
func (p *producers) finish() []string {
	p.stop()
	p.done.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.accepted...)
}

// waitCount waits until at least n enqueues were acknowledged.
func (p *producers) waitCount(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for p.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %d acknowledged enqueues, have %d (failures %d)",
				timeout, n, p.count(), p.failures.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *producers) String() string {
	return fmt.Sprintf("%d acknowledged, %d failed requests", p.count(), p.failures.Load())
}
