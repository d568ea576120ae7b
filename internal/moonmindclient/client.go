// Package moonmindclient is a Go model of the queue client that MoonMind's
// own workers use (QueueApiClient in moonmind/agents/codex_worker/worker.py of
// github.com/MoonLadderStudios/MoonMind). It sends the same requests: the same
// paths, the worker token in X-MoonMind-Worker-Token, the same JSON field
// names, and optional fields left out when empty as that client does. It
// applies the same checks to the responses, and stricter ones where the
// broker's contract promises more. So system.version must be an integer of at
// least 1 and every timestamp RFC 3339 with a Z or an offset. Attempt and
// maxAttempts must be positive integers.
//
// The package exists so tests can prove that this broker serves MoonMind
// workers without a change on their side. It is not a general SDK.
package moonmindclient

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

// DefaultTimeout is the timeout of one request when Config.Timeout is zero.
// MoonMind's client uses the same 30 seconds.
const DefaultTimeout = 30 * time.Second

// WorkerTokenHeader is the header that carries the worker token.
const WorkerTokenHeader = "X-MoonMind-Worker-Token"

// ErrInvalidResponse is wrapped by every error about a response body that
// does not have the shape MoonMind's client parses.
var ErrInvalidResponse = errors.New("invalid response")

// Config configures a Client.
type Config struct {
	// BaseURL is the broker's address, for example http://127.0.0.1:8080.
	// Required.
	BaseURL string
	// WorkerToken is sent as X-MoonMind-Worker-Token on every worker call
	// (claim, heartbeat, complete, fail, cancel ack, events, runtime state,
	// artifact upload). Empty sends no token.
	WorkerToken string
	// ReadToken is sent as Authorization: Bearer on the reads that MoonMind
	// makes with a user session (job, events, event stream, finish summary),
	// so it is a producer or operator token here. Empty sends no token.
	ReadToken string
	// HTTPClient sends the requests. Default: a new http.Client.
	HTTPClient *http.Client
	// Timeout bounds each request except the event stream. Default
	// DefaultTimeout.
	Timeout time.Duration
}

// Client calls the broker as MoonMind's worker does. It is safe for
// concurrent use.
type Client struct {
	base        *url.URL
	workerToken string
	readToken   string
	http        *http.Client
	timeout     time.Duration
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("moonmindclient: Config.BaseURL is required")
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("moonmindclient: Config.BaseURL must be an absolute URL such as http://127.0.0.1:8080, got %q", cfg.BaseURL)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("moonmindclient: Config.Timeout must not be negative, got %s", cfg.Timeout)
	}
	c := &Client{base: base, workerToken: cfg.WorkerToken, readToken: cfg.ReadToken, http: cfg.HTTPClient, timeout: cfg.Timeout}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	return c, nil
}

// APIError is a response with a status other than 2xx. Code, Message and
// Field come from the broker's error body when it has one.
type APIError struct {
	Method  string
	Path    string
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("queue API request failed: %s %s: status %d", e.Method, e.Path, e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// auth selects the token that a request carries.
type auth int

const (
	asWorker auth = iota
	asReader
)

// PostJSON sends body as JSON to path with the worker token and returns the
// decoded JSON object of the response, as the private _post_json helper of
// MoonMind's client does. An empty response body gives an empty map. Tests
// use it to send bodies the typed methods never build, such as misspelled
// fields.
func (c *Client) PostJSON(ctx context.Context, path string, body any) (map[string]any, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode body of POST %s: %w", path, err)
	}
	return c.doJSON(ctx, http.MethodPost, path, asWorker, "application/json", bytes.NewReader(raw))
}

// getJSON reads path with the read token.
func (c *Client) getJSON(ctx context.Context, path string) (map[string]any, error) {
	return c.doJSON(ctx, http.MethodGet, path, asReader, "", nil)
}

// doJSON sends one request within the timeout and decodes a JSON object
// response. Numbers stay json.Number so integer checks see the sent text.
func (c *Client) doJSON(ctx context.Context, method, path string, who auth, contentType string, body io.Reader) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.send(ctx, method, path, who, "application/json", contentType, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("queue API request failed: %s %s: read response: %w", method, path, err)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return map[string]any{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil || out == nil {
		return nil, fmt.Errorf("%s %s: %w: body is not a JSON object: %.200s", method, path, ErrInvalidResponse, raw)
	}
	return out, nil
}

// send builds and sends a request, and turns a non-2xx response into an
// *APIError. On success the caller closes the body.
func (c *Client) send(ctx context.Context, method, path string, who auth, accept, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", accept)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	switch who {
	case asWorker:
		if c.workerToken != "" {
			req.Header.Set(WorkerTokenHeader, c.workerToken)
		}
	case asReader:
		if c.readToken != "" {
			req.Header.Set("Authorization", "Bearer "+c.readToken)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("queue API request failed: %s %s: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		apiErr := &APIError{Method: method, Path: path, Status: resp.StatusCode}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var body struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		}
		if json.Unmarshal(raw, &body) == nil {
			apiErr.Code, apiErr.Message, apiErr.Field = body.Code, body.Message, body.Field
		}
		return nil, apiErr
	}
	return resp, nil
}

// jobPath returns /api/queue/jobs/{id}{suffix} with the id escaped.
func jobPath(jobID, suffix string) string {
	return "/api/queue/jobs/" + url.PathEscape(jobID) + suffix
}
