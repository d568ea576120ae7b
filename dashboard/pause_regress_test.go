package dashboard_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/internal/apitest"
)

// pauseRecheckDelay is how long the dashboard stays open before it is
// checked again: six of the page's refresh periods, long enough for any
// refresh or stream reconnect to have replaced what the first load showed.
const pauseRecheckDelay = 30 * time.Second

func TestDashboardKeepsShowingQuiescePause(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{})
	var paused broker.PauseState
	srv.DoJSON(t, http.MethodPost, "/api/system/worker-pause", srv.OperatorToken,
		map[string]any{"action": "pause", "mode": "quiesce", "reason": "maintenance"}, http.StatusOK, &paused)

	// A fresh browser opens the dashboard while the workers are paused.
	ctx := browser(t)
	dir := artifactsDir(t)
	run(t, ctx, "open the dashboard", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("token-input")))
	run(t, ctx, "sign in",
		chromedp.SendKeys(chromedp.ID("token-input"), srv.OperatorToken),
		chromedp.Click(chromedp.ID("signin-button")),
		chromedp.WaitVisible(chromedp.ID("app")))
	wantVersion := fmt.Sprintf("Version %d", paused.Version)
	waitJS(t, ctx, "the quiesce banner", textContains("#banner-title", "Workers: Paused (Quiesce)"))
	waitJS(t, ctx, "the pause version", textContains("#banner-detail", wantVersion))
	screenshot(t, ctx, dir, "01-paused-fresh")

	// Record every banner text that claims the workers run.
	eval[bool](t, ctx, "watch the banner", `
		window.runningShown = [];
		new MutationObserver(() => {
			const title = document.getElementById('banner-title').textContent;
			if (!title.includes('Paused')) {
				window.runningShown.push(title + ' | ' + document.getElementById('banner-detail').textContent);
			}
		}).observe(document.getElementById('banner'), {subtree: true, childList: true, characterData: true});
		true`)

	// The scenario's "30 seconds later"; nothing waits on this sleep.
	time.Sleep(pauseRecheckDelay)
	if shown := eval[[]string](t, ctx, "read the banner log", `window.runningShown`); len(shown) > 0 {
		t.Errorf("while paused the banner showed %q", shown)
	}
	waitJS(t, ctx, "the quiesce banner after the delay", textContains("#banner-title", "Workers: Paused (Quiesce)"))
	waitJS(t, ctx, "the pause version after the delay", textContains("#banner-detail", wantVersion))

	run(t, ctx, "reload the dashboard", chromedp.Reload())
	waitJS(t, ctx, "the quiesce banner after a reload", textContains("#banner-title", "Workers: Paused (Quiesce)"))
	waitJS(t, ctx, "the pause version after a reload", textContains("#banner-detail", wantVersion))
	screenshot(t, ctx, dir, "02-paused-later")

	var resumed broker.PauseState
	srv.DoJSON(t, http.MethodPost, "/api/system/worker-pause", srv.OperatorToken,
		map[string]any{"action": "resume", "reason": "maintenance done"}, http.StatusOK, &resumed)
	waitJS(t, ctx, "the running banner", textContains("#banner-title", "Workers: Running"))
	waitJS(t, ctx, "the resume version", textContains("#banner-detail", fmt.Sprintf("Version %d", resumed.Version)))
	screenshot(t, ctx, dir, "03-resumed")
}
