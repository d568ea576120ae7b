package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/moonmind/broker/worker"
)

// maxSleepSeconds bounds demo:sleep, so a typo cannot hold a worker for
// days.
const maxSleepSeconds = 86400

// demoMux routes the demo job types to their handlers.
func demoMux(logger *slog.Logger) *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.HandleFunc("demo:sleep", handleSleep)
	mux.HandleFunc("demo:echo", func(ctx context.Context, task *asynq.Task) error {
		return handleEcho(ctx, task, logger)
	})
	mux.HandleFunc("demo:fail", handleFail)
	return mux
}

// sleepProgress is the checkpoint of demo:sleep: whole seconds done.
type sleepProgress struct {
	Done int `json:"done"`
}

// handleSleep sleeps payload.seconds seconds, one second at a time. After
// each second it passes a checkpoint, where a quiesce parks it, and saves
// its progress, so a released job resumes where it stopped.
func handleSleep(ctx context.Context, task *asynq.Task) error {
	var payload struct {
		Seconds *int `json:"seconds"`
	}
	if err := json.Unmarshal(task.Payload(), &payload); err != nil {
		return worker.Permanent(fmt.Errorf("invalid demo:sleep payload: %w", err))
	}
	if payload.Seconds == nil || *payload.Seconds < 0 || *payload.Seconds > maxSleepSeconds {
		return worker.Permanent(fmt.Errorf("invalid demo:sleep payload: seconds must be a whole number from 0 to %d", maxSleepSeconds))
	}

	var progress sleepProgress
	if _, err := worker.LoadCheckpoint(ctx, &progress); err != nil {
		return worker.Permanent(err)
	}
	for progress.Done < *payload.Seconds {
		if err := worker.Checkpoint(ctx); err != nil {
			return err
		}
		timer := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		progress.Done++
		if err := worker.SaveCheckpoint(ctx, progress); err != nil {
			return err
		}
	}
	return worker.SetResult(ctx, fmt.Sprintf("slept %d seconds", *payload.Seconds))
}

// handleEcho logs the payload and completes with it as the result.
func handleEcho(ctx context.Context, task *asynq.Task, logger *slog.Logger) error {
	id, _ := worker.JobID(ctx)
	logger.Info("demo:echo", "job_id", id, "payload", string(task.Payload()))
	return worker.SetResult(ctx, string(task.Payload()))
}

// handleFail fails with payload.error; payload.retryable (default true)
// sets whether the broker may retry it.
func handleFail(_ context.Context, task *asynq.Task) error {
	var payload struct {
		Error     string `json:"error"`
		Retryable *bool  `json:"retryable"`
	}
	if err := json.Unmarshal(task.Payload(), &payload); err != nil {
		return worker.Permanent(fmt.Errorf("invalid demo:fail payload: %w", err))
	}
	if payload.Error == "" {
		payload.Error = "demo:fail failed as asked"
	}
	err := errors.New(payload.Error)
	if payload.Retryable != nil && !*payload.Retryable {
		return worker.Permanent(err)
	}
	return err
}
