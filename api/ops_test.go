package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/moonmind/broker/api"
	"github.com/moonmind/broker/internal/apitest"
)

func TestHealthReadinessAndMetrics(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	c.json(http.MethodGet, "/healthz", "", nil, http.StatusOK, nil)

	var ready struct {
		Status string `json:"status"`
		Checks map[string]struct {
			OK bool `json:"ok"`
		} `json:"checks"`
	}
	c.json(http.MethodGet, "/readyz", "", nil, http.StatusOK, &ready)
	for _, name := range []string{"redis", "postgres", "migrations", "pauseKey", "outbox"} {
		if !ready.Checks[name].OK {
			t.Errorf("readiness check %s is not ok: %+v", name, ready.Checks)
		}
	}

	c.enqueue("demo:a", nil)
	c.claim("w1", nil)
	c.pause("drain", "metrics test")
	for metric, want := range map[string]float64{
		"mmb_pause_workers_paused":       1,
		"mmb_pause_version":              2,
		`mmb_pause_mode{mode="drain"}`:   1,
		`mmb_jobs{state="running"}`:      1,
		`mmb_claims_total{result="job"}`: 1,
		"mmb_workers_live":               1,
		"mmb_audit_outbox_depth":         0,
	} {
		if got := metricValue(t, s, metric); got != want {
			t.Errorf("%s = %v, want %v", metric, got, want)
		}
	}
	if got := metricValue(t, s, `mmb_http_requests_total{method="POST",route="/api/system/worker-pause",status="200"}`); got != 1 {
		t.Errorf("counted pause requests = %v, want 1", got)
	}
}

func TestOpenAPIServedAsIs(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	status, body := s.Do(t, http.MethodGet, "/api/openapi.yaml", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /api/openapi.yaml: status %d", status)
	}
	if !bytes.Equal(body, api.OpenAPI) {
		t.Errorf("served document differs from api/openapi.yaml")
	}
	openAPIRouter(t)
}

func TestRequestIDRoundTrip(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	r := c.do(request{method: http.MethodGet, path: "/healthz", header: map[string]string{"X-Request-ID": "abc-123"}})
	if got := r.header.Get("X-Request-ID"); got != "abc-123" {
		t.Errorf("X-Request-ID = %q, want abc-123", got)
	}
	r = c.do(request{method: http.MethodGet, path: "/healthz", header: map[string]string{"X-Request-ID": "bad id\twith spaces"}})
	if got := r.header.Get("X-Request-ID"); got == "" || strings.ContainsAny(got, " \t") {
		t.Errorf("X-Request-ID for an unusable id = %q, want a fresh one", got)
	}
}

func TestDashboardIsMounted(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	status, body := s.Do(t, http.MethodGet, "/", "", nil)
	if status != http.StatusOK || !bytes.Contains(bytes.ToLower(body), []byte("<html")) {
		t.Errorf("GET /: status %d, want 200 with an HTML page", status)
	}
}
