package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // registers the postgres driver

	"github.com/moonmind/broker/api"
	"github.com/moonmind/broker/audit"
	"github.com/moonmind/broker/broker"
)

// apiServer is an API server of one engine, served in this process on a
// loopback port with a PostgreSQL schema of its own for the audit trail.
type apiServer struct {
	g             *engine
	URL           string
	OperatorToken string
	WorkerToken   string
	HTTP          *http.Client

	notifier *broker.Notifier
	srv      *api.Server
	db       *sqlx.DB
	admin    *sqlx.DB
	schema   string
	stop     context.CancelFunc
	served   chan error
	notified chan error
}

// startAPI migrates a fresh schema, starts the engine's notifier and serves
// the API on 127.0.0.1 until close.
func (g *engine) startAPI(ctx context.Context) (s *apiServer, err error) {
	s = &apiServer{
		g:             g,
		OperatorToken: randomName("op-"),
		WorkerToken:   randomName("wk-"),
		schema:        randomName("bench_"),
		HTTP:          &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: poolSize}},
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.close(context.WithoutCancel(ctx)))
		}
	}()

	if err := s.openSchema(ctx, g.e.cfg.DatabaseURL); err != nil {
		return s, err
	}
	if err := audit.Migrate(ctx, s.db); err != nil {
		return s, fmt.Errorf("migrate audit schema: %w", err)
	}

	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	s.notifier = g.b.NewNotifier()
	s.notified = make(chan error, 1)
	go func() { s.notified <- s.notifier.Start(runCtx) }()

	store := audit.NewStore(s.db).ForNamespace(g.b.Config().Namespace)
	s.srv, err = api.New(api.Config{OperatorToken: s.OperatorToken, WorkerToken: s.WorkerToken}, api.Deps{
		Broker: g.b, Notifier: s.notifier, Store: store, DB: s.db,
		Logger: g.e.log.With("component", "api"),
	})
	if err != nil {
		return s, fmt.Errorf("build API server: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return s, fmt.Errorf("listen on a loopback port: %w", err)
	}
	s.URL = "http://" + ln.Addr().String()
	s.served = make(chan error, 1)
	go func() { s.served <- s.srv.Serve(runCtx, ln, "", "") }()

	ready := func() (bool, error) {
		resp, err := s.HTTP.Get(s.URL + "/healthz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}
	if err := waitUntil(ctx, 10*time.Second, 10*time.Millisecond, "the API server to return 200 on /healthz", ready); err != nil {
		return s, err
	}
	return s, nil
}

// openSchema creates a fresh schema on the database and connects with its
// search_path, so the migrations and the audit rows stay inside it.
func (s *apiServer) openSchema(ctx context.Context, dsn string) error {
	admin, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return fmt.Errorf("open DatabaseURL: %w", err)
	}
	s.admin = admin
	if err := admin.PingContext(ctx); err != nil {
		return fmt.Errorf("connect to PostgreSQL at DatabaseURL: %w", err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+s.schema); err != nil {
		return fmt.Errorf("create schema %s: %w", s.schema, err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("parse DatabaseURL: %w", err)
	}
	q := u.Query()
	q.Set("search_path", s.schema)
	u.RawQuery = q.Encode()
	if s.db, err = sqlx.Open("postgres", u.String()); err != nil {
		return fmt.Errorf("open schema %s: %w", s.schema, err)
	}
	return nil
}

// close stops the server and the notifier and drops the schema.
func (s *apiServer) close(ctx context.Context) error {
	var errs []error
	if s.stop != nil {
		s.stop()
	}
	if s.served != nil {
		if err := <-s.served; err != nil {
			errs = append(errs, fmt.Errorf("API server: %w", err))
		}
	}
	if s.notifier != nil {
		s.notifier.Stop()
		if err := <-s.notified; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("notifier: %w", err))
		}
	}
	if s.db != nil {
		s.db.Close()
	}
	if s.admin != nil {
		if _, err := s.admin.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+s.schema+" CASCADE"); err != nil {
			errs = append(errs, fmt.Errorf("drop schema %s: %w", s.schema, err))
		}
		s.admin.Close()
	}
	s.HTTP.CloseIdleConnections()
	return errors.Join(errs...)
}

// call sends one request with the operator token and decodes a 2xx JSON
// response into out (when out is not nil).
func (s *apiServer) call(ctx context.Context, method, path string, body, out any) error {
	var reader io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s %s body: %w", method, path, err)
		}
		reader = bytes.NewReader(raw)
	}

	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, reader)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.OperatorToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s response: %w", method, path, err)
	}
	return nil
}

// enqueue posts n no-op jobs from concurrency callers and returns the rate
// in jobs per second.
func (s *apiServer) enqueue(ctx context.Context, n, concurrency int) (float64, error) {
	body := map[string]any{"type": noopType, "payload": json.RawMessage(makePayload(s.g.e.cfg.PayloadSize))}
	elapsed, err := fanOut(ctx, n, concurrency, func(ctx context.Context, _ int) error {
		return s.call(ctx, http.MethodPost, "/api/queue/jobs", body, nil)
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue over HTTP: %w", err)
	}
	return perSecond(n, elapsed), nil
}

// pause posts a drain pause and returns the change time from the response,
// which the Redis clock set.
func (s *apiServer) pause(ctx context.Context, reason string) (time.Time, error) {
	return s.changePause(ctx, map[string]any{"action": "pause", "mode": "drain", "reason": reason})
}

// resume posts a forced resume, because the benchmark pauses with jobs
// still running, and returns the change time from the Redis clock.
func (s *apiServer) resume(ctx context.Context, reason string) (time.Time, error) {
	return s.changePause(ctx, map[string]any{"action": "resume", "reason": reason, "forceResume": true})
}

func (s *apiServer) changePause(ctx context.Context, body map[string]any) (time.Time, error) {
	var response struct {
		UpdatedAt *time.Time `json:"updatedAt"`
	}
	if err := s.call(ctx, http.MethodPost, "/api/system/worker-pause", body, &response); err != nil {
		return time.Time{}, err
	}
	if response.UpdatedAt == nil {
		return time.Time{}, fmt.Errorf("POST /api/system/worker-pause returned no updatedAt")
	}
	return *response.UpdatedAt, nil
}
