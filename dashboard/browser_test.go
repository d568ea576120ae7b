package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/testutil"
)

const chromiumPath = "/usr/bin/chromium"

// uiTimeout bounds each wait for the page; the page itself polls every 5 s
// at most, so this leaves room for slow CI machines.
const uiTimeout = 20 * time.Second

// browser starts a headless Chromium for t and returns a tab context. The
// browser process ends when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("BROKER_REQUIRE_BROWSER") != "" {
			t.Fatalf("BROKER_REQUIRE_BROWSER is set but %s is missing: apt-get install -y chromium", chromiumPath)
		}
		t.Skipf("skipping the browser test: %s is missing (apt-get install -y chromium; set BROKER_REQUIRE_BROWSER=1 to make this a failure)", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 1400),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc() // stops the Chromium process this test started
	})
	// The first run starts the browser; it must not have a deadline, or
	// the deadline would end the browser too.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// artifactsDir is where screenshots go: $TEST_ARTIFACTS_DIR/<test> when
// set, otherwise the test's temporary directory.
func artifactsDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TEST_ARTIFACTS_DIR")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create artifacts folder: %v", err)
	}
	return dir
}

// screenshot saves a full-page PNG named name.png.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	t.Logf("screenshot: %s", path)
}

// run runs chromedp steps with a deadline and fails the test on error.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	runCtx, cancel := context.WithTimeout(ctx, uiTimeout)
	defer cancel()
	if err := chromedp.Do(runCtx, steps...); err != nil {
		t.Fatalf("%s: %v (banner: %q)", what, err, bannerText(ctx))
	}
}

// eval evaluates a JavaScript expression and decodes its value into T.
func eval[T any](t *testing.T, ctx context.Context, what, expression string) T {
	t.Helper()
	runCtx, cancel := context.WithTimeout(ctx, uiTimeout)
	defer cancel()
	v, err := chromedp.Run(runCtx, chromedp.Evaluate[T](expression))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// bannerText returns the banner text for failure messages, or "".
func bannerText(ctx context.Context) string {
	runCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	text, _ := chromedp.Run(runCtx, chromedp.Evaluate[string](`document.getElementById('banner')?.textContent ?? ''`))
	return strings.Join(strings.Fields(text), " ")
}

// waitJS polls a JavaScript expression until it is true.
func waitJS(t *testing.T, ctx context.Context, what, expression string) {
	t.Helper()
	runCtx, cancel := context.WithTimeout(ctx, uiTimeout+5*time.Second)
	defer cancel()
	poll := chromedp.Poll[bool](expression, chromedp.WithPollingTimeout(uiTimeout), chromedp.WithPollingInterval(50*time.Millisecond))
	if _, err := chromedp.Run(runCtx, poll); err != nil {
		t.Fatalf("wait for %s: %v (banner: %q)", what, err, bannerText(ctx))
	}
}

func textContains(selector, substring string) string {
	return fmt.Sprintf(`(document.querySelector(%q) || {}).textContent?.includes(%q) === true`, selector, substring)
}

func signIn(t *testing.T, ctx context.Context, srv *apitest.Server) {
	t.Helper()
	run(t, ctx, "open the dashboard", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("token-input")))
	run(t, ctx, "sign in",
		chromedp.SendKeys(chromedp.ID("token-input"), srv.OperatorToken),
		chromedp.Click(chromedp.ID("signin-button")),
		chromedp.WaitVisible(chromedp.ID("app")),
	)
	waitJS(t, ctx, "the running banner", textContains("#banner-title", "Workers: Running"))
}

func pauseState(t *testing.T, srv *apitest.Server) broker.PauseState {
	t.Helper()
	var s broker.PauseState
	srv.DoJSON(t, "GET", "/api/system/worker-pause", srv.OperatorToken, nil, http.StatusOK, &s)
	return s
}

func TestDashboardUpgradeFlow(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	ctx := browser(t)
	dir := artifactsDir(t)

	// One job runs, held by a worker, so the drain is not finished at first.
	var job broker.Job
	srv.DoJSON(t, "POST", "/api/queue/jobs", srv.ProducerToken, map[string]any{"type": "demo:sleep"}, http.StatusCreated, &job)
	var claimed struct {
		Job *broker.Job `json:"job"`
	}
	srv.DoJSON(t, "POST", "/api/queue/jobs/claim", srv.WorkerToken, map[string]any{"workerId": "worker-1", "leaseSeconds": 300}, http.StatusOK, &claimed)
	if claimed.Job == nil {
		t.Fatal("the worker claimed no job")
	}

	signIn(t, ctx, srv)
	stored := eval[string](t, ctx, "read the token storage", `sessionStorage.getItem('mmbroker.operatorToken') || ''`)
	if stored != srv.OperatorToken {
		t.Errorf("sessionStorage holds %q, want the operator token", stored)
	}
	location := eval[string](t, ctx, "read the location", `location.href`)
	if strings.Contains(location, srv.OperatorToken) {
		t.Errorf("the token appears in the URL %s", location)
	}
	if !eval[bool](t, ctx, "read the resume button", `document.getElementById('resume-button').disabled`) {
		t.Errorf("the resume button is enabled while the workers run")
	}
	screenshot(t, ctx, dir, "01-running")

	// Record every moment "Safe to upgrade" becomes visible, with the
	// counts shown then, to prove it never appears too early.
	eval[bool](t, ctx, "watch the safe marker", `
		window.safeShownAt = [];
		new MutationObserver(() => {
			const safe = document.getElementById('safe');
			if (!safe.hidden) {
				window.safeShownAt.push({
					running: document.getElementById('m-running').textContent,
					stale: document.getElementById('m-stale').textContent,
					banner: document.getElementById('banner-title').textContent,
				});
			}
		}).observe(document.getElementById('safe'), {attributes: true});
		true`)

	// A missing reason is caught in the page and changes nothing.
	before := pauseState(t, srv)
	run(t, ctx, "submit a pause without a reason", chromedp.Click(chromedp.ID("pause-button")))
	waitJS(t, ctx, "the inline reason error", `!document.getElementById('pause-error').hidden && `+textContains("#pause-error", "Enter a reason"))
	screenshot(t, ctx, dir, "02-missing-reason")
	if after := pauseState(t, srv); after.Version != before.Version || after.WorkersPaused {
		t.Errorf("after a pause without reason: version %d paused %v, want version %d and running", after.Version, after.WorkersPaused, before.Version)
	}

	// A reason the API rejects (too long) shows the API's 400 inline. The
	// maxlength attribute stops typing, so the value is set by script.
	run(t, ctx, "submit an over-long reason", chromedp.SetValue(chromedp.ID("pause-reason"), strings.Repeat("x", 1001)), chromedp.Click(chromedp.ID("pause-button")))
	waitJS(t, ctx, "the API's 400 inline", textContains("#pause-error", "HTTP 400"))
	if after := pauseState(t, srv); after.Version != before.Version || after.WorkersPaused {
		t.Errorf("after a rejected pause: version %d paused %v, want version %d and running", after.Version, after.WorkersPaused, before.Version)
	}

	// Pause in drain mode.
	eval[bool](t, ctx, "clear the reason", `document.getElementById('pause-reason').value = ''; true`)
	run(t, ctx, "pause with a reason",
		chromedp.SendKeys(chromedp.ID("pause-reason"), "Upgrading worker images"),
		chromedp.Click(chromedp.CSS(`input[name="mode"][value="drain"]`)),
		chromedp.Click(chromedp.ID("pause-button")),
	)
	waitJS(t, ctx, "the paused banner", textContains("#banner-title", "Workers: Paused (Drain)"))
	waitJS(t, ctx, "the reason in the banner", textContains("#banner-detail", "Upgrading worker images"))
	waitJS(t, ctx, "one running job in the drain panel", textContains("#m-running", "1"))
	waitJS(t, ctx, "the pause error to clear", `document.getElementById('pause-error').hidden`)
	if !eval[bool](t, ctx, "read the safe marker", `document.getElementById('safe').hidden`) {
		t.Errorf("Safe to upgrade is shown while a job runs")
	}
	if eval[bool](t, ctx, "read the force option", `document.getElementById('force-row').hidden`) {
		t.Errorf("the force option is hidden while the drain is not finished")
	}
	screenshot(t, ctx, dir, "03-paused-draining")

	// The event stream may show the pause before the POST returns. Type
	// the next reason only after the request finished: it clears the field
	// and enables the pause button again.
	waitJS(t, ctx, "the pause request to finish", `document.getElementById('pause-reason').value === '' && !document.getElementById('pause-button').disabled`)

	// The same pause again is rejected by the API with a 409, shown inline.
	run(t, ctx, "repeat the pause",
		chromedp.SendKeys(chromedp.ID("pause-reason"), "Upgrading worker images"),
		chromedp.Click(chromedp.ID("pause-button")))
	waitJS(t, ctx, "the API's 409 inline", textContains("#pause-error", "already_paused"))

	// The last running job completes: now, and only now, it is safe.
	srv.DoJSON(t, "POST", "/api/queue/jobs/"+job.ID+"/complete", srv.WorkerToken,
		map[string]any{"workerId": "worker-1", "resultSummary": "done"}, http.StatusOK, nil)
	waitJS(t, ctx, "Safe to upgrade", `!document.getElementById('safe').hidden && `+textContains("#safe", "Safe to upgrade"))
	screenshot(t, ctx, dir, "04-safe-to-upgrade")
	shown := eval[[]map[string]string](t, ctx, "read the safe marker log", `window.safeShownAt`)
	for _, s := range shown {
		if s["running"] != "0" || s["stale"] != "0" || !strings.Contains(s["banner"], "Paused") {
			t.Errorf("Safe to upgrade was shown with running %s, stale %s, banner %q", s["running"], s["stale"], s["banner"])
		}
	}

	// Resume turns the banner green.
	run(t, ctx, "resume",
		chromedp.SendKeys(chromedp.ID("resume-reason"), "Upgrade done"),
		chromedp.Click(chromedp.ID("resume-button")))
	waitJS(t, ctx, "the running banner", textContains("#banner-title", "Workers: Running"))
	bannerClass := eval[string](t, ctx, "read the banner class", `document.getElementById('banner').className`)
	if !strings.Contains(bannerClass, "banner-running") {
		t.Errorf("banner class %q, want banner-running (green)", bannerClass)
	}
	if !eval[bool](t, ctx, "read the pause error", `document.getElementById('pause-error').hidden`) {
		t.Errorf("the error of the earlier rejected pause is still shown after the resume")
	}

	// The audit history shows the new rows, newest first.
	waitJS(t, ctx, "the audit rows", `(() => {
		const rows = [...document.querySelectorAll('#audit-rows tr')].map(r => [...r.cells].map(c => c.textContent));
		return rows.length >= 2 && rows[0][1] === 'resume' && rows[0][3] === 'Upgrade done' &&
			rows[1][1] === 'pause' && rows[1][2] === 'drain' && rows[1][3] === 'Upgrading worker images';
	})()`)
	screenshot(t, ctx, dir, "05-resumed")

	if s := pauseState(t, srv); s.WorkersPaused || s.Version != 3 {
		t.Errorf("final state: paused %v version %d, want running at version 3", s.WorkersPaused, s.Version)
	}

	// Sign out removes the token from session storage.
	run(t, ctx, "sign out", chromedp.Click(chromedp.ID("sign-out")), chromedp.WaitVisible(chromedp.ID("token-input")))
	if eval[string](t, ctx, "read the token storage", `sessionStorage.getItem('mmbroker.operatorToken') || ''`) != "" {
		t.Errorf("sessionStorage still holds a token after sign out")
	}
}

func TestDashboardRejectsWrongToken(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	ctx := browser(t)

	run(t, ctx, "sign in with a wrong token",
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("token-input")),
		chromedp.SendKeys(chromedp.ID("token-input"), "wrong-token"),
		chromedp.Click(chromedp.ID("signin-button")))
	waitJS(t, ctx, "the sign-in error", textContains("#signin-error", "rejected this token"))
	if !eval[bool](t, ctx, "read the app section", `document.getElementById('app').hidden`) {
		t.Errorf("the dashboard opened with a wrong token")
	}
}

func TestDashboardStaleJobRequeue(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	ctx := browser(t)
	dir := artifactsDir(t)

	var job broker.Job
	srv.DoJSON(t, "POST", "/api/queue/jobs", srv.ProducerToken, map[string]any{"type": "demo:sleep"}, http.StatusCreated, &job)
	srv.DoJSON(t, "POST", "/api/queue/jobs/claim", srv.WorkerToken, map[string]any{"workerId": "worker-1", "leaseSeconds": 1}, http.StatusOK, nil)
	srv.DoJSON(t, "POST", "/api/system/worker-pause", srv.OperatorToken,
		map[string]any{"action": "pause", "mode": "drain", "reason": "Upgrade"}, http.StatusOK, nil)

	// A phone-sized window: the page must stay usable at 360 px.
	run(t, ctx, "set a narrow viewport", chromedp.EmulateViewport(360, 800))
	run(t, ctx, "open the dashboard", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("token-input")))
	run(t, ctx, "sign in",
		chromedp.SendKeys(chromedp.ID("token-input"), srv.OperatorToken),
		chromedp.Click(chromedp.ID("signin-button")))
	waitJS(t, ctx, "the paused banner", textContains("#banner-title", "Workers: Paused (Drain)"))

	requeue := fmt.Sprintf(`button[aria-label="Requeue job %s"]`, job.ID)
	waitJS(t, ctx, "the stale job row", fmt.Sprintf(`document.querySelector(%q) !== null`, requeue))
	layout := eval[map[string]float64](t, ctx, "measure the page", `({
		viewport: document.documentElement.clientWidth,
		scroll: document.documentElement.scrollWidth,
		right: Math.max(...[...document.querySelectorAll('section, #banner')].map(e => e.getBoundingClientRect().right)),
	})`)
	if layout["scroll"] > layout["viewport"] || layout["right"] > layout["viewport"] {
		t.Errorf("at a 360 px window the page needs %v px (widest box ends at %v px) but the viewport is %v px: want no horizontal scrolling", layout["scroll"], layout["right"], layout["viewport"])
	}
	screenshot(t, ctx, dir, "01-stale-job-360px")

	run(t, ctx, "click Requeue", chromedp.Click(chromedp.CSS(requeue)))
	waitJS(t, ctx, "the empty stale list", `!document.getElementById('stale-empty').hidden`)
	var got broker.Job
	srv.DoJSON(t, "GET", "/api/queue/jobs/"+job.ID, srv.OperatorToken, nil, http.StatusOK, &got)
	if got.Status != broker.StatusQueued {
		t.Errorf("after Requeue: status %s, want queued", got.Status)
	}
	waitJS(t, ctx, "Safe to upgrade", `!document.getElementById('safe').hidden`)
	screenshot(t, ctx, dir, "02-requeued-360px")
}

func TestDashboardShowsUnreachableAPI(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	ctx := browser(t)
	dir := artifactsDir(t)

	signIn(t, ctx, srv)
	srv.Close()
	testutil.WaitFor(t, uiTimeout, "the API to stop responding", func() bool {
		_, err := http.Get(srv.URL + "/healthz")
		return err != nil
	})

	waitJS(t, ctx, "the unreachable banner", textContains("#banner-title", "Cannot reach the broker API"))
	if banner := bannerText(ctx); strings.Contains(banner, "Workers: Running") {
		t.Errorf("banner %q still shows the old state", banner)
	}
	if !eval[bool](t, ctx, "read the pause button", `document.getElementById('pause-button').disabled`) {
		t.Errorf("the pause button is enabled while the API cannot be reached")
	}
	screenshot(t, ctx, dir, "01-api-unreachable")
}

// The pause response may arrive after the event stream showed the pause
// and after the operator started typing again. It must not clear what was
// typed meanwhile, and the pause button stays disabled until it arrives.
func TestDashboardLatePauseResponseKeepsInput(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	ctx := browser(t)
	signIn(t, ctx, srv)

	// Hold every pause POST response until the test lets it through.
	eval[bool](t, ctx, "hold pause responses", `
		window.heldPause = [];
		const realFetch = window.fetch;
		window.fetch = async (path, init) => {
			const resp = await realFetch(path, init);
			if (init && init.method === 'POST' && String(path).includes('/api/system/worker-pause')) {
				await new Promise((resolve) => window.heldPause.push(resolve));
			}
			return resp;
		};
		true`)

	run(t, ctx, "pause with a reason",
		chromedp.SendKeys(chromedp.ID("pause-reason"), "Upgrading worker images"),
		chromedp.Click(chromedp.CSS(`input[name="mode"][value="drain"]`)),
		chromedp.Click(chromedp.ID("pause-button")))
	waitJS(t, ctx, "the paused banner from the event stream", textContains("#banner-title", "Workers: Paused (Drain)"))
	waitJS(t, ctx, "the held pause response", `window.heldPause.length === 1`)
	if !eval[bool](t, ctx, "read the pause button", `document.getElementById('pause-button').disabled`) {
		t.Errorf("the pause button is enabled while its request is in flight")
	}

	eval[bool](t, ctx, "replace the reason", `document.getElementById('pause-reason').value = ''; true`)
	run(t, ctx, "type the next reason", chromedp.SendKeys(chromedp.ID("pause-reason"), "Next reason"))
	eval[bool](t, ctx, "let the pause response through", `window.heldPause.shift()(); true`)
	waitJS(t, ctx, "the pause button to be enabled", `!document.getElementById('pause-button').disabled`)
	if got := eval[string](t, ctx, "read the reason field", `document.getElementById('pause-reason').value`); got != "Next reason" {
		t.Errorf("reason field after the late response = %q, want %q kept", got, "Next reason")
	}
	if s := pauseState(t, srv); !s.WorkersPaused || s.Reason == nil || *s.Reason != "Upgrading worker images" {
		t.Errorf("pause state = %+v, want paused with the first reason", s)
	}
}
