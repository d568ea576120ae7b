package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/moonmind/broker/broker"
)

// jobEventPollInterval is how often a job event stream reads new events;
// job events have no notice of their own.
const jobEventPollInterval = 500 * time.Millisecond

// sseWriter writes server-sent events and flushes after each.
type sseWriter struct {
	c *gin.Context
}

func startSSE(c *gin.Context) *sseWriter {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	c.Writer.WriteHeaderNow()
	c.Writer.Flush()
	return &sseWriter{c: c}
}

// event writes one event with data encoded as JSON on one line.
func (w *sseWriter) event(name, id string, data any) error {
	body, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", name, err)
	}
	if id != "" {
		if _, err := fmt.Fprintf(w.c.Writer, "id: %s\n", id); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(w.c.Writer, "event: %s\ndata: %s\n\n", name, body); err != nil {
		return err
	}
	w.c.Writer.Flush()
	return nil
}

// comment writes a comment line, which clients ignore and proxies see as
// traffic.
func (w *sseWriter) comment(text string) error {
	if _, err := fmt.Fprintf(w.c.Writer, ": %s\n\n", text); err != nil {
		return err
	}
	w.c.Writer.Flush()
	return nil
}

// pauseEvents streams the pause snapshot: "snapshot" at once and about once
// per SnapshotInterval, and "pause" as soon as a pause notice arrives. The
// notifier coalesces notices, so two changes in quick succession may show
// as one pause event carrying the newer state.
func (s *Server) pauseEvents(c *gin.Context) {
	ctx := c.Request.Context()
	notices, unsubscribe := s.notifier.Subscribe()
	defer unsubscribe()

	// Read once before the headers go out, so a Redis failure is still a
	// normal error response.
	snap, err := s.snapshot(ctx)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	w := startSSE(c)
	if err := w.event("snapshot", "", snap); err != nil {
		return
	}

	ticker := time.NewTicker(s.cfg.SnapshotInterval)
	defer ticker.Stop()
	keepalive := time.NewTicker(s.cfg.KeepaliveInterval)
	defer keepalive.Stop()
	lastVersion := snap.Version
	for {
		name := "snapshot"
		select {
		case n := <-notices:
			if n.Kind != broker.NoticePause {
				continue
			}
			name = "pause"
		case <-ticker.C:
		case <-keepalive.C:
			if err := w.comment("keepalive"); err != nil {
				return
			}
			continue
		case <-s.done:
			return
		case <-ctx.Done():
			return
		}

		snap, err := s.snapshot(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.logger.WarnContext(ctx, "pause event stream: read snapshot failed", "error", err)
			if err := w.comment("snapshot unavailable"); err != nil {
				return
			}
			continue
		}
		// A change seen first by the ticker is still announced as a pause
		// event, so a client that waits for one never misses it.
		if snap.Version != lastVersion {
			name = "pause"
		} else if name == "pause" {
			name = "snapshot"
		}
		lastVersion = snap.Version
		if err := w.event(name, "", snap); err != nil {
			return
		}
	}
}

type appendEventRequest struct {
	WorkerID *string         `json:"workerId"`
	Level    *string         `json:"level"`
	Message  *string         `json:"message"`
	Payload  json.RawMessage `json:"payload"`
}

func (s *Server) appendEvent(c *gin.Context) {
	var req appendEventRequest
	if err := decodeJSON(c, s.bodyLimit, &req); err != nil {
		abort(c, s.logger, err)
		return
	}
	if req.WorkerID == nil || *req.WorkerID == "" {
		abort(c, s.logger, fieldError("workerId", "workerId is required: send the id of the worker that holds the job"))
		return
	}
	level := "info"
	if req.Level != nil {
		level = *req.Level
	}
	switch level {
	case "debug", "info", "warn", "error":
	default:
		abort(c, s.logger, fieldError("level", "level must be debug, info, warn or error, got %q", level))
		return
	}
	if req.Message == nil || *req.Message == "" {
		abort(c, s.logger, fieldError("message", "message is required: send the event text"))
		return
	}
	payload, err := jsonObject("payload", req.Payload)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	ev, err := s.b.AppendJobEvent(c.Request.Context(), c.Param("id"), *req.WorkerID, level, *req.Message, payload)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	c.JSON(http.StatusCreated, ev)
}

// jobEventPage is the response body of GET .../events.
type jobEventPage struct {
	Items      []broker.JobEvent `json:"items"`
	NextCursor *string           `json:"nextCursor"`
}

func (s *Server) listEvents(c *gin.Context) {
	limit, err := queryInt(c, "limit", defaultEventsLimit, 1, maxListLimit)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	events, next, err := s.b.JobEvents(c.Request.Context(), c.Param("id"), c.Query("after"), limit)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	if events == nil {
		events = []broker.JobEvent{}
	}
	c.JSON(http.StatusOK, jobEventPage{Items: events, NextCursor: optional(next)})
}

// streamEvents sends a job's events as "job_event" server-sent events,
// starting after Last-Event-ID when the client reconnects. The stream ends
// once the job is finished and every event was sent.
func (s *Server) streamEvents(c *gin.Context) {
	ctx := c.Request.Context()
	jobID := c.Param("id")
	if _, err := s.b.GetJob(ctx, jobID); err != nil {
		abort(c, s.logger, err)
		return
	}
	after := c.GetHeader("Last-Event-ID")
	w := startSSE(c)

	ticker := time.NewTicker(jobEventPollInterval)
	defer ticker.Stop()
	keepalive := time.NewTicker(s.cfg.KeepaliveInterval)
	defer keepalive.Stop()
	for {
		done, next, err := s.sendJobEvents(ctx, w, jobID, after)
		if err != nil {
			if ctx.Err() == nil {
				s.logger.WarnContext(ctx, "job event stream failed", "job_id", jobID, "error", err)
			}
			return
		}
		after = next
		if done {
			return
		}
		select {
		case <-ticker.C:
		case <-keepalive.C:
			if err := w.comment("keepalive"); err != nil {
				return
			}
		case <-s.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

// sendJobEvents sends every event after the cursor and reports whether the
// job is finished, in which case no event can follow.
func (s *Server) sendJobEvents(ctx context.Context, w *sseWriter, jobID, after string) (bool, string, error) {
	// Read the status first: events appended after a terminal status was
	// seen are still read below, so the last events are never cut off.
	job, err := s.b.GetJob(ctx, jobID)
	if err != nil {
		return false, after, err
	}
	for {
		events, next, err := s.b.JobEvents(ctx, jobID, after, maxListLimit)
		if err != nil {
			return false, after, err
		}
		for _, ev := range events {
			if err := w.event("job_event", ev.ID, ev); err != nil {
				return false, after, err
			}
			after = ev.ID
		}
		if next == "" || len(events) == 0 {
			return job.Status.Terminal(), after, nil
		}
		after = next
	}
}
