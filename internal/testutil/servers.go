package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a private redis-server on a free loopback port, for tests
// that flush, restart or kill Redis. Its data directory lives in the test's
// temporary directory.
type RedisServer struct {
	t      testing.TB
	Port   int
	Dir    string
	Args   []string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartRedisServer starts redis-server with the append-only file on and
// appendfsync always, plus any extra arguments. It stops the server at
// cleanup.
func StartRedisServer(t testing.TB, extraArgs ...string) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed (apt-get install redis-server): %v", err)
	}
	s := &RedisServer{t: t, Port: FreePort(t), Dir: t.TempDir()}
	s.Args = append([]string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.Port),
		"--dir", s.Dir, "--appendonly", "yes", "--appendfsync", "always",
		"--save", "", "--daemonize", "no", "--logfile", filepath.Join(s.Dir, "redis.log"),
	}, extraArgs...)
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Addr returns host:port.
func (s *RedisServer) Addr() string { return fmtAddr(s.Port) }

// URL returns a redis:// URL for the server.
func (s *RedisServer) URL() string { return "redis://" + s.Addr() + "/0" }

// Client returns a new client for the server, closed at cleanup.
func (s *RedisServer) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Start starts the server (again) with the same data directory and waits
// until it responds to PING.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", s.Args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.exited)
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	WaitFor(s.t, 10*time.Second, "redis-server on "+s.Addr()+" to answer PING", func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
}

// Stop shuts the server down with SIGTERM and waits for it to exit.
func (s *RedisServer) Stop() { s.signal(syscall.SIGTERM) }

// Kill ends the server with SIGKILL, as a crash would.
func (s *RedisServer) Kill() { s.signal(syscall.SIGKILL) }

func (s *RedisServer) signal(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// PostgresServer is a private PostgreSQL instance on a free loopback port,
// for tests that stop or restart the database. It runs as the postgres
// system user when the tests run as root, because initdb refuses root.
type PostgresServer struct {
	t       testing.TB
	Port    int
	DataDir string
	binDir  string
	runAs   string
}

// StartPostgresServer runs initdb in a fresh directory and starts the
// server with trust authentication and a database named test.
func StartPostgresServer(t testing.TB) *PostgresServer {
	t.Helper()
	binDir, err := PostgresBinDir()
	if err != nil {
		t.Fatalf("%v", err)
	}
	base, err := os.MkdirTemp("", "mmbroker-pg-")
	if err != nil {
		t.Fatalf("create data directory: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	s := &PostgresServer{t: t, Port: FreePort(t), DataDir: filepath.Join(base, "data"), binDir: binDir}
	if os.Geteuid() == 0 {
		s.runAs = "postgres"
		if _, err := user.Lookup("postgres"); err != nil {
			t.Fatalf("running as root needs a postgres system user for initdb: %v", err)
		}
		if err := exec.Command("chown", "postgres", base).Run(); err != nil {
			t.Fatalf("chown %s: %v", base, err)
		}
	}
	if out, err := s.run("initdb", "-D", s.DataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.Start()
	t.Cleanup(s.Stop)
	if out, err := s.run("createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", "postgres", "test"); err != nil {
		t.Fatalf("createdb test: %v\n%s", err, out)
	}
	return s
}

// URL returns a DSN for the test database of this server.
func (s *PostgresServer) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable", s.Port)
}

// Start starts the server and waits until it accepts connections.
func (s *PostgresServer) Start() {
	s.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", s.Port, s.DataDir)
	if out, err := s.run("pg_ctl", "-D", s.DataDir, "-o", opts, "-l", filepath.Join(s.DataDir, "server.log"), "-w", "-t", "30", "start"); err != nil {
		s.t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
}

// Stop stops the server (fast mode) and waits for it. A server already
// stopped is left alone.
func (s *PostgresServer) Stop() {
	if _, err := os.Stat(filepath.Join(s.DataDir, "postmaster.pid")); err != nil {
		return
	}
	if out, err := s.run("pg_ctl", "-D", s.DataDir, "-m", "fast", "-w", "-t", "30", "stop"); err != nil {
		s.t.Logf("pg_ctl stop: %v\n%s", err, out)
	}
}

func (s *PostgresServer) run(tool string, args ...string) ([]byte, error) {
	path := filepath.Join(s.binDir, tool)
	var cmd *exec.Cmd
	if s.runAs != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	return cmd.CombinedOutput()
}

// PostgresBinDir finds the directory holding initdb and pg_ctl.
func PostgresBinDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(matches) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(matches[i], "initdb")); err == nil {
			return matches[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("initdb not found in /usr/lib/postgresql/*/bin or PATH (apt-get install postgresql): %s", strings.Join(matches, ", "))
}
