package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moonmind/broker/internal/apitest"
)

// writeServerCA fetches the certificate srv presents and writes it as a
// PEM file. The httptest certificate is self-signed and marked as a CA,
// so trusting it is enough to verify the server.
func writeServerCA(t *testing.T, srv *apitest.Server) string {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// The test only reads the certificate here; verification happens in
	// brokerctl.
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("connect to %s: %v", u.Host, err)
	}
	defer conn.Close()
	cert := conn.ConnectionState().PeerCertificates[0]

	path := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUnknownAuthoritySuggestsCACert(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{TLS: true})

	// --cacert= overrides a BROKER_CACERT of the environment running the test.
	r := runWith(t, srv.URL, srv.OperatorToken, "--cacert=", "status")
	wantCode(t, r, ExitError)
	if !strings.Contains(r.stderr, "certificate signed by unknown authority") {
		t.Errorf("stderr = %q, want the x509 error", r.stderr)
	}
	for _, want := range []string{"--cacert", "BROKER_CACERT", "source .run/env"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr = %q, want it to suggest %q", r.stderr, want)
		}
	}
	if strings.Contains(r.stderr, "check --url") {
		t.Errorf("stderr = %q, want no advice to check the URL of a server that answered", r.stderr)
	}
}

// writeOtherCA writes a fresh self-signed CA certificate that signed
// nothing the test servers present.
func writeOtherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "brokerctl test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWrongCACertNamesFile(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{TLS: true})
	otherCA := writeOtherCA(t)

	r := runWith(t, srv.URL, srv.OperatorToken, "--cacert", otherCA, "status")
	wantCode(t, r, ExitError)
	if !strings.Contains(r.stderr, "certificate signed by unknown authority") {
		t.Errorf("stderr = %q, want the x509 error", r.stderr)
	}
	if !strings.Contains(r.stderr, "the --cacert file "+otherCA+" does not contain") {
		t.Errorf("stderr = %q, want it to name the --cacert file %s", r.stderr, otherCA)
	}
}

func TestRightCACertConnects(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{TLS: true})
	ca := writeServerCA(t, srv)

	r := runWith(t, srv.URL, srv.OperatorToken, "--cacert", ca, "status", "-o", "json")
	wantCode(t, r, ExitOK)
	if !strings.Contains(r.stdout, "workersPaused") {
		t.Errorf("stdout = %q, want the pause state", r.stdout)
	}
}

func TestHostnameMismatchSuggestsURL(t *testing.T) {
	t.Parallel()
	srv := apitest.Start(t, apitest.Options{TLS: true})
	ca := writeServerCA(t, srv)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// The httptest certificate names 127.0.0.1, ::1 and example.com, but
	// not localhost.
	u.Host = "localhost:" + u.Port()

	r := runWith(t, u.String(), srv.OperatorToken, "--cacert", ca, "status")
	wantCode(t, r, ExitError)
	if !strings.Contains(r.stderr, "not valid for localhost") {
		t.Errorf("stderr = %q, want it to say the certificate is not valid for localhost", r.stderr)
	}
	if !strings.Contains(r.stderr, "--url or BROKER_URL") {
		t.Errorf("stderr = %q, want it to point at --url", r.stderr)
	}
}
