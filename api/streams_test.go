package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/apitest"
)

func TestJobEventStreamEndsWhenJobFinishes(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	job := c.enqueue("demo:a", nil)
	c.claim("w1", nil)
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/events", s.WorkerToken,
		map[string]any{"workerId": "w1", "message": "first"}, http.StatusCreated, nil)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/api/queue/jobs/"+job.ID+"/events/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.ProducerToken)
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("open job event stream: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("job event stream: status %d", resp.StatusCode)
	}
	events := readEvents(resp.Body)

	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/events", s.WorkerToken,
		map[string]any{"workerId": "w1", "message": "second"}, http.StatusCreated, nil)
	c.json(http.MethodPost, "/api/queue/jobs/"+job.ID+"/complete", s.WorkerToken,
		map[string]any{"workerId": "w1"}, http.StatusOK, nil)

	var messages []string
	timeout := time.After(15 * time.Second)
	for done := false; !done; {
		select {
		case ev, ok := <-events:
			if !ok {
				done = true
				break
			}
			if ev.name != "job_event" {
				t.Errorf("event name %q, want job_event", ev.name)
				continue
			}
			var body struct {
				JobID   string `json:"jobId"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal([]byte(ev.data), &body); err != nil {
				t.Fatalf("decode job event %s: %v", ev.data, err)
			}
			if body.JobID != job.ID {
				t.Errorf("event of job %s in the stream of %s", body.JobID, job.ID)
			}
			messages = append(messages, body.Message)
		case <-timeout:
			t.Fatalf("stream did not end within 15 s of the job finishing; got %q", messages)
		}
	}
	first, second := indexOfString(messages, "first"), indexOfString(messages, "second")
	if first < 0 || second < 0 || first > second {
		t.Errorf("stream messages %q, want first before second", messages)
	}
}

func indexOfString(list []string, want string) int {
	for i, v := range list {
		if v == want {
			return i
		}
	}
	return -1
}

func TestPauseWorksWithoutPostgres(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	// Closing the pool makes every PostgreSQL call fail at once, as an
	// unreachable server would, without touching the shared server.
	s.Relay.Stop()
	if err := s.DB.Close(); err != nil {
		t.Fatalf("close the database pool: %v", err)
	}

	snap := c.pause("drain", "postgres is down")
	if !snap.WorkersPaused || snap.Version != 2 {
		t.Errorf("pause without PostgreSQL = %+v, want paused version 2", snap.systemDoc)
	}
	if !snap.AuditPending {
		t.Errorf("auditPending = false without PostgreSQL, want true")
	}
	if snap.AuditAvailable || len(snap.Audit.Latest) != 0 {
		t.Errorf("audit without PostgreSQL = available %v, latest %d; want unavailable and empty", snap.AuditAvailable, len(snap.Audit.Latest))
	}
	if res := c.claim("w1", nil); res.Job != nil || !res.System.WorkersPaused {
		t.Errorf("claim after the pause = %+v, want no job and paused", res)
	}
	depth, err := s.Broker.OutboxDepth(t.Context())
	if err != nil || depth != 1 {
		t.Errorf("outbox depth = %d (%v), want the pause event waiting", depth, err)
	}
	c.expectError(request{method: http.MethodGet, path: "/api/system/control-events", token: s.OperatorToken},
		http.StatusServiceUnavailable, "unavailable", "")
	r := c.do(request{method: http.MethodGet, path: "/readyz"})
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("readyz without PostgreSQL: status %d, want 503", r.status)
	}
}
