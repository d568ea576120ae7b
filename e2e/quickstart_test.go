package e2e

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

const (
	pauseReason  = "Upgrading worker images"
	resumeReason = "Deployment complete"
	pausedMsg    = "workers paused; not claiming"
	clearedMsg   = "pause cleared"
	// drainTimeout bounds every wait of this test; each wait ends as soon
	// as its condition holds.
	drainTimeout = 60 * time.Second
)

// TestQuickstartUpgradeFlow runs the operator's upgrade flow of
// docs/quickstart.md on the real binaries: the curl, jq and psql blocks
// verbatim, then the brokerctl blocks.
func TestQuickstartUpgradeFlow(t *testing.T) {
	requireTools(t, "bash", "curl", "jq", "psql")
	blocks := quickstartBlocks(t, "baseline", "pause", "claim", "progress", "resume", "audit-psql",
		"audit-api", "enqueue", "brokerctl-status", "brokerctl-pause", "brokerctl-wait", "brokerctl-resume", "brokerctl-audit")
	start := time.Now()
	step := func(name string) { t.Logf("%6s  %s", time.Since(start).Round(100*time.Millisecond), name) }
	s := startStack(t)
	step("brokerd ready")
	w1 := s.startWorker("worker-1")
	w2 := s.startWorker("worker-2")

	// Two long jobs keep both workers (one job at a time each) busy
	// through the pause; four short ones wait behind them.
	var longJobs, shortJobs []string
	for range 2 {
		longJobs = append(longJobs, s.enqueueSleep(6))
	}
	for range 4 {
		shortJobs = append(shortJobs, s.enqueueSleep(1))
	}
	testutil.WaitFor(t, drainTimeout, "both workers to run a long job", func() bool {
		return s.jobStatus(longJobs[0]) == "running" && s.jobStatus(longJobs[1]) == "running"
	})

	step("baseline")
	// 1. Baseline.
	var base snapshot
	s.runJSON("baseline", blocks["baseline"], &base)
	if base.WorkersPaused {
		t.Fatalf("baseline: workersPaused true, want false")
	}
	if base.Version < 1 {
		t.Fatalf("baseline: version %d, want >= 1", base.Version)
	}
	var raw map[string]any
	s.runJSON("baseline (raw)", blocks["baseline"], &raw)
	metrics, ok := raw["metrics"].(map[string]any)
	if !ok {
		t.Fatalf("baseline: no metrics object in %v", raw)
	}
	for _, key := range []string{"queued", "delayed", "running", "staleRunning", "quiesced", "deadLetter", "isDrained"} {
		if _, ok := metrics[key]; !ok {
			t.Errorf("baseline: metrics lack %q: %v", key, metrics)
		}
	}
	if base.Metrics.Running != 2 {
		t.Errorf("baseline: running %d, want 2", base.Metrics.Running)
	}

	step("pause")
	// 2. Pause in drain mode.
	var paused snapshot
	s.runJSON("pause", blocks["pause"], &paused)
	if !paused.WorkersPaused {
		t.Fatal("pause: workersPaused false, want true")
	}
	if paused.Version != base.Version+1 {
		t.Fatalf("pause: version %d, want %d", paused.Version, base.Version+1)
	}
	if paused.Mode == nil || *paused.Mode != "drain" {
		t.Errorf("pause: mode %v, want drain", deref(paused.Mode))
	}
	if paused.Reason == nil || *paused.Reason != pauseReason {
		t.Errorf("pause: reason %v, want %q", deref(paused.Reason), pauseReason)
	}
	if paused.RequestedBy == nil || *paused.RequestedBy != "operator" {
		t.Errorf("pause: requestedBy %v, want operator (the bootstrap token's name)", deref(paused.RequestedBy))
	}
	queuedAtPause := paused.Metrics.Queued
	if queuedAtPause < 1 {
		t.Fatalf("pause: queued %d, want the short jobs still waiting", queuedAtPause)
	}

	step("manual claim")
	// 3. A manual claim with the worker token gets no job and the pause.
	out, code := s.runShell("claim", blocks["claim"])
	if code != 0 {
		t.Fatalf("claim: exit %d\n%s", code, out)
	}
	body, status, found := strings.Cut(strings.TrimSpace(out), "\nHTTP status: ")
	if !found || status != "200" {
		t.Fatalf("claim: want HTTP status 200, got output:\n%s", out)
	}
	var claim struct {
		Job    json.RawMessage `json:"job"`
		System *struct {
			WorkersPaused bool  `json:"workersPaused"`
			Version       int64 `json:"version"`
		} `json:"system"`
	}
	if err := json.Unmarshal([]byte(body), &claim); err != nil {
		t.Fatalf("claim: body is not JSON: %v\n%s", err, body)
	}
	if string(claim.Job) != "null" {
		t.Errorf("claim: job %s, want null", claim.Job)
	}
	if claim.System == nil || !claim.System.WorkersPaused || claim.System.Version != paused.Version {
		t.Errorf("claim: system %+v, want workersPaused true at version %d", claim.System, paused.Version)
	}

	step("watch the drain")
	// A worker token cannot resume, and the rejected call changes nothing.
	var rejected struct {
		Code string `json:"code"`
	}
	s.apiAs(s.worker, http.MethodPost, "/api/system/worker-pause",
		map[string]any{"action": "resume", "reason": "not allowed"}, http.StatusForbidden, &rejected)
	if rejected.Code != "forbidden" {
		t.Errorf("resume with the worker token: code %q, want forbidden", rejected.Code)
	}
	if snap := s.snapshot(); !snap.WorkersPaused || snap.Version != paused.Version {
		t.Errorf("after the rejected resume: paused %v version %d, want true and %d", snap.WorkersPaused, snap.Version, paused.Version)
	}

	// 4. Running falls to 0, queued stays, isDrained turns true.
	var progress struct {
		WorkersPaused bool  `json:"workersPaused"`
		Version       int64 `json:"version"`
		Metrics       struct {
			Queued       int64 `json:"queued"`
			Running      int64 `json:"running"`
			StaleRunning int64 `json:"staleRunning"`
			IsDrained    bool  `json:"isDrained"`
		} `json:"metrics"`
	}
	testutil.WaitFor(t, drainTimeout, "running to fall to 0", func() bool {
		s.runJSON("progress", blocks["progress"], &progress)
		if progress.Metrics.Queued != queuedAtPause {
			t.Fatalf("progress: queued %d while paused, want %d", progress.Metrics.Queued, queuedAtPause)
		}
		return progress.Metrics.Running == 0
	})
	if !progress.Metrics.IsDrained || progress.Metrics.StaleRunning != 0 {
		t.Errorf("progress: isDrained %v staleRunning %d after running reached 0, want true and 0",
			progress.Metrics.IsDrained, progress.Metrics.StaleRunning)
	}
	if !progress.WorkersPaused || progress.Version != paused.Version {
		t.Errorf("progress: workersPaused %v version %d, want true and %d", progress.WorkersPaused, progress.Version, paused.Version)
	}
	for _, id := range shortJobs {
		if st := s.jobStatus(id); st != "queued" {
			t.Errorf("job %s is %s while paused, want queued", id, st)
		}
	}
	if out, code := s.runShell("brokerctl-wait", blocks["brokerctl-wait"]); code != 0 || !strings.Contains(out, "Safe to upgrade") {
		t.Errorf("brokerctl wait-drained: exit %d, want 0 and \"Safe to upgrade\" when drained\n%s", code, out)
	}
	if out, code := s.runShell("brokerctl-status", blocks["brokerctl-status"]); code != 0 || !strings.Contains(out, pauseReason) {
		t.Errorf("brokerctl status: exit %d, want 0 and the reason %q in:\n%s", code, pauseReason, out)
	}

	step("worker pause logs")
	// Each worker logs the pause once for this version, however often it
	// claims while paused, and logs no error.
	for _, w := range []*process{w1, w2} {
		testutil.WaitFor(t, drainTimeout, w.name+" to log the pause", func() bool {
			return countMessages(t, w, pausedMsg, paused.Version) >= 1
		})
	}

	step("resume")
	// 5. Resume.
	var resumed snapshot
	s.runJSON("resume", blocks["resume"], &resumed)
	if resumed.WorkersPaused {
		t.Error("resume: workersPaused true, want false")
	}
	if resumed.Mode != nil {
		t.Errorf("resume: mode %q, want null", *resumed.Mode)
	}
	if resumed.Version != paused.Version+1 {
		t.Errorf("resume: version %d, want %d", resumed.Version, paused.Version+1)
	}
	for _, w := range []*process{w1, w2} {
		testutil.WaitFor(t, drainTimeout, w.name+" to log "+clearedMsg, func() bool {
			return countMessages(t, w, clearedMsg, resumed.Version) >= 1
		})
	}
	step("wait for the jobs to finish")
	testutil.WaitFor(t, drainTimeout, "the waiting jobs to finish after resume", func() bool {
		for _, id := range append(append([]string{}, longJobs...), shortJobs...) {
			if s.jobStatus(id) != "succeeded" {
				return false
			}
		}
		return true
	})
	for _, w := range []*process{w1, w2} {
		if n := countMessages(t, w, pausedMsg, paused.Version); n != 1 {
			t.Errorf("%s logged %q %d times for version %d, want once", w.name, pausedMsg, n, paused.Version)
		}
		if n := countMessages(t, w, clearedMsg, resumed.Version); n != 1 {
			t.Errorf("%s logged %q %d times for version %d, want once", w.name, clearedMsg, n, resumed.Version)
		}
		if bad := errorLines(t, w); len(bad) > 0 {
			t.Errorf("%s logged errors:\n%s", w.name, strings.Join(bad, "\n"))
		}
	}

	step("audit trail")
	// 6. The audit trail holds exactly the pause and the resume.
	if out, code := s.runShell("audit-psql", blocks["audit-psql"]); code != 0 ||
		!strings.Contains(out, pauseReason) || !strings.Contains(out, resumeReason) {
		t.Errorf("audit-psql: exit %d, want 0 and both reasons in:\n%s", code, out)
	}
	// NOTE: docs/audit.md gives a resume row a null mode while
	// docs/redis-keys.md gives it the mode it ended; both are accepted
	// until the two agree.
	got := auditRows(t, s)
	wantPause := "pause|drain|" + pauseReason + "|operator|" + itoa(paused.Version)
	resumeRows := []string{
		"resume||" + resumeReason + "|operator|" + itoa(resumed.Version),
		"resume|drain|" + resumeReason + "|operator|" + itoa(resumed.Version),
	}
	if len(got) != 2 || got[0] != wantPause || !slices.Contains(resumeRows, got[1]) {
		t.Errorf("system_control_events rows:\n%s\nwant:\n%s\n%s", strings.Join(got, "\n"), wantPause, resumeRows[0])
	}
	out, code = s.runShell("audit-api", blocks["audit-api"])
	if code != 0 || !strings.Contains(out, pauseReason) || !strings.Contains(out, resumeReason) {
		t.Errorf("audit-api: exit %d, want 0 and both reasons in:\n%s", code, out)
	}

	step("brokerctl round")
	// The same flow with brokerctl: pause --wait returns once the new
	// long job has finished, then resume.
	longJob := s.enqueueSleep(2)
	testutil.WaitFor(t, drainTimeout, "a worker to take the next long job", func() bool {
		return s.jobStatus(longJob) == "running"
	})
	if out, code := s.runShell("brokerctl-pause", blocks["brokerctl-pause"]); code != 0 {
		t.Fatalf("brokerctl pause --wait: exit %d, want 0\n%s", code, out)
	}
	if st := s.jobStatus(longJob); st != "succeeded" {
		t.Errorf("after brokerctl pause --wait returned, the running job is %s, want succeeded", st)
	}
	if snap := s.snapshot(); !snap.WorkersPaused || snap.Version != resumed.Version+1 || !snap.Metrics.IsDrained {
		t.Errorf("after brokerctl pause: paused %v version %d drained %v, want true, %d, true",
			snap.WorkersPaused, snap.Version, snap.Metrics.IsDrained, resumed.Version+1)
	}
	if out, code := s.runShell("brokerctl-resume", blocks["brokerctl-resume"]); code != 0 {
		t.Fatalf("brokerctl resume: exit %d, want 0\n%s", code, out)
	}
	if snap := s.snapshot(); snap.WorkersPaused || snap.Version != resumed.Version+2 {
		t.Errorf("after brokerctl resume: paused %v version %d, want false and %d", snap.WorkersPaused, snap.Version, resumed.Version+2)
	}
	if out, code := s.runShell("brokerctl-audit", blocks["brokerctl-audit"]); code != 0 || strings.Count(out, resumeReason) != 2 {
		t.Errorf("brokerctl audit: exit %d, want 0 and %q twice in:\n%s", code, resumeReason, out)
	}
	if got := auditRows(t, s); len(got) != 4 {
		t.Errorf("system_control_events has %d rows after two pauses and two resumes, want 4:\n%s", len(got), strings.Join(got, "\n"))
	}

	step("enqueue block")
	// The enqueue block adds work that the resumed workers take.
	out, code = s.runShell("enqueue", blocks["enqueue"])
	if code != 0 || strings.Count(out, `"type":"demo:sleep"`) != 3 {
		t.Errorf("enqueue: exit %d, want 0 and three demo:sleep jobs in:\n%s", code, out)
	}
}

// auditRows reads system_control_events with the real psql binary as
// action|mode|reason|actor|version lines, oldest first.
func auditRows(t *testing.T, s *stack) []string {
	t.Helper()
	cmd := exec.Command("psql", s.psqlDSN, "-X", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", "-c",
		"SELECT action, coalesce(mode, ''), reason, coalesce(actor, ''), version FROM system_control_events ORDER BY version")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line != "" {
			rows = append(rows, line)
		}
	}
	return rows
}

func deref(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
