package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

// Paths of the binaries TestMain builds once per package run.
var (
	brokerdBin string
	workerBin  string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mmbroker-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults: create binary directory:", err)
		os.Exit(1)
	}
	brokerdBin = filepath.Join(dir, "brokerd")
	workerBin = filepath.Join(dir, "queue-worker")
	for pkg, out := range map[string]string{
		"github.com/moonmind/broker/cmd/brokerd":      brokerdBin,
		"github.com/moonmind/broker/cmd/queue-worker": workerBin,
	} {
		if output, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "faults: go build %s: %v\n%s", pkg, err, output)
			_ = os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// newToken returns a random bearer token, made at run time so no secret
// sits in the source.
func newToken(prefix string) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

// process is a child process the test started. Its combined output goes to
// a log file in the test's temporary directory, printed when the test
// fails. Cleanup kills it by its process id.
type process struct {
	t       *testing.T
	name    string
	bin     string
	env     []string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

func newProcess(t *testing.T, name, bin string, env []string) *process {
	t.Helper()
	p := &process{t: t, name: name, bin: bin, env: env, logPath: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.dumpLog()
		}
	})
	return p
}

// start runs the binary (again), appending to the same log file.
func (p *process) start() {
	p.t.Helper()
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatalf("open log of %s: %v", p.name, err)
	}
	cmd := exec.Command(p.bin)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.starts++
	p.mu.Unlock()
}

// kill sends SIGKILL, as a crash or an OOM kill would, and waits for the
// exit. A process that already exited is left alone.
func (p *process) kill() { p.signal(syscall.SIGKILL, 10*time.Second) }

// stop sends SIGTERM and waits up to 30 s, then kills.
func (p *process) stop() { p.signal(syscall.SIGTERM, 30*time.Second) }

func (p *process) signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// running reports whether the latest start has not exited yet.
func (p *process) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *process) dumpLog() {
	raw, err := os.ReadFile(p.logPath)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	const tail = 60
	if len(lines) > tail {
		lines = lines[len(lines)-tail:]
	}
	p.t.Logf("last %d log lines of %s:\n%s", len(lines), p.name, strings.Join(lines, "\n"))
}

// brokerdConfig is what a fault test varies between brokerd processes.
type brokerdConfig struct {
	RedisURL      string
	DatabaseURL   string
	Namespace     string
	OperatorToken string
	WorkerToken   string
	// LeaseGrace and ReaperInterval are passed as Go durations; empty
	// keeps brokerd's defaults.
	LeaseGrace     string
	ReaperInterval string
}

// brokerd is one brokerd process on a fixed loopback port, so a restart
// keeps its URL.
type brokerd struct {
	*process
	URL string
}

// startBrokerd starts brokerd and waits until /readyz returns 200.
func startBrokerd(t *testing.T, name string, cfg brokerdConfig) *brokerd {
	t.Helper()
	port := testutil.FreePort(t)
	env := []string{
		fmt.Sprintf("BROKER_ADDR=127.0.0.1:%d", port),
		"BROKER_REDIS_URL=" + cfg.RedisURL,
		"BROKER_DATABASE_URL=" + cfg.DatabaseURL,
		"BROKER_NAMESPACE=" + cfg.Namespace,
		"BROKER_OPERATOR_TOKEN=" + cfg.OperatorToken,
		"BROKER_WORKER_TOKEN=" + cfg.WorkerToken,
		"BROKER_LOG_FORMAT=json",
	}
	if cfg.LeaseGrace != "" {
		env = append(env, "BROKER_LEASE_GRACE="+cfg.LeaseGrace)
	}
	if cfg.ReaperInterval != "" {
		env = append(env, "BROKER_REAPER_INTERVAL="+cfg.ReaperInterval)
	}
	b := &brokerd{process: newProcess(t, name, brokerdBin, env), URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	b.start()
	b.waitReady(t, 60*time.Second)
	return b
}

// waitReady polls /readyz until it returns 200, failing the test when the
// process exits first or timeout passes.
func (b *brokerd) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	testutil.WaitFor(t, timeout, b.name+" /readyz to return 200", func() bool {
		if !b.running() {
			t.Fatalf("%s exited before it became ready", b.name)
		}
		return readyStatus(b.URL) == http.StatusOK
	})
}

// readyStatus returns the status of GET /readyz, or 0 when the request
// fails.
func readyStatus(base string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// workerConfig sets one queue-worker process.
type workerConfig struct {
	BrokerURL   string
	Token       string
	WorkerID    string
	Concurrency int
	// Lease is the lease per claim and heartbeat, whole seconds.
	Lease string
}

// startWorker starts queue-worker. It does not wait for a first claim.
func startWorker(t *testing.T, cfg workerConfig) *process {
	t.Helper()
	env := []string{
		"BROKER_URL=" + cfg.BrokerURL,
		"BROKER_TOKEN=" + cfg.Token,
		"WORKER_ID=" + cfg.WorkerID,
		fmt.Sprintf("WORKER_CONCURRENCY=%d", cfg.Concurrency),
		"WORKER_POLL_WAIT=1s",
		"WORKER_PAUSE_POLL=1s",
		"WORKER_SHUTDOWN_TIMEOUT=5s",
		"LOG_FORMAT=json",
	}
	if cfg.Lease != "" {
		env = append(env, "WORKER_LEASE="+cfg.Lease)
	}
	p := newProcess(t, cfg.WorkerID, workerBin, env)
	p.start()
	return p
}

// testContext returns a context that ends after limit or when the test
// ends, whichever comes first.
func testContext(t *testing.T, limit time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	return ctx
}
