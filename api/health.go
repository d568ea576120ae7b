package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/moonmind/broker/audit"
	"github.com/moonmind/broker/broker"
)

// readyCheckTimeout bounds each readiness check.
const readyCheckTimeout = 2 * time.Second

// readyCheck is the result of one readiness check.
type readyCheck struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// readiness is the body of /readyz.
type readiness struct {
	Status      string                `json:"status"`
	Failed      []string              `json:"failed"`
	Checks      map[string]readyCheck `json:"checks"`
	OutboxDepth int64                 `json:"outboxDepth"`
	// Pause is the pause state when the pause key could be read.
	Pause *readyPause `json:"pause"`
}

// readyPause is the part of the pause state that /readyz shows. The
// endpoint needs no token, so it leaves out the reason (which may hold
// incident details), who paused and when. Operators read those with
// GET /api/system/worker-pause.
type readyPause struct {
	WorkersPaused bool              `json:"workersPaused"`
	Mode          *broker.PauseMode `json:"mode"`
	Version       int64             `json:"version"`
}

// readyz responds 200 when Redis and PostgreSQL are reachable, the migrations are
// applied and clean, and the pause key exists; otherwise 503 naming each
// failed check. The outbox depth is reported, not checked: events waiting
// there do not stop the broker from working.
func (s *Server) readyz(c *gin.Context) {
	ctx := c.Request.Context()
	r := readiness{Status: "ready", Failed: []string{}, Checks: map[string]readyCheck{}}
	run := func(name string, check func(context.Context) error) {
		checkCtx, cancel := context.WithTimeout(ctx, readyCheckTimeout)
		defer cancel()
		if err := check(checkCtx); err != nil {
			r.Checks[name] = readyCheck{Error: err.Error()}
			r.Failed = append(r.Failed, name)
			return
		}
		r.Checks[name] = readyCheck{OK: true}
	}

	run("redis", func(ctx context.Context) error { return s.b.Redis().Ping(ctx).Err() })
	run("postgres", func(ctx context.Context) error {
		if s.db == nil {
			return errors.New("no database configured")
		}
		return s.db.PingContext(ctx)
	})
	run("migrations", func(ctx context.Context) error {
		if s.db == nil {
			return errors.New("no database configured")
		}
		version, dirty, err := audit.MigrationVersion(ctx, s.db)
		switch {
		case err != nil:
			return err
		case dirty:
			return fmt.Errorf("migration %d is dirty: fix the schema by hand, then force the version with golang-migrate", version)
		case version < SchemaVersion:
			return fmt.Errorf("schema is at version %d, need %d: run brokerd migrate", version, SchemaVersion)
		}
		return nil
	})
	run("pauseKey", func(ctx context.Context) error {
		pause, err := s.b.PauseState(ctx)
		if err == nil {
			r.Pause = &readyPause{WorkersPaused: pause.WorkersPaused, Mode: pause.Mode, Version: pause.Version}
		}
		if errors.Is(err, broker.ErrPauseStateMissing) {
			return errors.New("pause key is missing in Redis; claims fail closed until the relay restores it from the audit trail")
		}
		return err
	})
	run("outbox", func(ctx context.Context) error {
		depth, err := s.b.OutboxDepth(ctx)
		r.OutboxDepth = depth
		return err
	})

	status := http.StatusOK
	if len(r.Failed) > 0 {
		r.Status = "not_ready"
		status = http.StatusServiceUnavailable
	}
	c.JSON(status, r)
}

// SchemaVersion is the migration version this server needs.
const SchemaVersion = 2

// healthz reports that the process runs; it checks nothing else.
func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}
