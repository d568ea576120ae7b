package apitest

import (
	"net/http"
	"testing"
)

func TestStartServesPauseState(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})

	var snap struct {
		WorkersPaused bool  `json:"workersPaused"`
		Version       int64 `json:"version"`
	}
	s.DoJSON(t, http.MethodGet, "/api/system/worker-pause", s.OperatorToken, nil, http.StatusOK, &snap)
	if snap.WorkersPaused {
		t.Errorf("workersPaused = true on a fresh server, want false")
	}
	if snap.Version != 1 {
		t.Errorf("version = %d on a fresh server, want 1", snap.Version)
	}

	var job struct {
		ID string `json:"id"`
	}
	s.DoJSON(t, http.MethodPost, "/api/queue/jobs", s.ProducerToken, map[string]any{"type": "demo:echo"}, http.StatusCreated, &job)
	if job.ID == "" {
		t.Fatalf("enqueue returned no job id")
	}
	var claim struct {
		Job *struct {
			ID string `json:"id"`
		} `json:"job"`
	}
	s.DoJSON(t, http.MethodPost, "/api/queue/jobs/claim", s.WorkerToken, map[string]any{"workerId": "w1"}, http.StatusOK, &claim)
	if claim.Job == nil || claim.Job.ID != job.ID {
		t.Fatalf("claim returned %+v, want job %s", claim.Job, job.ID)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{TLS: true})
	status, _ := s.Do(t, http.MethodGet, "/healthz", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /healthz over TLS: status %d, want 200", status)
	}
	s.Close()
	s.Close()
}
