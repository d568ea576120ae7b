package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// printJSON writes v as indented JSON followed by a newline. A
// json.RawMessage is re-indented as it came from the API.
func printJSON(w io.Writer, v any) error {
	var data []byte
	var err error
	if raw, ok := v.(json.RawMessage); ok {
		var buf bytes.Buffer
		err = json.Indent(&buf, raw, "", "  ")
		data = buf.Bytes()
	} else {
		data, err = json.MarshalIndent(v, "", "  ")
	}
	if err != nil {
		return fmt.Errorf("format JSON output: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

// newTable returns a tabwriter for aligned columns; call Flush when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// row writes one tab-separated table row.
func row(w io.Writer, cells ...string) {
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// formatTime prints a time in RFC 3339 UTC with seconds, or "-".
func formatTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// formatDuration rounds d to whole seconds for display.
func formatDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return d.Round(time.Second).String()
}

// str returns *s, or "-" for nil or empty.
func str(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// truncate shortens s to at most n runes, marking the cut with "...".
func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}

// isTerminal reports whether w is a character device, so a progress line
// can be redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// getAndShow GETs path with query q. With --output json it prints the raw
// response body; otherwise it decodes the body into T and calls show.
// Errors name the request by action ("list jobs") and the body by noun
// ("job list").
func getAndShow[T any](a *app, cmd *cobra.Command, path string, q url.Values, action, noun string, show func(T)) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.do(cmd.Context(), "GET", path, q, nil, &raw); err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	if a.jsonOutput() {
		return printJSON(a.stdout, raw)
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("decode the %s: %w", noun, err)
	}
	show(v)
	return nil
}
