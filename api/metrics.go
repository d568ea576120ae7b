package api

import (
	"context"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/moonmind/broker/broker"
)

// scrapeTimeout bounds the Redis read made for one /metrics scrape.
const scrapeTimeout = 3 * time.Second

// metrics holds the server's own Prometheus registry. Counters are updated
// by the handlers; gauges are read from one snapshot per scrape.
type metrics struct {
	registry     *prometheus.Registry
	claims       *prometheus.CounterVec
	claimLatency prometheus.Histogram
	httpRequests *prometheus.CounterVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		claims: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmb_claims_total",
			Help: "Claim script runs by result: job (a job was leased), empty (nothing to claim) or paused (workers paused or pause state missing).",
		}, []string{"result"}),
		claimLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mmb_claim_duration_seconds",
			Help:    "Duration of one claim script run, in seconds, without the long-poll wait.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mmb_http_requests_total",
			Help: "HTTP requests by method, route pattern and status code.",
		}, []string{"method", "route", "status"}),
	}
	for _, result := range []string{"job", "empty", "paused"} {
		m.claims.WithLabelValues(result)
	}
	m.registry.MustRegister(m.claims, m.claimLatency, m.httpRequests, &stateCollector{s: s},
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() gin.HandlerFunc {
	return gin.WrapH(promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
}

var (
	descPaused   = prometheus.NewDesc("mmb_pause_workers_paused", "1 while the workers are paused, else 0.", nil, nil)
	descVersion  = prometheus.NewDesc("mmb_pause_version", "Current pause state version.", nil, nil)
	descMode     = prometheus.NewDesc("mmb_pause_mode", "1 for the pause mode in force (drain or quiesce), 0 for the other.", []string{"mode"}, nil)
	descJobs     = prometheus.NewDesc("mmb_jobs", "Jobs by state.", []string{"state"}, nil)
	descStale    = prometheus.NewDesc("mmb_jobs_stale_running", "Running jobs whose lease has expired.", nil, nil)
	descOutbox   = prometheus.NewDesc("mmb_audit_outbox_depth", "Audit events waiting in the Redis outbox for PostgreSQL.", nil, nil)
	descLive     = prometheus.NewDesc("mmb_workers_live", "Workers seen within the live window.", nil, nil)
	descAcked    = prometheus.NewDesc("mmb_workers_acknowledged", "Live workers whose latest response carried the current pause version.", nil, nil)
	descScrapeOK = prometheus.NewDesc("mmb_state_scrape_ok", "1 when the pause state and counts could be read from Redis for this scrape.", nil, nil)
)

// stateCollector reads the pause state and job counts at scrape time.
type stateCollector struct{ s *Server }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPaused, descVersion, descMode, descJobs, descStale, descOutbox, descLive, descAcked, descScrapeOK} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	snap, err := c.s.b.Snapshot(ctx)
	if err != nil {
		c.s.logger.Warn("metrics: read snapshot failed", "error", err)
		ch <- prometheus.MustNewConstMetric(descScrapeOK, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descScrapeOK, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(descPaused, prometheus.GaugeValue, boolFloat(snap.Pause.WorkersPaused))
	ch <- prometheus.MustNewConstMetric(descVersion, prometheus.GaugeValue, float64(snap.Pause.Version))
	for _, mode := range []broker.PauseMode{broker.ModeDrain, broker.ModeQuiesce} {
		inForce := snap.Pause.WorkersPaused && snap.Pause.Mode != nil && *snap.Pause.Mode == mode
		ch <- prometheus.MustNewConstMetric(descMode, prometheus.GaugeValue, boolFloat(inForce), string(mode))
	}
	for _, st := range broker.Statuses {
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(snap.Counts[st]), string(st))
	}
	ch <- prometheus.MustNewConstMetric(descStale, prometheus.GaugeValue, float64(snap.Metrics.StaleRunning))
	ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(snap.Outbox))
	ch <- prometheus.MustNewConstMetric(descLive, prometheus.GaugeValue, float64(snap.Workers.Live))
	ch <- prometheus.MustNewConstMetric(descAcked, prometheus.GaugeValue, float64(snap.Workers.Acknowledged))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
