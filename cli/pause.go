package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/moonmind/broker/broker"
	"github.com/spf13/cobra"
)

// DefaultWaitTimeout is how long pause --wait and wait-drained wait for the
// drain when --timeout is not given.
const DefaultWaitTimeout = time.Hour

// pauseOptions are the flags of the pause command.
type pauseOptions struct {
	mode            string
	reason          string
	expectedVersion int64
	wait            bool
	timeout         time.Duration
	dryRun          bool
}

func (a *app) pauseCommand() *cobra.Command {
	var o pauseOptions
	cmd := &cobra.Command{
		Use:   "pause --reason TEXT [--mode drain|quiesce]",
		Short: "Pause the workers: no new claims; running jobs finish (drain) or park (quiesce)",
		Long: `pause stops every worker from claiming new jobs.

  drain    running jobs finish normally (recommended for upgrades)
  quiesce  running jobs are also asked to park at their next checkpoint

With --wait, pause then waits like wait-drained until no job runs or is stale.
With --dry-run, nothing is changed: brokerctl shows the running jobs, the
longest-running one and the live workers that a pause would meet.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.reason = strings.TrimSpace(o.reason)
			if o.mode != string(broker.ModeDrain) && o.mode != string(broker.ModeQuiesce) {
				return usageErrorf("invalid --mode %q: use drain or quiesce", o.mode)
			}
			if o.reason == "" {
				return usageErrorf("missing --reason: say why the workers are paused, for example --reason \"Upgrading worker images\"")
			}
			if len([]rune(o.reason)) > broker.MaxReasonLength {
				return usageErrorf("--reason is %d characters long: use at most %d", len([]rune(o.reason)), broker.MaxReasonLength)
			}
			if o.timeout < 0 {
				return usageErrorf("invalid --timeout %s: use 0 (no limit) or a positive duration such as 30m", o.timeout)
			}
			c, err := a.client()
			if err != nil {
				return err
			}

			var expected *int64
			if cmd.Flags().Changed("expected-version") {
				expected = &o.expectedVersion
			}
			if o.dryRun {
				return a.runPauseDryRun(cmd.Context(), c, o, expected)
			}
			return a.runPause(cmd.Context(), c, o, expected)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.mode, "mode", string(broker.ModeDrain), "pause mode: drain (running jobs finish; recommended) or quiesce (running jobs park at their next checkpoint)")
	f.StringVar(&o.reason, "reason", "", "why the workers are paused, at most 1000 characters; recorded in the audit trail (required)")
	f.Int64Var(&o.expectedVersion, "expected-version", 0, "apply the pause only while the pause version is this number (from brokerctl status); otherwise fail with version_conflict")
	f.BoolVar(&o.wait, "wait", false, "after pausing, wait until no job runs or is stale, as wait-drained does")
	f.DurationVar(&o.timeout, "timeout", DefaultWaitTimeout, "with --wait: how long to wait for the drain, such as 30m; 0 means no limit. Exit code 3 when it runs out")
	f.BoolVar(&o.dryRun, "dry-run", false, "change nothing; show what a pause would meet: running jobs, the longest-running one and live workers")
	return cmd
}

func (a *app) runPause(ctx context.Context, c *client, o pauseOptions, expected *int64) error {
	req := pauseRequest{Action: "pause", Mode: o.mode, Reason: o.reason, ExpectedVersion: expected}
	var raw json.RawMessage
	if err := c.do(ctx, "POST", pausePath, nil, req, &raw); err != nil {
		return fmt.Errorf("pause the workers: %w", err)
	}
	if !o.wait {
		return a.printPauseResponse(raw)
	}

	// With --output json, only the final document of the wait goes to
	// stdout, so that stdout stays one JSON value.
	if !a.jsonOutput() {
		if err := a.printPauseResponse(raw); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout)
	}
	return a.waitDrained(ctx, c, o.timeout)
}

// printPauseResponse prints the snapshot that a pause or resume returned.
func (a *app) printPauseResponse(raw json.RawMessage) error {
	if a.jsonOutput() {
		return printJSON(a.stdout, raw)
	}
	var snap pauseSnapshot
	if err := json.Unmarshal(raw, &snap); err != nil {
		return fmt.Errorf("decode the pause state: %w", err)
	}
	a.printSnapshot(&snap)
	return nil
}

// dryRunReport is the JSON output of pause --dry-run.
type dryRunReport struct {
	DryRun         bool                `json:"dryRun"`
	WouldChange    bool                `json:"wouldChange"`
	RejectCode     string              `json:"rejectCode,omitempty"`
	CurrentVersion int64               `json:"currentVersion"`
	NextVersion    int64               `json:"nextVersion,omitempty"`
	Current        json.RawMessage     `json:"current"`
	RunningJobs    []broker.Job        `json:"runningJobs"`
	RunningListCut bool                `json:"runningListTruncated"`
	LongestRunning *broker.Job         `json:"longestRunning"`
	Workers        []broker.WorkerInfo `json:"workers"`
}

// maxDryRunJobs bounds the running-job listing of a dry run to one API page.
const maxDryRunJobs = 500

func (a *app) runPauseDryRun(ctx context.Context, c *client, o pauseOptions, expected *int64) error {
	var raw json.RawMessage
	if err := c.do(ctx, "GET", pausePath, nil, nil, &raw); err != nil {
		return fmt.Errorf("read the pause state: %w", err)
	}
	var snap pauseSnapshot
	if err := json.Unmarshal(raw, &snap); err != nil {
		return fmt.Errorf("decode the pause state: %w", err)
	}
	var running jobPage
	q := url.Values{"status": {"running"}, "limit": {fmt.Sprint(maxDryRunJobs)}}
	if err := c.do(ctx, "GET", "/api/queue/jobs", q, nil, &running); err != nil {
		return fmt.Errorf("list running jobs: %w", err)
	}
	var workers workerList
	if err := c.do(ctx, "GET", "/api/workers", nil, nil, &workers); err != nil {
		return fmt.Errorf("list workers: %w", err)
	}

	// Longest-running first, so the jobs that hold up a drain lead the list.
	sort.SliceStable(running.Items, func(i, j int) bool {
		a, b := running.Items[i], running.Items[j]
		if a.StartedAt != nil && b.StartedAt != nil && !a.StartedAt.Equal(*b.StartedAt) {
			return a.StartedAt.Before(*b.StartedAt)
		}
		return a.ID < b.ID
	})
	report := dryRunReport{
		DryRun:         true,
		CurrentVersion: snap.Version,
		Current:        raw,
		RunningJobs:    running.Items,
		RunningListCut: running.NextCursor != nil && *running.NextCursor != "",
		LongestRunning: longestRunning(running.Items),
		Workers:        liveWorkers(workers.Items),
	}
	if report.RunningJobs == nil {
		report.RunningJobs = []broker.Job{}
	}
	switch {
	case expected != nil && *expected != snap.Version:
		report.RejectCode = "version_conflict"
	case snap.WorkersPaused && snap.modeLabel() == o.mode && str(snap.Reason) == o.reason:
		report.RejectCode = "already_paused"
	default:
		report.WouldChange = true
		report.NextVersion = snap.Version + 1
	}

	if a.jsonOutput() {
		return printJSON(a.stdout, report)
	}
	a.printDryRun(&snap, o, report)
	return nil
}

func (a *app) printDryRun(snap *pauseSnapshot, o pauseOptions, r dryRunReport) {
	out := a.stdout
	fmt.Fprintln(out, "Dry run: nothing was changed.")
	current := "Running"
	if snap.WorkersPaused {
		current = "Paused (" + snap.modeLabel() + ")"
	}
	switch r.RejectCode {
	case "version_conflict":
		fmt.Fprintf(out, "The pause would be rejected with version_conflict: the current version is %d, not %d.\n", snap.Version, o.expectedVersion)
	case "already_paused":
		fmt.Fprintf(out, "The pause would be rejected with already_paused: the workers are already paused in %s mode with this reason.\n", o.mode)
	default:
		fmt.Fprintf(out, "The pause would change the workers from %s to Paused (%s), version %d to %d.\n", current, o.mode, r.CurrentVersion, r.NextVersion)
	}

	fmt.Fprintf(out, "\nRunning jobs: %d (stale: %d, queued: %d)\n", snap.Metrics.Running+snap.Metrics.StaleRunning, snap.Metrics.StaleRunning, snap.Metrics.Queued)
	if len(r.RunningJobs) > 0 {
		now := a.now()
		t := newTable(out)
		row(t, "ID", "TYPE", "WORKER", "ATTEMPT", "RUNNING FOR", "LEASE EXPIRES")
		for _, j := range r.RunningJobs {
			row(t, j.ID, j.Type, str(j.ClaimedBy), fmt.Sprint(j.Attempt), runningFor(j, now), formatTime(j.LeaseExpiresAt))
		}
		t.Flush()
		if r.RunningListCut {
			fmt.Fprintf(out, "(only the first %d running jobs are listed)\n", maxDryRunJobs)
		}
	}
	if j := r.LongestRunning; j != nil {
		fmt.Fprintf(out, "Longest running: %s (%s) on %s, running for %s\n", j.ID, j.Type, str(j.ClaimedBy), runningFor(*j, a.now()))
	}

	fmt.Fprintf(out, "\nLive workers: %d (acknowledged the current version: %d)\n", snap.Workers.Live, snap.Workers.Acknowledged)
	if len(r.Workers) > 0 {
		t := newTable(out)
		row(t, "ID", "LAST SEEN", "PAUSE VERSION", "ACKNOWLEDGED")
		for _, w := range r.Workers {
			row(t, w.ID, formatTime(&w.LastSeenAt), itoa(w.Version), yesNo(w.Acknowledged))
		}
		t.Flush()
	}
}

// longestRunning returns the running job that started first, or nil.
func longestRunning(jobs []broker.Job) *broker.Job {
	var longest *broker.Job
	for i := range jobs {
		j := &jobs[i]
		if j.StartedAt == nil {
			continue
		}
		if longest == nil || j.StartedAt.Before(*longest.StartedAt) {
			longest = j
		}
	}
	return longest
}

func liveWorkers(all []broker.WorkerInfo) []broker.WorkerInfo {
	live := []broker.WorkerInfo{}
	for _, w := range all {
		if w.Live {
			live = append(live, w)
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].ID < live[j].ID })
	return live
}

func runningFor(j broker.Job, now time.Time) string {
	if j.StartedAt == nil {
		return "-"
	}
	return formatDuration(now.Sub(*j.StartedAt))
}

func (a *app) resumeCommand() *cobra.Command {
	var reason string
	var force bool
	var expectedVersion int64
	cmd := &cobra.Command{
		Use:   "resume --reason TEXT [--force]",
		Short: "Let the workers claim jobs again",
		Long: `resume ends a pause. From drain mode the API rejects a resume with
not_drained while jobs still run or are stale; --force resumes anyway.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			reason = strings.TrimSpace(reason)
			if reason == "" {
				return usageErrorf("missing --reason: say why the workers resume, for example --reason \"Upgrade done\"")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			req := pauseRequest{Action: "resume", Reason: reason, ForceResume: force}
			if cmd.Flags().Changed("expected-version") {
				req.ExpectedVersion = &expectedVersion
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), "POST", pausePath, nil, req, &raw); err != nil {
				return fmt.Errorf("resume the workers: %w", err)
			}
			return a.printPauseResponse(raw)
		},
	}
	f := cmd.Flags()
	f.StringVar(&reason, "reason", "", "why the workers resume, at most 1000 characters; recorded in the audit trail (required)")
	f.BoolVar(&force, "force", false, "resume even though jobs still run or are stale (sends forceResume)")
	f.Int64Var(&expectedVersion, "expected-version", 0, "apply the resume only while the pause version is this number; otherwise fail with version_conflict")
	return cmd
}
