// Package apitest starts a complete broker API server for tests. Each
// server gets a fresh Redis namespace and PostgreSQL schema with the
// migrations applied and the pause key initialized. The notifier, lease
// reaper and audit relay run, and the HTTP API listens on 127.0.0.1.
package apitest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/moonmind/broker/api"
	"github.com/moonmind/broker/audit"
	"github.com/moonmind/broker/broker"
	"github.com/moonmind/broker/dashboard"
	"github.com/moonmind/broker/internal/testutil"
)

// DefaultReaperInterval is the reaper period when Options leaves it zero.
// It is shorter than in production so lease tests finish quickly.
const DefaultReaperInterval = 200 * time.Millisecond

// Options configures Start. The zero value gives a server with
// authentication on, plain HTTP and the broker's default configuration.
type Options struct {
	// LeaseGrace overrides BrokerConfig.LeaseGrace when not zero.
	LeaseGrace time.Duration
	// ReaperInterval is the period of reaper passes. Default
	// DefaultReaperInterval.
	ReaperInterval time.Duration
	// AuthDisabled turns authentication off: every request is an
	// operator with actor "local".
	AuthDisabled bool
	// TLS serves HTTPS with a self-signed certificate that Server.Client
	// trusts.
	TLS bool
	// BrokerConfig configures the engine; Start fills in Namespace.
	BrokerConfig broker.Config
	// API configures the HTTP layer; Start fills in the bootstrap tokens
	// and AuthDisabled.
	API api.Config
}

// Server is a running test broker. Every field is ready to use when Start
// returns.
type Server struct {
	URL           string
	OperatorToken string
	WorkerToken   string
	ProducerToken string
	Namespace     string
	Broker        *broker.Broker
	Redis         *redis.Client
	DB            *sqlx.DB
	DSN           string
	// Client trusts the server's certificate when Options.TLS is set. It
	// has no timeout, because claims and pause waits may block.
	Client *http.Client
	// Close stops the server and its loops. It is idempotent and also
	// runs at test cleanup.
	Close func()

	API      *api.Server
	Notifier *broker.Notifier
	Store    *audit.Store
	Relay    *audit.Relay
}

// Start starts a broker API server for t and stops it at cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	rdb, ns := testutil.Redis(t)
	db, dsn := testutil.Postgres(t)

	cfg := opts.BrokerConfig
	cfg.Namespace = ns
	if opts.LeaseGrace != 0 {
		cfg.LeaseGrace = opts.LeaseGrace
	}
	b, err := broker.New(rdb, cfg)
	if err != nil {
		t.Fatalf("apitest: create broker: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	setupCtx, setupCancel := context.WithTimeout(ctx, 30*time.Second)
	defer setupCancel()
	if err := audit.Migrate(setupCtx, db); err != nil {
		cancel()
		t.Fatalf("apitest: apply migrations: %v", err)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store := audit.NewStore(db).ForNamespace(b.Config().Namespace)
	relay := audit.NewRelay(b, store, audit.RelayConfig{}, logger)
	if err := relay.EnsurePauseState(setupCtx); err != nil {
		cancel()
		t.Fatalf("apitest: initialize the pause key: %v", err)
	}

	var loops sync.WaitGroup
	notifier := b.NewNotifier()
	loops.Add(1)
	go func() {
		defer loops.Done()
		if err := notifier.Start(ctx); err != nil {
			logger.Error("apitest: notifier stopped", "error", err)
		}
	}()
	select {
	case <-notifier.Ready():
	case <-setupCtx.Done():
		cancel()
		t.Fatalf("apitest: notifier did not subscribe within 30s")
	}

	relay.Start(ctx)

	interval := opts.ReaperInterval
	if interval == 0 {
		interval = DefaultReaperInterval
	}
	reaper := b.NewReaper(broker.ReaperConfig{Interval: interval}, logger)
	reaper.Start(ctx)

	s := &Server{
		OperatorToken: randomToken(),
		WorkerToken:   randomToken(),
		Namespace:     ns,
		Broker:        b,
		Redis:         rdb,
		DB:            db,
		DSN:           dsn,
		Notifier:      notifier,
		Store:         store,
		Relay:         relay,
	}
	apiCfg := opts.API
	apiCfg.AuthDisabled = opts.AuthDisabled
	tokens := api.NewTokenStore(db, s.OperatorToken, s.WorkerToken, apiCfg.TokenCacheTTL)
	_, producerToken, err := tokens.Create(setupCtx, "producer", api.RoleProducer, api.Policy{})
	if err != nil {
		cancel()
		t.Fatalf("apitest: create the producer token: %v", err)
	}
	s.ProducerToken = producerToken

	s.API, err = api.New(apiCfg, api.Deps{
		Broker: b, Notifier: notifier, Store: store, Relay: relay, DB: db, Logger: logger, Tokens: tokens,
		Dashboard: dashboard.Handler(),
	})
	if err != nil {
		cancel()
		t.Fatalf("apitest: create API server: %v", err)
	}

	var httpSrv *httptest.Server
	if opts.TLS {
		httpSrv = httptest.NewTLSServer(s.API.Handler())
	} else {
		httpSrv = httptest.NewServer(s.API.Handler())
	}
	s.URL = httpSrv.URL
	s.Client = httpSrv.Client()

	var once sync.Once
	s.Close = func() {
		once.Do(func() {
			// End long polls and event streams first, so closing the
			// HTTP server does not wait for them.
			s.API.Close()
			httpSrv.Close()
			reaper.Stop()
			relay.Stop()
			notifier.Stop()
			cancel()
			loops.Wait()
		})
	}
	t.Cleanup(s.Close)
	return s
}

func randomToken() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "test_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Do sends a request with token as bearer token, unless token is empty.
// A nil body sends none, a []byte or string is sent as is, and any other
// value is encoded as JSON. Do returns the status and the response body.
func (s *Server) Do(t testing.TB, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var reader io.Reader
	switch v := body.(type) {
	case nil:
	case []byte:
		reader = bytes.NewReader(v)
	case string:
		reader = bytes.NewReader([]byte(v))
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("apitest: encode request body: %v", err)
		}
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, s.URL+path, reader)
	if err != nil {
		t.Fatalf("apitest: build request %s %s: %v", method, path, err)
	}
	if reader != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		t.Fatalf("apitest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("apitest: read response of %s %s: %v", method, path, err)
	}
	return resp.StatusCode, raw
}

// DoJSON is Do that also decodes the response into out (when not nil) and
// fails the test when the status is not want.
func (s *Server) DoJSON(t testing.TB, method, path, token string, body any, want int, out any) {
	t.Helper()
	status, raw := s.Do(t, method, path, token, body)
	if status != want {
		t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, status, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode response %s: %v", method, path, raw, err)
		}
	}
}
