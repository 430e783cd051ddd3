package image_test

// Pulls against the real distribution registry (registrytest), with
// authentication, TLS, mirrors, and a proxy in between that breaks the
// traffic the way real networks do.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/fetch/fetchtest"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/registrytest"
)

// smallImage returns an image with one small layer holding content.
func smallImage(t *testing.T, content string) v1.Image {
	t.Helper()
	return registrytest.Image(t, v1.Config{Cmd: []string{content}}, registrytest.LayerFromFiles(t, map[string]string{"data": content}))
}

// bigImage returns an image whose one layer holds size random
// (incompressible) bytes, and that layer.
func bigImage(t *testing.T, size int) (v1.Image, v1.Layer) {
	t.Helper()
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	layer := registrytest.Layer(t, registrytest.Entry{Name: "random", Body: string(data)})
	return registrytest.Image(t, v1.Config{}, layer), layer
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func layerDigest(t *testing.T, l v1.Layer) v1.Hash {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// compressed reads a layer's blob.
func compressed(l v1.Layer) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// onlyLayer returns the single layer of img.
func onlyLayer(t *testing.T, img v1.Image) v1.Layer {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v; want 1", len(layers), err)
	}
	return layers[0]
}

// isBlobGet matches proxied GETs of the blob with digest d.
func isBlobGet(d v1.Hash) func(registrytest.ProxyRequest) bool {
	return func(r registrytest.ProxyRequest) bool {
		return r.Method == http.MethodGet && strings.HasSuffix(r.Path, "/blobs/"+d.String())
	}
}

func isManifest(r registrytest.ProxyRequest) bool { return r.IsManifest() }

// requestMatch matches requests for a path ending with suffix.
func requestMatch(method, suffix string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == method && strings.HasSuffix(r.URL.Path, suffix) }
}

func TestPullTagAndDigestPinned(t *testing.T) {
	reg := registrytest.Start(t)
	a, b := smallImage(t, "a"), smallImage(t, "b")
	registrytest.Push(t, reg, "test/pin:a", a)
	registrytest.Push(t, reg, "test/pin:b", b)
	da, db := digestOf(t, a), digestOf(t, b)
	ctx := testContext(t)
	for _, tc := range []struct {
		ref  string
		want v1.Hash
	}{
		{reg.Addr + "/test/pin:a", da},
		{reg.Addr + "/test/pin@" + da.String(), da},
		{reg.Addr + "/test/pin:a@" + da.String(), da},
		// The tag is informational: the digest decides.
		{"docker://" + reg.Addr + "/test/pin:a@" + db.String(), db},
	} {
		img, err := image.Pull(ctx, tc.ref, image.PullOptions{})
		if err != nil {
			t.Errorf("Pull(%s): %v", tc.ref, err)
			continue
		}
		if got := digestOf(t, img); got != tc.want {
			t.Errorf("Pull(%s) gave %s, want %s", tc.ref, got, tc.want)
		}
	}

	missing := "sha256:" + strings.Repeat("0", 64)
	_, err := image.Pull(ctx, reg.Addr+"/test/pin:a@"+missing, image.PullOptions{})
	t.Logf("unknown digest: %v", err)
	if err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") || !strings.Contains(err.Error(), missing) {
		t.Errorf("pull of an unknown digest: error %v, want MANIFEST_UNKNOWN naming %s", err, missing)
	}

	// A registry that answers a digest with other bytes is caught.
	liar := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.URL.Path = strings.Replace(r.URL.Path, "/manifests/"+da.String(), "/manifests/b", 1)
			next.ServeHTTP(w, r)
		})
	}})
	_, err = image.Pull(ctx, liar.Addr+"/test/pin:a@"+da.String(), image.PullOptions{})
	t.Logf("wrong manifest for the digest: %v", err)
	if err == nil || !strings.Contains(err.Error(), "does not match requested digest") || !strings.Contains(err.Error(), da.String()) {
		t.Errorf("manifest not matching its digest: error %v, want a digest mismatch naming %s", err, da)
	}
}

func TestPullPlatformVariant(t *testing.T) {
	reg := registrytest.Start(t)
	idx := registrytest.PlatformIndex(t, func(p v1.Platform) v1.Image { return smallImage(t, p.String()) },
		v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"},
		v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"},
		v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
		v1.Platform{OS: "linux", Architecture: "amd64"},
	)
	ref := registrytest.PushIndex(t, reg, "test/arm:1", idx)
	ctx := testContext(t)
	for _, tc := range []struct{ platform, want string }{
		{"linux/arm/v7", "linux/arm/v7"},
		{"arm/v6", "linux/arm/v6"},
		{"armhf", "linux/arm/v7"},
		{"arm64", "linux/arm64/v8"},
		{"linux/aarch64/v8", "linux/arm64/v8"},
		{"x86_64", "linux/amd64"},
	} {
		p, err := image.ParsePlatform(tc.platform)
		if err != nil {
			t.Fatal(err)
		}
		img, err := image.Pull(ctx, ref, image.PullOptions{Platform: p})
		if err != nil {
			t.Errorf("Pull for %s: %v", tc.platform, err)
			continue
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if got := cf.Config.Cmd[0]; got != tc.want {
			t.Errorf("platform %s: got the %s image, want %s", tc.platform, got, tc.want)
		}
	}
	p, _ := image.ParsePlatform("linux/arm/v5")
	_, err := image.Pull(ctx, ref, image.PullOptions{Platform: p})
	t.Logf("missing variant: %v", err)
	if err == nil || !strings.Contains(err.Error(), "linux/arm/v5") {
		t.Errorf("variant missing from the index: error %v, want one naming linux/arm/v5", err)
	}
}

// assertNoSecret fails the test if any of outs holds secret.
func assertNoSecret(t *testing.T, secret string, outs ...string) {
	t.Helper()
	for _, out := range outs {
		if strings.Contains(out, secret) {
			t.Errorf("output shows a secret: %s", out)
		}
	}
}

func TestPullHtpasswdAndCA(t *testing.T) {
	ca := registrytest.NewCA(t)
	password := "alice-" + secretMarker
	reg := registrytest.StartWith(t, registrytest.Options{TLS: ca, Htpasswd: map[string]string{"alice": password}})
	ref := registrytest.Push(t, reg, "test/private:1", smallImage(t, "private"))
	ctx := testContext(t)
	alice := map[string]image.Credential{reg.Addr: {Username: "alice", Password: password}}

	var log bytes.Buffer
	if _, err := image.Pull(ctx, ref, image.PullOptions{Auth: alice, CACerts: ca.CertPEM, Log: &log}); err != nil {
		t.Fatalf("Pull with alice's password and the CA: %v", err)
	}
	// An insecure registry is reached without verifying its certificate.
	if _, err := image.Pull(ctx, ref, image.PullOptions{Auth: alice, Insecure: []string{reg.Addr}}); err != nil {
		t.Errorf("Pull from an insecure registry without its CA: %v", err)
	}

	wrong := "wrong-" + secretMarker
	opts := image.PullOptions{Auth: map[string]image.Credential{reg.Addr: {Username: "alice", Password: wrong}}, CACerts: ca.CertPEM, Log: &log}
	_, err := image.Pull(ctx, ref, opts)
	t.Logf("wrong password: %v", err)
	if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") || !strings.Contains(err.Error(), "registry "+reg.Addr) {
		t.Errorf("wrong password: error %v, want UNAUTHORIZED naming registry %s", err, reg.Addr)
	}
	assertNoSecret(t, secretMarker, fmt.Sprint(err), log.String(), fmt.Sprintf("%+v %#v", opts, opts))

	_, err = image.Pull(ctx, ref, image.PullOptions{CACerts: ca.CertPEM})
	if err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Errorf("no credentials: error %v, want UNAUTHORIZED", err)
	}
	_, err = image.Pull(ctx, ref, image.PullOptions{Auth: alice})
	t.Logf("without the CA: %v", err)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("without the CA: error %v, want an unknown-authority error", err)
	}
	_, err = image.Pull(ctx, ref, image.PullOptions{Auth: alice, CACerts: []byte("not PEM")})
	if err == nil || !strings.Contains(err.Error(), "extra CA certificates: no PEM CERTIFICATE block") {
		t.Errorf("a CA file without certificates: error %v", err)
	}
}

func TestPullTokenAuth(t *testing.T) {
	ca := registrytest.NewCA(t)
	password := "bob-" + secretMarker
	ts := registrytest.NewTokenServer(t, map[string]string{"bob": password})
	reg := registrytest.StartWith(t, registrytest.Options{TLS: ca, Token: ts})
	ref := registrytest.Push(t, reg, "test/token:1", smallImage(t, "token"))
	ctx := testContext(t)

	granted := func(method string) bool {
		for _, r := range ts.Requests() {
			if r.Method == method && r.User == "bob" && r.Status == http.StatusOK && len(r.Scopes) > 0 && r.Scopes[0] == "repository:test/token:pull" {
				return true
			}
		}
		return false
	}
	// Credentials as `docker login` writes them.
	cfg := fmt.Sprintf(`{"auths": {"https://%s/v1/": {"auth": %q}}}`, reg.Addr, b64("bob:"+password))
	creds, err := image.ParseDockerConfig([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	img, err := image.Pull(ctx, ref, image.PullOptions{Auth: creds, CACerts: ca.CertPEM})
	if err != nil {
		t.Fatalf("Pull with bob's password: %v", err)
	}
	if !granted(http.MethodGet) {
		t.Errorf("token server requests %+v: want a pull token issued to bob", ts.Requests())
	}
	// Layers are fetched with the token too.
	if _, err := compressed(onlyLayer(t, img)); err != nil {
		t.Errorf("reading the layer: %v", err)
	}

	// An identity token (OAuth2 refresh token) is exchanged by POST.
	ts.AddRefreshToken("refresh-"+secretMarker, "bob")
	if _, err := image.Pull(ctx, ref, image.PullOptions{Auth: map[string]image.Credential{reg.Addr: {IdentityToken: "refresh-" + secretMarker}}, CACerts: ca.CertPEM}); err != nil {
		t.Errorf("Pull with an identity token: %v", err)
	}
	if !granted(http.MethodPost) {
		t.Errorf("token server requests %+v: want a token issued by POST for the identity token", ts.Requests())
	}

	wrong := image.PullOptions{Auth: map[string]image.Credential{reg.Addr: {Username: "bob", Password: "wrong-" + secretMarker}}, CACerts: ca.CertPEM}
	_, err = image.Pull(ctx, ref, wrong)
	t.Logf("wrong password: %v", err)
	if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") || !strings.Contains(err.Error(), reg.Addr) {
		t.Errorf("wrong password: error %v, want the token server's 401 and the registry", err)
	}
	assertNoSecret(t, secretMarker, fmt.Sprint(err))
	_, err = image.Pull(ctx, ref, image.PullOptions{CACerts: ca.CertPEM})
	if err == nil {
		t.Error("anonymous pull from a token registry succeeded")
	}
}

func TestPullMirrors(t *testing.T) {
	origin := registrytest.Start(t)
	img := smallImage(t, "mirrored")
	registrytest.Push(t, origin, "test/m:1", img)
	mirror := registrytest.Start(t)
	registrytest.Push(t, mirror, "hub/test/m:1", img)
	empty := registrytest.Start(t) // has nothing

	po := registrytest.NewProxy(t, origin, registrytest.ProxyOptions{})
	pm := registrytest.NewProxy(t, mirror, registrytest.ProxyOptions{})
	pe := registrytest.NewProxy(t, empty, registrytest.ProxyOptions{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close() // nothing listens there

	ctx := testContext(t)
	d := digestOf(t, img)
	for _, ref := range []string{po.Addr + "/test/m:1", po.Addr + "/test/m@" + d.String()} {
		var log bytes.Buffer
		before := pm.Count(isManifest)
		got, err := image.Pull(ctx, ref, image.PullOptions{
			Mirrors: []image.Mirror{{Registry: po.Addr, Mirrors: []string{down, pe.Addr, pm.Addr + "/hub"}}},
			Log:     &log,
		})
		t.Logf("log:\n%s", log.String())
		if err != nil {
			t.Fatalf("Pull %s through mirrors: %v", ref, err)
		}
		if digestOf(t, got) != d {
			t.Errorf("Pull %s gave %s, want %s", ref, digestOf(t, got), d)
		}
		if _, err := compressed(onlyLayer(t, got)); err != nil {
			t.Errorf("reading the layer from the mirror: %v", err)
		}
		if n := po.Count(func(registrytest.ProxyRequest) bool { return true }); n != 0 {
			t.Errorf("the origin got %d requests, want none: the mirror has the image", n)
		}
		if pm.Count(isManifest) == before || pe.Count(isManifest) == 0 {
			t.Errorf("manifest requests: mirror %d (before %d), empty mirror %d; want both asked", pm.Count(isManifest), before, pe.Count(isManifest))
		}
		for _, want := range []string{"mirror " + down + "/test/m", "refused", "mirror " + pe.Addr + "/test/m", "MANIFEST_UNKNOWN", "from mirror " + pm.Addr + "/hub/test/m"} {
			if !strings.Contains(log.String(), want) {
				t.Errorf("log does not mention %q", want)
			}
		}
	}

	// When no mirror has it, the origin serves it.
	got, err := image.Pull(ctx, po.Addr+"/test/m:1", image.PullOptions{Mirrors: []image.Mirror{{Registry: po.Addr, Mirrors: []string{down, pe.Addr}}}})
	if err != nil {
		t.Fatalf("Pull falling back to the origin: %v", err)
	}
	if _, err := compressed(onlyLayer(t, got)); err != nil {
		t.Errorf("reading the layer from the origin: %v", err)
	}
	if po.Count(isManifest) == 0 || po.Count(isBlobGet(layerDigest(t, onlyLayer(t, img)))) == 0 {
		t.Errorf("the origin got %v, want the manifest and the layer", po.Requests())
	}

	// Every source failing is one error naming each.
	_, err = image.Pull(ctx, po.Addr+"/test/none:1", image.PullOptions{Mirrors: []image.Mirror{{Registry: po.Addr, Mirrors: []string{down}}}})
	t.Logf("all failed: %v", err)
	if err == nil || !strings.Contains(err.Error(), "every source failed") || !strings.Contains(err.Error(), "mirror "+down) || !strings.Contains(err.Error(), "registry "+po.Addr) {
		t.Errorf("all sources failing: error %v, want one naming the mirror and the registry", err)
	}
}

// A bearer token that expires during a big download: the range request
// that resumes the cut download is refused (401), and the pull takes a
// new token and goes on.
func TestPullResumeAfterTokenExpiry(t *testing.T) {
	ca := registrytest.NewCA(t)
	ts := registrytest.NewTokenServer(t, map[string]string{"bob": "bob-" + secretMarker})
	reg := registrytest.StartWith(t, registrytest.Options{TLS: ca, Token: ts})
	img, layer := bigImage(t, 2<<20)
	want, err := compressed(layer)
	if err != nil {
		t.Fatal(err)
	}
	ld := layerDigest(t, layer)
	registrytest.Push(t, reg, "test/big:1", img)

	cut := cutBlob(ld, int64(len(want)), 1, false)
	var mu sync.Mutex
	var firstToken, proxyAddr string
	var refused, ranged int
	proxy := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{TLS: ca, Wrap: func(next http.Handler) http.Handler {
		return cut(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The token realm is on the registry's address: name the
			// proxy's instead (go-containerregistry follows no other).
			mu.Lock()
			w = &realmRewriter{ResponseWriter: w, from: reg.Addr, to: proxyAddr}
			mu.Unlock()
			if requestMatch(http.MethodGet, "/blobs/"+ld.String())(r) {
				mu.Lock()
				switch {
				case r.Header.Get("Range") == "":
					firstToken = r.Header.Get("Authorization")
				case r.Header.Get("Authorization") == firstToken:
					// The token has expired: the registry sees none and
					// answers with its challenge.
					r.Header.Del("Authorization")
					refused++
				default:
					ranged++
				}
				mu.Unlock()
			}
			next.ServeHTTP(w, r)
		}))
	}})
	mu.Lock()
	proxyAddr = proxy.Addr
	mu.Unlock()
	before := len(ts.Requests())
	pulled, err := image.Pull(testContext(t), proxy.Addr+"/test/big:1", image.PullOptions{
		Auth:    map[string]image.Credential{proxy.Addr: {Username: "bob", Password: "bob-" + secretMarker}},
		CACerts: ca.CertPEM,
	})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	got, err := compressed(onlyLayer(t, pulled))
	if err != nil {
		t.Fatalf("reading the layer across the token's expiry: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("layer bytes differ after resuming (%d bytes, want %d)", len(got), len(want))
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.HasPrefix(firstToken, "Bearer ") || refused != 1 || ranged != 1 {
		t.Errorf("first token %.7q, range requests refused %d and served %d: want a bearer token, one refused and one served", firstToken, refused, ranged)
	}
	if issued := len(ts.Requests()) - before; issued < 2 {
		t.Errorf("the token server issued %d tokens, want a second one for the resume", issued)
	}
}

// realmRewriter replaces from by to in the WWW-Authenticate header.
type realmRewriter struct {
	http.ResponseWriter
	from, to string
}

func (rw *realmRewriter) WriteHeader(code int) {
	h := rw.Header()
	if c := h.Get("WWW-Authenticate"); c != "" {
		h.Set("WWW-Authenticate", strings.ReplaceAll(c, rw.from, rw.to))
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *realmRewriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// A mirror that serves the manifest but lacks a layer blob: the layer
// comes from the next source, the origin, by digest; when no source has
// it, the error names the blob and every source.
func TestPullMirrorLacksBlob(t *testing.T) {
	origin := registrytest.Start(t)
	img := smallImage(t, "blob only at the origin")
	registrytest.Push(t, origin, "test/m:1", img)
	mirror := registrytest.Start(t)
	registrytest.Push(t, mirror, "test/m:1", img)
	ld := layerDigest(t, onlyLayer(t, img))
	if err := os.Remove(mirror.BlobPath(ld)); err != nil {
		t.Fatal(err)
	}
	po := registrytest.NewProxy(t, origin, registrytest.ProxyOptions{})
	pm := registrytest.NewProxy(t, mirror, registrytest.ProxyOptions{})
	opts := image.PullOptions{Mirrors: []image.Mirror{{Registry: po.Addr, Mirrors: []string{pm.Addr}}}}

	var log bytes.Buffer
	opts.Log = &log
	got, err := image.Pull(testContext(t), po.Addr+"/test/m:1", opts)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	dir := t.TempDir()
	if err := image.UnpackWith(testContext(t), got, dir, image.UnpackOptions{}); err != nil {
		t.Fatalf("Unpack with the blob missing at the mirror: %v\nlog:\n%s", err, log.String())
	}
	t.Logf("log:\n%s", log.String())
	if po.Count(isManifest) != 0 || po.Count(isBlobGet(ld)) != 1 {
		t.Errorf("the origin got %v, want one GET of the layer and no manifest request", po.Requests())
	}
	if pm.Count(isBlobGet(ld)) == 0 {
		t.Errorf("the mirror got %v, want it asked for the layer first", pm.Requests())
	}
	want := "layer " + ld.String() + ": mirror " + pm.Addr + "/test/m could not serve it"
	if !strings.Contains(log.String(), want) || !strings.Contains(log.String(), "fetching it from registry "+po.Addr) {
		t.Errorf("log does not say %q and where the layer came from", want)
	}

	// Gone everywhere: the error names the blob and both sources.
	if err := os.Remove(origin.BlobPath(ld)); err != nil {
		t.Fatal(err)
	}
	opts.Log = nil
	got, err = image.Pull(testContext(t), po.Addr+"/test/m:1", opts)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	err = image.UnpackWith(testContext(t), got, t.TempDir(), image.UnpackOptions{})
	t.Logf("blob missing everywhere: %v", err)
	for _, want := range []string{"no source serves blob " + ld.String(), "mirror " + pm.Addr + "/test/m", "registry " + po.Addr} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %q", err, want)
		}
	}
}

// resetServer accepts connections on 127.0.0.1 and resets them at once,
// like a relay to a service that is down; it counts them.
func resetServer(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l.Addr().String(), &n
}

func TestPullMirrorProbedBriefly(t *testing.T) {
	origin := registrytest.Start(t)
	img := smallImage(t, "probe")
	ref := registrytest.Push(t, origin, "test/p:1", img)
	reset, conns := resetServer(t)

	// A mirror that resets connections is given up after a retry (one
	// first wait per scheme tried), not after the full backoff (four
	// waits, about 7.5s).
	clock := fetchtest.NewClock()
	if _, err := image.Pull(testContext(t), ref, image.PullOptions{Mirrors: []image.Mirror{{Registry: origin.Addr, Mirrors: []string{reset}}}, Retry: fetch.Retry{Clock: clock}}); err != nil {
		t.Fatalf("Pull past a resetting mirror: %v", err)
	}
	waits := clock.Sleeps()
	if len(waits) == 0 || len(waits) > 2 || slices.Max(waits) > time.Second || conns.Load() < 2 {
		t.Errorf("resetting mirror: fell back after waits %v and %d connections; want a fallback after one retry", waits, conns.Load())
	}

	// Once a mirror has served the manifest, its layers get every retry.
	mirror := registrytest.Start(t)
	registrytest.Push(t, mirror, "test/p:1", img)
	ld := layerDigest(t, onlyLayer(t, img))
	flaky := registrytest.NewProxy(t, mirror, registrytest.ProxyOptions{Wrap: failFirst(3, requestMatch(http.MethodGet, "/blobs/"+ld.String()), http.StatusBadGateway, nil)})
	pulled, err := image.Pull(testContext(t), ref, image.PullOptions{Mirrors: []image.Mirror{{Registry: origin.Addr, Mirrors: []string{flaky.Addr}}}})
	if err != nil {
		t.Fatalf("Pull from a mirror: %v", err)
	}
	if _, err := compressed(onlyLayer(t, pulled)); err != nil || flaky.Count(isBlobGet(ld)) != 4 {
		t.Errorf("layer from the mirror after three 502s: %v, %d GETs; want success at the fourth", err, flaky.Count(isBlobGet(ld)))
	}
}

func TestPullMirrorThatHangs(t *testing.T) {
	origin := registrytest.Start(t)
	ref := registrytest.Push(t, origin, "test/h:1", smallImage(t, "h"))
	hang := registrytest.NewProxy(t, origin, registrytest.ProxyOptions{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				<-r.Context().Done()
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	var log bytes.Buffer
	_, err := image.Pull(testContext(t), ref, image.PullOptions{
		Mirrors:       []image.Mirror{{Registry: origin.Addr, Mirrors: []string{hang.Addr}}},
		MirrorTimeout: time.Second,
		Log:           &log,
	})
	t.Logf("log:\n%s", log.String())
	if err != nil {
		t.Fatalf("Pull past a hanging mirror: %v", err)
	}
	if !strings.Contains(log.String(), "no manifest and config within 1s") {
		t.Errorf("log %q: want the mirror given up after 1s (MirrorTimeout)", log.String())
	}
}

// cutWriter passes the first left bytes of a response, then breaks the
// connection, after waiting for the client to give up when stall is set.
type cutWriter struct {
	http.ResponseWriter
	left  int
	stall context.Context
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if len(p) < c.left {
		c.left -= len(p)
		return c.ResponseWriter.Write(p)
	}
	_, _ = c.ResponseWriter.Write(p[:c.left])
	_ = http.NewResponseController(c.ResponseWriter).Flush()
	if c.stall != nil {
		<-c.stall.Done()
	}
	panic(http.ErrAbortHandler)
}

func (c *cutWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// cutBlob breaks the first times downloads of blob d (without a Range
// header) after half of size bytes.
func cutBlob(d v1.Hash, size int64, times int32, stall bool) func(http.Handler) http.Handler {
	var n atomic.Int32
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if requestMatch(http.MethodGet, "/blobs/"+d.String())(r) && r.Header.Get("Range") == "" && n.Add(1) <= times {
				cw := &cutWriter{ResponseWriter: w, left: int(size / 2)}
				if stall {
					cw.stall = r.Context()
				}
				w = cw
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestPullResumesInterruptedBlob(t *testing.T) {
	reg := registrytest.Start(t)
	img, layer := bigImage(t, 3<<20)
	want, err := compressed(layer)
	if err != nil {
		t.Fatal(err)
	}
	ld := layerDigest(t, layer)
	registrytest.Push(t, reg, "test/big:1", img)

	for _, tc := range []struct {
		name  string
		stall bool
	}{{"connection cut", false}, {"stream stalled", true}} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{Wrap: cutBlob(ld, int64(len(want)), 1, tc.stall)})
			pulled, err := image.Pull(testContext(t), proxy.Addr+"/test/big:1", image.PullOptions{StallTimeout: time.Second})
			if err != nil {
				t.Fatalf("Pull: %v", err)
			}
			got, err := compressed(onlyLayer(t, pulled))
			if err != nil {
				t.Fatalf("reading the interrupted layer: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("layer bytes differ after resuming (%d bytes, want %d)", len(got), len(want))
			}
			gets := proxy.Count(isBlobGet(ld))
			ranged := proxy.Count(func(r registrytest.ProxyRequest) bool {
				return isBlobGet(ld)(r) && r.Range == fmt.Sprintf("bytes=%d-", len(want)/2)
			})
			if gets != 2 || ranged != 1 {
				t.Errorf("blob GETs %d, with Range bytes=%d- %d; want 2 and 1: %v", gets, len(want)/2, ranged, proxy.Requests())
			}
		})
	}

	// A reader that pauses longer than the stall timeout is not a stall.
	t.Run("slow reader", func(t *testing.T) {
		proxy := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{})
		pulled, err := image.Pull(testContext(t), proxy.Addr+"/test/big:1", image.PullOptions{StallTimeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatalf("Pull: %v", err)
		}
		rc, err := onlyLayer(t, pulled).Compressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		head := make([]byte, 1000)
		if _, err := io.ReadFull(rc, head); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		rest, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(append(head, rest...), want) {
			t.Errorf("slow read: %d bytes, %v", len(head)+len(rest), err)
		}
		if n := proxy.Count(isBlobGet(ld)); n != 1 {
			t.Errorf("blob GETs: %d, want 1: pausing between reads is not a stall", n)
		}
	})

	// A server that ignores Range (answers 200) makes the read fail with
	// the original error.
	t.Run("range ignored", func(t *testing.T) {
		cut := cutBlob(ld, int64(len(want)), 1, false)
		proxy := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{Wrap: func(next http.Handler) http.Handler {
			return cut(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.Header.Del("Range")
				r.Header.Del("If-Range")
				next.ServeHTTP(w, r)
			}))
		}})
		pulled, err := image.Pull(testContext(t), proxy.Addr+"/test/big:1", image.PullOptions{})
		if err != nil {
			t.Fatalf("Pull: %v", err)
		}
		_, err = compressed(onlyLayer(t, pulled))
		t.Logf("error: %v", err)
		if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "expected 206 Partial Content") {
			t.Errorf("error %v: want the cut (unexpected EOF) and why resuming failed", err)
		}
	})

	// Resumes are bounded.
	t.Run("cut every time", func(t *testing.T) {
		proxy := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{Wrap: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if requestMatch(http.MethodGet, "/blobs/"+ld.String())(r) {
					w = &cutWriter{ResponseWriter: w, left: 1000}
				}
				next.ServeHTTP(w, r)
			})
		}})
		pulled, err := image.Pull(testContext(t), proxy.Addr+"/test/big:1", image.PullOptions{})
		if err != nil {
			t.Fatalf("Pull: %v", err)
		}
		_, err = compressed(onlyLayer(t, pulled))
		if err == nil || proxy.Count(isBlobGet(ld)) > 10 {
			t.Errorf("error %v after %d GETs: want a failure after a bounded number of resumes", err, proxy.Count(isBlobGet(ld)))
		}
	})
}

// corrupt flips a byte in the middle of the response to requests matching.
func corrupt(match func(*http.Request) bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !match(r) {
				next.ServeHTTP(w, r)
				return
			}
			rec := &recorder{header: http.Header{}}
			next.ServeHTTP(rec, r)
			body := rec.body.Bytes()
			if len(body) > 0 {
				body[len(body)/2] ^= 0xff
			}
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.status)
			_, _ = w.Write(body)
		})
	}
}

// recorder is a ResponseWriter that keeps the response.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(p []byte) (int, error) { return r.body.Write(p) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

func TestPullCorruptBlobs(t *testing.T) {
	reg := registrytest.Start(t)
	img, layer := bigImage(t, 64<<10)
	registrytest.Push(t, reg, "test/c:1", img)
	cfgDigest, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	ld := layerDigest(t, layer)
	ctx := testContext(t)

	bad := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{Wrap: corrupt(requestMatch(http.MethodGet, "/blobs/"+cfgDigest.String()))})
	_, err = image.Pull(ctx, bad.Addr+"/test/c:1", image.PullOptions{})
	t.Logf("corrupt config: %v", err)
	if err == nil || !strings.Contains(err.Error(), "image config "+cfgDigest.String()) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupt config: error %v, want a checksum error naming config %s", err, cfgDigest)
	}

	bad = registrytest.NewProxy(t, reg, registrytest.ProxyOptions{Wrap: corrupt(requestMatch(http.MethodGet, "/blobs/"+ld.String()))})
	pulled, err := image.Pull(ctx, bad.Addr+"/test/c:1", image.PullOptions{})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	_, err = compressed(onlyLayer(t, pulled))
	t.Logf("corrupt layer: %v", err)
	if err == nil || !strings.Contains(err.Error(), ld.String()) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupt layer: error %v, want a checksum error naming %s", err, ld)
	}
}

// failFirst answers the first n requests matching with status (and
// header), then forwards.
func failFirst(n int32, match func(*http.Request) bool, status int, header http.Header) func(http.Handler) http.Handler {
	var seen atomic.Int32
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if match(r) && seen.Add(1) <= n {
				for k, v := range header {
					w.Header()[k] = v
				}
				w.WriteHeader(status)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestPullRetries(t *testing.T) {
	reg := registrytest.Start(t)
	img := smallImage(t, "retry")
	registrytest.Push(t, reg, "test/r:1", img)
	ld := layerDigest(t, onlyLayer(t, img))
	manifest := requestMatch(http.MethodGet, "/manifests/1")
	fail503 := failFirst(2, manifest, http.StatusServiceUnavailable, nil)
	fail429 := failFirst(1, requestMatch(http.MethodGet, "/blobs/"+ld.String()), http.StatusTooManyRequests, http.Header{"Retry-After": {"2"}})
	flaky := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{Wrap: func(next http.Handler) http.Handler { return fail503(fail429(next)) }})

	// The retries wait on a fake clock: the test sees the schedule, and
	// never waits for it.
	clock := fetchtest.NewClock()
	pulled, err := image.Pull(testContext(t), flaky.Addr+"/test/r:1", image.PullOptions{Retry: fetch.Retry{Clock: clock}})
	if err != nil {
		t.Fatalf("Pull through 503s: %v", err)
	}
	if n, waits := flaky.Count(isManifest), len(clock.Sleeps()); n != 3 || waits != 2 {
		t.Errorf("manifest requests: %d after %d waits, want 3 (two 503s, then success)", n, waits)
	}
	if _, err := compressed(onlyLayer(t, pulled)); err != nil {
		t.Fatalf("reading the layer through a 429: %v", err)
	}
	if waits := clock.Sleeps(); len(waits) != 3 || waits[2] < 2*time.Second || flaky.Count(isBlobGet(ld)) != 2 {
		t.Errorf("layer read after waits %v with %d GETs: want Retry-After (2s) honoured and 2 GETs", waits, flaky.Count(isBlobGet(ld)))
	}

	// A registry that keeps failing fails the pull before the deadline,
	// naming the status: no wait that would pass the deadline is started.
	broken := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{Wrap: failFirst(1000, manifest, http.StatusInternalServerError, nil)})
	clock = fetchtest.NewClock()
	_, err = image.Pull(testContext(t), broken.Addr+"/test/r:1", image.PullOptions{Timeout: 4 * time.Second, Retry: fetch.Retry{Clock: clock}})
	var waited time.Duration
	for _, d := range clock.Sleeps() {
		waited += d
	}
	t.Logf("after waits %v: %v", clock.Sleeps(), err)
	if err == nil || !strings.Contains(err.Error(), "500") || errors.Is(err, context.DeadlineExceeded) || waited > 4*time.Second {
		t.Errorf("error %v after waits %v: want a 500 error before the 4s deadline", err, clock.Sleeps())
	}
	if n := broken.Count(isManifest); n < 3 || n > 5 || n != len(clock.Sleeps())+1 {
		t.Errorf("manifest requests to a broken registry: %d after %d waits, want 3 to 5, one more than the waits", n, len(clock.Sleeps()))
	}
}

func TestPullTimeout(t *testing.T) {
	reg := registrytest.Start(t)
	img, layer := bigImage(t, 1<<20)
	registrytest.Push(t, reg, "test/t:1", img)
	ld := layerDigest(t, layer)

	hang := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/") {
				<-r.Context().Done()
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	// The registry hangs until the client gives up: only the pull's own
	// deadline, named in the error, can end the pull.
	_, err := image.Pull(testContext(t), hang.Addr+"/test/t:1", image.PullOptions{Timeout: 2 * time.Second})
	t.Logf("hanging registry: %v", err)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "took longer than 2s (ociboot.pull_timeout)") {
		t.Errorf("hanging registry: error %v, want the pull timeout", err)
	}

	// The timeout also bounds the layers, fetched after Pull returned.
	stall := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{Wrap: cutBlob(ld, 1<<20, 1000, true)})
	pulled, err := image.Pull(testContext(t), stall.Addr+"/test/t:1", image.PullOptions{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	_, err = compressed(onlyLayer(t, pulled))
	t.Logf("stalled layer: %v", err)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stalled layer: error %v, want a failure at the 3s deadline", err)
	}
}
