package registrytest

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proxy is an HTTP reverse proxy on 127.0.0.1 in front of a registry. It
// records every request, and its Wrap hook lets a test delay, cut or
// replace answers, to play a flaky network or a misbehaving mirror.
type Proxy struct {
	// Addr is "127.0.0.1:PORT"; URL is "http(s)://" + Addr.
	Addr, URL string

	mu       sync.Mutex
	requests []ProxyRequest
}

// ProxyRequest is one request the proxy received.
type ProxyRequest struct {
	Method string
	Path   string
	// Range is the request's Range header.
	Range string
}

// IsBlob reports whether the request is for a blob (GET or HEAD).
func (r ProxyRequest) IsBlob() bool { return strings.Contains(r.Path, "/blobs/sha256:") }

// IsManifest reports whether the request is for a manifest.
func (r ProxyRequest) IsManifest() bool { return strings.Contains(r.Path, "/manifests/") }

// ProxyOptions configure NewProxy.
type ProxyOptions struct {
	// TLS, when set, makes the proxy serve HTTPS with a certificate from
	// this CA.
	TLS *CA
	// TLSIPs are more addresses the certificate is valid for.
	TLSIPs []net.IP
	// Wrap, when set, wraps the handler that forwards to the registry.
	Wrap func(next http.Handler) http.Handler
}

// NewProxy starts a proxy to reg on 127.0.0.1 and stops it when the test
// ends.
func NewProxy(t testing.TB, reg *Registry, o ProxyOptions) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("registrytest: proxy: %v", err)
	}
	return serveProxy(t, l, reg.Scheme+"://"+reg.Addr, reg.CA, o, nil)
}

// serveProxy serves a proxy to backend on l; extra, when set, answers the
// paths it knows before the proxy forwards anything.
func serveProxy(t testing.TB, l net.Listener, backend string, backendCA *CA, o ProxyOptions, extra *http.ServeMux) *Proxy {
	t.Helper()
	target, err := url.Parse(backend)
	if err != nil {
		t.Fatalf("registrytest: proxy backend %q: %v", backend, err)
	}
	p := &Proxy{Addr: l.Addr().String(), URL: "http://" + l.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(target)
	tr := &http.Transport{ResponseHeaderTimeout: time.Minute}
	if backendCA != nil {
		tr = backendCA.Transport()
	}
	rp.Transport = tr
	rp.ErrorLog = log.New(io.Discard, "", 0) // clients that hang up are expected
	var forward http.Handler = rp
	if o.Wrap != nil {
		forward = o.Wrap(rp)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests = append(p.requests, ProxyRequest{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range")})
		p.mu.Unlock()
		if extra != nil {
			if _, pattern := extra.Handler(r); pattern != "" {
				extra.ServeHTTP(w, r)
				return
			}
		}
		forward.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	if o.TLS != nil {
		srv.TLSConfig = o.TLS.serverTLS(t, o.TLSIPs...)
		p.URL = "https://" + p.Addr
	}
	done := make(chan error, 1)
	go func() {
		var err error
		if o.TLS != nil {
			err = srv.ServeTLS(l, "", "")
		} else {
			err = srv.Serve(l)
		}
		done <- err
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("registrytest: proxy %s: %v", p.Addr, err)
		}
		tr.CloseIdleConnections()
	})
	return p
}

// Requests returns the requests received so far.
func (p *Proxy) Requests() []ProxyRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProxyRequest(nil), p.requests...)
}

// Count returns how many requests received so far match.
func (p *Proxy) Count(match func(ProxyRequest) bool) int {
	n := 0
	for _, r := range p.Requests() {
		if match(r) {
			n++
		}
	}
	return n
}
