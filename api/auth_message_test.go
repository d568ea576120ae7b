package api_test

import (
	"net/http"
	"testing"

	"github.com/moonmind/broker/internal/apitest"
)

func TestForbiddenMessageNamesRoles(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	cases := []struct {
		name string
		req  request
		want string
	}{
		{
			name: "operator only",
			req: request{method: http.MethodPost, path: "/api/system/worker-pause", token: s.WorkerToken,
				body: map[string]any{"action": "pause", "mode": "drain", "reason": "not allowed"}},
			want: "a worker token may not call POST /api/system/worker-pause: use an operator token",
		},
		{
			name: "operator or worker",
			req: request{method: http.MethodPost, path: "/api/queue/jobs/claim", token: s.ProducerToken,
				body: map[string]any{"workerId": "w1"}},
			want: "a producer token may not call POST /api/queue/jobs/claim: use an operator or worker token",
		},
		{
			name: "operator or producer",
			req: request{method: http.MethodPost, path: "/api/queue/jobs", token: s.WorkerToken,
				body: map[string]any{"type": "demo:a"}},
			want: "a worker token may not call POST /api/queue/jobs: use an operator or producer token",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, s)
			body := c.expectError(tc.req, http.StatusForbidden, "forbidden", "")
			if body.Message != tc.want {
				t.Errorf("message = %q, want %q", body.Message, tc.want)
			}
		})
	}
}
