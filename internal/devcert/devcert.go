// Package devcert creates a local certificate authority and a server
// certificate signed by it, for running brokerd over HTTPS on a developer's
// machine and in end-to-end tests. Nothing it creates is meant for
// production: the keys sit unencrypted in the output folder.
package devcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names inside the output folder.
const (
	CAFile      = "ca.pem"
	CAKeyFile   = "ca-key.pem"
	CertFile    = "cert.pem"
	CertKeyFile = "key.pem"
)

// Defaults for Config fields left at their zero value.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultCertValidity = 825 * 24 * time.Hour
	// renewBefore is how long before expiry an existing certificate is
	// replaced instead of reused.
	renewBefore = 7 * 24 * time.Hour
)

// DefaultHosts are the names and addresses the server certificate covers
// when Config.Hosts is empty.
var DefaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// Config sets where the files go and which hosts the certificate covers.
type Config struct {
	// Dir is the output folder; it is created with mode 0700. Required.
	Dir string

	// Hosts are DNS names or IP addresses for the server certificate's
	// subject alternative names. Default DefaultHosts.
	Hosts []string

	// CAValidity and CertValidity set how long the two certificates are
	// valid. Defaults DefaultCAValidity and DefaultCertValidity.
	CAValidity   time.Duration
	CertValidity time.Duration
}

// Paths are the files Ensure wrote or reused.
type Paths struct {
	CA      string
	CAKey   string
	Cert    string
	CertKey string
}

// Ensure creates the certificate authority and the server certificate in
// cfg.Dir, or reuses them when they exist, still parse, are not about to
// expire and the certificate covers every host. Reusing the authority keeps
// a CA file that a user already trusts valid across runs.
func Ensure(cfg Config) (Paths, error) {
	if cfg.Dir == "" {
		return Paths{}, errors.New("devcert: Dir is required: name the folder for the certificate files")
	}
	if len(cfg.Hosts) == 0 {
		cfg.Hosts = DefaultHosts
	}
	if cfg.CAValidity == 0 {
		cfg.CAValidity = DefaultCAValidity
	}
	if cfg.CertValidity == 0 {
		cfg.CertValidity = DefaultCertValidity
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return Paths{}, fmt.Errorf("devcert: create %s: %w", cfg.Dir, err)
	}
	p := Paths{
		CA:      filepath.Join(cfg.Dir, CAFile),
		CAKey:   filepath.Join(cfg.Dir, CAKeyFile),
		Cert:    filepath.Join(cfg.Dir, CertFile),
		CertKey: filepath.Join(cfg.Dir, CertKeyFile),
	}

	caCert, caKey, err := loadPair(p.CA, p.CAKey)
	if err != nil || !usable(caCert, nil) {
		caCert, caKey, err = newCA(cfg.CAValidity)
		if err != nil {
			return Paths{}, err
		}
		if err := writePair(p.CA, p.CAKey, caCert, caKey); err != nil {
			return Paths{}, err
		}
	}

	cert, _, err := loadPair(p.Cert, p.CertKey)
	if err == nil && usable(cert, cfg.Hosts) && cert.CheckSignatureFrom(caCert) == nil {
		return p, nil
	}
	cert, key, err := newServerCert(caCert, caKey, cfg.Hosts, cfg.CertValidity)
	if err != nil {
		return Paths{}, err
	}
	if err := writePair(p.Cert, p.CertKey, cert, key); err != nil {
		return Paths{}, err
	}
	return p, nil
}

// usable reports whether cert is valid for at least renewBefore more and
// covers every host in hosts.
func usable(cert *x509.Certificate, hosts []string) bool {
	if time.Until(cert.NotAfter) < renewBefore || time.Now().Before(cert.NotBefore) {
		return false
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func newCA(validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devcert: generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "MoonMind Broker local development CA", Organization: []string{"MoonMind Broker"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("devcert: sign CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("devcert: parse new CA certificate: %w", err)
	}
	return cert, key, nil
}

func newServerCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string, validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devcert: generate server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"MoonMind Broker"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}

	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("devcert: sign server certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("devcert: parse new server certificate: %w", err)
	}
	return cert, key, nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("devcert: generate serial number: %w", err)
	}
	return serial, nil
}

func loadPair(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	certBlock, _ := pem.Decode(certPEM)
	keyBlock, _ := pem.Decode(keyPEM)
	if certBlock == nil || keyBlock == nil {
		return nil, nil, fmt.Errorf("devcert: %s or %s contains no PEM block", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("devcert: parse %s: %w", certPath, err)
	}
	key, err := x509.ParseECPrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("devcert: parse %s: %w", keyPath, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("devcert: %s does not match %s", keyPath, certPath)
	}
	return cert, key, nil
}

// writePair writes the key first with mode 0600, then the certificate with
// mode 0644, so a reader never finds a certificate without its key.
func writePair(certPath, keyPath string, cert *x509.Certificate, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("devcert: encode key for %s: %w", keyPath, err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("devcert: write %s: %w", keyPath, err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		return fmt.Errorf("devcert: write %s: %w", certPath, err)
	}
	return nil
}
