package moonmindclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ErrStopStream may be returned by the callback of StreamEvents to end the
// stream early without an error.
var ErrStopStream = errors.New("stop the event stream")

// StreamEventName is the name of the server-sent events that carry job
// events.
const StreamEventName = "job_event"

// EventPage is one page of a job's events.
type EventPage struct {
	Items []Event
	// NextCursor is the value to send as after for the next page; empty
	// when the broker sent null.
	NextCursor string
}

// GetJob reads GET /api/queue/jobs/{id} with the read token.
func (c *Client) GetJob(ctx context.Context, jobID string) (*Job, error) {
	data, err := c.getJSON(ctx, jobPath(jobID, ""))
	if err != nil {
		return nil, err
	}
	job, err := parseJob(data)
	if err != nil {
		return nil, fmt.Errorf("get job: %w", err)
	}
	return job, nil
}

// ListEvents reads GET /api/queue/jobs/{id}/events with the read token. An
// empty after starts at the oldest event; a limit of 0 leaves the broker's
// default.
func (c *Client) ListEvents(ctx context.Context, jobID, after string, limit int) (*EventPage, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := jobPath(jobID, "/events")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	data, err := c.getJSON(ctx, path)
	if err != nil {
		return nil, err
	}
	items, ok := data["items"].([]any)
	if !ok {
		return nil, fmt.Errorf("list events: %w", invalid("items", "must be an array, got %s", describe(data["items"])))
	}
	page := &EventPage{Items: make([]Event, 0, len(items))}
	for i, node := range items {
		ev, err := parseEvent(node)
		if err != nil {
			return nil, fmt.Errorf("list events: item %d: %w", i, err)
		}
		page.Items = append(page.Items, ev)
	}
	if page.NextCursor, err = optionalString(data, "nextCursor"); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return page, nil
}

// FinishSummary reads GET /api/queue/jobs/{id}/finish-summary with the read
// token.
func (c *Client) FinishSummary(ctx context.Context, jobID string) (*FinishSummary, error) {
	data, err := c.getJSON(ctx, jobPath(jobID, "/finish-summary"))
	if err != nil {
		return nil, err
	}
	f, err := parseFinishSummary(data)
	if err != nil {
		return nil, fmt.Errorf("finish summary: %w", err)
	}
	return f, nil
}

// StreamEvents reads GET /api/queue/jobs/{id}/events/stream with the read
// token and calls fn for each job_event, in order. A non-empty lastEventID
// is sent as Last-Event-ID to resume after that event. It returns nil when
// the broker ends the stream or fn returns ErrStopStream, and the error of
// fn or of the stream otherwise. Only ctx bounds the stream, because it
// stays open while the job runs.
func (c *Client) StreamEvents(ctx context.Context, jobID, lastEventID string, fn func(Event) error) error {
	path := jobPath(jobID, "/events/stream")
	resp, err := c.sendStream(ctx, path, lastEventID)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return fmt.Errorf("GET %s: %w: Content-Type is %q, want text/event-stream", path, ErrInvalidResponse, ct)
	}

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var name, id string
	var data bytes.Buffer
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if name == "" && data.Len() == 0 {
				continue
			}
			err := dispatch(name, id, data.Bytes(), fn)
			name, id = "", ""
			data.Reset()
			if errors.Is(err, ErrStopStream) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("GET %s: %w", path, err)
			}
		case strings.HasPrefix(line, ":"):
			// A comment, such as the broker's keepalive.
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("GET %s: read stream: %w", path, err)
	}
	return ctx.Err()
}

// sendStream opens the event stream with the read token.
func (c *Client) sendStream(ctx context.Context, path, lastEventID string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	if err != nil {
		return nil, fmt.Errorf("build request GET %s: %w", path, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.readToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.readToken)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("queue API request failed: GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		apiErr := &APIError{Method: http.MethodGet, Path: path, Status: resp.StatusCode}
		var body struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		}
		if json.NewDecoder(resp.Body).Decode(&body) == nil {
			apiErr.Code, apiErr.Message, apiErr.Field = body.Code, body.Message, body.Field
		}
		return nil, apiErr
	}
	return resp, nil
}

// dispatch parses one server-sent event and hands a job event to fn.
// Events with other names are skipped.
func dispatch(name, id string, data []byte, fn func(Event) error) error {
	if name != StreamEventName {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var node map[string]any
	if err := dec.Decode(&node); err != nil {
		return fmt.Errorf("%w: %s event data is not a JSON object: %.200s", ErrInvalidResponse, name, data)
	}
	ev, err := parseEvent(node)
	if err != nil {
		return err
	}
	if id != "" && id != ev.ID {
		return fmt.Errorf("%w: %s event has id line %q but data id %q", ErrInvalidResponse, name, id, ev.ID)
	}
	return fn(ev)
}
