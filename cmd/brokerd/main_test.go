package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/testutil"
)

// buildBrokerd compiles the command into the test's temporary directory.
func buildBrokerd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "brokerd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build brokerd: %v\n%s", err, out)
	}
	return bin
}

func TestBrokerdServesAndStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	bin := buildBrokerd(t)
	_, ns := testutil.Redis(t)
	_, dsn := testutil.Postgres(t)
	port := testutil.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"BROKER_ADDR=127.0.0.1:"+fmt.Sprint(port),
		"BROKER_REDIS_URL="+testutil.RedisURL(),
		"BROKER_DATABASE_URL="+dsn,
		"BROKER_NAMESPACE="+ns,
		"BROKER_OPERATOR_TOKEN=op-secret-token",
		"BROKER_WORKER_TOKEN=worker-secret-token",
		"BROKER_LOG_FORMAT=json",
	)
	var logs bytes.Buffer
	cmd.Stdout = &logs
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start brokerd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	testutil.WaitFor(t, 30*time.Second, "brokerd /readyz to answer 200", func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// A long poll in flight when SIGTERM arrives ends early with its
	// normal empty response.
	claimed := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, base+"/api/queue/jobs/claim",
			strings.NewReader(`{"workerId":"w1","waitSeconds":30}`))
		req.Header.Set("Authorization", "Bearer worker-secret-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			claimed <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		claimed <- fmt.Sprintf("%d %s", resp.StatusCode, body)
	}()
	testutil.WaitFor(t, 10*time.Second, "the long poll to run its first claim", func() bool {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), `mmb_claims_total{result="empty"} 1`)
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("send SIGTERM: %v", err)
	}
	select {
	case got := <-claimed:
		if !strings.HasPrefix(got, "200 ") {
			t.Fatalf("long poll during shutdown answered %s, want 200", got)
		}
		var res struct {
			Job *json.RawMessage `json:"job"`
		}
		if err := json.Unmarshal([]byte(strings.TrimPrefix(got, "200 ")), &res); err != nil || res.Job != nil {
			t.Errorf("long poll during shutdown answered %s, want job null", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("long poll did not end within 20 s of SIGTERM")
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("brokerd exited with %v after SIGTERM, want status 0; logs:\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("brokerd did not exit within 30 s of SIGTERM")
	}
	if strings.Contains(logs.String(), "op-secret-token") || strings.Contains(logs.String(), "worker-secret-token") {
		t.Errorf("brokerd logged a token:\n%s", logs.String())
	}
}

func TestBrokerdRejectsBadSettings(t *testing.T) {
	t.Parallel()
	bin := buildBrokerd(t)
	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"no database", []string{"BROKER_DATABASE_URL="}, "BROKER_DATABASE_URL"},
		{"bad auth", []string{"BROKER_DATABASE_URL=postgres://x", "BROKER_AUTH=maybe"}, "BROKER_AUTH"},
		{"bad duration", []string{"BROKER_DATABASE_URL=postgres://x", "BROKER_LEASE_GRACE=soon"}, "BROKER_LEASE_GRACE"},
		{"cert without key", []string{"BROKER_DATABASE_URL=postgres://x", "BROKER_TLS_CERT=/tmp/c.pem"}, "BROKER_TLS_KEY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("brokerd started with %v, want an error", tc.env)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("error output %q does not name %s", out, tc.want)
			}
		})
	}
}

func TestHelpListsEveryEnvironmentVariable(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatalf("brokerd --help: %v", err)
	}
	for _, f := range envFlags {
		if !strings.Contains(out.String(), f.env) {
			t.Errorf("--help does not mention %s", f.env)
		}
	}
}
