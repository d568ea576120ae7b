package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/moonmind/broker/broker"
	"github.com/spf13/cobra"
)

func (a *app) jobsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "jobs", Short: "List, inspect, enqueue, cancel and recover jobs"}
	cmd.AddCommand(a.jobsListCommand(), a.jobsGetCommand(), a.jobsEnqueueCommand(), a.jobsCancelCommand(), a.jobsRecoverCommand())
	return cmd
}

func (a *app) jobsListCommand() *cobra.Command {
	var status, jobType, cursor string
	var stale bool
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first, one page at a time",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if status != "" && !broker.Status(status).Valid() {
				return usageErrorf("invalid --status %q: use one of %s", status, statusNames())
			}
			if limit < 1 || limit > 500 {
				return usageErrorf("invalid --limit %d: use 1 to 500", limit)
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if stale {
				q.Set("stale", "true")
				if status == "" {
					status = string(broker.StatusRunning)
				}
			}
			for name, value := range map[string]string{"status": status, "type": jobType, "cursor": cursor} {
				if value != "" {
					q.Set(name, value)
				}
			}
			return getAndShow(a, cmd, "/api/queue/jobs", q, "list jobs", "job list", func(page jobPage) {
				a.printJobs(page.Items)
				if page.NextCursor != nil && *page.NextCursor != "" {
					fmt.Fprintf(a.stdout, "\nNext page: add --cursor %s\n", *page.NextCursor)
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only jobs in this state: "+statusNames())
	f.StringVar(&jobType, "type", "", "only jobs of this type")
	f.BoolVar(&stale, "stale", false, "only running jobs whose lease expired (implies --status running)")
	f.IntVar(&limit, "limit", 50, "jobs per page, 1 to 500")
	f.StringVar(&cursor, "cursor", "", "page cursor printed under the previous page")
	return cmd
}

func statusNames() string {
	names := make([]string, len(broker.Statuses))
	for i, s := range broker.Statuses {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

func (a *app) printJobs(jobs []broker.Job) {
	if len(jobs) == 0 {
		fmt.Fprintln(a.stdout, "(none)")
		return
	}
	t := newTable(a.stdout)
	row(t, "ID", "TYPE", "STATUS", "PRIORITY", "ATTEMPT", "WORKER", "CREATED")
	for _, j := range jobs {
		created := j.CreatedAt
		row(t, j.ID, j.Type, string(j.Status), strconv.Itoa(j.Priority), fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts), str(j.ClaimedBy), formatTime(&created))
	}
	t.Flush()
}

// printJob writes the fields of one job an operator looks at first.
func (a *app) printJob(j *broker.Job) {
	t := newTable(a.stdout)
	created := j.CreatedAt
	row(t, "ID:", j.ID)
	row(t, "Type:", j.Type)
	row(t, "Status:", string(j.Status))
	row(t, "Priority:", strconv.Itoa(j.Priority))
	row(t, "Attempt:", fmt.Sprintf("%d of %d", j.Attempt, j.MaxAttempts))
	row(t, "Worker:", str(j.ClaimedBy))
	row(t, "Lease expires:", formatTime(j.LeaseExpiresAt))
	row(t, "Next attempt:", formatTime(j.NextAttemptAt))
	row(t, "Quiesced:", yesNo(j.Quiesced))
	row(t, "Cancel requested:", formatTime(j.CancelRequestedAt))
	row(t, "Result:", str(j.ResultSummary))
	row(t, "Error:", str(j.ErrorMessage))
	row(t, "Created:", formatTime(&created))
	row(t, "Started:", formatTime(j.StartedAt))
	row(t, "Finished:", formatTime(j.FinishedAt))
	row(t, "Payload:", orDash(string(j.Payload)))
	t.Flush()
}

// jobAction runs one request that returns a job document and prints it.
func (a *app) jobAction(cmd *cobra.Command, what, method, path string, body any) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.do(cmd.Context(), method, path, nil, body, &raw); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if a.jsonOutput() {
		return printJSON(a.stdout, raw)
	}
	var job broker.Job
	if err := json.Unmarshal(raw, &job); err != nil {
		return fmt.Errorf("decode the job: %w", err)
	}
	a.printJob(&job)
	return nil
}

func jobPath(id string, suffix string) string {
	return "/api/queue/jobs/" + url.PathEscape(id) + suffix
}

func (a *app) jobsGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show one job",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.jobAction(cmd, "read job "+args[0], "GET", jobPath(args[0], ""), nil)
		},
	}
}

// enqueueRequest is the body of POST /api/queue/jobs.
type enqueueRequest struct {
	Type                 string          `json:"type"`
	Priority             int             `json:"priority,omitempty"`
	Payload              json.RawMessage `json:"payload,omitempty"`
	AffinityKey          string          `json:"affinityKey,omitempty"`
	RequiredCapabilities []string        `json:"requiredCapabilities,omitempty"`
	MaxAttempts          int             `json:"maxAttempts,omitempty"`
	RunAt                string          `json:"runAt,omitempty"`
	IdempotencyKey       string          `json:"idempotencyKey,omitempty"`
}

func (a *app) jobsEnqueueCommand() *cobra.Command {
	var req enqueueRequest
	var payload, runAt string
	var delay time.Duration
	cmd := &cobra.Command{
		Use:   "enqueue --type TYPE [--payload JSON]",
		Short: "Enqueue a job",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(req.Type) == "" {
				return usageErrorf("missing --type: name the job type, for example --type demo:sleep")
			}
			if payload != "" {
				var obj map[string]any
				if err := json.Unmarshal([]byte(payload), &obj); err != nil {
					return usageErrorf("invalid --payload: give a JSON object such as '{\"seconds\": 5}': %v", err)
				}
				req.Payload = json.RawMessage(payload)
			}

			if runAt != "" && delay != 0 {
				return usageErrorf("give --run-at or --delay, not both")
			}
			if runAt != "" {
				t, err := time.Parse(time.RFC3339, runAt)
				if err != nil {
					return usageErrorf("invalid --run-at %q: use RFC 3339, such as 2026-12-04T21:00:00Z", runAt)
				}
				req.RunAt = t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
			}
			if delay < 0 {
				return usageErrorf("invalid --delay %s: use a positive duration such as 90s", delay)
			}
			if delay > 0 {
				req.RunAt = a.now().Add(delay).UTC().Format("2006-01-02T15:04:05.000Z07:00")
			}

			return a.jobAction(cmd, "enqueue a job", "POST", "/api/queue/jobs", req)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Type, "type", "", "job type, for example demo:sleep (required)")
	f.StringVar(&payload, "payload", "", "job payload as a JSON object; default {}")
	f.IntVar(&req.Priority, "priority", 0, "priority; higher runs first")
	f.IntVar(&req.MaxAttempts, "max-attempts", 0, "attempts before the job goes to dead letter, 1 to 1000; 0 uses the broker default")
	f.StringVar(&req.AffinityKey, "affinity-key", "", "affinity key passed to workers")
	f.StringSliceVar(&req.RequiredCapabilities, "capability", nil, "capability a worker must have to claim the job; repeat or separate with commas")
	f.StringVar(&runAt, "run-at", "", "do not run before this RFC 3339 time")
	f.DurationVar(&delay, "delay", 0, "do not run before this long from now, such as 90s")
	f.StringVar(&req.IdempotencyKey, "idempotency-key", "", "key that makes a repeated enqueue return the first job instead of a new one")
	return cmd
}

func (a *app) jobsCancelCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel ID [--reason TEXT]",
		Short: "Cancel a job: a queued job ends at once, a running one is asked to stop",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.jobAction(cmd, "cancel job "+args[0], "POST", jobPath(args[0], "/cancel"), map[string]string{"reason": reason})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the job is cancelled; stored on the job")
	return cmd
}

func (a *app) jobsRecoverCommand() *cobra.Command {
	var mode string
	cmd := &cobra.Command{
		Use:   "recover ID --mode requeue|cancel",
		Short: "Recover a stale running job (its lease expired): requeue it or cancel it",
		Args:  exactArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mode != string(broker.RecoverRequeue) && mode != string(broker.RecoverCancel) {
				return usageErrorf("invalid --mode %q: use requeue or cancel", mode)
			}
			return a.jobAction(cmd, "recover job "+args[0], "POST", jobPath(args[0], "/recover"), map[string]string{"mode": mode})
		},
	}
	cmd.Flags().StringVar(&mode, "mode", string(broker.RecoverRequeue), "requeue (back to the queue, uses an attempt) or cancel (ends the job)")
	return cmd
}
