package bench

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, c := range cases {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}

func TestMedianKeepsInputOrder(t *testing.T) {
	t.Parallel()
	in := []float64{3, 1, 2}
	median(in)
	if in[0] != 3 || in[1] != 1 || in[2] != 2 {
		t.Errorf("median reordered its input to %v", in)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	t.Parallel()
	xs := make([]float64, 20)
	for i := range xs {
		xs[i] = float64(20 - i) // 20 down to 1
	}
	cases := []struct {
		p    float64
		want float64
	}{
		{50, 10},
		{99, 20},
		{100, 20},
		{1, 1},
	}
	for _, c := range cases {
		if got := percentile(xs, c.p); got != c.want {
			t.Errorf("percentile(1..20, %v) = %v, want %v", c.p, got, c.want)
		}
	}
}

func TestCollectorMediansAndRatio(t *testing.T) {
	t.Parallel()
	c := newCollector()
	for _, v := range []float64{10, 30, 20} {
		c.ours("s", "rate", "ops/s", v)
	}
	for _, v := range []float64{40, 40, 50} {
		c.peer("s", "rate", "ops/s", "peer", v)
	}
	c.ours("s", "only ours", "ms", 2)

	rows := c.rows()
	if len(rows) != 2 {
		t.Fatalf("got %d rows, want 2", len(rows))
	}
	if rows[0].Ours != 20 || rows[0].Peer != 40 {
		t.Errorf("rate row ours/peer = %v/%v, want 20/40", rows[0].Ours, rows[0].Peer)
	}
	if got := rows[0].Ratio(); got != 0.5 {
		t.Errorf("rate row ratio = %v, want 0.5", got)
	}
	if !math.IsNaN(rows[1].Peer) || !math.IsNaN(rows[1].Ratio()) {
		t.Errorf("row without peer has peer %v ratio %v, want NaN for both", rows[1].Peer, rows[1].Ratio())
	}
}

func TestWriteTableAlignsColumns(t *testing.T) {
	t.Parallel()
	r := &Report{Runs: 3, Elapsed: 90 * time.Second, Rows: []Row{
		{Section: "engine", Metric: "claim+complete, concurrency 1", Unit: "cycles/s", Ours: 1234.4, Peer: 5000, PeerName: "ping"},
		{Section: "pause", Metric: "claims", Unit: "claims", Ours: 0, Peer: math.NaN(), PeerName: "-"},
	}}
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatalf("WriteTable: %v", err)
	}
	out := buf.String()
	for _, want := range []string{"median of 3 runs", "1234", "5000", "0.25x", "total time 1m30s"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(out, "\n")
	var header, first string
	for i, l := range lines {
		if strings.HasPrefix(l, "section") {
			header, first = l, lines[i+1]
			break
		}
	}
	if header == "" {
		t.Fatalf("no header line:\n%s", out)
	}
	if got, want := strings.Index(first, "claim+complete"), strings.Index(header, "metric"); got != want {
		t.Errorf("metric column starts at %d in the row and %d in the header", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults", Config{}, ""},
		{"asynq db equals ours", Config{RedisURL: "redis://127.0.0.1:6379/14"}, "AsynqDB 14 is the database of RedisURL"},
		{"unknown section", Config{Sections: []string{"engine", "speed"}}, `unknown section "speed"`},
		{"flush without private server", Config{AllowFlush: true}, "AllowFlush needs PrivateRedis"},
		{"payload too small", Config{PayloadSize: 8}, "PayloadSize must be at least 16"},
		{"bad redis url", Config{RedisURL: "http://x"}, "RedisURL"},
	}
	for _, c := range cases {
		err := c.cfg.withDefaults().validate()
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: unexpected error %v", c.name, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.wantErr)
		}
	}
}

func TestQuickShrinksOnlyUnsetSizes(t *testing.T) {
	t.Parallel()
	cfg := Config{Quick: true, Jobs: 5000}.withDefaults()
	if cfg.Jobs != 5000 {
		t.Errorf("Jobs = %d, want the 5000 that was set", cfg.Jobs)
	}
	if cfg.DeepQueue != quickDeepQueue {
		t.Errorf("DeepQueue = %d, want the quick size %d", cfg.DeepQueue, quickDeepQueue)
	}
}

func TestMakePayloadSize(t *testing.T) {
	t.Parallel()
	for _, size := range []int{16, 100, 1000} {
		if got := len(makePayload(size)); got != size {
			t.Errorf("makePayload(%d) has %d bytes", size, got)
		}
	}
}

func TestCheckFlushTargetRejectsSharedRedis(t *testing.T) {
	t.Parallel()
	if err := CheckFlushTarget("redis://127.0.0.1:6379/0"); err == nil {
		t.Error("CheckFlushTarget accepted the shared Redis at 127.0.0.1:6379")
	}
	if err := CheckFlushTarget("redis://127.0.0.1:40123/0"); err != nil {
		t.Errorf("CheckFlushTarget rejected a private port: %v", err)
	}
}
