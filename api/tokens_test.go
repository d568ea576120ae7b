package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moonmind/broker/api"
	"github.com/moonmind/broker/internal/apitest"
	"github.com/moonmind/broker/internal/testutil"
)

func TestTokenCreateListRevoke(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{})
	c := newClient(t, s)

	var created struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Role   string `json:"role"`
		Token  string `json:"token"`
		Policy struct {
			AllowedTypes []string `json:"allowedTypes"`
		} `json:"policy"`
	}
	c.json(http.MethodPost, "/api/tokens", s.OperatorToken, map[string]any{
		"name": "ci-producer", "role": "producer",
	}, http.StatusCreated, &created)
	if !strings.HasPrefix(created.Token, api.TokenPrefix) || len(created.Token) != len(api.TokenPrefix)+43 {
		t.Errorf("token %q does not look like mmb_ plus 32 random bytes in base64url", created.Token)
	}
	if created.Name != "ci-producer" || created.Role != "producer" {
		t.Errorf("created token = %+v, want ci-producer with role producer", created)
	}

	job := c.enqueueWith(created.Token, "demo:a")
	if job.ID == "" {
		t.Fatalf("enqueue with the new token returned no job")
	}

	r := c.json(http.MethodGet, "/api/tokens", s.OperatorToken, nil, http.StatusOK, nil)
	if strings.Contains(string(r.body), created.Token) || strings.Contains(string(r.body), "token_hash") {
		t.Errorf("token list leaks a secret: %s", r.body)
	}
	var list struct {
		Items []struct {
			Name       string  `json:"name"`
			LastUsedAt *string `json:"lastUsedAt"`
			RevokedAt  *string `json:"revokedAt"`
		} `json:"items"`
	}
	decode(t, r.body, &list)
	var listed bool
	for _, item := range list.Items {
		if item.Name == "ci-producer" {
			listed = true
			if item.LastUsedAt == nil {
				t.Errorf("lastUsedAt of a used token is null")
			}
		}
	}
	if !listed {
		t.Errorf("token list %s lacks ci-producer", r.body)
	}

	c.expectError(request{method: http.MethodPost, path: "/api/tokens", token: s.OperatorToken,
		body: map[string]any{"name": "ci-producer", "role": "worker"}}, http.StatusBadRequest, "invalid_field", "name")
	c.expectError(request{method: http.MethodPost, path: "/api/tokens", token: s.OperatorToken,
		body: map[string]any{"name": "p2", "role": "producer", "policy": map[string]any{"allowedTypes": []string{"x"}}}}, http.StatusBadRequest, "invalid_field", "policy")

	var revoked struct {
		RevokedAt *time.Time `json:"revokedAt"`
	}
	c.json(http.MethodDelete, "/api/tokens/"+created.ID, s.OperatorToken, nil, http.StatusOK, &revoked)
	if revoked.RevokedAt == nil {
		t.Errorf("revokedAt is null after revoke")
	}
	c.expectError(request{method: http.MethodPost, path: "/api/queue/jobs", token: created.Token, body: map[string]any{"type": "demo:a"}},
		http.StatusUnauthorized, "unauthorized", "")
	c.expectError(request{method: http.MethodDelete, path: "/api/tokens/00000000-0000-4000-8000-000000000000", token: s.OperatorToken},
		http.StatusNotFound, "not_found", "")
	c.expectError(request{method: http.MethodDelete, path: "/api/tokens/not-a-uuid", token: s.OperatorToken},
		http.StatusNotFound, "not_found", "")
}

func TestRevocationReachesOtherServersWithinCacheTTL(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.Options{API: api.Config{TokenCacheTTL: 300 * time.Millisecond}})
	c := newClient(t, s)

	var created struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	c.json(http.MethodPost, "/api/tokens", s.OperatorToken, map[string]any{"name": "w", "role": "worker"}, http.StatusCreated, &created)
	c.json(http.MethodPost, "/api/queue/jobs/claim", created.Token, map[string]any{"workerId": "w1"}, http.StatusOK, nil)

	// Revoke in the database directly, as another API server would, so
	// this server only learns of it when its cache entry expires.
	if _, err := s.DB.Exec("UPDATE api_tokens SET revoked_at = now() WHERE id = $1", created.ID); err != nil {
		t.Fatalf("revoke in the database: %v", err)
	}
	testutil.WaitFor(t, 5*time.Second, "the revoked token to be rejected with a 300 ms cache", func() bool {
		r := c.do(request{method: http.MethodPost, path: "/api/queue/jobs/claim", token: created.Token, body: map[string]any{"workerId": "w1"}})
		return r.status == http.StatusUnauthorized
	})
}
