package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// pollInterval is how often wait-drained reads the snapshot when the event
// stream is unavailable.
const pollInterval = time.Second

const eventsPath = "/api/system/worker-pause/events"

// errResumed means the workers were resumed while wait-drained waited.
var errResumed = errors.New("the workers were resumed while waiting for the drain")

func (a *app) waitDrainedCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait-drained [--timeout D]",
		Short: "Wait until it is safe to upgrade: paused, and no job running or stale",
		Long: `wait-drained blocks until the workers are paused and no job is running
or stale. It follows the API's event stream, or reads the state about once a
second where the stream is unavailable.

On a terminal it redraws one progress line; otherwise it prints a line each
time a count changes.

Exit codes: 0 safe to upgrade; 1 error (also when someone resumes the
workers meanwhile); 2 usage error or the workers are not paused; 3 timeout,
after listing the jobs still running or stale.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout < 0 {
				return usageErrorf("invalid --timeout %s: use 0 (no limit) or a positive duration such as 30m", timeout)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			return a.waitDrained(cmd.Context(), c, timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", DefaultWaitTimeout, "how long to wait for the drain, such as 30m; 0 means no limit. Exit code 3 when it runs out")
	return cmd
}

// waitDrained blocks until the snapshot reports safe to upgrade, the workers
// resume, timeout passes (a *timeoutError) or ctx ends.
func (a *app) waitDrained(ctx context.Context, c *client, timeout time.Duration) error {
	var first pauseSnapshot
	if err := c.do(ctx, "GET", pausePath, nil, nil, &first); err != nil {
		return fmt.Errorf("read the pause state: %w", err)
	}
	if !first.WorkersPaused {
		return usageErrorf("the workers are not paused (version %d): pause them first with brokerctl pause --reason TEXT", first.Version)
	}

	waitCtx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// With --output json, stdout carries only the final JSON document, so
	// the progress lines go to stderr.
	progressOut := a.stdout
	if a.jsonOutput() {
		progressOut = a.stderr
	}
	p := &progress{w: progressOut, terminal: isTerminal(progressOut), start: a.now(), now: a.now}

	done, err := p.observe(&first)
	if done || err != nil {
		return a.finishWait(p, err)
	}

	err = a.followStream(waitCtx, c, p)
	if err != nil && !errors.Is(err, errStreamUnavailable) {
		return a.finishWait(p, a.waitError(ctx, waitCtx, c, timeout, err))
	}
	if errors.Is(err, errStreamUnavailable) {
		p.interrupt()
		fmt.Fprintf(a.stderr, "brokerctl: %v; reading the state every %s instead\n", err, pollInterval)
		err = a.poll(waitCtx, c, p)
	}
	return a.finishWait(p, a.waitError(ctx, waitCtx, c, timeout, err))
}

// finishWait ends the progress line and prints the outcome.
func (a *app) finishWait(p *progress, err error) error {
	p.interrupt()
	if err != nil {
		return err
	}
	waited := formatDuration(a.now().Sub(p.start))
	if a.jsonOutput() {
		return printJSON(a.stdout, map[string]any{"safeToUpgrade": true, "waited": waited, "snapshot": p.latest})
	}
	fmt.Fprintf(a.stdout, "Safe to upgrade: the workers are paused and no job is running or stale (waited %s).\n", waited)
	return nil
}

// waitError turns the end of the wait deadline into a *timeoutError that
// lists the jobs still running or stale.
func (a *app) waitError(ctx, waitCtx context.Context, c *client, timeout time.Duration, err error) error {
	if err == nil || ctx.Err() != nil || !errors.Is(waitCtx.Err(), context.DeadlineExceeded) {
		return err
	}
	var running, stale jobPage
	q := url.Values{"status": {"running"}, "limit": {"500"}}
	if listErr := c.do(ctx, "GET", "/api/queue/jobs", q, nil, &running); listErr != nil {
		return &timeoutError{err: fmt.Errorf("timed out after %s waiting for the drain; listing the running jobs failed too: %w", timeout, listErr)}
	}
	q.Set("stale", "true")
	if listErr := c.do(ctx, "GET", "/api/queue/jobs", q, nil, &stale); listErr != nil {
		return &timeoutError{err: fmt.Errorf("timed out after %s waiting for the drain; listing the stale jobs failed too: %w", timeout, listErr)}
	}

	staleIDs := map[string]bool{}
	for _, j := range stale.Items {
		staleIDs[j.ID] = true
	}
	if a.jsonOutput() {
		staleList := make([]string, 0, len(stale.Items))
		for _, j := range stale.Items {
			staleList = append(staleList, j.ID)
		}
		report := map[string]any{"safeToUpgrade": false, "timedOut": true, "runningJobs": running.Items, "staleJobIds": staleList}
		if printErr := printJSON(a.stdout, report); printErr != nil {
			return printErr
		}
	} else {
		fmt.Fprintln(a.stdout, "Jobs still running or stale:")
		t := newTable(a.stdout)
		row(t, "ID", "TYPE", "WORKER", "STATE", "RUNNING FOR")
		for _, j := range running.Items {
			state := "running"
			if staleIDs[j.ID] {
				state = "stale"
			}
			row(t, j.ID, j.Type, str(j.ClaimedBy), state, runningFor(j, a.now()))
		}
		t.Flush()
	}
	return &timeoutError{err: fmt.Errorf("timed out after %s waiting for the drain: %d job(s) still running, %d of them stale; recover stale jobs with brokerctl jobs recover ID, or wait longer", timeout, len(running.Items), len(stale.Items))}
}

// errStreamUnavailable means the event stream could not be opened or ended;
// the caller falls back to polling.
var errStreamUnavailable = errors.New("the pause event stream is unavailable")

// followStream reads server-sent events until a snapshot is safe, the
// workers resume, or the stream fails.
func (a *app) followStream(ctx context.Context, c *client, p *progress) error {
	resp, err := c.send(ctx, "GET", eventsPath, nil, nil)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %v", errStreamUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		apiErr := decodeAPIError(resp.StatusCode, data)
		if resp.StatusCode == 401 || resp.StatusCode == 403 {
			return fmt.Errorf("open the pause event stream: %w", apiErr)
		}
		return fmt.Errorf("%w: %v", errStreamUnavailable, apiErr)
	}

	err = readEvents(resp.Body, func(event string, data []byte) (bool, error) {
		if event != "pause" && event != "snapshot" {
			return false, nil
		}
		var snap pauseSnapshot
		if err := json.Unmarshal(data, &snap); err != nil {
			return false, fmt.Errorf("decode a %s event: %w", event, err)
		}
		return p.observe(&snap)
	})
	if err == nil || errors.Is(err, errResumed) || errors.Is(err, errStop) {
		if errors.Is(err, errStop) {
			return nil
		}
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %v", errStreamUnavailable, err)
}

// errStop ends readEvents once the handler saw a safe snapshot.
var errStop = errors.New("stop reading events")

// readEvents parses a text/event-stream body and calls handle for each
// event. It returns errStop when handle reports done, handle's error, or
// io.ErrUnexpectedEOF when the stream ends.
func readEvents(body io.Reader, handle func(event string, data []byte) (bool, error)) error {
	scanner := bufio.NewScanner(body)
	scanner.Buffer(make([]byte, 64*1024), 4<<20)
	event := ""
	var data []string
	for scanner.Scan() {
		line := scanner.Text()
		switch {
		case line == "":
			if len(data) > 0 {
				name := event
				if name == "" {
					name = "message"
				}
				done, err := handle(name, []byte(strings.Join(data, "\n")))
				if err != nil {
					return err
				}
				if done {
					return errStop
				}
			}
			event, data = "", nil
		case strings.HasPrefix(line, ":"):
			// A comment line, sent as a keep-alive.
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := scanner.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// poll reads the snapshot every pollInterval until it is safe.
func (a *app) poll(ctx context.Context, c *client, p *progress) error {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
		var snap pauseSnapshot
		if err := c.do(ctx, "GET", pausePath, nil, nil, &snap); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read the pause state: %w", err)
		}
		done, err := p.observe(&snap)
		if done || err != nil {
			return err
		}
	}
}

// progress shows the drain as one redrawn line on a terminal, or as a line
// per change elsewhere.
type progress struct {
	w        io.Writer
	terminal bool
	start    time.Time
	now      func() time.Time
	last     string // the counts printed last, without the elapsed time
	latest   *pauseSnapshot
	drawn    bool // a terminal line is on screen without a newline
}

// observe shows snap and reports whether it is safe to upgrade. It returns
// errResumed when the workers no longer are paused.
func (p *progress) observe(snap *pauseSnapshot) (bool, error) {
	if !snap.WorkersPaused {
		return false, fmt.Errorf("%w (version %d)", errResumed, snap.Version)
	}
	p.latest = snap
	m := snap.Metrics
	counts := fmt.Sprintf("paused (%s) queued %d  running %d  stale %d  quiesced %d  workers acknowledged %d/%d",
		snap.modeLabel(), m.Queued, m.Running, m.StaleRunning, m.Quiesced, snap.Workers.Acknowledged, snap.Workers.Live)
	elapsed := formatDuration(p.now().Sub(p.start))
	if p.terminal {
		fmt.Fprintf(p.w, "\r\x1b[K%s  elapsed %s", counts, elapsed)
		p.drawn = true
	} else if counts != p.last {
		fmt.Fprintf(p.w, "%s  elapsed %s\n", counts, elapsed)
	}
	p.last = counts
	return snap.safeToUpgrade(), nil
}

// interrupt ends a redrawn terminal line so that the next output starts on
// a fresh line.
func (p *progress) interrupt() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
