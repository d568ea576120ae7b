// Package api serves the broker engine over HTTP with gin: the queue and
// worker-pause endpoints of docs/http-api.md, token authentication, server-sent
// events, Prometheus metrics, health checks and the OpenAPI document.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/moonmind/broker/audit"
	"github.com/moonmind/broker/broker"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultSnapshotInterval  = time.Second
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultClaimRecheck      = time.Second
	DefaultShutdownTimeout   = 30 * time.Second
	MaxWaitSeconds           = 30
)

// Config configures the HTTP API. The zero value of every field means its
// default.
type Config struct {
	// MaxPayloadBytes caps a job payload and a checkpoint; request bodies
	// may be 64 KiB larger. Default: the broker's MaxPayloadBytes.
	MaxPayloadBytes int

	// AuthDisabled makes every request an operator with actor "local".
	// Only for a broker reachable by trusted callers alone.
	AuthDisabled bool

	// OperatorToken and WorkerToken are bootstrap tokens held in memory,
	// named "operator" and "worker". Ignored when Deps.Tokens is set.
	OperatorToken string
	WorkerToken   string

	// TokenCacheTTL is how long a looked-up stored token is cached.
	// Default 5 s.
	TokenCacheTTL time.Duration

	// SnapshotInterval is how often the pause event stream sends a
	// snapshot event. Default 1 s.
	SnapshotInterval time.Duration

	// KeepaliveInterval is how often event streams send a comment line so
	// proxies keep the connection open. Default 15 s.
	KeepaliveInterval time.Duration

	// ClaimRecheck is how often a waiting claim runs the claim script
	// without a notice, so delayed jobs that became due are found.
	// Default 1 s.
	ClaimRecheck time.Duration
}

func (c Config) withDefaults(b *broker.Broker) Config {
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = b.Config().MaxPayloadBytes
	}
	if c.TokenCacheTTL == 0 {
		c.TokenCacheTTL = DefaultTokenCacheTTL
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if c.ClaimRecheck == 0 {
		c.ClaimRecheck = DefaultClaimRecheck
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.MaxPayloadBytes < 0:
		return fmt.Errorf("api config: MaxPayloadBytes must not be negative, got %d", c.MaxPayloadBytes)
	case c.TokenCacheTTL < 0:
		return fmt.Errorf("api config: TokenCacheTTL must not be negative, got %s", c.TokenCacheTTL)
	case c.SnapshotInterval < 0 || c.KeepaliveInterval < 0 || c.ClaimRecheck < 0:
		return errors.New("api config: SnapshotInterval, KeepaliveInterval and ClaimRecheck must not be negative")
	}
	return nil
}

// Deps are the components the API serves. Broker and Notifier are
// required; the notifier must be started by the caller.
type Deps struct {
	Broker   *broker.Broker
	Notifier *broker.Notifier
	// Store reads the audit trail; nil reports the audit as unavailable.
	Store *audit.Store
	// Relay writes a pause change's audit event at once; nil leaves it to
	// another process's relay.
	Relay *audit.Relay
	// DB is used for readiness checks and, when Tokens is nil, for tokens.
	DB     *sqlx.DB
	Logger *slog.Logger
	// Tokens authenticates requests; nil builds one from DB and the
	// bootstrap tokens of Config.
	Tokens *TokenStore
	// Dashboard, when set, is served for GET /, /index.html and /assets/*.
	Dashboard http.Handler
}

// Server is the HTTP API. Create it with New, serve Handler, and call
// Close (or Serve's shutdown) to end long polls and event streams.
type Server struct {
	cfg       Config
	b         *broker.Broker
	notifier  *broker.Notifier
	store     *audit.Store
	relay     *audit.Relay
	db        *sqlx.DB
	logger    *slog.Logger
	tokens    *TokenStore
	metrics   *metrics
	bodyLimit int64
	engine    *gin.Engine

	done      chan struct{}
	closeOnce sync.Once
}

// New builds the server and its routes. It does not touch Redis or
// Postgres.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Broker == nil || deps.Notifier == nil {
		return nil, errors.New("api: Deps.Broker and Deps.Notifier are required")
	}
	cfg = cfg.withDefaults(deps.Broker)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := deps.Logger
	if logger == nil {
		logger = slog.Default()
	}
	tokens := deps.Tokens
	if tokens == nil {
		tokens = NewTokenStore(deps.DB, cfg.OperatorToken, cfg.WorkerToken, cfg.TokenCacheTTL)
	}
	store := deps.Store
	if store != nil {
		// The audit trail shown is the one of this broker's namespace.
		store = store.ForNamespace(deps.Broker.Config().Namespace)
	}
	s := &Server{
		cfg:       cfg,
		b:         deps.Broker,
		notifier:  deps.Notifier,
		store:     store,
		relay:     deps.Relay,
		db:        deps.DB,
		logger:    logger,
		tokens:    tokens,
		bodyLimit: int64(cfg.MaxPayloadBytes) + bodyHeadroom,
		done:      make(chan struct{}),
	}
	s.metrics = newMetrics(s)
	s.engine = s.routes(deps.Dashboard)
	return s, nil
}

// Handler returns the HTTP handler of every route.
func (s *Server) Handler() http.Handler { return s.engine }

// Close ends waiting claims and pause waits with their normal empty
// response and closes event streams. It is idempotent. New requests are
// still served; stop the listener to refuse them.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
}

// Serve serves on ln until ctx ends, with TLS when certFile and keyFile are
// set. On shutdown it stops accepting, ends long polls early, and waits up
// to DefaultShutdownTimeout for in-flight requests.
func (s *Server) Serve(ctx context.Context, ln net.Listener, certFile, keyFile string) error {
	srv := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		if certFile != "" {
			errc <- srv.ServeTLS(ln, certFile, keyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()

	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	s.Close()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down HTTP server: %w", err)
	}
	return nil
}

func (s *Server) routes(dashboard http.Handler) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true
	r.Use(s.requestID, s.recoverPanic, s.observe)
	r.NoRoute(func(c *gin.Context) {
		abort(c, s.logger, newError(http.StatusNotFound, CodeNotFound, "", "no route %s %s: see GET /api/openapi.yaml for the endpoints", c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(s.methodNotAllowed)

	r.GET("/healthz", s.healthz)
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", s.metrics.handler())
	r.GET("/api/openapi.yaml", serveOpenAPI)
	if dashboard != nil {
		r.GET("/", gin.WrapH(dashboard))
		r.GET("/index.html", gin.WrapH(dashboard))
		r.GET("/assets/*path", gin.WrapH(dashboard))
	}

	api := r.Group("/api", s.authenticate)
	producer := s.allow(RoleProducer)
	worker := s.allow(RoleWorker)
	operator := s.allow()

	q := api.Group("/queue/jobs")
	q.POST("", producer, s.enqueue)
	q.GET("", producer, s.listJobs)
	q.POST("/claim", worker, s.claim)
	// Without this route GET /api/queue/jobs/claim would read a job with id
	// "claim", so respond as to any wrong method on a known route.
	q.GET("/claim", s.methodNotAllowed)
	q.GET("/:id", producer, s.getJob)
	q.POST("/:id/heartbeat", worker, s.heartbeat)
	q.POST("/:id/complete", worker, s.complete)
	q.POST("/:id/fail", worker, s.fail)
	q.POST("/:id/cancel", operator, s.cancel)
	q.POST("/:id/cancel/ack", worker, s.ackCancel)
	q.POST("/:id/release", worker, s.release)
	q.POST("/:id/recover", operator, s.recoverJob)
	q.POST("/:id/resubmit", operator, s.resubmit)
	q.POST("/:id/runtime-state", worker, s.runtimeState)
	q.POST("/:id/events", worker, s.appendEvent)
	q.GET("/:id/events", producer, s.listEvents)
	q.GET("/:id/events/stream", producer, s.streamEvents)
	q.GET("/:id/finish-summary", producer, s.finishSummary)
	q.Any("/:id/artifacts", s.artifactsNotSupported)
	q.Any("/:id/artifacts/*path", s.artifactsNotSupported)
	api.POST("/queue/workers/:workerId/release", worker, s.releaseWorker)

	api.GET("/system/worker-pause", operator, s.getPause)
	api.POST("/system/worker-pause", operator, s.postPause)
	api.GET("/system/worker-pause/events", operator, s.pauseEvents)
	api.GET("/system/control-events", operator, s.controlEvents)
	api.GET("/workers", operator, s.listWorkers)

	api.POST("/tokens", operator, s.createToken)
	api.GET("/tokens", operator, s.listTokens)
	api.DELETE("/tokens/:id", operator, s.revokeToken)
	return r
}

const requestIDKey = "mmb.request_id"

// requestID takes X-Request-ID from the request when it is a short
// printable value, or makes one, and returns it in the response.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-ID")
	if id == "" || len(id) > 128 || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		id = uuid.NewString()
	}
	c.Set(requestIDKey, id)
	c.Header("X-Request-ID", id)
	c.Next()
}

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// recoverPanic responds 500 internal for a panicking handler and logs the
// panic with the request id.
func (s *Server) recoverPanic(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			abort(c, s.logger, fmt.Errorf("handler panicked: %v", v))
		}
	}()
	c.Next()
}

// observe logs each request at debug level and counts it by route and
// status.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	s.metrics.httpRequests.WithLabelValues(c.Request.Method, route, fmt.Sprint(status)).Inc()
	s.logger.DebugContext(c.Request.Context(), "request",
		"request_id", requestID(c), "method", c.Request.Method, "route", route,
		"status", status, "duration", time.Since(start), "actor", principal(c).Name)
}

func (s *Server) methodNotAllowed(c *gin.Context) {
	abort(c, s.logger, newError(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "",
		"method %s is not allowed on %s: see GET /api/openapi.yaml for the methods of this route", c.Request.Method, c.Request.URL.Path))
}

func (s *Server) artifactsNotSupported(c *gin.Context) {
	abort(c, s.logger, newError(http.StatusNotFound, CodeNotSupported, "",
		"artifact upload and download is not supported by this broker: store artifacts elsewhere and put their location in the job's payload or result"))
}
