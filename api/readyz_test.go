package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/moonmind/broker/internal/apitest"
)

func TestReadyzHidesPauseReason(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)
	const reason = "incident 4711: database credentials leaked"
	c.pause("drain", reason)

	// The client checks the body against the Readiness schema, which
	// allows no other field in pause.
	var ready struct {
		Pause map[string]any `json:"pause"`
	}
	r := c.json(http.MethodGet, "/readyz", "", nil, http.StatusOK, &ready)

	if ready.Pause == nil {
		t.Fatalf("/readyz has no pause object: %s", r.body)
	}
	if got := ready.Pause["workersPaused"]; got != true {
		t.Errorf("pause.workersPaused = %v, want true", got)
	}
	if got := ready.Pause["mode"]; got != "drain" {
		t.Errorf("pause.mode = %v, want drain", got)
	}
	if got := ready.Pause["version"]; got != float64(2) {
		t.Errorf("pause.version = %v, want 2", got)
	}
	for _, field := range []string{"reason", "requestedBy", "requestedAt", "updatedAt"} {
		if _, ok := ready.Pause[field]; ok {
			t.Errorf("/readyz, which needs no token, shows pause.%s: %s", field, r.body)
		}
	}
	if strings.Contains(string(r.body), "incident 4711") || strings.Contains(string(r.body), `"operator"`) {
		t.Errorf("/readyz body contains the pause reason or the actor: %s", r.body)
	}
}
