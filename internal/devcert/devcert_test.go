package devcert

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

func TestEnsureServesVerifiedTLS(t *testing.T) {
	t.Parallel()
	paths, err := Ensure(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}

	pair, err := tls.LoadX509KeyPair(paths.Cert, paths.CertKey)
	if err != nil {
		t.Fatalf("load server pair: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()

	caPEM, err := os.ReadFile(paths.CA)
	if err != nil {
		t.Fatalf("read CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for _, host := range []string{"localhost", "127.0.0.1"} {
		resp, err := client.Get("https://" + net.JoinHostPort(host, port) + "/")
		if err != nil {
			t.Fatalf("GET via %s with the CA: %v", host, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET via %s: status %d, want 200", host, resp.StatusCode)
		}
	}

	// A client without the CA must reject the certificate.
	if _, err := http.Get(srv.URL); err == nil {
		t.Fatal("GET without the CA succeeded; want a certificate verification error")
	}
}

func TestEnsureReusesExistingFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := Ensure(Config{Dir: dir})
	if err != nil {
		t.Fatalf("first Ensure: %v", err)
	}
	caBefore, _ := os.ReadFile(first.CA)
	certBefore, _ := os.ReadFile(first.Cert)

	second, err := Ensure(Config{Dir: dir})
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	caAfter, _ := os.ReadFile(second.CA)
	certAfter, _ := os.ReadFile(second.Cert)
	if string(caBefore) != string(caAfter) {
		t.Error("second Ensure replaced a valid CA certificate")
	}
	if string(certBefore) != string(certAfter) {
		t.Error("second Ensure replaced a valid server certificate")
	}

	// A new host the certificate does not cover forces a new certificate
	// signed by the same CA.
	third, err := Ensure(Config{Dir: dir, Hosts: []string{"localhost", "broker.test"}})
	if err != nil {
		t.Fatalf("Ensure with a new host: %v", err)
	}
	caThird, _ := os.ReadFile(third.CA)
	certThird, _ := os.ReadFile(third.Cert)
	if string(caThird) != string(caBefore) {
		t.Error("adding a host replaced the CA certificate")
	}
	if string(certThird) == string(certBefore) {
		t.Error("adding a host kept the old server certificate")
	}
	cert, _, err := loadPair(third.Cert, third.CertKey)
	if err != nil {
		t.Fatalf("load new certificate: %v", err)
	}
	if err := cert.VerifyHostname("broker.test"); err != nil {
		t.Errorf("new certificate does not cover broker.test: %v", err)
	}
}

func TestEnsureKeyFilePermissions(t *testing.T) {
	t.Parallel()
	paths, err := Ensure(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	for _, p := range []string{paths.CAKey, paths.CertKey} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", p, mode)
		}
	}
}

func TestEnsureRequiresDir(t *testing.T) {
	t.Parallel()
	if _, err := Ensure(Config{}); err == nil {
		t.Fatal("Ensure with no Dir succeeded; want an error naming Dir")
	}
}
