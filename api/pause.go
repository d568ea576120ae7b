package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/moonmind/broker/broker"
)

// Timeouts of audit reads and writes made while handling pause requests,
// so an unreachable PostgreSQL delays the response by at most these.
const (
	auditReadTimeout    = 2 * time.Second
	auditDeliverTimeout = 3 * time.Second
	latestAuditEvents   = 5
)

// PauseSnapshot is the response body of GET and POST /api/system/worker-pause.
type PauseSnapshot struct {
	broker.PauseState
	Metrics broker.DrainMetrics `json:"metrics"`
	Workers broker.WorkerCounts `json:"workers"`
	Audit   AuditLatest         `json:"audit"`
	// AuditPending is true while an audit event waits in the outbox.
	AuditPending bool `json:"auditPending"`
	// AuditAvailable is false when PostgreSQL was unreachable, so
	// Audit.Latest is empty.
	AuditAvailable bool `json:"auditAvailable"`
}

// AuditLatest holds the newest audit events, newest first.
type AuditLatest struct {
	Latest []broker.AuditEvent `json:"latest"`
}

// snapshot reads the pause state and counts from Redis and the newest
// audit events from PostgreSQL. A PostgreSQL failure only empties the audit
// list; a Redis failure is an error.
func (s *Server) snapshot(ctx context.Context) (*PauseSnapshot, error) {
	snap, err := s.b.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	out := &PauseSnapshot{
		PauseState:   snap.Pause,
		Metrics:      snap.Metrics,
		Workers:      snap.Workers,
		Audit:        AuditLatest{Latest: []broker.AuditEvent{}},
		AuditPending: snap.Outbox > 0,
	}
	if s.store == nil {
		return out, nil
	}
	readCtx, cancel := context.WithTimeout(ctx, auditReadTimeout)
	defer cancel()
	latest, err := s.store.Latest(readCtx, latestAuditEvents)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.WarnContext(ctx, "read latest audit events failed", "error", err)
		}
		return out, nil
	}
	if latest != nil {
		out.Audit.Latest = latest
	}
	out.AuditAvailable = true
	return out, nil
}

// pauseRequestFields are the fields of a pause or resume request. A GET
// that carries any of them is a state change sent with the wrong method.
var pauseRequestFields = []string{"action", "mode", "reason", "expectedVersion", "forceResume"}

func (s *Server) getPause(c *gin.Context) {
	ctx := c.Request.Context()
	if stateChangeInGET(c, pauseRequestFields) {
		c.Header("Allow", "GET, POST")
		abort(c, s.logger, newError(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "",
			"GET only reads the pause state: send a pause or resume with POST /api/system/worker-pause"))
		return
	}
	waitSeconds, err := queryInt(c, "waitSeconds", 0, 0, MaxWaitSeconds)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	waitVersion := -1
	if c.Query("waitVersion") != "" {
		if waitVersion, err = queryInt(c, "waitVersion", 0, 0, int(^uint32(0)>>1)); err != nil {
			abort(c, s.logger, err)
			return
		}
	}
	if waitVersion >= 0 && waitSeconds > 0 {
		if err := s.waitForVersion(ctx, int64(waitVersion), time.Duration(waitSeconds)*time.Second); err != nil {
			if ctx.Err() != nil {
				return
			}
			abort(c, s.logger, err)
			return
		}
	}
	snap, err := s.snapshot(ctx)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	c.JSON(http.StatusOK, snap)
}

// waitForVersion returns when the pause version is greater than after,
// wait passed, or the server closes. It subscribes before reading the
// version, so a change in between is not missed.
func (s *Server) waitForVersion(ctx context.Context, after int64, wait time.Duration) error {
	notices, unsubscribe := s.notifier.Subscribe()
	defer unsubscribe()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	recheck := time.NewTicker(s.cfg.ClaimRecheck)
	defer recheck.Stop()
	for {
		pause, err := s.b.PauseState(ctx)
		if err != nil && !errors.Is(err, broker.ErrPauseStateMissing) {
			return err
		}
		if err == nil && pause.Version > after {
			return nil
		}
		select {
		case <-notices:
		case <-recheck.C:
		case <-deadline.C:
			return nil
		case <-s.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type pauseRequest struct {
	Action          *string `json:"action"`
	Mode            *string `json:"mode"`
	Reason          *string `json:"reason"`
	ExpectedVersion *int64  `json:"expectedVersion"`
	ForceResume     *bool   `json:"forceResume"`
}

// validate checks the request and returns the trimmed reason.
func (r pauseRequest) validate() (string, error) {
	if r.Action == nil || (*r.Action != broker.ActionPause && *r.Action != broker.ActionResume) {
		return "", fieldError("action", "action must be pause or resume")
	}
	reason := ""
	if r.Reason != nil {
		reason = strings.TrimSpace(*r.Reason)
	}
	if reason == "" {
		return "", fieldError("reason", "reason is required: send a non-empty reason of at most %d characters", broker.MaxReasonLength)
	}
	if n := len([]rune(reason)); n > broker.MaxReasonLength {
		return "", fieldError("reason", "reason has %d characters: send at most %d", n, broker.MaxReasonLength)
	}
	if r.ExpectedVersion != nil && *r.ExpectedVersion < 1 {
		return "", fieldError("expectedVersion", "expectedVersion must be at least 1, got %d", *r.ExpectedVersion)
	}
	if *r.Action == broker.ActionPause {
		if r.Mode == nil || !broker.PauseMode(*r.Mode).Valid() {
			return "", fieldError("mode", "mode is required to pause: send drain or quiesce")
		}
		if r.ForceResume != nil {
			return "", fieldError("forceResume", "forceResume applies only to resume: remove it")
		}
		return reason, nil
	}
	if r.Mode != nil {
		return "", fieldError("mode", "mode applies only to pause: remove it to resume")
	}
	return reason, nil
}

func (s *Server) postPause(c *gin.Context) {
	var req pauseRequest
	if err := decodeJSON(c, s.bodyLimit, &req); err != nil {
		abort(c, s.logger, err)
		return
	}
	reason, err := req.validate()
	if err != nil {
		abort(c, s.logger, err)
		return
	}

	ctx := c.Request.Context()
	actor := principal(c).Name
	var change *broker.PauseChange
	if *req.Action == broker.ActionPause {
		change, err = s.b.Pause(ctx, broker.PauseParams{
			Mode: broker.PauseMode(*req.Mode), Reason: reason, Actor: actor, ExpectedVersion: req.ExpectedVersion,
		})
	} else {
		change, err = s.b.Resume(ctx, broker.ResumeParams{
			Reason: reason, Actor: actor, ExpectedVersion: req.ExpectedVersion, Force: req.ForceResume != nil && *req.ForceResume,
		})
	}
	if err != nil {
		abort(c, s.logger, err)
		return
	}

	// The change is final from here on, whatever happens to the audit
	// write, because the relay writes any event left in the outbox later. The write must
	// not be cut short when the client goes away.
	pending := true
	if s.relay != nil {
		deliverCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditDeliverTimeout)
		pending = s.relay.Deliver(deliverCtx, change)
		cancel()
	}
	mode := ""
	if change.State.Mode != nil {
		mode = string(*change.State.Mode)
	}
	s.logger.InfoContext(ctx, "worker pause changed", "action", *req.Action, "actor", actor,
		"version", change.State.Version, "mode", mode, "reason", reason, "audit_pending", pending)

	snap, err := s.snapshot(ctx)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	snap.AuditPending = pending
	c.JSON(http.StatusOK, snap)
}

// eventPage is the response body of GET /api/system/control-events.
type eventPage struct {
	Items      []broker.AuditEvent `json:"items"`
	NextCursor *string             `json:"nextCursor"`
}

func (s *Server) controlEvents(c *gin.Context) {
	limit, err := queryInt(c, "limit", defaultListLimit, 1, maxListLimit)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	before := c.Query("before")
	if before != "" {
		if _, err := uuid.Parse(before); err != nil {
			abort(c, s.logger, fieldError("before", "before must be an event id (a UUID) from a previous page, got %q", before))
			return
		}
	}
	if s.store == nil {
		abort(c, s.logger, newError(http.StatusServiceUnavailable, CodeUnavailable, "", "the audit trail is not configured on this server"))
		return
	}
	items, next, err := s.store.List(c.Request.Context(), limit, before)
	if err != nil {
		abort(c, s.logger, databaseError(err))
		return
	}
	if items == nil {
		items = []broker.AuditEvent{}
	}
	c.JSON(http.StatusOK, eventPage{Items: items, NextCursor: optional(next)})
}

func (s *Server) listWorkers(c *gin.Context) {
	workers, err := s.b.Workers(c.Request.Context())
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	if workers == nil {
		workers = []broker.WorkerInfo{}
	}
	c.JSON(http.StatusOK, gin.H{"items": workers})
}

// stateChangeInGET reports whether a GET request carries a body or any of
// the query parameters of a state change, which GET must never perform.
func stateChangeInGET(c *gin.Context, fields []string) bool {
	if c.Request.ContentLength > 0 || len(c.Request.TransferEncoding) > 0 {
		return true
	}
	query := c.Request.URL.Query()
	for _, f := range fields {
		if query.Has(f) {
			return true
		}
	}
	return false
}
