package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// requestTimeout bounds one API request, so a request to a brokerd that
// was just killed fails fast instead of hanging the test.
const requestTimeout = 10 * time.Second

// apiClient sends JSON requests to one brokerd with one bearer token.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func newAPIClient(base, token string) *apiClient {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 32
	return &apiClient{base: base, token: token, http: &http.Client{Transport: transport, Timeout: requestTimeout}}
}

// apiError is an error response of the broker.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// call sends body as JSON and decodes a 2xx response into out. It returns
// the HTTP status, 0 when no response arrived, and an *apiError for any
// other status.
func (c *apiClient) call(ctx context.Context, method, path string, body, out any) (int, error) {
	var reader io.Reader
	if body != nil {
		encoded, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		reader = bytes.NewReader(encoded)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, reader)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}

	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)

	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read %s %s response: %w", method, path, err)
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(raw, apiErr) != nil || apiErr.Code == "" {
			apiErr.Message = strings.TrimSpace(string(raw))
		}
		return resp.StatusCode, apiErr
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s %s response %q: %w", method, path, raw, err)
		}
	}
	return resp.StatusCode, nil
}

// errorCode returns the broker's error code of err, or "" for an error
// without a response.
func errorCode(err error) string {
	var apiErr *apiError
	if errors.As(err, &apiErr) {
		return apiErr.Code
	}
	return ""
}

// job is the part of the job document the fault tests check.
type job struct {
	ID        string  `json:"id"`
	Type      string  `json:"type"`
	Status    string  `json:"status"`
	Attempt   int     `json:"attempt"`
	ClaimedBy *string `json:"claimedBy"`
}

// jobEvent is one entry of a job's event history.
type jobEvent struct {
	Kind     string  `json:"kind"`
	WorkerID *string `json:"workerId"`
}

// systemState is the "system" object of claim responses.
type systemState struct {
	WorkersPaused bool   `json:"workersPaused"`
	Mode          string `json:"mode"`
	Reason        string `json:"reason"`
	Version       int64  `json:"version"`
}

// pauseSnapshot is the part of the worker-pause snapshot the tests check.
type pauseSnapshot struct {
	WorkersPaused bool   `json:"workersPaused"`
	Mode          string `json:"mode"`
	Reason        string `json:"reason"`
	Version       int64  `json:"version"`
	AuditPending  bool   `json:"auditPending"`
}

type claimResponse struct {
	Job    *job        `json:"job"`
	System systemState `json:"system"`
}

func (c *apiClient) enqueue(ctx context.Context, jobType string, payload any, maxAttempts int) (job, int, error) {
	var j job
	body := map[string]any{"type": jobType, "payload": payload, "maxAttempts": maxAttempts}
	status, err := c.call(ctx, http.MethodPost, "/api/queue/jobs", body, &j)
	return j, status, err
}

func (c *apiClient) getJob(ctx context.Context, id string) (job, int, error) {
	var j job
	status, err := c.call(ctx, http.MethodGet, "/api/queue/jobs/"+url.PathEscape(id), nil, &j)
	return j, status, err
}

// events returns the first 500 events of job id, which is every event of
// the short histories these tests make.
func (c *apiClient) events(ctx context.Context, id string) ([]jobEvent, error) {
	var page struct {
		Items []jobEvent `json:"items"`
	}
	_, err := c.call(ctx, http.MethodGet, "/api/queue/jobs/"+url.PathEscape(id)+"/events?limit=500", nil, &page)
	return page.Items, err
}

// listJobs returns up to 500 jobs with the given status.
func (c *apiClient) listJobs(ctx context.Context, status string) ([]job, error) {
	var page struct {
		Items []job `json:"items"`
	}
	_, err := c.call(ctx, http.MethodGet, "/api/queue/jobs?limit=500&status="+url.QueryEscape(status), nil, &page)
	return page.Items, err
}

func (c *apiClient) claim(ctx context.Context, workerID string, leaseSeconds int) (claimResponse, int, error) {
	var res claimResponse
	body := map[string]any{"workerId": workerID, "leaseSeconds": leaseSeconds}
	status, err := c.call(ctx, http.MethodPost, "/api/queue/jobs/claim", body, &res)
	return res, status, err
}

func (c *apiClient) complete(ctx context.Context, j job, workerID string) (job, int, error) {
	var done job
	body := map[string]any{"workerId": workerID, "attempt": j.Attempt, "resultSummary": "done"}
	status, err := c.call(ctx, http.MethodPost, "/api/queue/jobs/"+url.PathEscape(j.ID)+"/complete", body, &done)
	return done, status, err
}

// changePause sends a pause (with mode) or a resume. A resume forces its
// way past running jobs, because these tests check versions and audit rows,
// not the drain rule.
func (c *apiClient) changePause(ctx context.Context, action, mode, reason string) (pauseSnapshot, int, error) {
	body := map[string]any{"action": action, "reason": reason}
	if action == "pause" {
		body["mode"] = mode
	} else {
		body["forceResume"] = true
	}
	var snap pauseSnapshot
	status, err := c.call(ctx, http.MethodPost, "/api/system/worker-pause", body, &snap)
	return snap, status, err
}

func (c *apiClient) pauseState(ctx context.Context) (pauseSnapshot, int, error) {
	var snap pauseSnapshot
	status, err := c.call(ctx, http.MethodGet, "/api/system/worker-pause", nil, &snap)
	return snap, status, err
}
