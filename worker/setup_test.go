package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/testutil"
)

// logBuffer collects JSON log lines from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns every log record whose message is msg.
func (b *logBuffer) records(msg string) []map[string]any {
	b.mu.Lock()
	text := b.buf.String()
	b.mu.Unlock()

	var found []map[string]any
	for _, line := range strings.Split(text, "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			continue
		}
		if rec["msg"] == msg {
			found = append(found, rec)
		}
	}
	return found
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// startBroker starts a test broker API with a short lease grace, so lease
// tests do not wait for the production default.
func startBroker(t *testing.T) *apitest.Server {
	t.Helper()
	return apitest.Start(t, apitest.Options{LeaseGrace: 500 * time.Millisecond, ReaperInterval: 100 * time.Millisecond})
}

// testConfig is a worker configuration for srv with short intervals.
func testConfig(t *testing.T, srv *apitest.Server, logger *slog.Logger) Config {
	return Config{
		BrokerURL:         srv.URL,
		Token:             srv.WorkerToken,
		WorkerID:          testutil.RandomName("w"),
		LeaseDuration:     5 * time.Second,
		PollInterval:      2 * time.Second,
		PausePollInterval: 200 * time.Millisecond,
		ShutdownTimeout:   5 * time.Second,
		Logger:            logger,
		HTTPClient:        srv.Client,
	}
}

// startWorker starts a worker server with cfg and shuts it down at cleanup.
func startWorker(t *testing.T, cfg Config, handler asynq.Handler) *Server {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if err := s.Start(context.Background(), handler); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return s
}

func enqueue(t *testing.T, srv *apitest.Server, jobType string, payload any, maxAttempts int) *broker.Job {
	t.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		t.Fatalf("encode payload: %v", err)
	}
	job, _, err := srv.Broker.Enqueue(context.Background(), broker.EnqueueParams{Type: jobType, Payload: raw, MaxAttempts: maxAttempts})
	if err != nil {
		t.Fatalf("enqueue %s: %v", jobType, err)
	}
	return job
}

func getJob(t *testing.T, srv *apitest.Server, id string) *broker.Job {
	t.Helper()
	job, err := srv.Broker.GetJob(context.Background(), id)
	if err != nil {
		t.Fatalf("get job %s: %v", id, err)
	}
	return job
}

// waitStatus waits until job id reaches want and returns it.
func waitStatus(t *testing.T, srv *apitest.Server, id string, want broker.Status, timeout time.Duration) *broker.Job {
	t.Helper()
	var job *broker.Job
	testutil.WaitFor(t, timeout, fmt.Sprintf("job %s to be %s", id, want), func() bool {
		job = getJob(t, srv, id)
		return job.Status == want
	})
	return job
}

// pauseSnapshot is the part of GET /api/system/worker-pause the tests read.
type pauseSnapshot struct {
	WorkersPaused bool   `json:"workersPaused"`
	Mode          string `json:"mode"`
	Version       int64  `json:"version"`
	Metrics       struct {
		Running      int64 `json:"running"`
		StaleRunning int64 `json:"staleRunning"`
		Quiesced     int64 `json:"quiesced"`
	} `json:"metrics"`
}

// setPause sends a pause or resume as the operator and returns the new
// snapshot.
func setPause(t *testing.T, srv *apitest.Server, action, mode, reason string) pauseSnapshot {
	t.Helper()
	body := map[string]any{"action": action, "reason": reason}
	if mode != "" {
		body["mode"] = mode
	}
	if action == "resume" {
		body["forceResume"] = true
	}
	var snap pauseSnapshot
	srv.DoJSON(t, http.MethodPost, "/api/system/worker-pause", srv.OperatorToken, body, http.StatusOK, &snap)
	return snap
}

func readPause(t *testing.T, srv *apitest.Server) pauseSnapshot {
	t.Helper()
	var snap pauseSnapshot
	srv.DoJSON(t, http.MethodGet, "/api/system/worker-pause", srv.OperatorToken, nil, http.StatusOK, &snap)
	return snap
}

// countingTransport counts requests per URL path.
type countingTransport struct {
	next http.RoundTripper

	mu     sync.Mutex
	counts map[string]int
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.counts == nil {
		c.counts = make(map[string]int)
	}
	c.counts[req.URL.Path]++
	c.mu.Unlock()
	return c.next.RoundTrip(req)
}

func (c *countingTransport) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[path]
}
