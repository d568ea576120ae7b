package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/moonmind/broker/broker"
)

// Limits of list endpoints.
const (
	defaultListLimit   = 50
	defaultEventsLimit = 100
	maxListLimit       = 500
)

// jsonObject checks that raw, when present, is a JSON object. JSON null and
// an absent field give nil.
func jsonObject(field string, raw json.RawMessage) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, nil
	}
	if trimmed[0] != '{' {
		return nil, fieldError(field, "%s must be a JSON object", field)
	}
	return trimmed, nil
}

// queryInt parses an optional integer query parameter within [min, max].
func queryInt(c *gin.Context, name string, def, min, max int) (int, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, fieldError(name, "%s must be an integer from %d to %d, got %q", name, min, max, v)
	}
	return n, nil
}

type enqueueRequest struct {
	Type                 *string         `json:"type"`
	Priority             int             `json:"priority"`
	Payload              json.RawMessage `json:"payload"`
	AffinityKey          *string         `json:"affinityKey"`
	RequiredCapabilities []string        `json:"requiredCapabilities"`
	MaxAttempts          int             `json:"maxAttempts"`
	RunAt                *string         `json:"runAt"`
	IdempotencyKey       *string         `json:"idempotencyKey"`
}

func (s *Server) enqueue(c *gin.Context) {
	var req enqueueRequest
	if err := decodeJSON(c, s.bodyLimit, &req); err != nil {
		abort(c, s.logger, err)
		return
	}
	if req.Type == nil || *req.Type == "" {
		abort(c, s.logger, fieldError("type", "type is required: send the job type, for example \"demo:sleep\""))
		return
	}
	payload, err := jsonObject("payload", req.Payload)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	if len(payload) > s.cfg.MaxPayloadBytes {
		abort(c, s.logger, newError(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, "payload",
			"payload has %d bytes: send at most %d", len(payload), s.cfg.MaxPayloadBytes))
		return
	}
	if req.MaxAttempts != 0 && (req.MaxAttempts < 1 || req.MaxAttempts > 1000) {
		abort(c, s.logger, fieldError("maxAttempts", "maxAttempts must be from 1 to 1000, got %d", req.MaxAttempts))
		return
	}
	p := broker.EnqueueParams{
		Type:                 *req.Type,
		Priority:             req.Priority,
		Payload:              payload,
		RequiredCapabilities: req.RequiredCapabilities,
		MaxAttempts:          req.MaxAttempts,
	}
	if req.AffinityKey != nil {
		p.AffinityKey = *req.AffinityKey
	}
	if req.IdempotencyKey != nil {
		p.IdempotencyKey = *req.IdempotencyKey
	}
	if req.RunAt != nil {
		t, err := time.Parse(time.RFC3339Nano, *req.RunAt)
		if err != nil {
			abort(c, s.logger, fieldError("runAt", "runAt must be an RFC 3339 time such as 2026-12-04T20:06:53.123Z, got %q", *req.RunAt))
			return
		}
		p.RunAt = t
	}

	job, created, err := s.b.Enqueue(c.Request.Context(), p)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, job)
}

// jobPage is the response body of list endpoints.
type jobPage struct {
	Items      []*broker.Job `json:"items"`
	NextCursor *string       `json:"nextCursor"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Server) listJobs(c *gin.Context) {
	limit, err := queryInt(c, "limit", defaultListLimit, 1, maxListLimit)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	status := broker.Status(c.Query("status"))
	if status != "" && !status.Valid() {
		abort(c, s.logger, fieldError("status", "status must be one of queued, running, succeeded, failed, cancelled, dead_letter, got %q", status))
		return
	}
	stale := c.Query("stale")
	if stale != "" && stale != "true" && stale != "false" {
		abort(c, s.logger, fieldError("stale", "stale must be true or false, got %q", stale))
		return
	}

	if stale == "true" {
		jobs, err := s.b.StaleJobs(c.Request.Context(), limit)
		if err != nil {
			abort(c, s.logger, err)
			return
		}
		if jobs == nil {
			jobs = []*broker.Job{}
		}
		c.JSON(http.StatusOK, jobPage{Items: jobs})
		return
	}

	jobs, next, err := s.b.ListJobs(c.Request.Context(), broker.ListParams{
		Status: status, Type: c.Query("type"), Limit: limit, Cursor: c.Query("cursor"),
	})
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	if jobs == nil {
		jobs = []*broker.Job{}
	}
	c.JSON(http.StatusOK, jobPage{Items: jobs, NextCursor: optional(next)})
}

func (s *Server) getJob(c *gin.Context) {
	job, err := s.b.GetJob(c.Request.Context(), c.Param("id"))
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	c.JSON(http.StatusOK, job)
}

// holderFields identify the caller as the holder of a job's lease.
type holderFields struct {
	WorkerID *string `json:"workerId"`
	Attempt  int     `json:"attempt"`
}

func (h holderFields) check() (string, error) {
	if h.WorkerID == nil || *h.WorkerID == "" {
		return "", fieldError("workerId", "workerId is required: send the id of the worker that claimed the job")
	}
	if h.Attempt < 0 {
		return "", fieldError("attempt", "attempt must not be negative, got %d", h.Attempt)
	}
	return *h.WorkerID, nil
}

// finishFields are the optional outcome fields of complete, fail and cancel
// acknowledgement.
type finishFields struct {
	FinishOutcomeCode   *string         `json:"finishOutcomeCode"`
	FinishOutcomeStage  *string         `json:"finishOutcomeStage"`
	FinishOutcomeReason *string         `json:"finishOutcomeReason"`
	FinishSummary       json.RawMessage `json:"finishSummary"`
}

func (f finishFields) details() (broker.FinishDetails, error) {
	var d broker.FinishDetails
	if f.FinishOutcomeCode != nil {
		if n := len([]rune(*f.FinishOutcomeCode)); n > 64 {
			return d, fieldError("finishOutcomeCode", "finishOutcomeCode has %d characters: send at most 64", n)
		}
		d.OutcomeCode = *f.FinishOutcomeCode
	}
	if f.FinishOutcomeStage != nil {
		if n := len([]rune(*f.FinishOutcomeStage)); n > 32 {
			return d, fieldError("finishOutcomeStage", "finishOutcomeStage has %d characters: send at most 32", n)
		}
		d.OutcomeStage = *f.FinishOutcomeStage
	}
	if f.FinishOutcomeReason != nil {
		d.OutcomeReason = *f.FinishOutcomeReason
	}
	summary, err := jsonObject("finishSummary", f.FinishSummary)
	if err != nil {
		return d, err
	}
	d.Summary = summary
	return d, nil
}

// leaseDuration converts optional leaseSeconds (1 to 3600) to a duration;
// nil gives 0, the engine's default.
func leaseDuration(seconds *int) (time.Duration, error) {
	if seconds == nil {
		return 0, nil
	}
	if *seconds < 1 || *seconds > int(broker.MaxLeaseDuration/time.Second) {
		return 0, fieldError("leaseSeconds", "leaseSeconds must be from 1 to %d, got %d", int(broker.MaxLeaseDuration/time.Second), *seconds)
	}
	return time.Duration(*seconds) * time.Second, nil
}

type heartbeatRequest struct {
	holderFields
	LeaseSeconds *int            `json:"leaseSeconds"`
	Quiesced     *bool           `json:"quiesced"`
	Checkpoint   json.RawMessage `json:"checkpoint"`
}

// jobWithSystem is the heartbeat response body: the job document plus "system".
type jobWithSystem struct {
	*broker.Job
	System broker.PauseState `json:"system"`
}

func (s *Server) heartbeat(c *gin.Context) {
	var req heartbeatRequest
	if err := decodeJSON(c, s.bodyLimit, &req); err != nil {
		abort(c, s.logger, err)
		return
	}
	workerID, err := req.check()
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	lease, err := leaseDuration(req.LeaseSeconds)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	checkpoint, err := jsonObject("checkpoint", req.Checkpoint)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	ctx := c.Request.Context()
	job, pause, err := s.b.Heartbeat(ctx, broker.HeartbeatParams{
		JobID: c.Param("id"), WorkerID: workerID, Attempt: req.Attempt,
		Lease: lease, Quiesced: req.Quiesced, Checkpoint: checkpoint,
	})
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	s.touchWorker(c, workerID, pause.Version)
	c.JSON(http.StatusOK, jobWithSystem{Job: job, System: pause})
}

// finishRequest is a holder's request body that carries finish details:
// complete, fail and cancel acknowledgement.
type finishRequest interface {
	check() (string, error)
	details() (broker.FinishDetails, error)
}

// decodeFinish decodes a finishRequest body into req and checks its holder
// and finish fields. On invalid input it writes the error response and
// returns false.
func (s *Server) decodeFinish(c *gin.Context, req finishRequest) (workerID string, finish broker.FinishDetails, ok bool) {
	if err := decodeJSON(c, s.bodyLimit, req); err != nil {
		abort(c, s.logger, err)
		return "", finish, false
	}
	workerID, err := req.check()
	if err != nil {
		abort(c, s.logger, err)
		return "", finish, false
	}
	if finish, err = req.details(); err != nil {
		abort(c, s.logger, err)
		return "", finish, false
	}
	return workerID, finish, true
}

type completeRequest struct {
	holderFields
	finishFields
	ResultSummary *string `json:"resultSummary"`
}

func (s *Server) complete(c *gin.Context) {
	var req completeRequest
	workerID, finish, ok := s.decodeFinish(c, &req)
	if !ok {
		return
	}
	p := broker.CompleteParams{JobID: c.Param("id"), WorkerID: workerID, Attempt: req.Attempt, Finish: finish}
	if req.ResultSummary != nil {
		p.ResultSummary = *req.ResultSummary
	}
	s.respondJob(c, http.StatusOK)(s.b.Complete(c.Request.Context(), p))
}

type failRequest struct {
	holderFields
	finishFields
	ErrorMessage *string `json:"errorMessage"`
	Retryable    *bool   `json:"retryable"`
}

func (s *Server) fail(c *gin.Context) {
	var req failRequest
	workerID, finish, ok := s.decodeFinish(c, &req)
	if !ok {
		return
	}
	p := broker.FailParams{JobID: c.Param("id"), WorkerID: workerID, Attempt: req.Attempt, Retryable: true, Finish: finish}
	if req.ErrorMessage != nil {
		p.ErrorMessage = *req.ErrorMessage
	}
	if req.Retryable != nil {
		p.Retryable = *req.Retryable
	}
	s.respondJob(c, http.StatusOK)(s.b.Fail(c.Request.Context(), p))
}

type cancelRequest struct {
	Reason *string `json:"reason"`
}

func (s *Server) cancel(c *gin.Context) {
	var req cancelRequest
	if err := decodeJSON(c, s.bodyLimit, &req); err != nil {
		abort(c, s.logger, err)
		return
	}
	reason := ""
	if req.Reason != nil {
		reason = *req.Reason
	}
	if n := len([]rune(reason)); n > broker.MaxReasonLength {
		abort(c, s.logger, fieldError("reason", "reason has %d characters: send at most %d", n, broker.MaxReasonLength))
		return
	}
	actor := principal(c).Name
	job, err := s.b.Cancel(c.Request.Context(), c.Param("id"), reason, actor)
	if err == nil {
		s.logger.InfoContext(c.Request.Context(), "job cancel requested", "job_id", job.ID, "job_type", job.Type, "actor", actor)
	}
	s.respondJob(c, http.StatusOK)(job, err)
}

type ackCancelRequest struct {
	holderFields
	finishFields
	Message *string `json:"message"`
}

func (s *Server) ackCancel(c *gin.Context) {
	var req ackCancelRequest
	workerID, finish, ok := s.decodeFinish(c, &req)
	if !ok {
		return
	}
	p := broker.AckCancelParams{JobID: c.Param("id"), WorkerID: workerID, Attempt: req.Attempt, Finish: finish}
	if req.Message != nil {
		p.Message = *req.Message
	}
	s.respondJob(c, http.StatusOK)(s.b.AckCancel(c.Request.Context(), p))
}

type releaseRequest struct {
	holderFields
	Checkpoint json.RawMessage `json:"checkpoint"`
}

func (s *Server) release(c *gin.Context) {
	var req releaseRequest
	if err := decodeJSON(c, s.bodyLimit, &req); err != nil {
		abort(c, s.logger, err)
		return
	}
	workerID, err := req.check()
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	checkpoint, err := jsonObject("checkpoint", req.Checkpoint)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	s.respondJob(c, http.StatusOK)(s.b.Release(c.Request.Context(), broker.ReleaseParams{
		JobID: c.Param("id"), WorkerID: workerID, Attempt: req.Attempt, Checkpoint: checkpoint,
	}))
}

// releaseWorkerResponse is the body of POST
// /api/queue/workers/{workerId}/release.
type releaseWorkerResponse struct {
	Released []string `json:"released"`
}

// releaseWorker hands every running job held by the worker id in the path
// back to the queue. A stopping worker calls it last, so a job the broker
// granted while the worker cancelled its claim runs elsewhere at once.
func (s *Server) releaseWorker(c *gin.Context) {
	var req struct{}
	if err := decodeJSON(c, s.bodyLimit, &req); err != nil {
		abort(c, s.logger, err)
		return
	}
	workerID := c.Param("workerId")
	released, err := s.b.ReleaseWorker(c.Request.Context(), workerID)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	if released == nil {
		released = []string{}
	}
	if len(released) > 0 {
		s.logger.InfoContext(c.Request.Context(), "released the jobs of a worker",
			"worker_id", workerID, "released", released, "actor", principal(c).Name)
	}
	c.JSON(http.StatusOK, releaseWorkerResponse{Released: released})
}

type recoverRequest struct {
	Mode *string `json:"mode"`
}

func (s *Server) recoverJob(c *gin.Context) {
	var req recoverRequest
	if err := decodeJSON(c, s.bodyLimit, &req); err != nil {
		abort(c, s.logger, err)
		return
	}
	if req.Mode == nil || (*req.Mode != string(broker.RecoverRequeue) && *req.Mode != string(broker.RecoverCancel)) {
		abort(c, s.logger, fieldError("mode", "mode must be requeue or cancel"))
		return
	}
	actor := principal(c).Name
	job, err := s.b.Recover(c.Request.Context(), c.Param("id"), broker.RecoverMode(*req.Mode), actor)
	if err == nil {
		s.logger.InfoContext(c.Request.Context(), "job recovered", "job_id", job.ID, "job_type", job.Type, "mode", *req.Mode, "actor", actor)
	}
	s.respondJob(c, http.StatusOK)(job, err)
}

type resubmitRequest struct{}

func (s *Server) resubmit(c *gin.Context) {
	var req resubmitRequest
	if err := decodeJSON(c, s.bodyLimit, &req); err != nil {
		abort(c, s.logger, err)
		return
	}
	actor := principal(c).Name
	job, created, err := s.b.Resubmit(c.Request.Context(), c.Param("id"), actor)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	if !created {
		// A repeated resubmit returns the copy made the first time.
		c.JSON(http.StatusOK, job)
		return
	}
	s.logger.InfoContext(c.Request.Context(), "job resubmitted", "job_id", job.ID, "job_type", job.Type, "actor", actor)
	c.JSON(http.StatusCreated, job)
}

type runtimeStateRequest struct {
	holderFields
	RuntimeState json.RawMessage `json:"runtimeState"`
}

func (s *Server) runtimeState(c *gin.Context) {
	var req runtimeStateRequest
	if err := decodeJSON(c, s.bodyLimit, &req); err != nil {
		abort(c, s.logger, err)
		return
	}
	workerID, err := req.check()
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	state, err := jsonObject("runtimeState", req.RuntimeState)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	if state == nil {
		abort(c, s.logger, fieldError("runtimeState", "runtimeState is required: send a JSON object"))
		return
	}
	s.respondJob(c, http.StatusOK)(s.b.SaveCheckpoint(c.Request.Context(), c.Param("id"), workerID, req.Attempt, state))
}

// finishSummaryView is the response body of GET .../finish-summary.
type finishSummaryView struct {
	JobID               string          `json:"jobId"`
	Status              broker.Status   `json:"status"`
	FinishOutcomeCode   *string         `json:"finishOutcomeCode"`
	FinishOutcomeStage  *string         `json:"finishOutcomeStage"`
	FinishOutcomeReason *string         `json:"finishOutcomeReason"`
	FinishSummary       json.RawMessage `json:"finishSummary"`
	ResultSummary       *string         `json:"resultSummary"`
	ErrorMessage        *string         `json:"errorMessage"`
	CancelAckMessage    *string         `json:"cancelAckMessage"`
	FinishedAt          *time.Time      `json:"finishedAt"`
}

func (s *Server) finishSummary(c *gin.Context) {
	job, err := s.b.GetJob(c.Request.Context(), c.Param("id"))
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	summary := job.FinishSummary
	if len(summary) == 0 {
		summary = json.RawMessage("null")
	}
	c.JSON(http.StatusOK, finishSummaryView{
		JobID: job.ID, Status: job.Status,
		FinishOutcomeCode: job.FinishOutcomeCode, FinishOutcomeStage: job.FinishOutcomeStage,
		FinishOutcomeReason: job.FinishOutcomeReason, FinishSummary: summary,
		ResultSummary: job.ResultSummary, ErrorMessage: job.ErrorMessage,
		CancelAckMessage: job.CancelAckMessage, FinishedAt: job.FinishedAt,
	})
}

// respondJob returns a function that writes the job with status, or the
// error.
func (s *Server) respondJob(c *gin.Context, status int) func(*broker.Job, error) {
	return func(job *broker.Job, err error) {
		if err != nil {
			abort(c, s.logger, err)
			return
		}
		c.JSON(status, job)
	}
}

// touchWorker records the pause version a worker was sent in a response. A
// failure only makes the acknowledged count lag, so it is logged, not
// returned.
//
// NOTE: this is a second Redis round trip per claim and heartbeat. The claim
// script cannot record the worker itself, because a paused claim must write
// nothing; merging the two for unpaused claims is left to a later change.
func (s *Server) touchWorker(c *gin.Context, workerID string, version int64) {
	// The response was already decided, so record the worker even when it
	// has disconnected since; the registry must not depend on the client.
	ctx := context.WithoutCancel(c.Request.Context())
	if err := s.b.TouchWorker(ctx, workerID, version); err != nil {
		s.logger.WarnContext(c.Request.Context(), "record worker failed", "worker_id", workerID, "version", version, "error", err)
	}
}
