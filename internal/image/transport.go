package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Network limits of a pull. A connection that cannot be set up or a
// registry that does not answer fails the request; transient failures are
// retried with backoff (see retryTransport).
const (
	dialTimeout           = 10 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 30 * time.Second

	// retryAttempts bounds the tries of one request; the waits between
	// them start at retryFirstWait and double.
	retryAttempts  = 5
	retryFirstWait = 500 * time.Millisecond
	// While a mirror is probed (see probing), a request is tried
	// probeAttempts times and a connection gets probeDialTimeout, so that
	// a mirror that is down costs little before the next source.
	probeAttempts    = 2
	probeDialTimeout = 3 * time.Second
	// retryMaxAfter caps how long a Retry-After header makes us wait.
	retryMaxAfter = 60 * time.Second
)

// newPullTransport returns the HTTP stack of one pull, outermost first:
// blob downloads resume after interruptions (resumeTransport), transient
// failures are retried (retryTransport), and plain HTTP and unverified TLS
// are used only for insecure registries (schemePolicy). go-containerregistry
// adds authentication on top, with keys; the resume transport uses them
// too when a bearer token expires during a download.
func newPullTransport(o PullOptions, keys keychain) (http.RoundTripper, error) {
	roots, err := rootsWith(o.CACerts)
	if err != nil {
		return nil, err
	}
	policy := &schemePolicy{
		verified: newHTTPTransport(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}),
		insecure: map[string]bool{},
	}
	if len(o.Insecure) > 0 {
		policy.unverified = newHTTPTransport(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
		for _, h := range o.Insecure {
			policy.insecure[NormalizeRegistry(h)] = true
		}
	}
	stall := o.StallTimeout
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	retry := &retryTransport{inner: policy, attempts: retryAttempts, firstWait: retryFirstWait}
	return &resumeTransport{
		inner: retry,
		stall: stall,
		reauth: func(ctx context.Context, req *http.Request) (http.RoundTripper, error) {
			return reauthenticate(ctx, req, retry, keys)
		},
	}, nil
}

// rootsWith returns the system's roots plus the PEM certificates in
// caCerts; nil (the system's roots, or the embedded ones) when there are
// none.
func rootsWith(caCerts []byte) (*x509.CertPool, error) {
	if len(caCerts) == 0 {
		return nil, nil
	}
	certs, err := ParseCACerts(caCerts)
	if err != nil {
		return nil, fmt.Errorf("extra CA certificates: %w", err)
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	for _, c := range certs {
		roots.AddCert(c)
	}
	return roots, nil
}

// reauthenticate returns a transport that has authenticated afresh, with
// the credentials of keys, to pull from the registry and repository of
// req, a blob download: go-containerregistry's handshake (ping, then a
// new bearer token), over inner.
func reauthenticate(ctx context.Context, req *http.Request, inner http.RoundTripper, keys keychain) (http.RoundTripper, error) {
	repo, _, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/blobs/")
	if !ok {
		return nil, fmt.Errorf("%s is not a blob download", urlForMessage(req.URL))
	}
	var opts []name.Option
	if req.URL.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	r, err := name.NewRepository(req.URL.Host+"/"+repo, opts...)
	if err != nil {
		return nil, err
	}
	auth, err := keys.Resolve(r.Registry)
	if err != nil {
		return nil, err
	}
	return transport.NewWithContext(ctx, r.Registry, auth, inner, []string{r.Scope(transport.PullScope)})
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

// probe marks the requests made while a mirror is being tried; it is
// switched off once the mirror has served the manifest and config, so
// that its layers get the full retries.
type probe struct{ on atomic.Bool }

type probeKey struct{}

// withProbe returns ctx marked as probing a mirror, and the mark.
func withProbe(ctx context.Context) (context.Context, *probe) {
	p := &probe{}
	p.on.Store(true)
	return context.WithValue(ctx, probeKey{}, p), p
}

// probing reports whether ctx belongs to a mirror being probed.
func probing(ctx context.Context) bool {
	p, _ := ctx.Value(probeKey{}).(*probe)
	return p != nil && p.on.Load()
}

// newHTTPTransport returns an HTTP transport with bounded connection
// set-up and response-header waits (the body of a big layer may take
// longer; resumeTransport watches it).
func newHTTPTransport(tc *tls.Config) *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
			if probing(ctx) {
				d.Timeout = probeDialTimeout
			}
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:       tc,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

// schemePolicy sends plain HTTP only to insecure registries and to
// loopback addresses (as docker does), and skips certificate
// verification only for insecure registries. Everything else is HTTPS,
// verified against the system roots plus the extra CAs.
type schemePolicy struct {
	verified   http.RoundTripper
	unverified http.RoundTripper // nil when no registry is insecure
	insecure   map[string]bool   // normalized HOST[:PORT]
}

func (p *schemePolicy) RoundTrip(req *http.Request) (*http.Response, error) {
	insecure := p.insecure[NormalizeRegistry(req.URL.Host)]
	switch {
	case req.URL.Scheme == "http" && !insecure && !isLoopbackHost(req.URL.Hostname()):
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("plain HTTP to %s refused: only insecure registries are reached without TLS (ociboot.insecure_registry=%s allows it)", req.URL.Host, req.URL.Host)
	case req.URL.Scheme == "https" && insecure:
		return p.unverified.RoundTrip(req)
	}
	return p.verified.RoundTrip(req)
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsLoopback()
}

// retryTransport retries requests that failed in a way that may pass:
// timeouts, connection resets, HTTP 408, 429 and 5xx gateway or server
// errors; fewer times while a mirror is probed. Waits double from firstWait (with jitter), or follow the
// server's Retry-After; a wait that would pass the context's deadline is
// not started. A refused connection is not retried, so that a mirror that
// is down is skipped at once.
type retryTransport struct {
	inner     http.RoundTripper
	attempts  int
	firstWait time.Duration
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	wait, attempts := t.firstWait, t.attempts
	if probing(ctx) {
		attempts = min(attempts, probeAttempts)
	}
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 {
			r = req.Clone(ctx)
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r.Body = body
			}
		}
		resp, err := t.inner.RoundTrip(r)
		after, retry := retryable(resp, err)
		if !retry || !replayable || attempt >= attempts || ctx.Err() != nil {
			return resp, err
		}
		d := max(wait+time.Duration(rand.Int64N(int64(wait)/5+1)), after)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
			return resp, err
		}
		last := describeFailure(resp, err)
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("%s %s: %s (attempt %d of %d); stopped waiting to retry: %w", req.Method, urlForMessage(req.URL), last, attempt, attempts, context.Cause(ctx))
		case <-timer.C:
		}
		wait *= 2
	}
}

// retryable says whether a request's outcome is worth another try, and
// the least wait the server asked for.
func retryable(resp *http.Response, err error) (time.Duration, bool) {
	if err != nil {
		var ne net.Error
		var dns *net.DNSError
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return 0, false
		case errors.As(err, &dns):
			return 0, dns.IsTimeout || dns.IsTemporary
		case errors.Is(err, syscall.ECONNREFUSED):
			return 0, false
		case errors.As(err, &ne) && ne.Timeout(),
			errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
			errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return 0, true
		}
		return 0, false
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return retryAfter(resp.Header.Get("Retry-After")), true
	}
	return 0, false
}

// retryAfter reads a Retry-After header (seconds or an HTTP date),
// capped at retryMaxAfter.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = time.Until(at)
	}
	return min(max(d, 0), retryMaxAfter)
}

func describeFailure(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return "server answered " + resp.Status
}

// urlForMessage writes u without its query and user info, which may hold
// signatures or credentials (blob redirects to a CDN carry them).
func urlForMessage(u *url.URL) string {
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return v.String()
}
