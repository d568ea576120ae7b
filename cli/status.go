package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
)

const pausePath = "/api/system/worker-pause"

func (a *app) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the pause state, drain metrics, workers and latest audit events",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			return a.runStatus(cmd.Context(), c)
		},
	}
}

func (a *app) runStatus(ctx context.Context, c *client) error {
	var raw json.RawMessage
	if err := c.do(ctx, "GET", pausePath, nil, nil, &raw); err != nil {
		return fmt.Errorf("read the pause state: %w", err)
	}
	var workersRaw json.RawMessage
	if err := c.do(ctx, "GET", "/api/workers", nil, nil, &workersRaw); err != nil {
		return fmt.Errorf("list workers: %w", err)
	}

	if a.jsonOutput() {
		var workers workerList
		if err := json.Unmarshal(workersRaw, &workers); err != nil {
			return fmt.Errorf("decode the worker list: %w", err)
		}
		return printJSON(a.stdout, map[string]any{"snapshot": raw, "workers": workers.Items})
	}

	var snap pauseSnapshot
	if err := json.Unmarshal(raw, &snap); err != nil {
		return fmt.Errorf("decode the pause state: %w", err)
	}
	var workers workerList
	if err := json.Unmarshal(workersRaw, &workers); err != nil {
		return fmt.Errorf("decode the worker list: %w", err)
	}
	a.printSnapshot(&snap)

	fmt.Fprintln(a.stdout)
	fmt.Fprintln(a.stdout, "Workers seen:")
	a.printWorkers(workers)

	fmt.Fprintln(a.stdout)
	fmt.Fprintln(a.stdout, "Latest audit events:")
	printAuditEvents(a.stdout, snap.Audit.Latest)
	return nil
}

// printSnapshot writes the pause state, drain metrics and worker counts.
func (a *app) printSnapshot(s *pauseSnapshot) {
	w := newTable(a.stdout)
	state := "Running"
	if s.WorkersPaused {
		state = "Paused (" + s.modeLabel() + ")"
	}
	row(w, "Workers:", state)
	row(w, "Reason:", str(s.Reason))
	row(w, "Requested by:", str(s.RequestedBy))
	row(w, "Requested at:", formatTime(s.RequestedAt))
	row(w, "Version:", strconv.FormatInt(s.Version, 10))
	if s.AuditPending {
		row(w, "Audit:", "pending (the change stands; the relay writes the audit row to Postgres later)")
	}
	row(w, "Safe to upgrade:", yesNo(s.safeToUpgrade()))
	w.Flush()

	fmt.Fprintln(a.stdout)
	w = newTable(a.stdout)
	m := s.Metrics
	row(w, "QUEUED", "DELAYED", "RUNNING", "STALE", "QUIESCED", "DEAD LETTER", "WORKERS LIVE", "ACKNOWLEDGED")
	row(w, itoa(m.Queued), itoa(m.Delayed), itoa(m.Running), itoa(m.StaleRunning), itoa(m.Quiesced),
		itoa(m.DeadLetter), itoa(s.Workers.Live), itoa(s.Workers.Acknowledged))
	w.Flush()
}

func (a *app) printWorkers(list workerList) {
	if len(list.Items) == 0 {
		fmt.Fprintln(a.stdout, "(none)")
		return
	}
	w := newTable(a.stdout)
	row(w, "ID", "LAST SEEN", "PAUSE VERSION", "LIVE", "ACKNOWLEDGED")
	for _, wk := range list.Items {
		row(w, wk.ID, formatTime(&wk.LastSeenAt), itoa(wk.Version), yesNo(wk.Live), yesNo(wk.Acknowledged))
	}
	w.Flush()
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (a *app) workersCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "workers", Short: "Inspect workers"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the workers seen recently, with their last pause version",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return getAndShow(a, cmd, "/api/workers", nil, "list workers", "worker list", a.printWorkers)
		},
	})
	return cmd
}
