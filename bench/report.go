package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Row is one line of the result table: the median of the runs of one
// figure for MoonMind Broker and for its peer. A figure that was not
// measured is NaN.
type Row struct {
	Section string
	Metric  string
	Unit    string
	Ours    float64
	Peer    float64
	// PeerName names what Peer measured, for example "asynq" or the
	// EVALSHA ping ceiling.
	PeerName string
	// Samples are the per-run values of Ours and Peer, in run order.
	OursSamples []float64
	PeerSamples []float64
}

// Ratio returns Ours / Peer, or NaN when either is missing or Peer is 0.
func (r Row) Ratio() float64 {
	if math.IsNaN(r.Ours) || math.IsNaN(r.Peer) || r.Peer == 0 {
		return math.NaN()
	}
	return r.Ours / r.Peer
}

// Report is the outcome of one Run.
type Report struct {
	Runs    int
	Started time.Time
	Elapsed time.Duration
	Rows    []Row
}

// Row returns the first row with the given section and metric.
func (r *Report) Row(section, metric string) (Row, bool) {
	for _, row := range r.Rows {
		if row.Section == section && row.Metric == metric {
			return row, true
		}
	}
	return Row{}, false
}

// WriteTable prints the report as an aligned text table with the ratio
// Ours / Peer in the last column.
func (r *Report) WriteTable(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "each figure is the median of %d runs; ratio = ours / peer\n\n", r.Runs); err != nil {
		return err
	}
	header := []string{"section", "metric", "unit", "ours", "peer", "peer is", "ratio"}
	lines := [][]string{header}
	for _, row := range r.Rows {
		lines = append(lines, []string{row.Section, row.Metric, row.Unit, formatNumber(row.Ours),
			formatNumber(row.Peer), row.PeerName, formatRatio(row.Ratio())})
	}
	// Text columns are aligned left, the three numeric ones right.
	rightAligned := map[int]bool{3: true, 4: true, 6: true}
	widths := make([]int, len(header))
	for _, line := range lines {
		for i, cell := range line {
			widths[i] = max(widths[i], len(cell))
		}
	}
	for _, line := range lines {
		var b strings.Builder
		for i, cell := range line {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-len(cell))
			if rightAligned[i] {
				b.WriteString(pad + cell)
			} else {
				b.WriteString(cell + pad)
			}
		}
		if _, err := fmt.Fprintln(w, strings.TrimRight(b.String(), " ")); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "\ntotal time %s\n", r.Elapsed.Round(time.Second))
	return err
}

// formatNumber prints n with three significant digits at most after the
// point and "-" for NaN.
func formatNumber(n float64) string {
	switch {
	case math.IsNaN(n):
		return "-"
	case math.Abs(n) >= 1000:
		return strconv.FormatFloat(n, 'f', 0, 64)
	case math.Abs(n) >= 10:
		return strconv.FormatFloat(n, 'f', 1, 64)
	default:
		return strconv.FormatFloat(n, 'f', 3, 64)
	}
}

func formatRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "-"
	}
	return strconv.FormatFloat(r, 'f', 2, 64) + "x"
}

// median returns the median of xs, or NaN for an empty slice.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile returns the p-th percentile (0 < p <= 100) of xs by the
// nearest-rank method, or NaN for an empty slice.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// millis converts d to fractional milliseconds.
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// perSecond returns n events over d as a rate per second.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return math.NaN()
	}
	return float64(n) / d.Seconds()
}
