// Package worker runs MoonMind Broker jobs in a Go program. A Server
// claims jobs over the broker's REST API with long polls, runs each with
// an asynq.Handler, keeps its lease alive with heartbeats, and reports the
// outcome. Client is the HTTP client of the worker endpoints beneath it.
//
// # Handlers
//
// Handlers are asynq.Handler values, so asynq.ServeMux, asynq.HandlerFunc
// and existing asynq handlers work unchanged. Each job becomes
// asynq.NewTask(job.Type, payload), where payload is the job's JSON
// payload. The handler's result decides the outcome:
//
//   - nil completes the job (resultSummary from SetResult);
//   - an error fails it as retryable; the broker retries it with backoff
//     while attempts are left;
//   - an error wrapping asynq.SkipRetry or asynq.RevokeTask (see also
//     Permanent) fails it for good, with retryable false;
//   - a panic is recovered and fails the job as retryable, with the
//     message "panic: <value>";
//   - when an operator cancels the job, the handler's context is
//     cancelled and, once the handler returns, the cancel is
//     acknowledged, so the job ends cancelled;
//   - when the lease is lost (the broker returns lease_lost), the
//     handler's context is cancelled and its result is not reported;
//   - when the server shuts down and the handler does not finish within
//     Config.ShutdownTimeout, its context is cancelled and the job is
//     released with its latest checkpoint, so the attempt is not used.
//
// As its last step a shutdown has the broker release every job still
// held by Config.WorkerID. That hands back a job the broker granted to a
// claim the shutdown cancelled, whose response never arrived. Two live
// processes must therefore not share a worker id.
//
// context.Cause of a cancelled handler context distinguishes these cases:
// ErrLeaseLost, ErrCancelRequested or ErrShuttingDown.
//
// # Differences from an asynq server
//
// The handler context does not come from asynq, so asynq.GetTaskID,
// asynq.GetRetryCount, asynq.GetMaxRetry and asynq.GetQueueName return
// ok false. Use JobID, Attempt (retry count + 1) and ClaimedJob
// (MaxAttempts, Priority and the rest of the job document) instead. The
// task's ResultWriter is nil and its Headers are empty: use SetResult and
// SetFinishDetails. asynq task options (queues, deadlines, unique keys) do
// not apply; the broker's job fields replace them.
//
// # Pauses
//
// While the broker's workers are paused, claims return no job. The server
// then logs "workers paused; not claiming" once per pause version and
// claims again when Config.PausePollInterval has passed since the last
// claim was sent. The broker holds a paused claim for its long-poll wait
// and grants a job as soon as a resume lands during that wait. When a
// claim or heartbeat first shows the pause cleared, the server logs
// "pause cleared" and idle slots claim at once. In drain mode running jobs
// go on to the end. In quiesce mode, a handler that calls Checkpoint parks
// there until the resume, and its heartbeats keep the lease and report it
// as quiesced. SaveCheckpoint and LoadCheckpoint carry progress across
// attempts.
package worker
