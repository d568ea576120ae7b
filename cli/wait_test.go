package cli

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
)

func TestReadEventsParsesStream(t *testing.T) {
	t.Parallel()
	stream := ": keepalive\n\n" +
		"event: snapshot\ndata: {\"a\":1}\n\n" +
		"event: pause\r\ndata: line one\r\ndata: line two\r\n\r\n" +
		"data: no name\n\n"
	type event struct{ name, data string }
	var got []event
	err := readEvents(strings.NewReader(stream), func(name string, data []byte) (bool, error) {
		got = append(got, event{name, string(data)})
		return false, nil
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("readEvents at the end of the stream returned %v, want io.ErrUnexpectedEOF", err)
	}
	want := []event{{"snapshot", `{"a":1}`}, {"pause", "line one\nline two"}, {"message", "no name"}}
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestReadEventsStopsWhenDone(t *testing.T) {
	t.Parallel()
	stream := "event: snapshot\ndata: 1\n\nevent: snapshot\ndata: 2\n\n"
	calls := 0
	err := readEvents(strings.NewReader(stream), func(string, []byte) (bool, error) {
		calls++
		return true, nil
	})
	if !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("readEvents returned %v after %d calls, want errStop after 1", err, calls)
	}
}

func TestProgressTerminalRedraws(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	start := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	clock := start
	p := &progress{w: &out, terminal: true, start: start, now: func() time.Time { return clock }}
	mode := "drain"
	snap := &pauseSnapshot{WorkersPaused: true, Mode: &mode, Metrics: broker.DrainMetrics{Queued: 2, Running: 1}}

	done, err := p.observe(snap)
	if done || err != nil {
		t.Fatalf("observe with a running job = %v, %v; want false, nil", done, err)
	}
	clock = start.Add(3 * time.Second)
	snap.Metrics.Running = 0
	done, err = p.observe(snap)
	if !done || err != nil {
		t.Fatalf("observe with nothing running = %v, %v; want true, nil", done, err)
	}
	p.interrupt()

	got := out.String()
	if strings.Count(got, "\r\x1b[K") != 2 {
		t.Errorf("output %q, want two in-place redraws", got)
	}
	if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
		t.Errorf("output %q, want one line ended once by interrupt", got)
	}
	if !strings.Contains(got, "running 0") || !strings.Contains(got, "elapsed 3s") {
		t.Errorf("output %q, want the last counts and elapsed 3s", got)
	}
}

func TestProgressPipePrintsChanges(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := &progress{w: &out, start: time.Now(), now: time.Now}
	mode := "quiesce"
	snap := &pauseSnapshot{WorkersPaused: true, Mode: &mode, Metrics: broker.DrainMetrics{Running: 2}}
	for i := 0; i < 3; i++ {
		if _, err := p.observe(snap); err != nil {
			t.Fatal(err)
		}
	}
	snap.Metrics.Running = 1
	if _, err := p.observe(snap); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Errorf("got %d lines %q, want one per change (2)", len(lines), lines)
	}
	if strings.Contains(out.String(), "\r") {
		t.Errorf("output %q contains a carriage return outside a terminal", out.String())
	}
}

func TestProgressRejectsResumed(t *testing.T) {
	t.Parallel()
	p := &progress{w: io.Discard, start: time.Now(), now: time.Now}
	_, err := p.observe(&pauseSnapshot{WorkersPaused: false, Version: 4})
	if !errors.Is(err, errResumed) {
		t.Errorf("observe of a running state returned %v, want errResumed", err)
	}
}

func TestWaitDrainedJSON(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	enqueue(t, srv, "demo:sleep")
	job := claim(t, srv, "worker-1", 300)
	pauseViaAPI(t, srv, "drain", "Upgrade")

	r := run(t, srv, "wait-drained", "--timeout", "1s", "-o", "json")
	wantCode(t, r, ExitTimeout)
	var timedOut struct {
		SafeToUpgrade bool         `json:"safeToUpgrade"`
		TimedOut      bool         `json:"timedOut"`
		RunningJobs   []broker.Job `json:"runningJobs"`
	}
	decodeJSON(t, r, &timedOut)
	if timedOut.SafeToUpgrade || !timedOut.TimedOut {
		t.Errorf("safeToUpgrade %v timedOut %v, want false and true", timedOut.SafeToUpgrade, timedOut.TimedOut)
	}
	if len(timedOut.RunningJobs) != 1 || timedOut.RunningJobs[0].ID != job.ID {
		t.Errorf("runningJobs = %+v, want the job %s", timedOut.RunningJobs, job.ID)
	}
	if !strings.Contains(r.stderr, "running 1") {
		t.Errorf("stderr = %q, want the progress line there", r.stderr)
	}

	srv.DoJSON(t, "POST", "/api/queue/jobs/"+job.ID+"/complete", srv.WorkerToken,
		map[string]any{"workerId": "worker-1", "resultSummary": "done"}, http.StatusOK, nil)
	r = run(t, srv, "wait-drained", "-o", "json")
	wantCode(t, r, ExitOK)
	var safe struct {
		SafeToUpgrade bool          `json:"safeToUpgrade"`
		Snapshot      pauseSnapshot `json:"snapshot"`
	}
	decodeJSON(t, r, &safe)
	if !safe.SafeToUpgrade || !safe.Snapshot.WorkersPaused || safe.Snapshot.Metrics.Running != 0 {
		t.Errorf("result = %+v, want safe, paused and nothing running", safe)
	}
}
