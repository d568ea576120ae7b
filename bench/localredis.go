package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// LocalRedis is a redis-server that the benchmark started on a free
// loopback port with a data directory of its own, so a run neither reads
// nor disturbs anyone else's keys and may flush freely.
type LocalRedis struct {
	Addr string
	Dir  string

	cmd    *exec.Cmd
	exited chan struct{}
}

// StartLocalRedis starts redis-server (found in PATH) without persistence
// on a free port of 127.0.0.1 and waits until it responds to PING.
func StartLocalRedis(ctx context.Context) (*LocalRedis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not in PATH (install redis-server): %w", err)
	}
	dir, err := os.MkdirTemp("", "brokerbench-redis-")
	if err != nil {
		return nil, fmt.Errorf("create a data directory: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	r := &LocalRedis{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, exited: make(chan struct{})}
	r.cmd = exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("start redis-server: %w", err), os.RemoveAll(dir))
	}
	go func() { _ = r.cmd.Wait(); close(r.exited) }()

	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	err = waitUntil(ctx, 10*time.Second, 10*time.Millisecond, "redis-server on "+r.Addr+" to respond to PING", func() (bool, error) {
		select {
		case <-r.exited:
			return false, fmt.Errorf("redis-server exited; see %s", filepath.Join(dir, "redis.log"))
		default:
		}
		return c.Ping(ctx).Err() == nil, nil
	})
	if err != nil {
		return nil, errors.Join(err, r.Stop())
	}
	return r, nil
}

// URL returns a redis:// URL of database 0.
func (r *LocalRedis) URL() string { return "redis://" + r.Addr + "/0" }

// Stop ends the server with SIGTERM (SIGKILL after 15 s) and removes its
// data directory.
func (r *LocalRedis) Stop() error {
	if r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(15 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	}
	return os.RemoveAll(r.Dir)
}

// RedisVersion returns the redis_version field of INFO server at redisURL.
func RedisVersion(ctx context.Context, redisURL string) (string, error) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return "", err
	}
	c := redis.NewClient(opts)
	defer c.Close()
	info, err := c.InfoMap(ctx, "server").Result()
	if err != nil {
		return "", fmt.Errorf("INFO server: %w", err)
	}
	return info["Server"]["redis_version"], nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CheckFlushTarget rejects FLUSHDB on the shared development Redis at
// 127.0.0.1:6379, which other programs use; a flush there would delete
// their keys.
func CheckFlushTarget(redisURL string) error {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return fmt.Errorf("parse Redis URL: %w", err)
	}
	host, port, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return fmt.Errorf("parse Redis address %q: %w", opts.Addr, err)
	}
	if port == "6379" && (host == "127.0.0.1" || host == "localhost" || host == "::1") {
		return fmt.Errorf("-allow-flush is rejected for the shared Redis at %s: use -start-redis, or point -redis at a server started for the benchmark", opts.Addr)
	}
	return nil
}
