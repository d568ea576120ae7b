package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/testutil"
)

// longPollTimeout bounds the wait for the response to a long-poll claim. It is far
// above the waitSeconds the tests send.
const longPollTimeout = 30 * time.Second

func TestLongPollClaimSpanningPauseGetsNoJob(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	// A waits on an empty queue.
	type outcome struct {
		answer claimReply
		err    error
	}
	waiting := make(chan outcome, 1)
	go func() {
		answer, err := e.tryClaim("worker-a", map[string]any{"waitSeconds": 5})
		waiting <- outcome{answer, err}
	}()
	testutil.WaitFor(t, 10*time.Second, "the long poll to run its first claim", func() bool {
		n, _ := e.metricValue(`mmb_claims_total{result="empty"}`)
		return n >= 1
	})

	// The pause lands while A waits, then a job arrives.
	paused := e.pause(broker.ModeDrain, "upgrade")
	job := e.enqueue(map[string]any{"type": "demo:echo"})

	var got outcome
	select {
	case got = <-waiting:
	case <-time.After(longPollTimeout):
		t.Fatalf("the long poll did not answer within %s", longPollTimeout)
	}
	if got.err != nil {
		t.Fatalf("long poll: %v", got.err)
	}
	if got.answer.Job != nil {
		t.Fatalf("the long poll that spanned the pause returned job %s, want none", got.answer.Job.ID)
	}
	if !got.answer.System.WorkersPaused {
		t.Errorf("long poll answer: system.workersPaused false, want true")
	}
	if got.answer.System.Version != paused.Version {
		t.Errorf("long poll answer: system.version %d, want the pause's %d", got.answer.System.Version, paused.Version)
	}
	e.wantMetrics("after the long poll", 1, 0, 0, true)

	e.resume("upgrade done", false)
	next := e.claim("worker-a", nil)
	if next.Job == nil || next.Job.ID != job.ID {
		t.Fatalf("claim after resume returned %+v, want job %s", next.Job, job.ID)
	}
	if next.Job.Attempt != 1 {
		t.Errorf("claim after resume: attempt %d, want 1", next.Job.Attempt)
	}
}

// claimRecord is one claim of the stress test: when it was sent and what
// it returned.
type claimRecord struct {
	worker int
	sent   time.Time
	jobID  string
	paused bool
}

func TestPauseStopsConcurrentClaimers(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	const jobs = 600
	const workers = 8
	ctx := t.Context()
	for i := 0; i < jobs; i++ {
		if _, _, err := e.s.Broker.Enqueue(ctx, broker.EnqueueParams{Type: "demo:echo", Priority: i % 3}); err != nil {
			t.Fatalf("enqueue job %d: %v", i, err)
		}
	}

	var (
		mu        sync.Mutex
		records   []claimRecord
		granted   int
		pausedAt  time.Time // when the pause request returned; zero before
		afterSent = make([]int, workers)
		stop      = make(chan struct{})
		errs      = make(chan error, workers)
		wg        sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			extra := map[string]any{"leaseSeconds": 600}
			if w%2 == 1 {
				extra["waitSeconds"] = 1
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent := time.Now()
				answer, err := e.tryClaim(fmt.Sprintf("worker-%d", w), extra)
				if err != nil {
					errs <- err
					return
				}
				rec := claimRecord{worker: w, sent: sent, paused: answer.System.WorkersPaused}
				if answer.Job != nil {
					rec.jobID = answer.Job.ID
				}
				mu.Lock()
				records = append(records, rec)
				if rec.jobID != "" {
					granted++
				}
				if !pausedAt.IsZero() && sent.After(pausedAt) {
					afterSent[w]++
				}
				mu.Unlock()
			}
		}()
	}

	testutil.WaitFor(t, 30*time.Second, "20 granted claims", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return granted >= 20
	})
	e.pause(broker.ModeDrain, "upgrade")
	mu.Lock()
	pausedAt = time.Now()
	mu.Unlock()

	testutil.WaitFor(t, 30*time.Second, "three claims per worker sent after the pause returned", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range afterSent {
			if n < 3 {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("claimer failed: %v", err)
	}

	seen := map[string]bool{}
	for _, r := range records {
		if r.jobID != "" {
			if seen[r.jobID] {
				t.Errorf("job %s was granted twice", r.jobID)
			}
			seen[r.jobID] = true
		}
		if r.sent.After(pausedAt) {
			if r.jobID != "" {
				t.Errorf("worker-%d's claim sent %s after the pause returned got job %s", r.worker, r.sent.Sub(pausedAt), r.jobID)
			}
			if !r.paused {
				t.Errorf("worker-%d's claim sent after the pause returned says workersPaused false", r.worker)
			}
		}
	}

	m := e.metrics()
	if m.Queued == 0 {
		t.Fatalf("the claimers emptied the queue before the pause landed; the test proves nothing (granted %d)", len(seen))
	}
	if m.Running != int64(len(seen)) {
		t.Errorf("running = %d, want the %d granted jobs", m.Running, len(seen))
	}
	if m.Queued+int64(len(seen)) != jobs {
		t.Errorf("queued %d + granted %d = %d, want %d jobs", m.Queued, len(seen), m.Queued+int64(len(seen)), jobs)
	}
}

func TestDrainPauseHoldsOnlyJobsAlreadyClaimed(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	j1 := e.enqueue(map[string]any{"type": "demo:echo", "priority": 9})
	j2 := e.enqueue(map[string]any{"type": "demo:echo", "priority": 1})
	j3 := e.enqueue(map[string]any{"type": "demo:echo", "priority": 5})

	held := e.claim("worker-a", map[string]any{"leaseSeconds": 60})
	if held.Job == nil || held.Job.ID != j1.ID {
		t.Fatalf("A's claim returned %+v, want the highest-priority job %s", held.Job, j1.ID)
	}
	e.heartbeat(*held.Job, "worker-a", nil)

	e.pause(broker.ModeDrain, "upgrade")
	hb := e.heartbeat(*held.Job, "worker-a", nil)
	if !hb.System.WorkersPaused || hb.System.Mode == nil || *hb.System.Mode != broker.ModeDrain {
		t.Errorf("A's heartbeat during the pause: system %+v, want paused in drain mode", hb.System)
	}
	for i := 0; i < 10; i++ {
		e.claimNothing("worker-a", nil)
	}
	e.claimNothing("worker-b", nil)
	e.claimNothing("worker-b", map[string]any{"allowedTypes": []string{"demo:echo"}})
	j4 := e.enqueue(map[string]any{"type": "demo:echo", "priority": 5})
	e.claimNothing("worker-b", nil)

	e.wantMetrics("while A holds J1", 3, 1, 0, false)
	if got := e.job(j1.ID); got.Status != broker.StatusRunning || got.ClaimedBy == nil || *got.ClaimedBy != "worker-a" {
		t.Errorf("J1 while paused: status %s claimedBy %v, want running held by worker-a", got.Status, got.ClaimedBy)
	}

	done := e.complete(*held.Job, "worker-a")
	if done.Status != broker.StatusSucceeded {
		t.Errorf("J1 after complete: status %s, want succeeded", done.Status)
	}
	e.wantMetrics("after A completed J1", 3, 0, 0, true)

	e.resume("upgrade done", false)
	for i, want := range []broker.Job{j3, j4, j2} {
		got := e.claim("worker-b", nil)
		if got.Job == nil {
			t.Fatalf("B's claim %d after resume returned no job, want %s", i+1, want.ID)
		}
		if got.Job.ID != want.ID {
			t.Errorf("B's claim %d after resume returned %s (priority %d), want %s (priority %d)",
				i+1, got.Job.ID, got.Job.Priority, want.ID, want.Priority)
		}
	}
	if got := e.claim("worker-b", nil); got.Job != nil {
		t.Errorf("B's fourth claim returned %s, want none", got.Job.ID)
	}
}

func TestQuiesceKeepsParkedJobWithItsHolder(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	const lease = 3 * time.Second
	j1 := e.enqueue(map[string]any{"type": "demo:echo"})
	held := e.claim("worker-a", map[string]any{"leaseSeconds": int(lease / time.Second)})
	if held.Job == nil || held.Job.ID != j1.ID {
		t.Fatalf("A's claim returned %+v, want %s", held.Job, j1.ID)
	}
	pauseSnap := e.pause(broker.ModeQuiesce, "maintenance")

	hb := e.heartbeat(*held.Job, "worker-a", nil)
	if !hb.System.WorkersPaused || hb.System.Mode == nil || *hb.System.Mode != broker.ModeQuiesce {
		t.Fatalf("A's heartbeat after the pause: system %+v, want paused in quiesce mode", hb.System)
	}
	if hb.System.Version != pauseSnap.Version {
		t.Errorf("A's heartbeat: system.version %d, want %d", hb.System.Version, pauseSnap.Version)
	}
	j2 := e.enqueue(map[string]any{"type": "demo:echo"})

	// A parks at a checkpoint and keeps its lease for three lease lengths.
	// The sleep paces the worker's heartbeats; nothing waits on it.
	parkedUntil := time.Now().Add(3 * lease)
	for time.Now().Before(parkedUntil) {
		e.heartbeat(*held.Job, "worker-a", map[string]any{
			"quiesced": true, "checkpoint": map[string]any{"step": 3}, "leaseSeconds": int(lease / time.Second),
		})
		m := e.metrics()
		if m.Running != 1 || m.StaleRunning != 0 || m.Quiesced != 1 || m.IsDrained {
			t.Fatalf("while A is parked: metrics %+v, want running 1, staleRunning 0, quiesced 1, isDrained false", m)
		}
		got := e.job(j1.ID)
		if got.Status != broker.StatusRunning || got.ClaimedBy == nil || *got.ClaimedBy != "worker-a" || got.Attempt != 1 {
			t.Fatalf("J1 while parked: status %s claimedBy %v attempt %d, want running held by worker-a on attempt 1",
				got.Status, got.ClaimedBy, got.Attempt)
		}
		e.claimNothing("worker-b", nil)
		time.Sleep(lease / 5)
	}

	e.resume("maintenance done", false)
	next := e.claim("worker-b", nil)
	if next.Job == nil || next.Job.ID != j2.ID {
		t.Fatalf("B's claim after resume returned %+v, want J2 %s (J1 is still A's)", next.Job, j2.ID)
	}
	if got := e.claim("worker-b", nil); got.Job != nil {
		t.Fatalf("B's second claim after resume returned %s, want none", got.Job.ID)
	}

	hb = e.heartbeat(*held.Job, "worker-a", map[string]any{"quiesced": false})
	if hb.System.WorkersPaused {
		t.Errorf("A's heartbeat after resume says paused")
	}
	if string(hb.Checkpoint) != `{"step":3}` {
		t.Errorf("J1 checkpoint = %s, want {\"step\":3}", hb.Checkpoint)
	}
	done := e.complete(*held.Job, "worker-a")
	if done.Status != broker.StatusSucceeded || done.Attempt != 1 {
		t.Errorf("J1 after complete: status %s attempt %d, want succeeded on attempt 1", done.Status, done.Attempt)
	}
}

func TestPauseCoversEveryJobType(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	e.enqueue(map[string]any{"type": "slow"})
	slow := e.claim("worker-slow", map[string]any{"allowedTypes": []string{"slow"}, "leaseSeconds": 120})
	if slow.Job == nil {
		t.Fatalf("the slow worker claimed no job")
	}
	types := []string{"fast", "slow"}
	for i := 0; i < 3; i++ {
		e.enqueue(map[string]any{"type": "fast"})
	}
	for i := 0; i < 25; i++ {
		name := fmt.Sprintf("other-%02d", i)
		types = append(types, name)
		e.enqueue(map[string]any{"type": name})
	}

	e.pause(broker.ModeDrain, "upgrade")
	e.claimNothing("worker-fast", map[string]any{"allowedTypes": []string{"fast"}})
	e.claimNothing("worker-slow", map[string]any{"allowedTypes": []string{"slow"}})
	e.claimNothing("worker-any", nil)
	e.claimNothing("worker-all", map[string]any{"allowedTypes": types})
	e.enqueue(map[string]any{"type": "fast"})
	e.enqueue(map[string]any{"type": "brand-new-type"})
	e.claimNothing("worker-new", map[string]any{"allowedTypes": []string{"brand-new-type"}})

	// A worker token whose policy allows none of the requested types
	// claims nothing either way, but its response must still report the
	// pause.
	var created struct {
		Token string `json:"token"`
	}
	e.s.DoJSON(t, http.MethodPost, "/api/tokens", e.s.OperatorToken, map[string]any{
		"name": "fast-only", "role": "worker", "policy": map[string]any{"allowedTypes": []string{"fast"}},
	}, http.StatusCreated, &created)
	var narrowed claimReply
	e.s.DoJSON(t, http.MethodPost, "/api/queue/jobs/claim", created.Token,
		map[string]any{"workerId": "worker-policy", "allowedTypes": []string{"slow"}}, http.StatusOK, &narrowed)
	if narrowed.Job != nil || !narrowed.System.WorkersPaused {
		t.Errorf("policy-narrowed claim: job %v, workersPaused %v; want no job and paused", narrowed.Job, narrowed.System.WorkersPaused)
	}

	e.wantMetrics("while the slow job runs", 30, 1, 0, false)
	e.complete(*slow.Job, "worker-slow")
	e.wantMetrics("after the slow job ended", 30, 0, 0, true)
}

func TestResubmitDuringPauseWaitsAndRunsOnce(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	// Two jobs with one attempt fail into dead_letter.
	var dead []broker.Job
	for i := 0; i < 2; i++ {
		e.enqueue(map[string]any{"type": "fragile", "maxAttempts": 1})
		got := e.claim("worker-a", map[string]any{"allowedTypes": []string{"fragile"}})
		if got.Job == nil {
			t.Fatalf("claim %d of the fragile jobs returned none", i+1)
		}
		var failed broker.Job
		e.s.DoJSON(t, http.MethodPost, "/api/queue/jobs/"+got.Job.ID+"/fail", e.s.WorkerToken,
			map[string]any{"workerId": "worker-a", "attempt": got.Job.Attempt, "errorMessage": "boom", "retryable": true},
			http.StatusOK, &failed)
		if failed.Status != broker.StatusDeadLetter {
			t.Fatalf("fragile job after its only attempt failed: status %s, want dead_letter", failed.Status)
		}
		dead = append(dead, failed)
	}
	for i := 0; i < 3; i++ {
		e.enqueue(map[string]any{"type": "demo:echo"})
	}

	e.pause(broker.ModeDrain, "upgrade")
	resubmitted := map[string]string{} // new job id -> old job id
	for _, old := range dead {
		var fresh broker.Job
		e.s.DoJSON(t, http.MethodPost, "/api/queue/jobs/"+old.ID+"/resubmit", e.s.OperatorToken, map[string]any{}, http.StatusCreated, &fresh)
		if fresh.Status != broker.StatusQueued || fresh.Attempt != 0 {
			t.Errorf("resubmitted job %s: status %s attempt %d, want queued with attempt 0", fresh.ID, fresh.Status, fresh.Attempt)
		}
		resubmitted[fresh.ID] = old.ID
	}
	e.claimNothing("worker-a", nil)
	e.claimNothing("worker-b", map[string]any{"allowedTypes": []string{"fragile"}})
	e.wantMetrics("after the resubmits", 5, 0, 0, true)
	for _, old := range dead {
		if got := e.job(old.ID); got.Status != broker.StatusDeadLetter {
			t.Errorf("dead-lettered job %s after its resubmit: status %s, want dead_letter", old.ID, got.Status)
		}
	}

	e.resume("upgrade done", false)
	var claimed []broker.Job
	for i := 0; i < 5; i++ {
		got := e.claim(fmt.Sprintf("worker-%d", i), nil)
		if got.Job == nil {
			t.Fatalf("claim %d after resume returned no job, want one of the five queued", i+1)
		}
		claimed = append(claimed, *got.Job)
	}
	if got := e.claim("worker-6", nil); got.Job != nil {
		t.Fatalf("sixth claim returned %s, want none", got.Job.ID)
	}

	seen := map[string]bool{}
	for i, job := range claimed {
		if seen[job.ID] {
			t.Errorf("job %s was claimed twice", job.ID)
		}
		seen[job.ID] = true
		if job.Attempt != 1 {
			t.Errorf("claimed job %s: attempt %d, want 1", job.ID, job.Attempt)
		}
		done := e.complete(job, fmt.Sprintf("worker-%d", i))
		if done.Status != broker.StatusSucceeded {
			t.Errorf("job %s after complete: status %s, want succeeded", job.ID, done.Status)
		}
		status, raw := e.s.Do(t, http.MethodPost, "/api/queue/jobs/"+job.ID+"/complete", e.s.WorkerToken,
			map[string]any{"workerId": fmt.Sprintf("worker-%d", i), "attempt": job.Attempt})
		if status != http.StatusConflict {
			t.Errorf("second complete of %s: status %d, want 409; body: %s", job.ID, status, raw)
		}
	}
	for id := range resubmitted {
		if !seen[id] {
			t.Errorf("resubmitted job %s (from %s) was never claimed", id, resubmitted[id])
		}
	}
}

func TestPauseKeepsWaitingJobsAndOrder(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	const jobs = 100
	priorities := []int{10, 5, 1}
	var enqueued []broker.Job
	for i := 0; i < jobs; i++ {
		enqueued = append(enqueued, e.enqueue(map[string]any{"type": "demo:echo", "priority": priorities[i%3]}))
	}
	before := e.listQueued()

	first := e.pause(broker.ModeDrain, "upgrade")
	status, raw := e.changePause(e.s.OperatorToken, map[string]any{"action": "pause", "mode": "drain", "reason": "upgrade"})
	wantError(t, "repeated pause", status, raw, http.StatusConflict, "already_paused")
	status, raw = e.changePause(e.s.OperatorToken, map[string]any{"action": "pause", "mode": "drain", "reason": "  upgrade\n"})
	wantError(t, "repeated pause with padded reason", status, raw, http.StatusConflict, "already_paused")
	if got := e.snapshot(); got.Version != first.Version {
		t.Errorf("version after the repeated pause = %d, want %d", got.Version, first.Version)
	}
	if rows := e.waitAuditRows(1); len(rows) != 1 {
		t.Errorf("audit rows after the repeated pause: %d, want 1", len(rows))
	}
	switched := e.pause(broker.ModeQuiesce, "upgrade")
	if switched.Version != first.Version+1 {
		t.Errorf("version after switching to quiesce = %d, want %d", switched.Version, first.Version+1)
	}
	if switched.Mode == nil || *switched.Mode != broker.ModeQuiesce {
		t.Errorf("mode after switching = %v, want quiesce", switched.Mode)
	}

	after := e.listQueued()
	if len(after) != len(before) {
		t.Fatalf("queued jobs: %d before the pause, %d after", len(before), len(after))
	}
	for i := range before {
		b, a := before[i], after[i]
		if a.ID != b.ID || a.Priority != b.Priority || a.Attempt != b.Attempt || a.Status != broker.StatusQueued {
			t.Errorf("queued job %d changed during the pause: before %s priority %d attempt %d, after %s priority %d attempt %d status %s",
				i, b.ID, b.Priority, b.Attempt, a.ID, a.Priority, a.Attempt, a.Status)
		}
	}
	e.wantMetrics("while paused", jobs, 0, 0, true)

	e.resume("upgrade done", false)
	var want []broker.Job
	for _, p := range priorities {
		for _, job := range enqueued {
			if job.Priority == p {
				want = append(want, job)
			}
		}
	}
	for i, w := range want {
		got := e.claim("worker-a", nil)
		if got.Job == nil {
			t.Fatalf("claim %d returned no job, want %s", i+1, w.ID)
		}
		if got.Job.ID != w.ID {
			t.Fatalf("claim %d returned %s (priority %d), want %s (priority %d)", i+1, got.Job.ID, got.Job.Priority, w.ID, w.Priority)
		}
	}
	if got := e.claim("worker-a", nil); got.Job != nil {
		t.Fatalf("claim %d returned %s, want none", jobs+1, got.Job.ID)
	}
}

// listQueued returns every queued job as GET /api/queue/jobs pages them.
func (e *pauseEnv) listQueued() []broker.Job {
	e.t.Helper()
	var all []broker.Job
	cursor := ""
	for {
		path := "/api/queue/jobs?status=queued&limit=500"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		var page struct {
			Items      []broker.Job `json:"items"`
			NextCursor *string      `json:"nextCursor"`
		}
		e.s.DoJSON(e.t, http.MethodGet, path, e.s.OperatorToken, nil, http.StatusOK, &page)
		all = append(all, page.Items...)
		if page.NextCursor == nil || *page.NextCursor == "" {
			return all
		}
		cursor = *page.NextCursor
	}
}

func TestStaleExpectedVersionCannotUndoNewerChange(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	var created struct {
		Token string `json:"token"`
	}
	e.s.DoJSON(t, http.MethodPost, "/api/tokens", e.s.OperatorToken,
		map[string]any{"name": "operator-y", "role": "operator"}, http.StatusCreated, &created)
	tokenY := created.Token

	start := e.snapshot().Version
	var paused struct{ Version int64 }
	e.s.DoJSON(t, http.MethodPost, "/api/system/worker-pause", e.s.OperatorToken,
		map[string]any{"action": "pause", "mode": "drain", "reason": "upgrade", "expectedVersion": start}, http.StatusOK, &paused)
	if paused.Version != start+1 {
		t.Fatalf("X's pause: version %d, want %d", paused.Version, start+1)
	}
	var resumed struct{ Version int64 }
	e.s.DoJSON(t, http.MethodPost, "/api/system/worker-pause", tokenY,
		map[string]any{"action": "resume", "reason": "upgrade done", "expectedVersion": paused.Version}, http.StatusOK, &resumed)
	if resumed.Version != start+2 {
		t.Fatalf("Y's resume: version %d, want %d", resumed.Version, start+2)
	}

	// The delayed script still believes the versions it saw first.
	status, raw := e.changePause(e.s.OperatorToken, map[string]any{
		"action": "pause", "mode": "drain", "reason": "upgrade", "expectedVersion": start,
	})
	wantError(t, "stale pause", status, raw, http.StatusConflict, "version_conflict")
	status, raw = e.changePause(e.s.OperatorToken, map[string]any{
		"action": "resume", "reason": "upgrade done", "expectedVersion": paused.Version,
	})
	if status != http.StatusConflict {
		t.Fatalf("stale resume: status %d, want 409; body: %s", status, raw)
	}
	status, raw = e.changePause(e.s.OperatorToken, map[string]any{
		"action": "pause", "mode": "quiesce", "reason": "later", "expectedVersion": resumed.Version + 5,
	})
	wantError(t, "pause with a future version", status, raw, http.StatusConflict, "version_conflict")

	snap := e.snapshot()
	if snap.WorkersPaused || snap.Version != resumed.Version {
		t.Errorf("after the stale requests: paused %v version %d, want running at version %d", snap.WorkersPaused, snap.Version, resumed.Version)
	}
	job := e.enqueue(map[string]any{"type": "demo:echo"})
	if got := e.claim("worker-a", nil); got.Job == nil || got.Job.ID != job.ID {
		t.Errorf("claim after the stale requests returned %+v, want %s", got.Job, job.ID)
	}

	rows := e.waitAuditRows(2)
	if len(rows) != 2 {
		t.Fatalf("audit rows: %d, want exactly the 2 accepted changes: %+v", len(rows), rows)
	}
	wantRow := func(row auditRow, action string, version int64, actor string) {
		t.Helper()
		if row.Action != action || row.Version != version || row.Actor == nil || *row.Actor != actor {
			t.Errorf("audit row: action %s version %d actor %v, want %s version %d actor %s",
				row.Action, row.Version, row.Actor, action, version, actor)
		}
	}
	wantRow(rows[0], "pause", paused.Version, "operator")
	wantRow(rows[1], "resume", resumed.Version, "operator-y")
}

func TestConcurrentPausesWithSameVersionOneWins(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	const callers = 10
	start := e.snapshot().Version
	statuses := make([]int, callers)
	var wg sync.WaitGroup
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"action":"pause","mode":"drain","reason":"caller %d","expectedVersion":%d}`, i, start)
			req, err := http.NewRequest(http.MethodPost, e.s.URL+"/api/system/worker-pause", strings.NewReader(body))
			if err != nil {
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+e.s.OperatorToken)
			resp, err := e.s.Client.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()

	accepted := 0
	for i, status := range statuses {
		switch status {
		case http.StatusOK:
			accepted++
		case http.StatusConflict:
		default:
			t.Errorf("caller %d: status %d, want 200 or 409", i, status)
		}
	}
	if accepted != 1 {
		t.Errorf("%d pauses with expectedVersion %d were accepted, want exactly 1", accepted, start)
	}
	if got := e.snapshot().Version; got != start+1 {
		t.Errorf("version after the race = %d, want %d", got, start+1)
	}
	if rows := e.waitAuditRows(1); len(rows) != 1 {
		t.Errorf("audit rows after the race: %d, want 1", len(rows))
	}
}

func TestScheduledJobDueDuringPauseWaits(t *testing.T) {
	t.Parallel()
	e := startPauseEnv(t)

	now, err := e.s.Redis.Time(t.Context()).Result()
	if err != nil {
		t.Fatalf("read the Redis clock: %v", err)
	}
	runAt := now.Add(time.Second).UTC()
	early := e.enqueue(map[string]any{"type": "demo:echo", "priority": 1})
	scheduled := e.enqueue(map[string]any{"type": "demo:echo", "priority": 9, "runAt": runAt.Format(time.RFC3339Nano)})
	e.pause(broker.ModeDrain, "upgrade")

	testutil.WaitFor(t, 15*time.Second, "the Redis clock to pass runAt", func() bool {
		now, err := e.s.Redis.Time(t.Context()).Result()
		return err == nil && now.After(runAt.Add(500*time.Millisecond))
	})
	e.claimNothing("worker-a", nil)
	m := e.metrics()
	if m.Queued+m.Delayed != 2 || m.Running != 0 || !m.IsDrained {
		t.Errorf("while paused after runAt: metrics %+v, want both jobs waiting, none running, drained", m)
	}
	if got := e.job(scheduled.ID); got.Status != broker.StatusQueued || got.Attempt != 0 {
		t.Errorf("scheduled job while paused: status %s attempt %d, want queued with attempt 0", got.Status, got.Attempt)
	}

	// After the resume the due job runs first, by its higher priority.
	e.resume("upgrade done", false)
	for _, want := range []broker.Job{scheduled, early} {
		got := e.claim("worker-a", nil)
		if got.Job == nil || got.Job.ID != want.ID || got.Job.Attempt != 1 {
			t.Fatalf("claim after resume returned %+v, want %s on attempt 1", got.Job, want.ID)
		}
	}
	if got := e.claim("worker-a", nil); got.Job != nil {
		t.Errorf("third claim returned %s, want none", got.Job.ID)
	}
}
