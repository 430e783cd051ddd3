package fetch

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// Network limits of every request: a connection that cannot be set up,
// or a server that does not start answering, fails the try (and Retry
// decides on another). Bodies have no overall limit; ResumeTransport
// watches them for stalls.
const (
	DialTimeout           = 10 * time.Second
	TLSHandshakeTimeout   = 10 * time.Second
	ResponseHeaderTimeout = 30 * time.Second
)

// Options make a client with New. The zero value verifies TLS against
// the system's roots and retries with the default policy.
type Options struct {
	// CACerts holds PEM CA certificates trusted besides the system's
	// (in the initramfs, the embedded) roots.
	CACerts []byte
	// Retry is the retry policy of requests that fail before their body.
	Retry Retry
	// Stall is how long a GET's body may receive nothing, while it is
	// read, before the download is resumed; 0 means DefaultStall.
	Stall time.Duration
	// Base sends the requests; nil means NewHTTPTransport with the roots.
	Base http.RoundTripper
	// Log, when set, receives a line before each retry's wait.
	Log io.Writer
}

// New returns ociboot's HTTP client: requests retried by o.Retry, GET
// bodies that resume after breaks and stalls, TLS verified against the
// roots plus o.CACerts. It sets no overall timeout: callers bound
// requests with their contexts.
func New(o Options) (*http.Client, error) {
	base := o.Base
	if base == nil {
		var err error
		if base, err = NewTransport(TransportOptions{CACerts: o.CACerts}); err != nil {
			return nil, err
		}
	}
	retry := &RetryTransport{Inner: base, Retry: o.Retry, Log: o.Log}
	return &http.Client{Transport: &ResumeTransport{Inner: retry, Stall: o.Stall}}, nil
}

// TransportOptions make a transport with NewTransport.
type TransportOptions struct {
	// CACerts holds PEM CA certificates trusted besides the roots.
	CACerts []byte
	// Insecure skips the certificate checks (insecure registries).
	Insecure bool
	// ClientCerts are presented to servers that ask for a client
	// certificate.
	ClientCerts []tls.Certificate
	// DialTimeout, when set, gives the connection timeout of a request's
	// context (the DialTimeout constant otherwise).
	DialTimeout func(context.Context) time.Duration
	// MaxIdleConnsPerHost is how many idle connections a host keeps; 0
	// means 8.
	MaxIdleConnsPerHost int
}

// NewTransport returns an HTTP transport with bounded connection set-up
// and response-header waits, verifying TLS (unless o.Insecure) against
// the system's roots, or the embedded Mozilla roots where the system has
// none (the initramfs), plus o.CACerts. The roots are read on the first
// HTTPS request: parsing the embedded ones took 80 ms of a TCG boot's
// start, in a boot that may never use TLS.
func NewTransport(o TransportOptions) (http.RoundTripper, error) {
	if o.Insecure {
		return newHTTPTransport(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, Certificates: o.ClientCerts}, o), nil
	}
	var extra []*x509.Certificate
	if len(o.CACerts) > 0 {
		var err error
		if extra, err = ParseCACerts(o.CACerts); err != nil {
			return nil, fmt.Errorf("extra CA certificates: %w", err)
		}
	}
	// The plain transport makes no TLS connection: no roots.
	plain := newHTTPTransport(nil, o)
	return &verifiedTransport{plain: plain, verified: sync.OnceValue(func() *http.Transport {
		return newHTTPTransport(&tls.Config{RootCAs: roots(extra), MinVersion: tls.VersionTLS12, Certificates: o.ClientCerts}, o)
	})}, nil
}

// verifiedTransport sends plain HTTP requests through one transport and
// those that use TLS (HTTPS, or through an HTTPS proxy) through another,
// made with its roots on the first such request.
type verifiedTransport struct {
	plain    *http.Transport
	verified func() *http.Transport
	made     atomic.Bool // verified was called
}

func (t *verifiedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" {
		if proxy, err := t.plain.Proxy(req); err != nil || proxy == nil || proxy.Scheme != "https" {
			return t.plain.RoundTrip(req)
		}
	}
	t.made.Store(true)
	return t.verified().RoundTrip(req)
}

// CloseIdleConnections closes the idle connections of both transports.
func (t *verifiedTransport) CloseIdleConnections() {
	t.plain.CloseIdleConnections()
	if t.made.Load() {
		t.verified().CloseIdleConnections()
	}
}

// embeddedRoots parses the embedded Mozilla roots, once: a constant made
// on first use.
var embeddedRoots = sync.OnceValue(func() *x509.CertPool {
	pool := x509.NewCertPool()
	for root := range bundle.Roots() {
		cert, err := x509.ParseCertificate(root.Certificate)
		if err != nil {
			continue // not in a released bundle: its tests parse every root
		}
		pool.AddCertWithConstraint(cert, root.Constraint)
	}
	return pool
})

// roots returns the system's roots, or the embedded ones when the system
// has none, plus extra.
func roots(extra []*x509.Certificate) *x509.CertPool {
	pool, err := x509.SystemCertPool()
	if err != nil || pool.Equal(x509.NewCertPool()) {
		pool = embeddedRoots().Clone()
	}
	for _, c := range extra {
		pool.AddCert(c)
	}
	return pool
}

// ParseCACerts reads PEM-encoded CA certificates (text between the blocks
// is ignored). Any other kind of PEM block, such as a private key, is an
// error, and so is a file holding no certificate.
func ParseCACerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, expected CERTIFICATE blocks only", n, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block: expected one or more -----BEGIN CERTIFICATE----- blocks")
	}
	return certs, nil
}

// newHTTPTransport returns the HTTP transport of NewTransport, with TLS
// configured by tc.
func newHTTPTransport(tc *tls.Config, o TransportOptions) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}
			if o.DialTimeout != nil {
				d.Timeout = o.DialTimeout(ctx)
			}
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:       tc,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   cmp.Or(o.MaxIdleConnsPerHost, 8),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   TLSHandshakeTimeout,
		ResponseHeaderTimeout: ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// RetryTransport retries, by its policy, requests whose outcome is
// Retryable and whose body can be sent again. After the last try it
// returns the last response (a 503, say) or error as they are.
type RetryTransport struct {
	Inner http.RoundTripper
	Retry Retry
	// Attempts, when set, may lower the policy's attempts for a request
	// (a registry mirror being probed gets fewer); 0 leaves them.
	Attempts func(*http.Request) int
	// Log, when set, receives a line before each wait.
	Log io.Writer
}

// RoundTrip sends req, again while the policy allows.
func (t *RetryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	policy := t.Retry
	if t.Attempts != nil {
		if n := t.Attempts(req); n > 0 {
			policy.Attempts = min(policy.attempts(), n)
		}
	}
	b := policy.Start(ctx)
	for {
		r := req
		if b.Attempt() > 1 {
			r = req.Clone(ctx)
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r.Body = body
			}
		}
		resp, err := t.Inner.RoundTrip(r)
		after, retry := policy.Retryable(resp, err)
		if !retry || !replayable || !b.Again(after) {
			if err != nil && b.Attempt() > 1 {
				err = fmt.Errorf("%w (attempt %d of %d)", err, b.Attempt(), b.Attempts())
			}
			return resp, err
		}
		last := describe(resp, err)
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if t.Log != nil {
			fmt.Fprintf(t.Log, "%s %s: %s (attempt %d of %d); again in %s\n", req.Method, Redact(req.URL), last, b.Attempt(), b.Attempts(), b.Delay().Round(time.Millisecond))
		}
		if err := b.Wait(); err != nil {
			return nil, fmt.Errorf("%s %s: %s (attempt %d of %d); stopped waiting to retry: %w", req.Method, Redact(req.URL), last, b.Attempt(), b.Attempts(), err)
		}
	}
}

func describe(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return "server answered " + resp.Status
}

// StripURL returns err without the URL that net/url's and net/http's
// errors repeat in their messages, whole, credentials and tokens
// included: callers name the URL themselves, redacted.
func StripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Redact writes u without its query and user info, which may hold
// signatures or credentials (blob redirects to a CDN carry them).
func Redact(u *url.URL) string {
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return v.String()
}
