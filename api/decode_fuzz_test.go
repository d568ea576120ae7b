package api

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

// FuzzDecodeJSON checks that no body makes the strict decoder panic and
// that every rejection is an *Error with a 400 or 413 status.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"action":"pause","mode":"drain","reason":"r"}`,
		`{"Action":"pause"}`,
		`{"expectedVersion":"1"}`,
		"{\"reason\":\"\xff\"}",
		`{"reason":"a"} {}`,
		`[`, ``, `null`, `{"forceResume":true,"forceResume":false}`,
	} {
		f.Add([]byte(seed))
	}
	gin.SetMode(gin.ReleaseMode)
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest(http.MethodPost, "/api/system/worker-pause", bytes.NewReader(body))
		var req pauseRequest
		err := decodeJSON(c, 1024, &req)
		if err == nil {
			return
		}
		var apiErr *Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("decodeJSON(%q) returned %T %v, want *Error", body, err, err)
		}
		if apiErr.Status != http.StatusBadRequest && apiErr.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("decodeJSON(%q) status %d, want 400 or 413", body, apiErr.Status)
		}
		if apiErr.Body.Message == "" {
			t.Fatalf("decodeJSON(%q) gave an empty message", body)
		}
	})
}
