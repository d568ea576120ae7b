package worker

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// maxErrorBodyBytes bounds how much of a non-JSON error body ends up in an
// APIError message.
const maxErrorBodyBytes = 512

// Client calls the broker's worker endpoints (and enqueue and job reads,
// which need a producer token) over HTTP. It is safe for concurrent use.
// Every method returns an *APIError for an error response of the broker,
// and a 409 lease_lost response also matches ErrLeaseLost.
type Client struct {
	baseURL *url.URL
	token   string
	http    *http.Client
}

// NewClient returns a client for the broker at baseURL (for example
// "https://broker.internal:8443"). token is sent as a bearer token unless
// it is empty. httpClient nil means a client with the default transport.
// Requests have no client-side timeout of their own: bound them with the
// context.
func NewClient(baseURL, token string, httpClient *http.Client) (*Client, error) {
	u, err := parseBrokerURL(baseURL)
	if err != nil {
		return nil, err
	}
	if httpClient == nil {
		httpClient = &http.Client{}
	}
	return &Client{baseURL: u, token: token, http: httpClient}, nil
}

// parseBrokerURL checks that raw is an absolute http or https URL.
func parseBrokerURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("BrokerURL is required: set it to the broker's base URL, for example https://broker:8443")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("BrokerURL %q is not a valid URL: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("BrokerURL %q must be an absolute http:// or https:// URL with a host", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// NewHTTPClient returns an HTTP client whose TLS connections trust the
// PEM certificates in caFile in addition to the system pool. An empty
// caFile uses the system pool alone.
func NewHTTPClient(caFile string) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CAFile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CAFile %s contains no PEM certificate", caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: transport}, nil
}

// Claim requests a job. With WaitSeconds above zero the broker holds the
// request until a job can be claimed or the wait ends, so ctx must allow
// at least that long.
func (c *Client) Claim(ctx context.Context, req ClaimRequest) (*ClaimResponse, error) {
	var resp ClaimResponse
	if err := c.do(ctx, http.MethodPost, "/api/queue/jobs/claim", req, &resp); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return &resp, nil
}

// Heartbeat extends the lease of job id and returns the job with the
// pause state.
func (c *Client) Heartbeat(ctx context.Context, id string, req HeartbeatRequest) (*HeartbeatResponse, error) {
	var resp HeartbeatResponse
	if err := c.do(ctx, http.MethodPost, jobPath(id, "heartbeat"), req, &resp); err != nil {
		return nil, fmt.Errorf("heartbeat job %s: %w", id, err)
	}
	return &resp, nil
}

// Complete finishes job id successfully.
func (c *Client) Complete(ctx context.Context, id string, req CompleteRequest) (*Job, error) {
	return c.jobCall(ctx, "complete", id, "complete", req)
}

// Fail reports a failed attempt of job id. The broker retries it when
// req.Retryable is true and attempts are left.
func (c *Client) Fail(ctx context.Context, id string, req FailRequest) (*Job, error) {
	return c.jobCall(ctx, "fail", id, "fail", req)
}

// AckCancel acknowledges the cancel request of job id, which ends it
// cancelled.
func (c *Client) AckCancel(ctx context.Context, id string, req AckCancelRequest) (*Job, error) {
	return c.jobCall(ctx, "acknowledge cancel of", id, "cancel/ack", req)
}

// Release hands job id back to the queue without using up an attempt.
func (c *Client) Release(ctx context.Context, id string, req ReleaseRequest) (*Job, error) {
	return c.jobCall(ctx, "release", id, "release", req)
}

// ReleaseWorker hands every running job held by workerID back to the
// queue without using up an attempt and returns their ids. A Server calls
// it at the end of Shutdown. Every process that uses the same worker id
// loses its jobs too, so each live process needs its own id.
func (c *Client) ReleaseWorker(ctx context.Context, workerID string) ([]string, error) {
	var resp struct {
		Released []string `json:"released"`
	}
	path := "/api/queue/workers/" + url.PathEscape(workerID) + "/release"
	if err := c.do(ctx, http.MethodPost, path, struct{}{}, &resp); err != nil {
		return nil, fmt.Errorf("release jobs of worker %s: %w", workerID, err)
	}
	return resp.Released, nil
}

// SetRuntimeState stores req.RuntimeState on job id.
func (c *Client) SetRuntimeState(ctx context.Context, id string, req RuntimeStateRequest) (*Job, error) {
	return c.jobCall(ctx, "set runtime state of", id, "runtime-state", req)
}

// AppendEvent adds an entry to the event history of job id, which the
// caller must hold.
func (c *Client) AppendEvent(ctx context.Context, id string, req EventRequest) (*JobEvent, error) {
	var event JobEvent
	if err := c.do(ctx, http.MethodPost, jobPath(id, "events"), req, &event); err != nil {
		return nil, fmt.Errorf("append event to job %s: %w", id, err)
	}
	return &event, nil
}

// Enqueue adds a job. It needs a producer or operator token.
func (c *Client) Enqueue(ctx context.Context, req EnqueueRequest) (*Job, error) {
	var job Job
	if err := c.do(ctx, http.MethodPost, "/api/queue/jobs", req, &job); err != nil {
		return nil, fmt.Errorf("enqueue %s job: %w", req.Type, err)
	}
	return &job, nil
}

// GetJob reads job id. It needs a producer or operator token.
func (c *Client) GetJob(ctx context.Context, id string) (*Job, error) {
	var job Job
	if err := c.do(ctx, http.MethodGet, jobPath(id, ""), nil, &job); err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	return &job, nil
}

func (c *Client) jobCall(ctx context.Context, verb, id, action string, req any) (*Job, error) {
	var job Job
	if err := c.do(ctx, http.MethodPost, jobPath(id, action), req, &job); err != nil {
		return nil, fmt.Errorf("%s job %s: %w", verb, id, err)
	}
	return &job, nil
}

func jobPath(id, action string) string {
	p := "/api/queue/jobs/" + url.PathEscape(id)
	if action != "" {
		p += "/" + action
	}
	return p
}

// do sends body as JSON and decodes a 2xx response into out. Any other
// response becomes an *APIError.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var reader io.Reader
	if body != nil {
		encoded, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		reader = bytes.NewReader(encoded)
	}

	// path is escaped already because ids go through url.PathEscape. It
	// becomes RawPath, and Path gets its unescaped form. Appending it to
	// Path alone would escape each "%" a second time.
	target := *c.baseURL
	target.RawPath = c.baseURL.EscapedPath() + path
	unescaped, err := url.PathUnescape(target.RawPath)
	if err != nil {
		return fmt.Errorf("build request path %q: %w", path, err)
	}
	target.Path = unescaped
	req, err := http.NewRequestWithContext(ctx, method, target.String(), reader)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeAPIError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %d response: %w", resp.StatusCode, err)
	}
	return nil
}

func decodeAPIError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	apiErr := &APIError{Status: resp.StatusCode}
	var body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Code != "" {
		apiErr.Code, apiErr.Message, apiErr.Field = body.Code, body.Message, body.Field
		return apiErr
	}

	text := strings.TrimSpace(string(raw))
	if len(text) > maxErrorBodyBytes {
		text = text[:maxErrorBodyBytes] + "…"
	}
	if text == "" {
		text = http.StatusText(resp.StatusCode)
	}
	apiErr.Message = text
	return apiErr
}
