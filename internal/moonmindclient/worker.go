package moonmindclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
)

// ClaimParams are the fields of a claim. Empty lists are left out of the
// request, as MoonMind's client does.
type ClaimParams struct {
	WorkerID           string
	LeaseSeconds       int
	AllowedTypes       []string
	WorkerCapabilities []string
}

// ClaimResult is the response to a claim. Job is nil when nothing was claimed,
// for example while the workers are paused.
type ClaimResult struct {
	Job    *Job
	System SystemStatus
}

// HeartbeatResult is the response to a heartbeat, the job document and the
// pause state.
type HeartbeatResult struct {
	Job    *Job
	System SystemStatus
}

// Finish holds the optional outcome fields of complete, fail and cancel
// acknowledgement. Empty strings and a nil Summary are left out.
type Finish struct {
	OutcomeCode   string
	OutcomeStage  string
	OutcomeReason string
	Summary       map[string]any
}

// addTo puts the set fields into a request body.
func (f *Finish) addTo(body map[string]any) {
	if f == nil {
		return
	}
	if f.OutcomeCode != "" {
		body["finishOutcomeCode"] = f.OutcomeCode
	}
	if f.OutcomeStage != "" {
		body["finishOutcomeStage"] = f.OutcomeStage
	}
	if f.OutcomeReason != "" {
		body["finishOutcomeReason"] = f.OutcomeReason
	}
	if f.Summary != nil {
		body["finishSummary"] = f.Summary
	}
}

// ClaimJob sends POST /api/queue/jobs/claim with workerId, leaseSeconds and
// the non-empty lists, and parses job (or null) and system.
func (c *Client) ClaimJob(ctx context.Context, p ClaimParams) (*ClaimResult, error) {
	body := map[string]any{"workerId": p.WorkerID, "leaseSeconds": p.LeaseSeconds}
	if len(p.AllowedTypes) > 0 {
		body["allowedTypes"] = p.AllowedTypes
	}
	if len(p.WorkerCapabilities) > 0 {
		body["workerCapabilities"] = p.WorkerCapabilities
	}
	const path = "/api/queue/jobs/claim"
	data, err := c.PostJSON(ctx, path, body)
	if err != nil {
		return nil, err
	}
	res := &ClaimResult{}
	if node := data["job"]; node != nil {
		if res.Job, err = parseJob(node); err != nil {
			return nil, fmt.Errorf("claim: %w", err)
		}
	}
	if res.System, err = parseSystem(data["system"]); err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	return res, nil
}

// Heartbeat sends POST /api/queue/jobs/{id}/heartbeat with workerId and
// leaseSeconds, and parses the job document and its system field.
func (c *Client) Heartbeat(ctx context.Context, jobID, workerID string, leaseSeconds int) (*HeartbeatResult, error) {
	data, err := c.PostJSON(ctx, jobPath(jobID, "/heartbeat"), map[string]any{"workerId": workerID, "leaseSeconds": leaseSeconds})
	if err != nil {
		return nil, err
	}
	res := &HeartbeatResult{}
	if res.Job, err = parseJob(data); err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	if res.System, err = parseSystem(data["system"]); err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	return res, nil
}

// CompleteJob sends POST /api/queue/jobs/{id}/complete with workerId, the
// result summary when not empty, and the finish fields.
func (c *Client) CompleteJob(ctx context.Context, jobID, workerID, resultSummary string, finish *Finish) (*Job, error) {
	body := map[string]any{"workerId": workerID}
	if resultSummary != "" {
		body["resultSummary"] = resultSummary
	}
	finish.addTo(body)
	return c.postForJob(ctx, "complete", jobPath(jobID, "/complete"), body)
}

// FailJob sends POST /api/queue/jobs/{id}/fail with workerId, errorMessage,
// retryable (always sent) and the finish fields.
func (c *Client) FailJob(ctx context.Context, jobID, workerID, errorMessage string, retryable bool, finish *Finish) (*Job, error) {
	body := map[string]any{"workerId": workerID, "errorMessage": errorMessage, "retryable": retryable}
	finish.addTo(body)
	return c.postForJob(ctx, "fail", jobPath(jobID, "/fail"), body)
}

// AckCancel sends POST /api/queue/jobs/{id}/cancel/ack with workerId, the
// message when not empty, and the finish fields.
func (c *Client) AckCancel(ctx context.Context, jobID, workerID, message string, finish *Finish) (*Job, error) {
	body := map[string]any{"workerId": workerID}
	if message != "" {
		body["message"] = message
	}
	finish.addTo(body)
	return c.postForJob(ctx, "cancel ack", jobPath(jobID, "/cancel/ack"), body)
}

// UpdateRuntimeState sends POST /api/queue/jobs/{id}/runtime-state with
// workerId and runtimeState.
func (c *Client) UpdateRuntimeState(ctx context.Context, jobID, workerID string, state map[string]any) (*Job, error) {
	body := map[string]any{"workerId": workerID, "runtimeState": state}
	return c.postForJob(ctx, "runtime state", jobPath(jobID, "/runtime-state"), body)
}

// AppendEvent sends POST /api/queue/jobs/{id}/events with workerId, level,
// message and, when not nil, payload.
func (c *Client) AppendEvent(ctx context.Context, jobID, workerID, level, message string, payload map[string]any) (*Event, error) {
	body := map[string]any{"workerId": workerID, "level": level, "message": message}
	if payload != nil {
		body["payload"] = payload
	}
	data, err := c.PostJSON(ctx, jobPath(jobID, "/events"), body)
	if err != nil {
		return nil, err
	}
	ev, err := parseEvent(data)
	if err != nil {
		return nil, fmt.Errorf("append event: %w", err)
	}
	return &ev, nil
}

// UploadArtifact sends the multipart upload of MoonMind's client to POST
// /api/queue/jobs/{id}/artifacts/upload: form fields name, workerId,
// contentType (when set) and digest ("sha256:" and the hex digest of
// content), and the file part "file".
func (c *Client) UploadArtifact(ctx context.Context, jobID, workerID, name, contentType string, content []byte) error {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	sum := sha256.Sum256(content)
	fields := [][2]string{{"name", name}, {"workerId", workerID}}
	if contentType != "" {
		fields = append(fields, [2]string{"contentType", contentType})
	}
	fields = append(fields, [2]string{"digest", "sha256:" + hex.EncodeToString(sum[:])})
	for _, f := range fields {
		if err := w.WriteField(f[0], f[1]); err != nil {
			return fmt.Errorf("build artifact upload: %w", err)
		}
	}
	partType := contentType
	if partType == "" {
		partType = "application/octet-stream"
	}
	header := textproto.MIMEHeader{}
	header.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, name))
	header.Set("Content-Type", partType)
	part, err := w.CreatePart(header)
	if err != nil {
		return fmt.Errorf("build artifact upload: %w", err)
	}
	if _, err := part.Write(content); err != nil {
		return fmt.Errorf("build artifact upload: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("build artifact upload: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.send(ctx, http.MethodPost, jobPath(jobID, "/artifacts/upload"), asWorker, "application/json", w.FormDataContentType(), &buf)
	if err != nil {
		return fmt.Errorf("artifact upload failed for job %s: %w", jobID, err)
	}
	resp.Body.Close()
	return nil
}

// postForJob posts body and parses the response as a job document.
func (c *Client) postForJob(ctx context.Context, op, path string, body map[string]any) (*Job, error) {
	data, err := c.PostJSON(ctx, path, body)
	if err != nil {
		return nil, err
	}
	job, err := parseJob(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return job, nil
}
