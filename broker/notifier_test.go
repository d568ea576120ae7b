package broker

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

// startNotifier starts n and waits until its subscription is confirmed.
func startNotifier(t *testing.T, n *Notifier) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- n.Start(context.Background()) }()
	t.Cleanup(func() {
		n.Stop()
		if err := <-done; err != nil {
			t.Errorf("Notifier.Start returned %v, want nil after Stop", err)
		}
	})
	select {
	case <-n.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("notifier did not subscribe within 10s")
	}
}

func nextNotice(t *testing.T, ch <-chan Notice) Notice {
	t.Helper()
	select {
	case n, ok := <-ch:
		if !ok {
			t.Fatalf("notice channel closed")
		}
		return n
	case <-time.After(10 * time.Second):
		t.Fatalf("no notice within 10s")
	}
	return Notice{}
}

func TestNotifierDeliversInOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, rdb := newInitializedBroker(t)
	n := b.NewNotifier()
	first, unsubscribeFirst := n.Subscribe()
	second, unsubscribeSecond := n.Subscribe()
	defer unsubscribeSecond()
	startNotifier(t, n)

	rdb.Publish(ctx, b.keys.Channel(), "job")
	mustPause(t, b, ModeDrain, "notify")
	rdb.Publish(ctx, b.keys.Channel(), "something else")
	if _, err := b.Resume(ctx, ResumeParams{Reason: "done"}); err != nil {
		t.Fatalf("Resume: %v", err)
	}

	want := []Notice{{Kind: NoticeJobReady}, {Kind: NoticePause, Version: 2}, {Kind: NoticePause, Version: 3}}
	for _, ch := range []<-chan Notice{first, second} {
		for i, w := range want {
			if got := nextNotice(t, ch); got != w {
				t.Errorf("notice %d = %+v, want %+v", i, got, w)
			}
		}
	}

	unsubscribeFirst()
	if _, ok := <-first; ok {
		t.Errorf("channel still open after unsubscribe")
	}
	unsubscribeFirst() // a second call is harmless
}

func TestNotifierSlowReaderKeepsNewest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, rdb := newInitializedBroker(t)
	n := b.NewNotifier()
	slow, unsubscribe := n.Subscribe()
	defer unsubscribe()
	fast, unsubscribeFast := n.Subscribe()
	defer unsubscribeFast()
	startNotifier(t, n)

	// Publish more notices than the buffer holds while no goroutine reads slow.
	// The fast reader stops at the newest notice, which a full buffer
	// always keeps, so its return means the fan-out is done.
	const total = NotifierBufferSize * 3
	fastDone := make(chan int64)
	go func() {
		var got int64
		for got != total {
			select {
			case notice := <-fast:
				got = notice.Version
			case <-time.After(10 * time.Second):
				fastDone <- got
				return
			}
		}
		fastDone <- got
	}()
	for i := 1; i <= total; i++ {
		rdb.Publish(ctx, b.keys.Channel(), "pause:"+strconv.Itoa(i))
	}
	if got := <-fastDone; got != total {
		t.Fatalf("fast reader stopped at version %d, want %d", got, total)
	}

	if len(slow) != NotifierBufferSize {
		t.Fatalf("slow reader buffer holds %d notices, want %d", len(slow), NotifierBufferSize)
	}
	var previous int64
	for len(slow) > 0 {
		notice := <-slow
		if notice.Version <= previous {
			t.Errorf("slow reader got version %d after %d, want increasing versions", notice.Version, previous)
		}
		previous = notice.Version
	}
	if previous != total {
		t.Errorf("newest notice of the slow reader = %d, want %d", previous, total)
	}
}

func TestNotifierStartStop(t *testing.T) {
	t.Parallel()
	b, _ := newInitializedBroker(t)

	n := b.NewNotifier()
	n.Stop()
	n.Stop()
	if err := n.Start(context.Background()); err != nil {
		t.Errorf("Start after Stop = %v, want nil", err)
	}
	if err := n.Start(context.Background()); err == nil {
		t.Errorf("second Start returned nil, want an error")
	}

	// Cancelling the context ends Start. Subscriber channels stay open,
	// so a select on them blocks instead of spinning.
	n = b.NewNotifier()
	ch, unsubscribe := n.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Start(ctx) }()
	<-n.Ready()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Start did not return after the context was cancelled")
	}
	select {
	case notice, ok := <-ch:
		t.Errorf("receive after the notifier ended = %+v, %v; want no notice and an open channel", notice, ok)
	default:
	}
	unsubscribe()
	if _, ok := <-ch; ok {
		t.Errorf("channel still open after unsubscribe")
	}
}

func TestNotifierSurvivesRedisRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testutil.StartRedisServer(t)
	rdb := srv.Client()
	b, err := New(rdb, Config{Namespace: "restart"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.InitPause(ctx); err != nil {
		t.Fatalf("InitPause: %v", err)
	}
	n := b.NewNotifier()
	ch, unsubscribe := n.Subscribe()
	defer unsubscribe()
	startNotifier(t, n)

	srv.Stop()
	srv.Start()

	// The resubscription is announced with version 0.
	if got := nextNotice(t, ch); got != (Notice{Kind: NoticePause, Version: 0}) {
		t.Fatalf("first notice after restart = %+v, want pause version 0", got)
	}
	// Notices flow again; the data survived in the append-only file.
	testutil.WaitFor(t, 10*time.Second, "the pause to succeed after the restart", func() bool {
		_, err := b.Pause(ctx, PauseParams{Mode: ModeDrain, Reason: "after restart"})
		return err == nil
	})
	if got := nextNotice(t, ch); got != (Notice{Kind: NoticePause, Version: 2}) {
		t.Errorf("notice after restart = %+v, want pause version 2", got)
	}
}

func TestParseNotice(t *testing.T) {
	t.Parallel()
	cases := []struct {
		payload string
		want    Notice
		ok      bool
	}{
		{"job", Notice{Kind: NoticeJobReady}, true},
		{"pause:12", Notice{Kind: NoticePause, Version: 12}, true},
		{"pause:0", Notice{}, false},
		{"pause:x", Notice{}, false},
		{"pause", Notice{}, false},
		{"", Notice{}, false},
	}
	for _, tc := range cases {
		got, ok := parseNotice(tc.payload)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseNotice(%q) = %+v, %v; want %+v, %v", tc.payload, got, ok, tc.want, tc.ok)
		}
	}
}
