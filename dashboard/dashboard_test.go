package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moonmind/broker/dashboard"
)

func TestHandlerServesPageAndAssets(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(dashboard.Handler())
	t.Cleanup(srv.Close)

	cases := []struct {
		path        string
		status      int
		contentType string
		contains    string
	}{
		{"/", 200, "text/html", `<script src="/assets/app.js"`},
		{"/index.html", 200, "text/html", "Operator token"},
		{"/assets/app.js", 200, "javascript", "Authorization"},
		{"/assets/app.css", 200, "text/css", ".banner-paused"},
		{"/assets/", 404, "", ""},
		{"/assets/missing.js", 404, "", ""},
		{"/assets/../dashboard.go", 404, "", ""},
		{"/other", 404, "", ""},
	}
	for _, tc := range cases {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s: status %d, want %d", tc.path, resp.StatusCode, tc.status)
			continue
		}
		if tc.status != 200 {
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, tc.contentType) {
			t.Errorf("GET %s: Content-Type %q, want it to contain %q", tc.path, ct, tc.contentType)
		}
		if !strings.Contains(string(body), tc.contains) {
			t.Errorf("GET %s: body does not contain %q", tc.path, tc.contains)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q, want connect-src 'self'", tc.path, csp)
		}
	}
}

func TestHandlerRejectsPost(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(dashboard.Handler())
	t.Cleanup(srv.Close)

	resp, err := http.Post(srv.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", resp.StatusCode)
	}
}

func TestPageLoadsNothingFromOtherHosts(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(dashboard.Handler())
	t.Cleanup(srv.Close)
	for _, path := range []string{"/", "/assets/app.js", "/assets/app.css"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, bad := range []string{"http://", "https://", "//cdn", "localStorage", "document.cookie"} {
			if strings.Contains(string(body), bad) {
				t.Errorf("%s contains %q: the dashboard must work offline and keep the token in sessionStorage only", path, bad)
			}
		}
	}
}
