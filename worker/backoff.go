package worker

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Bounds of the delay between retries of a failing request.
const (
	retryBackoffBase = 500 * time.Millisecond
	retryBackoffCap  = 30 * time.Second
)

// retryDelay returns the wait before retry number failures (1 for the
// first retry): base·2^(failures−1), scaled by a random factor in
// [0.5, 1.0) so that many workers cut off together do not come back in
// step, and capped at retryBackoffCap.
func retryDelay(failures int) time.Duration {
	if failures < 1 {
		failures = 1
	}
	// 2^6 · 500 ms already exceeds the cap; clamping the exponent keeps
	// the shift from overflowing.
	exponent := min(failures-1, 6)
	delay := retryBackoffBase << exponent
	delay = min(delay, retryBackoffCap)
	return time.Duration(float64(delay) * (0.5 + rand.Float64()/2))
}

// failureLog logs a repeating failure of one kind of request with its
// repeat count: the first failure, then the 2nd, 4th, 8th and so on, or
// when the error text changes. It logs one line when the request works
// again. This keeps a broker outage from filling the log.
type failureLog struct {
	logger  *slog.Logger
	request string // the kind of request, for example "claim"

	mu        sync.Mutex
	failures  int
	lastError string
}

func newFailureLog(logger *slog.Logger, request string) *failureLog {
	return &failureLog{logger: logger, request: request}
}

// failed records a failure and returns the consecutive failure count.
func (f *failureLog) failed(err error, retryIn time.Duration, attrs ...any) int {
	f.mu.Lock()
	defer f.mu.Unlock()

	f.failures++
	text := err.Error()
	powerOfTwo := f.failures&(f.failures-1) == 0
	if powerOfTwo || text != f.lastError {
		level := slog.LevelWarn
		if !temporary(err) {
			// A 4xx response means a configuration problem that
			// retrying does not fix, such as a revoked token.
			level = slog.LevelError
		}
		args := append([]any{"error", err, "failures", f.failures, "retry_in", retryIn.Round(time.Millisecond).String()}, attrs...)
		f.logger.Log(context.Background(), level, f.request+" failed; retrying", args...)
	}
	f.lastError = text
	return f.failures
}

// succeeded ends a run of failures.
func (f *failureLog) succeeded() {
	f.mu.Lock()
	defer f.mu.Unlock()

	if f.failures > 0 {
		f.logger.Info(f.request+" works again", "failures", f.failures)
	}
	f.failures = 0
	f.lastError = ""
}
