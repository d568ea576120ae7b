package broker

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// NoticeKind is the subject of a notice.
type NoticeKind string

// Notice kinds published by the scripts on the namespace channel.
const (
	// NoticeJobReady: a job became claimable (enqueue, retry, release,
	// requeue, resubmit).
	NoticeJobReady NoticeKind = "job"
	// NoticePause: the pause state changed; Version is the new version.
	// Version 0 means the subscription was re-established after a lost
	// connection and notices may have been missed, so the reader should
	// read the state again.
	NoticePause NoticeKind = "pause"
)

// Notice is one message from the namespace's pub/sub channel.
type Notice struct {
	Kind    NoticeKind
	Version int64
}

// Tuning of the notifier's receive loop.
const (
	// NotifierBufferSize is the channel capacity of each subscriber.
	NotifierBufferSize = 16
	// notifierPingInterval is how long the loop waits for a message before
	// it pings Redis, which detects a connection that died silently.
	notifierPingInterval = 30 * time.Second
	// notifierMaxBackoff caps the wait between attempts while Redis is
	// unreachable.
	notifierMaxBackoff = 2 * time.Second
)

// errNotifierStarted is returned by a second call of Start.
var errNotifierStarted = errors.New("notifier: Start was already called")

// Notifier fans the namespace channel out to in-process subscribers, so
// long polls wake at once on an enqueue or a pause change. It holds one
// Redis subscription however many subscribers there are.
type Notifier struct {
	b *Broker

	mu      sync.Mutex
	subs    map[chan Notice]struct{}
	started bool
	pubsub  *redis.PubSub

	ready     chan struct{}
	readyOnce sync.Once
	stop      chan struct{}
	stopOnce  sync.Once
}

// NewNotifier returns a notifier for b's namespace. Call Start before
// Subscribe delivers anything.
func (b *Broker) NewNotifier() *Notifier {
	return &Notifier{
		b:     b,
		subs:  make(map[chan Notice]struct{}),
		ready: make(chan struct{}),
		stop:  make(chan struct{}),
	}
}

// Ready returns a channel that is closed once the first subscription to
// Redis is confirmed; notices published before that are not delivered.
func (n *Notifier) Ready() <-chan struct{} { return n.ready }

// Start subscribes to the channel and delivers notices until ctx ends or
// Stop is called; then it returns nil. While Redis is unreachable it
// retries with backoff. After a lost connection is re-established it sends
// every subscriber a NoticePause with Version 0. A second call returns an
// error at once.
func (n *Notifier) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.started {
		n.mu.Unlock()
		return errNotifierStarted
	}
	n.started = true
	select {
	case <-n.stop:
		n.mu.Unlock()
		return nil
	default:
	}
	channel := n.b.keys.Channel()
	pubsub := n.b.rdb.Subscribe(ctx, channel)
	n.pubsub = pubsub
	n.mu.Unlock()
	defer pubsub.Close()

	// Closing the subscription is the only way to end a blocked Receive.
	loopDone := make(chan struct{})
	defer close(loopDone)
	go func() {
		select {
		case <-ctx.Done():
			n.Stop()
		case <-loopDone:
		}
	}()

	n.receive(ctx, pubsub, channel)
	return nil
}

// receive runs the receive loop until Stop.
func (n *Notifier) receive(ctx context.Context, pubsub *redis.PubSub, channel string) {
	subscribed := false
	failures := 0
	for {
		if n.stopped() {
			return
		}
		msg, err := pubsub.ReceiveTimeout(ctx, notifierPingInterval)
		if err != nil {
			if n.stopped() {
				return
			}
			var netErr interface{ Timeout() bool }
			if errors.As(err, &netErr) && netErr.Timeout() {
				// Quiet channel: a ping fails on a dead connection, and
				// the next receive then reconnects.
				_ = pubsub.Ping(ctx)
				continue
			}
			failures++
			if failures == 1 || failures%30 == 0 {
				slog.WarnContext(ctx, "notifier lost its Redis subscription; retrying",
					"error", err, "attempts", failures)
			}
			n.sleep(notifierBackoff(failures))
			continue
		}

		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" || m.Channel != channel {
				continue
			}
			if failures > 0 {
				slog.InfoContext(ctx, "notifier subscribed again", "attempts", failures)
			}
			failures = 0
			if subscribed {
				n.fanOut(Notice{Kind: NoticePause, Version: 0})
			}
			subscribed = true
			n.readyOnce.Do(func() { close(n.ready) })
		case *redis.Message:
			if notice, ok := parseNotice(m.Payload); ok {
				n.fanOut(notice)
			} else {
				slog.WarnContext(ctx, "notifier ignored an unknown message", "payload", m.Payload)
			}
		}
	}
}

// parseNotice reads "job" or "pause:<version>".
func parseNotice(payload string) (Notice, bool) {
	if payload == string(NoticeJobReady) {
		return Notice{Kind: NoticeJobReady}, true
	}
	if v, ok := strings.CutPrefix(payload, string(NoticePause)+":"); ok {
		version, err := strconv.ParseInt(v, 10, 64)
		if err == nil && version >= 1 {
			return Notice{Kind: NoticePause, Version: version}, true
		}
	}
	return Notice{}, false
}

// fanOut offers notice to every subscriber without blocking. A full buffer
// drops its oldest notice to make room, so a slow reader sees the newest.
func (n *Notifier) fanOut(notice Notice) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs {
		select {
		case ch <- notice:
			continue
		default:
		}
		select {
		case <-ch:
		default:
		}
		select {
		case ch <- notice:
		default:
		}
	}
}

// Stop ends the subscription. Subscriber channels stay open but receive
// nothing more, so a reader that selects on one together with a timer
// falls back to the timer instead of spinning on a closed channel. It is
// safe to call more than once and before Start.
func (n *Notifier) Stop() {
	n.stopOnce.Do(func() {
		close(n.stop)
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.pubsub != nil {
			_ = n.pubsub.Close()
		}
	})
}

// Subscribe returns a channel that receives every notice and a function
// that ends the subscription and closes the channel. A slow reader misses
// notices rather than blocking others, because the buffer keeps the newest.
func (n *Notifier) Subscribe() (<-chan Notice, func()) {
	ch := make(chan Notice, NotifierBufferSize)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.subs[ch] = struct{}{}
	return ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if _, ok := n.subs[ch]; ok {
			delete(n.subs, ch)
			close(ch)
		}
	}
}

func (n *Notifier) stopped() bool {
	select {
	case <-n.stop:
		return true
	default:
		return false
	}
}

// sleep waits for d or until Stop.
func (n *Notifier) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-n.stop:
	}
}

// notifierBackoff doubles from 50 ms up to notifierMaxBackoff.
func notifierBackoff(failures int) time.Duration {
	d := 50 * time.Millisecond
	for i := 1; i < failures && d < notifierMaxBackoff; i++ {
		d *= 2
	}
	return min(d, notifierMaxBackoff)
}
