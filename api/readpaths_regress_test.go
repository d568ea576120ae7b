package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moonmind/broker/api"
	"github.com/moonmind/broker/broker"
)

// streamEvent is one server-sent event of the pause stream.
type streamEvent struct {
	name string
	snap api.PauseSnapshot
}

// openPauseStream opens GET /api/system/worker-pause/events and returns its
// events in order. The stream closes at test cleanup.
func (e *pauseEnv) openPauseStream() <-chan streamEvent {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.s.URL+"/api/system/worker-pause/events", nil)
	if err != nil {
		e.t.Fatalf("build the event stream request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+e.s.OperatorToken)
	resp, err := e.s.Client.Do(req)
	if err != nil {
		e.t.Fatalf("open the pause event stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		e.t.Fatalf("open the pause event stream: status %d", resp.StatusCode)
	}

	events := make(chan streamEvent, 64)
	go func() {
		defer resp.Body.Close()
		defer close(events)
		scanner := bufio.NewScanner(resp.Body)
		scanner.Buffer(make([]byte, 0, 64*1024), 1<<20)
		name := ""
		for scanner.Scan() {
			line := scanner.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				var snap api.PauseSnapshot
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &snap); err != nil {
					return
				}
				select {
				case events <- streamEvent{name: name, snap: snap}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return events
}

// nextStreamEvent returns the next event that satisfies match, failing
// the test when none arrives within timeout.
func nextStreamEvent(t *testing.T, events <-chan streamEvent, timeout time.Duration, what string, match func(streamEvent) bool) streamEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the pause event stream ended while waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no pause stream event within %s for %s", timeout, what)
		}
	}
}

// pauseView is the pause state as one read path shows it.
type pauseView struct {
	paused  bool
	mode    string
	version int64
}

func (v pauseView) String() string {
	return fmt.Sprintf("paused %v, mode %q, version %d", v.paused, v.mode, v.version)
}

func viewOf(s broker.PauseState) pauseView {
	v := pauseView{paused: s.WorkersPaused, version: s.Version}
	if s.Mode != nil {
		v.mode = string(*s.Mode)
	}
	return v
}

// readyzView reads the pause state that /readyz reports.
func (e *pauseEnv) readyzView() pauseView {
	e.t.Helper()
	_, raw := e.s.Do(e.t, http.MethodGet, "/readyz", "", nil)
	var body struct {
		Pause *broker.PauseState `json:"pause"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		e.t.Fatalf("decode /readyz %s: %v", raw, err)
	}
	if body.Pause == nil {
		e.t.Fatalf("/readyz does not report the pause state: %s", raw)
	}
	return viewOf(*body.Pause)
}

// metricsView reads the pause state that /metrics reports.
func (e *pauseEnv) metricsView() pauseView {
	e.t.Helper()
	var v pauseView
	paused, ok := e.metricValue("mmb_pause_workers_paused")
	if !ok {
		e.t.Fatalf("/metrics has no mmb_pause_workers_paused")
	}
	v.paused = paused == 1
	version, ok := e.metricValue("mmb_pause_version")
	if !ok {
		e.t.Fatalf("/metrics has no mmb_pause_version")
	}
	v.version = int64(version)
	for _, mode := range []string{"drain", "quiesce"} {
		if n, _ := e.metricValue(`mmb_pause_mode{mode="` + mode + `"}`); n == 1 {
			if v.mode != "" {
				e.t.Errorf("/metrics shows modes %s and %s in force at once", v.mode, mode)
			}
			v.mode = mode
		}
	}
	return v
}

// wantEveryView fails the test unless the snapshot, the long-poll
// snapshot, /readyz, /metrics and a claim response all show want.
func (e *pauseEnv) wantEveryView(what string, want pauseView) {
	e.t.Helper()
	views := map[string]pauseView{
		"snapshot": viewOf(e.snapshot().PauseState),
		"readyz":   e.readyzView(),
		"metrics":  e.metricsView(),
		"claim":    viewOf(e.claim("worker-reader", map[string]any{"allowedTypes": []string{"nothing-here"}}).System),
	}
	var waited api.PauseSnapshot
	path := fmt.Sprintf("/api/system/worker-pause?waitVersion=%d&waitSeconds=5", want.version-1)
	e.s.DoJSON(e.t, http.MethodGet, path, e.s.OperatorToken, nil, http.StatusOK, &waited)
	views["long-poll snapshot"] = viewOf(waited.PauseState)
	for name, got := range views {
		if got != want {
			e.t.Errorf("%s: %s shows %s, want %s", what, name, got, want)
		}
	}
}

func TestEveryReadPathShowsSamePause(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)
	events := e.openPauseStream()
	first := nextStreamEvent(t, events, 10*time.Second, "the first snapshot", func(streamEvent) bool { return true })
	if first.snap.WorkersPaused {
		t.Fatalf("the stream's first snapshot says paused before any pause")
	}

	// A long-poll snapshot waiting on the old version returns the pause.
	waited := make(chan api.PauseSnapshot, 1)
	waitErr := make(chan error, 1)
	go func() {
		snap, err := e.tryWaitSnapshot(first.snap.Version, 20)
		if err != nil {
			waitErr <- err
			return
		}
		waited <- snap
	}()

	paused := e.pause(broker.ModeQuiesce, "maintenance")
	want := pauseView{paused: true, mode: "quiesce", version: paused.Version}
	select {
	case snap := <-waited:
		if got := viewOf(snap.PauseState); got != want {
			t.Errorf("the long-poll snapshot that spanned the pause shows %s, want %s", got, want)
		}
	case err := <-waitErr:
		t.Fatalf("long-poll snapshot: %v", err)
	case <-time.After(longPollTimeout):
		t.Fatalf("the long-poll snapshot did not return within %s", longPollTimeout)
	}
	ev := nextStreamEvent(t, events, 10*time.Second, "the pause event", func(ev streamEvent) bool {
		return ev.snap.Version >= paused.Version
	})
	if ev.name != "pause" {
		t.Errorf("the first stream event with the new version is %q, want pause", ev.name)
	}
	if got := viewOf(ev.snap.PauseState); got != want {
		t.Errorf("the event stream shows %s, want %s", got, want)
	}
	e.wantEveryView("while paused", want)

	// Later snapshot events keep showing the pause.
	for i := 0; i < 2; i++ {
		ev := nextStreamEvent(t, events, 10*time.Second, "a periodic snapshot", func(ev streamEvent) bool { return ev.name == "snapshot" })
		if got := viewOf(ev.snap.PauseState); got != want {
			t.Errorf("periodic snapshot %d shows %s, want %s", i+1, got, want)
		}
	}

	resumed := e.resume("maintenance done", false)
	want = pauseView{paused: false, version: resumed.Version}
	ev = nextStreamEvent(t, events, 10*time.Second, "the resume event", func(ev streamEvent) bool {
		return ev.snap.Version >= resumed.Version
	})
	if got := viewOf(ev.snap.PauseState); ev.name != "pause" || got != want {
		t.Errorf("the event stream shows %q %s after the resume, want pause %s", ev.name, got, want)
	}
	e.wantEveryView("after the resume", want)

	job := e.enqueue(map[string]any{"type": "demo:echo"})
	if got := e.claim("worker-a", nil); got.Job == nil || got.Job.ID != job.ID {
		t.Errorf("claim after the resume returned %+v, want %s", got.Job, job.ID)
	}
}

// tryWaitSnapshot sends GET /api/system/worker-pause with waitVersion and
// waitSeconds. It returns errors instead of failing the test, for use in
// other goroutines.
func (e *pauseEnv) tryWaitSnapshot(afterVersion int64, waitSeconds int) (api.PauseSnapshot, error) {
	var snap api.PauseSnapshot
	path := fmt.Sprintf("%s/api/system/worker-pause?waitVersion=%d&waitSeconds=%d", e.s.URL, afterVersion, waitSeconds)
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		return snap, err
	}
	req.Header.Set("Authorization", "Bearer "+e.s.OperatorToken)
	resp, err := e.s.Client.Do(req)
	if err != nil {
		return snap, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return snap, fmt.Errorf("long-poll snapshot: status %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		return snap, fmt.Errorf("decode the long-poll snapshot: %w", err)
	}
	return snap, nil
}
