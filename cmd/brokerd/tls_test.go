package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/devcert"
	"github.com/moonmind/broker/internal/testutil"
)

func TestBrokerdServesHTTPS(t *testing.T) {
	t.Parallel()
	bin := buildBrokerd(t)
	_, ns := testutil.Redis(t)
	_, dsn := testutil.Postgres(t)
	paths, err := devcert.Ensure(devcert.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("create test certificates: %v", err)
	}
	caPEM, err := os.ReadFile(paths.CA)
	if err != nil {
		t.Fatalf("read CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("CA file %s holds no certificate", paths.CA)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	port := testutil.FreePort(t)

	cmd := exec.Command(bin, "serve", "--addr", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Env = append(os.Environ(),
		"BROKER_REDIS_URL="+testutil.RedisURL(),
		"BROKER_DATABASE_URL="+dsn,
		"BROKER_NAMESPACE="+ns,
		"BROKER_TLS_CERT="+paths.Cert,
		"BROKER_TLS_KEY="+paths.CertKey,
	)
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

	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	testutil.WaitFor(t, 30*time.Second, "brokerd to respond over HTTPS", func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("send SIGTERM: %v", err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("brokerd exited with %v after SIGTERM, want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("brokerd did not exit within 30 s of SIGTERM")
	}
}
