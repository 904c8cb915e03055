package floy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
)

// DefaultTimeout bounds each HTTP request of a Client unless WithTimeout or
// WithHTTPClient says otherwise.
const DefaultTimeout = 30 * time.Second

// DefaultPollInterval is how often a Client that waits for runs asks for their status.
const DefaultPollInterval = 500 * time.Millisecond

// Option configures a Client (NewClient, FromEnvironment).
type Option func(*options)

type options struct {
	httpClient   *http.Client
	caFile       string
	timeout      *time.Duration
	wait         bool
	pollInterval time.Duration
}

// WithHTTPClient makes the Client send its requests with a copy of hc (hc itself is not
// modified). Its Timeout is kept unless WithTimeout is given too; with WithCAFile its
// Transport must be nil or an *http.Transport, which is then cloned.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) { o.httpClient = hc }
}

// WithCAFile makes the Client trust only the CA certificates of the PEM file at path
// for the server's TLS certificate (instead of the system's trust store).
// FromEnvironment applies it for FLOY_CA_BUNDLE.
func WithCAFile(path string) Option {
	return func(o *options) { o.caFile = path }
}

// WithTimeout bounds each HTTP request (http.Client.Timeout); 0 means no limit. The
// default is DefaultTimeout. A wait for a run (WaitForRuns) is not bounded by it: each
// status request of the wait is.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = &d }
}

// WaitForRuns makes ExecuteDeployment, RollbackInstance and RollbackBatch wait until the
// run they started has ended before returning, polling its status every 0.5 s (see
// WithPollInterval); the result's Status is then the run's final status ("completed",
// "failed" or "cancelled"; a run that did not complete is not an error). A
// CancelDeployment that the server answers with 202 (still stopping) likewise waits
// until the run has stopped.
func WaitForRuns() Option {
	return func(o *options) { o.wait = true }
}

// WithPollInterval sets how often a waiting Client asks for a run's status (default
// DefaultPollInterval); values of 0 or less keep the default.
func WithPollInterval(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.pollInterval = d
		}
	}
}

// buildHTTPClient makes the *http.Client of a Client from its options.
func (o *options) buildHTTPClient() (*http.Client, error) {
	var hc http.Client
	if o.httpClient != nil {
		hc = *o.httpClient
	} else {
		hc.Timeout = DefaultTimeout
	}
	if o.timeout != nil {
		hc.Timeout = *o.timeout
	}
	if o.caFile != "" {
		pool, err := loadCAFile(o.caFile)
		if err != nil {
			return nil, err
		}
		base := hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		transport, ok := base.(*http.Transport)
		if !ok {
			return nil, fmt.Errorf("floy: a CA file needs an *http.Transport, the HTTP client has a %T", base)
		}
		transport = transport.Clone()
		if transport.TLSClientConfig == nil {
			transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		transport.TLSClientConfig.RootCAs = pool
		hc.Transport = transport
	} else if hc.Transport == nil {
		hc.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &hc, nil
}

// loadCAFile reads a PEM file into a certificate pool of its certificates only.
func loadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("floy: reading the CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, errors.New("floy: the CA file " + path + " holds no PEM certificate")
	}
	return pool, nil
}
