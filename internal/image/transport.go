package image

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/ociboot/ociboot/internal/fetch"
)

// Limits of a pull beyond fetch's. While a mirror is probed (see
// probing), a request is tried probeAttempts times and a connection gets
// probeDialTimeout, so that a mirror that is down costs little before the
// next source.
const (
	probeAttempts    = 2
	probeDialTimeout = 3 * time.Second
)

// blobPath matches the path of a blob download (and not of an upload).
var blobPath = regexp.MustCompile(`^/v2/.+/blobs/[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`)

// newPullTransport returns the HTTP stack of a puller, outermost first:
// blob downloads resume after interruptions (fetch.ResumeTransport),
// transient failures are retried (fetch.RetryTransport, fewer times while
// a mirror is probed), and plain HTTP and unverified TLS are used only for
// insecure registries (schemePolicy). go-containerregistry adds
// authentication on top, with keys; the resume transport uses them too
// when a bearer token expires during a download.
func newPullTransport(o PullOptions, keys keychain) (http.RoundTripper, error) {
	verified, err := fetch.NewTransport(fetch.TransportOptions{CACerts: o.CACerts, ClientCerts: o.ClientCerts, DialTimeout: dialTimeout})
	if err != nil {
		return nil, err
	}
	policy := &schemePolicy{verified: verified, insecure: map[string]bool{}}
	if len(o.Insecure) > 0 {
		if policy.unverified, err = fetch.NewTransport(fetch.TransportOptions{Insecure: true, ClientCerts: o.ClientCerts, DialTimeout: dialTimeout}); err != nil {
			return nil, err
		}
		for _, h := range o.Insecure {
			policy.insecure[NormalizeRegistry(h)] = true
		}
	}
	retry := &fetch.RetryTransport{Inner: policy, Retry: o.Retry, Attempts: func(req *http.Request) int {
		if probing(req.Context()) {
			return probeAttempts
		}
		return 0
	}}
	return &fetch.ResumeTransport{
		Inner: retry,
		Stall: o.StallTimeout,
		Match: isBlobRequest,
		Reauth: func(ctx context.Context, req *http.Request) (http.RoundTripper, error) {
			if !blobPath.MatchString(req.URL.Path) {
				return nil, nil // a redirect's target: not the registry
			}
			return reauthenticate(ctx, req, retry, keys)
		},
	}, nil
}

// dialTimeout is the connection timeout of a request: shorter while a
// mirror is probed.
func dialTimeout(ctx context.Context) time.Duration {
	if probing(ctx) {
		return probeDialTimeout
	}
	return fetch.DialTimeout
}

// isBlobRequest reports whether req downloads a blob, or follows a
// redirect of such a download (to a CDN, say).
func isBlobRequest(req *http.Request) bool {
	for hops := 0; req != nil && hops < 20; hops++ {
		if blobPath.MatchString(req.URL.Path) {
			return true
		}
		if req.Response == nil {
			return false
		}
		req = req.Response.Request
	}
	return false
}

// reauthenticate returns a transport that has authenticated afresh, with
// the credentials of keys, to pull from the registry and repository of
// req, a blob download: go-containerregistry's handshake (ping, then a
// new bearer token), over inner.
func reauthenticate(ctx context.Context, req *http.Request, inner http.RoundTripper, keys keychain) (http.RoundTripper, error) {
	repo, _, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/blobs/")
	if !ok {
		return nil, fmt.Errorf("%s is not a blob download", fetch.Redact(req.URL))
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

// schemePolicy sends plain HTTP only to insecure registries and to
// loopback addresses (as docker does), and skips certificate
// verification only for insecure registries. Everything else is HTTPS,
// verified against the system roots plus the extra CAs.
//
// go-containerregistry pings an insecure registry over HTTPS first, and
// over plain HTTP once that failed (or after 300 ms). A registry named
// with its port speaks one of the two on it, and under TCG the TLS try
// alone cost a boot 0.18–0.29 s of CPU: the HTTPS ping of such a
// registry is preceded by a plain one (answersPlain), and fails at once
// when that is answered as a registry answers; go-containerregistry then
// pings over HTTP, on the connection just opened.
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
		if isPing(req) && req.URL.Port() != "" && p.answersPlain(req) {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, fmt.Errorf("registry %s answers plain HTTP on its port: not trying TLS", req.URL.Host)
		}
		return p.unverified.RoundTrip(req)
	}
	return p.verified.RoundTrip(req)
}

// isPing reports whether req is a registry's ping, GET /v2/.
func isPing(req *http.Request) bool { return req.Method == http.MethodGet && req.URL.Path == "/v2/" }

// answersPlain reports whether the registry of the ping req answers it
// over plain HTTP as a registry does: 200, or 401 asking for
// credentials. A TLS server answers 400, or hangs up.
func (p *schemePolicy) answersPlain(req *http.Request) bool {
	plain := req.Clone(req.Context())
	plain.URL.Scheme, plain.Body = "http", nil
	resp, err := p.verified.RoundTrip(plain)
	if err != nil {
		return false
	}
	// Read to the end, so that the connection serves the HTTP ping next.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsLoopback()
}
