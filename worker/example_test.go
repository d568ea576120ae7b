package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/hibiken/asynq"

	"github.com/moonmind/broker/worker"
)

// resizeProgress is the checkpoint of an image resize job.
type resizeProgress struct {
	NextImage int `json:"nextImage"`
}

// handleResize resizes a batch of images. It passes a checkpoint between
// images, so a quiesce parks it there, and saves its progress, so a job
// released during a shutdown resumes at the next image.
func handleResize(ctx context.Context, task *asynq.Task) error {
	var payload struct {
		Images []string `json:"images"`
	}
	if err := json.Unmarshal(task.Payload(), &payload); err != nil {
		return worker.Permanent(fmt.Errorf("invalid payload: %w", err))
	}

	var progress resizeProgress
	if _, err := worker.LoadCheckpoint(ctx, &progress); err != nil {
		return err
	}
	for ; progress.NextImage < len(payload.Images); progress.NextImage++ {
		if err := worker.Checkpoint(ctx); err != nil {
			return err
		}
		// Resize payload.Images[progress.NextImage] here.
		if err := worker.SaveCheckpoint(ctx, progress); err != nil {
			return err
		}
	}
	return worker.SetResult(ctx, fmt.Sprintf("resized %d images", len(payload.Images)))
}

// A complete worker program: an asynq.ServeMux routes job types to
// handlers, and Run claims jobs until SIGINT or SIGTERM.
func Example() {
	mux := asynq.NewServeMux()
	mux.HandleFunc("image:resize", handleResize)
	mux.HandleFunc("email:", func(ctx context.Context, task *asynq.Task) error {
		id, _ := worker.JobID(ctx)
		attempt, _ := worker.Attempt(ctx)
		slog.Info("sending email", "job_id", id, "attempt", attempt, "job_type", task.Type())
		return nil
	})

	server, err := worker.NewServer(worker.Config{
		BrokerURL:     os.Getenv("BROKER_URL"),
		Token:         os.Getenv("BROKER_TOKEN"),
		Concurrency:   4,
		LeaseDuration: 2 * time.Minute,
		AllowedTypes:  []string{"image:resize", "email:welcome", "email:digest"},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := server.Run(mux); err != nil {
		log.Fatal(err)
	}
}

// Start and Shutdown let a program that already manages its own lifecycle
// embed a worker.
func ExampleServer_Start() {
	server, err := worker.NewServer(worker.Config{BrokerURL: "http://127.0.0.1:8080"})
	if err != nil {
		log.Fatal(err)
	}
	if err := server.Start(context.Background(), asynq.HandlerFunc(handleResize)); err != nil {
		log.Fatal(err)
	}

	// ... later, when the program stops:
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		log.Printf("worker shutdown: %v", err)
	}
}
