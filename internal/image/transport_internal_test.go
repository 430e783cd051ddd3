package image

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/registrytest"
)

func TestEndpoints(t *testing.T) {
	mirrors := []Mirror{
		{Registry: "docker.io", Mirrors: []string{"hub.lan:5000", "hub2.lan/dockerhub"}},
		{Registry: "docker.io/library", Mirrors: []string{"lib.lan/official"}},
		{Registry: "Index.Docker.IO/library", Mirrors: []string{"lib2.lan", "lib.lan/official"}},
		{Registry: "quay.io/podman/stable", Mirrors: []string{"q.lan/stable"}},
		{Registry: "registry.lan:5000", Mirrors: []string{"bad host"}},
	}
	for _, tc := range []struct {
		ref  string
		want []string
	}{
		{"alpine", []string{"lib.lan/official/alpine", "lib2.lan/alpine", "docker.io/library/alpine"}},
		{"bitnami/redis", []string{"hub.lan:5000/bitnami/redis", "hub2.lan/dockerhub/bitnami/redis", "docker.io/bitnami/redis"}},
		{"docker.io/libraryx/y", []string{"hub.lan:5000/libraryx/y", "hub2.lan/dockerhub/libraryx/y", "docker.io/libraryx/y"}},
		{"quay.io/podman/stable:v5", []string{"q.lan/stable", "quay.io/podman/stable"}},
		{"quay.io/podman/stable2", []string{"quay.io/podman/stable2"}},
		{"registry.lan:5000/ci/job", []string{"registry.lan:5000/ci/job"}},
		{"ghcr.io/x/y", []string{"ghcr.io/x/y"}},
	} {
		r, err := ParseReference(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		eps := endpoints(r, mirrors)
		for i, ep := range eps {
			got = append(got, ep.String())
			if ep.mirror != (i < len(eps)-1) {
				t.Errorf("%s: endpoint %s: mirror = %v", tc.ref, ep, ep.mirror)
			}
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("endpoints(%s) = %q, want %q", tc.ref, got, tc.want)
		}
	}
}

// roundTripFunc records that a request got through.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestSchemePolicy(t *testing.T) {
	var got []string
	record := func(which string) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			got = append(got, which+" "+r.URL.String())
			return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
		})
	}
	p := &schemePolicy{verified: record("verified"), unverified: record("unverified"), insecure: map[string]bool{"10.0.2.100:5000": true, "insecure.lan": true}}
	for _, tc := range []struct{ url, want string }{
		{"https://registry.lan/v2/", "verified https://registry.lan/v2/"},
		{"http://127.0.0.1:5000/v2/", "verified http://127.0.0.1:5000/v2/"},
		{"http://[::1]:5000/v2/", "verified http://[::1]:5000/v2/"},
		{"http://localhost:5000/v2/", "verified http://localhost:5000/v2/"},
		{"http://10.0.2.100:5000/v2/", "verified http://10.0.2.100:5000/v2/"},
		{"https://10.0.2.100:5000/v2/a/manifests/1", "unverified https://10.0.2.100:5000/v2/a/manifests/1"},
		// An insecure registry's ping with no port goes to TLS at once: its
		// plain HTTP would be another server, on port 80.
		{"https://insecure.lan/v2/", "unverified https://insecure.lan/v2/"},
		{"http://10.0.2.100:5001/v2/", "refused"},
		{"http://registry.lan/v2/", "refused"},
		{"http://192.168.1.1:5000/v2/", "refused"},
	} {
		got = nil
		req, err := http.NewRequest(http.MethodGet, tc.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := p.RoundTrip(req)
		if tc.want == "refused" {
			if err == nil || !strings.Contains(err.Error(), "plain HTTP to "+req.URL.Host+" refused") || got != nil {
				t.Errorf("%s: sent through %q, error %v; want it refused before any traffic", tc.url, got, err)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s: went %q, %v; want %q", tc.url, got, err, tc.want)
		} else {
			resp.Body.Close()
		}
	}
}

func TestIsBlobRequest(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		{"/v2/library/alpine/blobs/sha256:0123abcd", true},
		{"/v2/a/b/c/blobs/sha512:ff", true},
		{"/v2/a/blobs/uploads/", false},
		{"/v2/a/blobs/uploads/123-abc", false},
		{"/v2/a/manifests/sha256:0123", false},
		{"/v2/", false},
	} {
		req, _ := http.NewRequest(http.MethodGet, "https://r.lan"+tc.path, nil)
		if got := isBlobRequest(req); got != tc.want {
			t.Errorf("isBlobRequest(%s) = %v", tc.path, got)
		}
	}
	// A redirect of a blob download (to a CDN) is one too.
	orig, _ := http.NewRequest(http.MethodGet, "https://r.lan/v2/a/blobs/sha256:00ff", nil)
	cdn, _ := http.NewRequest(http.MethodGet, "https://cdn.example/x/y?sig=1", nil)
	cdn.Response = &http.Response{StatusCode: 307, Request: orig}
	if !isBlobRequest(cdn) {
		t.Error("a redirected blob download is not seen as a blob download")
	}
}

// TestInsecurePingPlainFirst pings insecure registries named with their
// port through go-containerregistry, as a pull does: a plain-HTTP one
// (the CNCF registry) is reached without any TLS try, a TLS one (its
// certificate unknown here) over TLS after the plain try fails.
func TestInsecurePingPlainFirst(t *testing.T) {
	for _, tc := range []struct {
		name string
		reg  *registrytest.Registry
		tls  int // TLS requests wanted
	}{
		{"plain HTTP", registrytest.Start(t), 0},
		{"TLS", registrytest.StartWith(t, registrytest.Options{TLS: registrytest.NewCA(t)}), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := registrytest.Push(t, tc.reg, "ping/x:1", registrytest.Image(t, v1.Config{}))
			rt, err := newPullTransport(PullOptions{Insecure: []string{tc.reg.Addr}}, keychain{})
			if err != nil {
				t.Fatal(err)
			}
			policy := rt.(*fetch.ResumeTransport).Inner.(*fetch.RetryTransport).Inner.(*schemePolicy)
			var mu sync.Mutex
			tlsRequests := 0
			unverified := policy.unverified
			policy.unverified = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				mu.Lock()
				tlsRequests++
				mu.Unlock()
				return unverified.RoundTrip(r)
			})
			nref, err := name.ParseReference(ref, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(nref, remote.WithTransport(rt), remote.WithContext(context.Background()))
			if err == nil {
				_, err = img.ConfigFile()
			}
			if err != nil {
				t.Fatalf("pulling %s: %v", ref, err)
			}
			if tlsRequests != tc.tls {
				t.Errorf("%d requests over TLS, want %d", tlsRequests, tc.tls)
			}
		})
	}
}
