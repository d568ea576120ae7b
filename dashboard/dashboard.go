// Package dashboard serves the operator dashboard: one HTML page with plain
// CSS and JavaScript, embedded in the binary, that drives the broker through
// its REST API. It needs no build step and loads nothing from other hosts.
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var files embed.FS

// contentSecurityPolicy lets the page load and call only its own origin.
// Inline scripts and styles are not allowed, so an injected string cannot
// run code.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the dashboard page at "/" and "/index.html" and its files
// at "/assets/NAME". Other paths get 404 and methods other than GET and
// HEAD get 405, so the handler can be mounted at the root of a router.
func Handler() http.Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		// The embed directive above guarantees the folder exists.
		panic("dashboard: embedded static folder missing: " + err.Error())
	}
	fileServer := http.FileServer(http.FS(static))

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: the dashboard serves GET and HEAD only", http.StatusMethodNotAllowed)
			return
		}

		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		// The files change with each release; revalidation keeps an
		// upgraded dashboard from running stale JavaScript.
		h.Set("Cache-Control", "no-cache")

		p := path.Clean("/" + r.URL.Path)
		switch {
		case p == "/" || p == "/index.html":
			serveFile(w, r, static, "index.html")
		case strings.HasPrefix(p, "/assets/") && !strings.HasSuffix(r.URL.Path, "/"):
			r2 := r.Clone(r.Context())
			r2.URL.Path = p
			fileServer.ServeHTTP(w, r2)
		default:
			http.NotFound(w, r)
		}
	})
}

// serveFile writes one embedded file. http.FileServer would redirect
// "/index.html" to "/", which this handler serves directly instead.
func serveFile(w http.ResponseWriter, r *http.Request, static fs.FS, name string) {
	data, err := fs.ReadFile(static, name)
	if err != nil {
		http.Error(w, "dashboard file missing: "+name, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(data)
}
