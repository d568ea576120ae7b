package broker

import "context"

// NoticeKind says what a notice is about.
type NoticeKind string

// Notice kinds published by the scripts on the namespace channel.
const (
	// NoticeJobReady: a job became claimable (enqueue, retry, release,
	// requeue, resubmit).
	NoticeJobReady NoticeKind = "job"
	// NoticePause: the pause state changed; Version is the new version.
	NoticePause NoticeKind = "pause"
)

// Notice is one message from the namespace's pub/sub channel.
type Notice struct {
	Kind    NoticeKind
	Version int64
}

// Notifier fans the namespace channel out to in-process subscribers, so
// long polls wake at once on an enqueue or a pause change.
type Notifier struct {
	b *Broker
}

// NewNotifier returns a notifier for b's namespace. Call Start before
// Subscribe delivers anything.
func (b *Broker) NewNotifier() *Notifier { return &Notifier{b: b} }

// Start subscribes to the channel and runs until ctx ends or Stop.
func (n *Notifier) Start(ctx context.Context) error { return errNotImplemented }

// Stop ends the subscription. It is safe to call more than once.
func (n *Notifier) Stop() {}

// Subscribe returns a channel that receives every notice (a slow reader
// misses notices rather than blocking others; the buffer keeps the newest)
// and a function that ends the subscription.
func (n *Notifier) Subscribe() (<-chan Notice, func()) {
	ch := make(chan Notice)
	return ch, func() {}
}
