package main

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

// tableRow is one parsed line of the brokerbench table.
type tableRow struct {
	section, metric, unit, ours, peer, peerName, ratio string
}

// parseTable returns the rows between the header line and the blank line
// after the table, keyed by metric.
func parseTable(t *testing.T, out []byte) map[string]tableRow {
	t.Helper()
	columns := regexp.MustCompile(`\s{2,}`)
	rows := map[string]tableRow{}
	inTable := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "section "):
			inTable = true
			continue
		case !inTable:
			continue
		case strings.TrimSpace(line) == "":
			return rows
		}
		cells := columns.Split(strings.TrimSpace(line), -1)
		if len(cells) != 7 {
			t.Fatalf("table line has %d columns, want 7: %q", len(cells), line)
		}
		rows[cells[1]] = tableRow{cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6]}
	}
	t.Fatalf("no complete table in the output:\n%s", out)
	return nil
}

func number(t *testing.T, row tableRow, column, cell string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(cell, 64)
	if err != nil {
		t.Fatalf("%s: %s figure %q is not a number", row.metric, column, cell)
	}
	return v
}

func TestQuickRunPrintsEveryRow(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every benchmark section for about a minute")
	}
	bin := filepath.Join(t.TempDir(), "brokerbench")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build brokerbench: %v\n%s", err, out)
	}
	// A private server, so the run may flush; persistence off because the
	// benchmark needs none.
	srv := testutil.StartRedisServer(t, "--appendonly", "no")

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-quick", "-runs", "1", "-redis", srv.URL(), "-allow-flush",
		"-database", testutil.DatabaseURL())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("brokerbench -quick: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	rows := parseTable(t, out)

	// Rows whose figures are rates, latencies or sizes, which must be
	// positive for both brokers.
	positiveWithPeer := []string{
		"claim+complete, concurrency 1",
		"claim+complete, concurrency 10",
		"claim+complete, concurrency 50",
		"enqueue, 50 callers",
		"processed end to end, 10 workers",
		"processed end to end, 50 workers",
		"resume sent to first start, p50",
		"resume sent to first start, p99",
		"memory per queued job, 100-byte payload",
	}
	positiveOursOnly := []string{
		"snapshot script p50, 10k queued",
		"snapshot script p99, 10k queued",
		"GET worker-pause p50, 10k queued",
		"GET worker-pause p99, 10k queued",
	}
	for _, metric := range positiveWithPeer {
		row, ok := rows[metric]
		if !ok {
			t.Errorf("row %q is missing", metric)
			continue
		}
		if v := number(t, row, "ours", row.ours); v <= 0 {
			t.Errorf("%s: ours = %v, want > 0", metric, v)
		}
		if v := number(t, row, "peer", row.peer); v <= 0 {
			t.Errorf("%s: peer = %v, want > 0", metric, v)
		}
	}
	for _, metric := range positiveOursOnly {
		row, ok := rows[metric]
		if !ok {
			t.Errorf("row %q is missing", metric)
			continue
		}
		if v := number(t, row, "ours", row.ours); v <= 0 {
			t.Errorf("%s: ours = %v, want > 0", metric, v)
		}
	}

	// A job may start before the resume response arrives, which counts as no
	// delay, so these figures may be zero but not negative.
	for _, metric := range []string{"resume to first start, p50", "resume to first start, p99"} {
		row, ok := rows[metric]
		if !ok {
			t.Errorf("row %q is missing", metric)
			continue
		}
		if v := number(t, row, "ours", row.ours); v < 0 {
			t.Errorf("%s: ours = %v, want >= 0", metric, v)
		}
		if v := number(t, row, "peer", row.peer); v <= 0 {
			t.Errorf("%s: peer = %v, want > 0 because asynq polls an idle queue", metric, v)
		}
	}

	// asynq may start a task it dequeued just before the pause, so its
	// figure is only checked to be a count.
	if row, ok := rows["handler starts after pause returned"]; !ok {
		t.Error(`row "handler starts after pause returned" is missing`)
	} else if v := number(t, row, "peer", row.peer); v < 0 {
		t.Errorf("handler starts after pause returned: peer = %v, want >= 0", v)
	}

	// The pause guarantee: no claim of ours is granted while paused.
	for _, metric := range []string{"claims granted while paused, Redis clock", "claims granted after pause returned, engine"} {
		row, ok := rows[metric]
		if !ok {
			t.Errorf("row %q is missing", metric)
			continue
		}
		if v := number(t, row, "ours", row.ours); v != 0 {
			t.Errorf("%s: ours = %v, want 0", metric, v)
		}
	}
	if want := len(positiveWithPeer) + len(positiveOursOnly) + 5; len(rows) != want {
		t.Errorf("table has %d rows, want %d:\n%s", len(rows), want, out)
	}
}
