package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// APIError is an error response of the broker API: the HTTP status and the
// stable code, message and field of the error body.
type APIError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("the API rejected the request: HTTP %d %s: %s", e.Status, e.Code, e.Message)
	if hint := e.hint(); hint != "" {
		msg += " (" + hint + ")"
	}
	return msg
}

// hint suggests the next step for the codes an operator meets most.
func (e *APIError) hint() string {
	switch e.Code {
	case "unauthorized":
		return "check --token or BROKER_TOKEN"
	case "forbidden":
		return "use an operator token"
	case "not_drained":
		return "wait with brokerctl wait-drained, recover stale jobs, or resume with --force"
	case "version_conflict":
		return "the pause state changed: check brokerctl status and retry with the current version"
	case "not_paused":
		return "the workers already run"
	case "already_paused":
		return "the workers are already paused with this mode and reason"
	}
	return ""
}

// client calls the broker REST API with an operator token.
type client struct {
	base    *url.URL
	token   string
	caFile  string // empty when the system certificate authorities are trusted
	http    *http.Client
	timeout time.Duration // per request; 0 means no limit
}

// newClient builds a client for baseURL. caFile, when set, names a PEM file
// of certificate authorities trusted in place of the system pool.
func newClient(baseURL, token, caFile string, timeout time.Duration) (*client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageErrorf("invalid --url %q: give an http:// or https:// URL such as https://localhost:8443", baseURL)
	}
	if token == "" {
		return nil, usageErrorf("missing operator token: set --token or BROKER_TOKEN")
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, usageErrorf("read --cacert file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageErrorf("--cacert file %s contains no PEM certificate", caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &client{base: u, token: token, caFile: caFile, http: &http.Client{Transport: transport}, timeout: timeout}, nil
}

// do sends one request and decodes a 2xx JSON response into out (when out is
// not nil). A non-2xx response becomes an *APIError.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	resp, err := c.send(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read the response to %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return decodeAPIError(resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], data...)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode the response to %s %s: %w", method, path, err)
	}
	return nil
}

// send builds and sends a request; the caller closes the body.
func (c *client) send(ctx context.Context, method, path string, query url.Values, body any) (*http.Response, error) {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()

	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode the request body: %w", err)
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reader)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s %s timed out: %w (raise --timeout or check the broker)", method, path, err)
		}
		return nil, fmt.Errorf("cannot reach the broker API at %s: %w (%s)", c.base, err, c.connectHint(err))
	}
	return resp, nil
}

// connectHint suggests the fix for a failed request. A certificate error
// means brokerd was reached, so the URL is not what to check first.
func (c *client) connectHint(err error) string {
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknownAuthority) && c.caFile != "":
		return fmt.Sprintf("the --cacert file %s does not contain the certificate authority that signed the server's certificate: "+
			"point --cacert or BROKER_CACERT at that authority's PEM file, such as .run/tls/ca.pem, which source .run/env sets after make run", c.caFile)
	case errors.As(err, &unknownAuthority):
		return "the server's certificate is signed by a certificate authority this machine does not trust: " +
			"pass --cacert or set BROKER_CACERT to that authority's PEM file, such as .run/tls/ca.pem, which source .run/env sets after make run"
	case errors.As(err, &hostname):
		return fmt.Sprintf("the server's certificate is not valid for %s: "+
			"use a host name the certificate names in --url or BROKER_URL", hostname.Host)
	case errors.As(err, &invalid):
		return "the server's certificate is invalid (expired, not yet valid or not for servers): renew it"
	}
	return "check --url or BROKER_URL and that brokerd runs"
}

// decodeAPIError turns an error response into an *APIError, also when the
// body is not the API's JSON error shape (for example from a proxy).
func decodeAPIError(status int, data []byte) error {
	apiErr := &APIError{Status: status}
	if err := json.Unmarshal(data, apiErr); err != nil || apiErr.Code == "" {
		apiErr.Code = strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
		apiErr.Message = strings.TrimSpace(string(data))
		if len(apiErr.Message) > 200 {
			apiErr.Message = apiErr.Message[:200] + "..."
		}
	}
	return apiErr
}
