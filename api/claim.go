package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/moonmind/broker/broker"
)

type claimRequest struct {
	WorkerID           *string  `json:"workerId"`
	LeaseSeconds       *int     `json:"leaseSeconds"`
	AllowedTypes       []string `json:"allowedTypes"`
	WorkerCapabilities []string `json:"workerCapabilities"`
	WaitSeconds        int      `json:"waitSeconds"`
}

// claimResponse is the body of a claim response. Job is null when nothing
// was claimed.
type claimResponse struct {
	Job    *broker.Job       `json:"job"`
	System broker.PauseState `json:"system"`
}

// narrowToPolicy intersects the requested types and capabilities with a
// worker token's policy. An empty request list means "all the policy
// allows". ok is false when the intersection of types is empty, so the
// worker may claim nothing.
func narrowToPolicy(reqTypes, reqCaps []string, policy Policy) (types, caps []string, ok bool) {
	types, caps = reqTypes, reqCaps
	if len(policy.AllowedTypes) > 0 {
		if len(types) == 0 {
			types = policy.AllowedTypes
		} else {
			types = intersect(types, policy.AllowedTypes)
			if len(types) == 0 {
				return nil, nil, false
			}
		}
	}
	if len(policy.Capabilities) > 0 {
		if len(caps) == 0 {
			caps = policy.Capabilities
		} else {
			caps = intersect(caps, policy.Capabilities)
		}
	}
	return types, caps, true
}

func intersect(a, b []string) []string {
	out := []string{}
	for _, v := range a {
		if slices.Contains(b, v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// claim leases the best ready job. With waitSeconds it long-polls: it
// subscribes to the notifier before the first attempt, so no notice between
// an attempt and the wait is missed, and runs the claim script again after
// every notice and every ClaimRecheck. Each attempt is one claim script run,
// which changes nothing while the workers are paused, so a pause that lands
// during the wait never yields a job.
func (s *Server) claim(c *gin.Context) {
	var req claimRequest
	if err := decodeJSON(c, s.bodyLimit, &req); err != nil {
		abort(c, s.logger, err)
		return
	}
	if req.WorkerID == nil || *req.WorkerID == "" {
		abort(c, s.logger, fieldError("workerId", "workerId is required: send a stable id for this worker process"))
		return
	}
	lease, err := leaseDuration(req.LeaseSeconds)
	if err != nil {
		abort(c, s.logger, err)
		return
	}
	if req.WaitSeconds < 0 || req.WaitSeconds > MaxWaitSeconds {
		abort(c, s.logger, fieldError("waitSeconds", "waitSeconds must be from 0 to %d, got %d", MaxWaitSeconds, req.WaitSeconds))
		return
	}
	types, caps, allowed := narrowToPolicy(req.AllowedTypes, req.WorkerCapabilities, principal(c).Policy)
	params := broker.ClaimParams{WorkerID: *req.WorkerID, Lease: lease, AllowedTypes: types, WorkerCapabilities: caps}

	ctx := c.Request.Context()
	notices, unsubscribe := s.notifier.Subscribe()
	defer unsubscribe()
	deadline := time.NewTimer(time.Duration(req.WaitSeconds) * time.Second)
	defer deadline.Stop()
	recheck := time.NewTicker(s.cfg.ClaimRecheck)
	defer recheck.Stop()

	for {
		// A notice and the end of the request may arrive together, and
		// select picks either. Without this check a claim whose worker is
		// gone could still take a job.
		if ctx.Err() != nil {
			return
		}
		res, err := s.claimOnce(ctx, params, allowed)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			abort(c, s.logger, err)
			return
		}
		if res.Job != nil && ctx.Err() != nil {
			// The worker went away while the script ran, so the response
			// cannot be delivered.
			s.releaseUndelivered(c, params.WorkerID, res.Job, "the request was cancelled")
			return
		}
		if res.Job != nil || req.WaitSeconds == 0 {
			s.respondClaim(c, params.WorkerID, res)
			return
		}

		select {
		case <-notices:
		case <-recheck.C:
		case <-deadline.C:
			s.respondClaim(c, params.WorkerID, res)
			return
		case <-s.done:
			s.respondClaim(c, params.WorkerID, res)
			return
		case <-ctx.Done():
			return
		}
	}
}

// claimOnce runs one claim and counts it. When the token's policy leaves no
// type to claim, it reads the pause state and claims nothing.
func (s *Server) claimOnce(ctx context.Context, p broker.ClaimParams, allowed bool) (*broker.ClaimResult, error) {
	if !allowed {
		pause, err := s.b.PauseState(ctx)
		if err != nil {
			return nil, err
		}
		s.metrics.claims.WithLabelValues("empty").Inc()
		return &broker.ClaimResult{Pause: pause}, nil
	}

	start := time.Now()
	res, err := s.b.Claim(ctx, p)
	s.metrics.claimLatency.Observe(time.Since(start).Seconds())
	switch {
	case errors.Is(err, broker.ErrPauseStateMissing):
		s.metrics.claims.WithLabelValues("paused").Inc()
		return nil, err
	case err != nil:
		return nil, err
	case res.Job != nil:
		s.metrics.claims.WithLabelValues("job").Inc()
	case res.Pause.WorkersPaused:
		s.metrics.claims.WithLabelValues("paused").Inc()
	default:
		s.metrics.claims.WithLabelValues("empty").Inc()
	}
	return res, nil
}

func (s *Server) respondClaim(c *gin.Context, workerID string, res *broker.ClaimResult) {
	s.touchWorker(c, workerID, res.Pause.Version)
	if res.Job != nil {
		s.logger.DebugContext(c.Request.Context(), "job claimed", "job_id", res.Job.ID, "job_type", res.Job.Type, "worker_id", workerID)
	}
	c.JSON(http.StatusOK, claimResponse{Job: res.Job, System: res.Pause})
	if res.Job == nil {
		return
	}
	if err := http.NewResponseController(c.Writer).Flush(); err != nil {
		s.releaseUndelivered(c, workerID, res.Job, "the response could not be sent: "+err.Error())
	}
}

// releaseUndelivered releases a job whose claim response cannot reach the
// worker, so it runs elsewhere at once instead of after its lease expires.
// A response that was sent is never followed by a release, because the
// worker may already run the job. The worker's release of all its jobs at
// shutdown covers a grant whose response went into a connection that was
// already closed.
func (s *Server) releaseUndelivered(c *gin.Context, workerID string, job *broker.Job, reason string) {
	ctx := context.WithoutCancel(c.Request.Context())
	if _, err := s.b.Release(ctx, broker.ReleaseParams{JobID: job.ID, WorkerID: workerID, Attempt: job.Attempt}); err != nil {
		s.logger.WarnContext(ctx, "release of a claimed job whose response was not delivered failed",
			"job_id", job.ID, "job_type", job.Type, "worker_id", workerID, "error", err)
		return
	}
	s.logger.InfoContext(ctx, "released a claimed job whose response was not delivered",
		"job_id", job.ID, "job_type", job.Type, "worker_id", workerID, "reason", reason)
}
