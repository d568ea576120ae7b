package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Fields of the job hash {ns}:job:<id>. Times are Unix milliseconds from the
// Redis clock; "" means unset. payload, requiredCapabilities, checkpoint and
// finishSummary hold JSON text. seq is the enqueue sequence (the score in the
// status sets) and member is the job's member in the ready sets, kept so a
// retried or released job returns to its original place.
const (
	fieldID                  = "id"
	fieldType                = "type"
	fieldPriority            = "priority"
	fieldPayload             = "payload"
	fieldAffinityKey         = "affinityKey"
	fieldRequiredCaps        = "requiredCapabilities"
	fieldMaxAttempts         = "maxAttempts"
	fieldAttempt             = "attempt"
	fieldStatus              = "status"
	fieldClaimedBy           = "claimedBy"
	fieldLeaseExpiresAt      = "leaseExpiresAt"
	fieldNextAttemptAt       = "nextAttemptAt"
	fieldResultSummary       = "resultSummary"
	fieldErrorMessage        = "errorMessage"
	fieldCancelRequestedAt   = "cancelRequestedAt"
	fieldCancelReason        = "cancelReason"
	fieldCancelAckMessage    = "cancelAckMessage"
	fieldCheckpoint          = "checkpoint"
	fieldQuiesced            = "quiesced"
	fieldIdempotencyKey      = "idempotencyKey"
	fieldResubmittedFrom     = "resubmittedFrom"
	fieldResubmittedAs       = "resubmittedAs"
	fieldFinishOutcomeCode   = "finishOutcomeCode"
	fieldFinishOutcomeStage  = "finishOutcomeStage"
	fieldFinishOutcomeReason = "finishOutcomeReason"
	fieldFinishSummary       = "finishSummary"
	fieldCreatedAt           = "createdAt"
	fieldUpdatedAt           = "updatedAt"
	fieldStartedAt           = "startedAt"
	fieldFinishedAt          = "finishedAt"
	fieldSeq                 = "seq"
	fieldMember              = "member"
)

// errEmptyJobHash means a script or HGETALL returned no fields for a job.
var errEmptyJobHash = errors.New("job hash is empty")

// decodeJobReply decodes a job hash returned as a flat HGETALL reply.
func decodeJobReply(reply any) (*Job, error) {
	flat, ok := reply.([]any)
	if !ok {
		return nil, fmt.Errorf("job reply is %T, want an array", reply)
	}
	f, err := hashFields(flat)
	if err != nil {
		return nil, err
	}
	return decodeJob(f)
}

// decodeJob builds a Job from the fields of its hash.
func decodeJob(f map[string]string) (*Job, error) {
	if len(f) == 0 {
		return nil, errEmptyJobHash
	}
	j := &Job{
		ID:                  f[fieldID],
		Type:                f[fieldType],
		Status:              Status(f[fieldStatus]),
		AffinityKey:         optionalString(f[fieldAffinityKey]),
		ClaimedBy:           optionalString(f[fieldClaimedBy]),
		ResultSummary:       optionalString(f[fieldResultSummary]),
		ErrorMessage:        optionalString(f[fieldErrorMessage]),
		CancelReason:        optionalString(f[fieldCancelReason]),
		CancelAckMessage:    optionalString(f[fieldCancelAckMessage]),
		Quiesced:            f[fieldQuiesced] == "1",
		IdempotencyKey:      optionalString(f[fieldIdempotencyKey]),
		ResubmittedFrom:     optionalString(f[fieldResubmittedFrom]),
		ResubmittedAs:       optionalString(f[fieldResubmittedAs]),
		FinishOutcomeCode:   optionalString(f[fieldFinishOutcomeCode]),
		FinishOutcomeStage:  optionalString(f[fieldFinishOutcomeStage]),
		FinishOutcomeReason: optionalString(f[fieldFinishOutcomeReason]),
		Payload:             optionalJSON(f[fieldPayload]),
		Checkpoint:          optionalJSON(f[fieldCheckpoint]),
		FinishSummary:       optionalJSON(f[fieldFinishSummary]),
	}
	if j.Payload == nil {
		j.Payload = json.RawMessage("{}")
	}

	var err error
	if j.Priority, err = intField(f, fieldPriority); err != nil {
		return nil, err
	}
	if j.MaxAttempts, err = intField(f, fieldMaxAttempts); err != nil {
		return nil, err
	}
	if j.Attempt, err = intField(f, fieldAttempt); err != nil {
		return nil, err
	}

	j.RequiredCapabilities = []string{}
	if caps := f[fieldRequiredCaps]; caps != "" {
		if err := json.Unmarshal([]byte(caps), &j.RequiredCapabilities); err != nil {
			return nil, fmt.Errorf("job %s: decode requiredCapabilities %q: %w", j.ID, caps, err)
		}
	}

	times := []struct {
		name string
		dst  **time.Time
	}{
		{fieldLeaseExpiresAt, &j.LeaseExpiresAt},
		{fieldNextAttemptAt, &j.NextAttemptAt},
		{fieldCancelRequestedAt, &j.CancelRequestedAt},
		{fieldStartedAt, &j.StartedAt},
		{fieldFinishedAt, &j.FinishedAt},
	}
	for _, tf := range times {
		if *tf.dst, err = optionalTime(f[tf.name]); err != nil {
			return nil, fmt.Errorf("job %s: field %s: %w", j.ID, tf.name, err)
		}
	}
	created, err := optionalTime(f[fieldCreatedAt])
	if err != nil || created == nil {
		return nil, fmt.Errorf("job %s: invalid createdAt %q", j.ID, f[fieldCreatedAt])
	}
	j.CreatedAt = *created
	j.UpdatedAt = *created
	if updated, err := optionalTime(f[fieldUpdatedAt]); err == nil && updated != nil {
		j.UpdatedAt = *updated
	}
	return j, nil
}

func intField(f map[string]string, name string) (int, error) {
	v := f[name]
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("job %s: field %s is %q, want an integer", f[fieldID], name, v)
	}
	return n, nil
}

// optionalJSON returns nil for "" and the raw text otherwise.
func optionalJSON(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}
