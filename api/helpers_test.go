package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/moonmind/broker/api"
	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/testutil"
)

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

// openAPIRouter loads api/openapi.yaml once for every test.
func openAPIRouter(t testing.TB) routers.Router {
	t.Helper()
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(api.OpenAPI)
		if err != nil {
			specErr = err
			return
		}
		if err = doc.Validate(context.Background()); err != nil {
			specErr = err
			return
		}
		// Match any host, so the httptest server's address routes.
		doc.Servers = nil
		specRouter, specErr = legacy.NewRouter(doc)
	})
	if specErr != nil {
		t.Fatalf("load api/openapi.yaml: %v", specErr)
	}
	return specRouter
}

// client sends requests to a test server and checks each request (unless
// it is invalid on purpose) and each response against the OpenAPI document.
type client struct {
	t testing.TB
	s *apitest.Server
}

func newClient(t testing.TB, s *apitest.Server) *client { return &client{t: t, s: s} }

// request describes one call.
type request struct {
	method, path, token string
	body                any // nil, []byte, string or a value to encode
	header              map[string]string
	invalid             bool // the request breaks the document on purpose
}

type response struct {
	status int
	body   []byte
	header http.Header
}

// errorBody decodes the response as the error shape.
func (r response) errorBody(t testing.TB) api.ErrorBody {
	t.Helper()
	var e api.ErrorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("decode error body %s: %v", r.body, err)
	}
	return e
}

func (c *client) do(req request) response {
	c.t.Helper()
	var raw []byte
	switch v := req.body.(type) {
	case nil:
	case []byte:
		raw = v
	case string:
		raw = []byte(v)
	default:
		var err error
		if raw, err = json.Marshal(v); err != nil {
			c.t.Fatalf("encode body: %v", err)
		}
	}
	httpReq, err := http.NewRequest(req.method, c.s.URL+req.path, bytes.NewReader(raw))
	if err != nil {
		c.t.Fatalf("build request: %v", err)
	}
	if req.body != nil {
		httpReq.Header.Set("Content-Type", "application/json")
	}
	if req.token != "" {
		httpReq.Header.Set("Authorization", "Bearer "+req.token)
	}
	for k, v := range req.header {
		httpReq.Header.Set(k, v)
	}

	router := openAPIRouter(c.t)
	route, pathParams, routeErr := router.FindRoute(httpReq)
	var input *openapi3filter.RequestValidationInput
	if routeErr == nil {
		input = &openapi3filter.RequestValidationInput{
			Request: httpReq, PathParams: pathParams, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, SkipSettingDefaults: true},
		}
		if !req.invalid {
			// ValidateRequest reads the body; give it a copy.
			httpReq.Body = io.NopCloser(bytes.NewReader(raw))
			if err := openapi3filter.ValidateRequest(context.Background(), input); err != nil {
				c.t.Errorf("%s %s: request does not match api/openapi.yaml: %v", req.method, req.path, err)
			}
			httpReq.Body = io.NopCloser(bytes.NewReader(raw))
			httpReq.ContentLength = int64(len(raw))
		}
	} else if !req.invalid {
		c.t.Errorf("%s %s: no route in api/openapi.yaml: %v", req.method, req.path, routeErr)
	}

	resp, err := c.s.Client.Do(httpReq)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", req.method, req.path, err)
	}

	if input != nil {
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: input,
			Status:                 resp.StatusCode,
			Header:                 resp.Header,
			Options:                &openapi3filter.Options{IncludeResponseStatus: true},
		}
		out.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			c.t.Errorf("%s %s: response %d %s does not match api/openapi.yaml: %v", req.method, req.path, resp.StatusCode, body, err)
		}
	}
	return response{status: resp.StatusCode, body: body, header: resp.Header}
}

// json sends a valid request, fails the test unless the status is want,
// and decodes the body into out when out is not nil.
func (c *client) json(method, path, token string, body any, want int, out any) response {
	c.t.Helper()
	r := c.do(request{method: method, path: path, token: token, body: body})
	if r.status != want {
		c.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, want, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, r.body, err)
		}
	}
	return r
}

// expectError sends a request and checks status, code and, when not
// empty, field.
func (c *client) expectError(req request, status int, code, field string) api.ErrorBody {
	c.t.Helper()
	r := c.do(req)
	if r.status != status {
		c.t.Fatalf("%s %s: status %d, want %d; body %s", req.method, req.path, r.status, status, r.body)
	}
	e := r.errorBody(c.t)
	if e.Code != code {
		c.t.Errorf("%s %s: code %q, want %q; message %q", req.method, req.path, e.Code, code, e.Message)
	}
	if field != "" && e.Field != field {
		c.t.Errorf("%s %s: field %q, want %q; message %q", req.method, req.path, e.Field, field, e.Message)
	}
	if e.Message == "" {
		c.t.Errorf("%s %s: empty error message", req.method, req.path)
	}
	return e
}

// jobDoc is the part of the job document the tests read.
type jobDoc struct {
	ID                string          `json:"id"`
	Type              string          `json:"type"`
	Status            string          `json:"status"`
	Attempt           int             `json:"attempt"`
	ClaimedBy         *string         `json:"claimedBy"`
	Payload           json.RawMessage `json:"payload"`
	CancelRequestedAt *string         `json:"cancelRequestedAt"`
	ResubmittedFrom   *string         `json:"resubmittedFrom"`
	ResubmittedAs     *string         `json:"resubmittedAs"`
	ResultSummary     *string         `json:"resultSummary"`
	Checkpoint        json.RawMessage `json:"checkpoint"`
}

type systemDoc struct {
	WorkersPaused bool    `json:"workersPaused"`
	Mode          *string `json:"mode"`
	Reason        *string `json:"reason"`
	Version       int64   `json:"version"`
}

type claimDoc struct {
	Job    *jobDoc   `json:"job"`
	System systemDoc `json:"system"`
}

type snapshotDoc struct {
	systemDoc
	RequestedBy *string `json:"requestedBy"`
	Metrics     struct {
		Queued  int64 `json:"queued"`
		Running int64 `json:"running"`
	} `json:"metrics"`
	Audit struct {
		Latest []struct {
			Action  string  `json:"action"`
			Actor   *string `json:"actor"`
			Version int64   `json:"version"`
			Reason  string  `json:"reason"`
		} `json:"latest"`
	} `json:"audit"`
	AuditPending   bool `json:"auditPending"`
	AuditAvailable bool `json:"auditAvailable"`
}

func (c *client) enqueue(jobType string, payload any) jobDoc {
	c.t.Helper()
	var j jobDoc
	body := map[string]any{"type": jobType}
	if payload != nil {
		body["payload"] = payload
	}
	c.json(http.MethodPost, "/api/queue/jobs", c.s.ProducerToken, body, http.StatusCreated, &j)
	return j
}

func (c *client) claim(workerID string, extra map[string]any) claimDoc {
	c.t.Helper()
	body := map[string]any{"workerId": workerID}
	for k, v := range extra {
		body[k] = v
	}
	var res claimDoc
	c.json(http.MethodPost, "/api/queue/jobs/claim", c.s.WorkerToken, body, http.StatusOK, &res)
	return res
}

func (c *client) pause(mode, reason string) snapshotDoc {
	c.t.Helper()
	var snap snapshotDoc
	c.json(http.MethodPost, "/api/system/worker-pause", c.s.OperatorToken,
		map[string]any{"action": "pause", "mode": mode, "reason": reason}, http.StatusOK, &snap)
	return snap
}

func (c *client) resume(reason string) snapshotDoc {
	c.t.Helper()
	var snap snapshotDoc
	c.json(http.MethodPost, "/api/system/worker-pause", c.s.OperatorToken,
		map[string]any{"action": "resume", "reason": reason, "forceResume": true}, http.StatusOK, &snap)
	return snap
}

func (c *client) snapshot() snapshotDoc {
	c.t.Helper()
	var snap snapshotDoc
	c.json(http.MethodGet, "/api/system/worker-pause", c.s.OperatorToken, nil, http.StatusOK, &snap)
	return snap
}

// auditRows counts the rows of the audit table.
func auditRows(t testing.TB, s *apitest.Server) int {
	t.Helper()
	var n int
	if err := s.DB.Get(&n, "SELECT count(*) FROM system_control_events"); err != nil {
		t.Fatalf("count audit rows: %v", err)
	}
	return n
}

// metricValue returns the value of the first /metrics line that starts with
// prefix, or -1.
func metricValue(t testing.TB, s *apitest.Server, prefix string) float64 {
	t.Helper()
	status, body := s.Do(t, http.MethodGet, "/metrics", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", status)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix+" ") {
			var v float64
			if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(line, prefix))), &v); err == nil {
				return v
			}
		}
	}
	return -1
}

// waitForClaimResult waits until the claims counter for result rises above
// before, which shows a claim script ran.
func waitForClaimResult(t testing.TB, s *apitest.Server, result string, before float64) {
	t.Helper()
	name := `mmb_claims_total{result="` + result + `"}`
	testutil.WaitFor(t, 10*time.Second, "a claim with result "+result, func() bool {
		return metricValue(t, s, name) > before
	})
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name, data string
}

// readEvents reads server-sent events from body into the returned channel
// until the body ends.
func readEvents(body io.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch
}

func decode(t testing.TB, raw []byte, out any) {
	t.Helper()
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

// smallPayload is the payload limit of tests that send oversize bodies, so
// they need not send megabytes.
const (
	smallPayload = 4096
	bodyHeadroom = 64 << 10
)

var brokerConfigSmallPayload = broker.Config{MaxPayloadBytes: smallPayload}

func (c *client) enqueueWith(token, jobType string) jobDoc {
	c.t.Helper()
	var j jobDoc
	c.json(http.MethodPost, "/api/queue/jobs", token, map[string]any{"type": jobType}, http.StatusCreated, &j)
	return j
}
