package worker

import (
	"log/slog"
	"sync"
)

// Sources of a pause observation, logged as "source".
const (
	sourceClaim     = "claim"
	sourceHeartbeat = "heartbeat"
)

// pauseTracker holds the newest pause state that any claim or heartbeat of
// this process received. Responses can arrive out of order, so a state
// with a version lower than the one held is ignored.
type pauseTracker struct {
	logger *slog.Logger

	mu    sync.Mutex
	state SystemState
	// changed is closed and replaced whenever the paused flag or the mode
	// changes, which wakes idle claimers and parked Checkpoint calls.
	changed chan struct{}
	// pauseLogged is the latest version for which "workers paused; not
	// claiming" was logged.
	pauseLogged int64
}

func newPauseTracker(logger *slog.Logger) *pauseTracker {
	return &pauseTracker{logger: logger, changed: make(chan struct{})}
}

// observe records a state seen by source. When it is the first response
// with a version where the workers went from paused to running, it logs
// "pause cleared" once for that version.
func (p *pauseTracker) observe(s SystemState, source string) {
	p.mu.Lock()
	defer p.mu.Unlock()

	if s.Version <= p.state.Version {
		return
	}
	previous := p.state
	p.state = s

	if previous.WorkersPaused && !s.WorkersPaused {
		p.logger.Info("pause cleared", "version", s.Version, "source", source)
	}
	if previous.WorkersPaused != s.WorkersPaused || previous.Mode != s.Mode {
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// current returns the newest state and a channel that is closed at the
// next change of the paused flag or mode.
func (p *pauseTracker) current() (SystemState, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state, p.changed
}

// logPaused logs "workers paused; not claiming" once per pause version,
// however many claimers see it.
func (p *pauseTracker) logPaused(s SystemState) {
	p.mu.Lock()
	defer p.mu.Unlock()

	// A paused response older than a resume already seen is stale.
	if s.Version <= p.pauseLogged || s.Version < p.state.Version {
		return
	}
	p.pauseLogged = s.Version
	p.logger.Info("workers paused; not claiming", "mode", s.Mode, "reason", s.Reason, "version", s.Version)
}
