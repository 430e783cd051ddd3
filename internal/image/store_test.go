package image_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/fetch/fetchtest"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/store"
)

// TestPullWithStore checks the blob store behind the Puller: the second
// pull of an image unpacks from the store without a blob download, a
// damaged stored blob is fetched again before any of it is used, and a
// download cut mid-way stores nothing.
func TestPullWithStore(t *testing.T) {
	reg := registrytest.Start(t)
	img, layer := bigImage(t, 2<<20)
	want, err := compressed(layer)
	if err != nil {
		t.Fatal(err)
	}
	ld := layerDigest(t, layer)
	registrytest.Push(t, reg, "test/store:1", img)
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}

	var log bytes.Buffer
	unpack := func(t *testing.T, proxy *registrytest.Proxy) string {
		t.Helper()
		pulled, err := image.Pull(testContext(t), proxy.Addr+"/test/store:1", image.PullOptions{Store: st})
		if err != nil {
			t.Fatalf("Pull: %v", err)
		}
		root := t.TempDir()
		log.Reset()
		if err := image.Unpack(testContext(t), pulled, root, &log); err != nil {
			t.Fatalf("Unpack: %v", err)
		}
		got, err := os.ReadFile(filepath.Join(root, "random"))
		if err != nil || len(got) != 2<<20 {
			t.Fatalf("unpacked file: %d bytes, %v", len(got), err)
		}
		return root
	}

	t.Run("cold, then warm", func(t *testing.T) {
		proxy := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{})
		unpack(t, proxy)
		if n := proxy.Count(isBlobGet(ld)); n != 1 || !st.Has(ld) {
			t.Fatalf("cold pull: %d blob GETs, stored %v; want 1 and the blob stored", n, st.Has(ld))
		}
		warm := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{})
		unpack(t, warm)
		if n := warm.Count(isBlobGet(ld)); n != 0 || !strings.Contains(log.String(), ": reading it from the image store") {
			t.Errorf("warm pull: %d blob GETs, log %q; want none, and the layer read from the store", n, log.String())
		}
	})

	t.Run("damaged blob fetched again", func(t *testing.T) {
		p := filepath.Join(dir, "blobs", ld.Algorithm, ld.Hex)
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		damaged := append([]byte(nil), want...)
		damaged[len(damaged)/2] ^= 0xff
		if err := os.WriteFile(p, damaged, 0o400); err != nil {
			t.Fatal(err)
		}
		proxy := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{})
		unpack(t, proxy)
		if n := proxy.Count(isBlobGet(ld)); n != 1 {
			t.Errorf("%d blob GETs after the stored blob was damaged, want 1", n)
		}
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Errorf("the stored blob after the new download: %d bytes, %v; want it whole again", len(got), err)
		}
	})

	t.Run("cut download stores nothing", func(t *testing.T) {
		if err := st.Delete(ld); err != nil {
			t.Fatal(err)
		}
		// Every download of the blob breaks after 64 KiB, resumes included,
		// until the resumes are spent.
		cutAll := func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if requestMatch(http.MethodGet, "/blobs/"+ld.String())(r) {
					w = &cutWriter{ResponseWriter: w, left: 64 << 10}
				}
				next.ServeHTTP(w, r)
			})
		}
		proxy := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{Wrap: cutAll})
		pulled, err := image.Pull(testContext(t), proxy.Addr+"/test/store:1", image.PullOptions{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		if err := image.Unpack(testContext(t), pulled, t.TempDir(), nil); err == nil {
			t.Fatal("Unpack succeeded with every download cut")
		}
		left, _ := os.ReadDir(filepath.Join(dir, "tmp"))
		if st.Has(ld) || len(left) != 0 {
			t.Errorf("after cut downloads: stored %v, %d temporary files; want neither", st.Has(ld), len(left))
		}
	})
}

// TestPullPolicies checks what the store records of tags: a warm pull
// with --pull always asks the registry for the manifest only; missing
// and never ask nothing; never fails, naming the image, when the store
// lacks it; a registry out of reach (down, or failing with 5xx) gives
// the stored copy with a warning naming it and its age, but a registry
// that answers "no such image" is believed.
func TestPullPolicies(t *testing.T) {
	reg := registrytest.Start(t)
	img, layer := bigImage(t, 64<<10)
	ld := layerDigest(t, layer)
	registrytest.Push(t, reg, "test/policy:1", img)
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// mode plays the registry's state: up, failing, gone, or without the
	// image.
	var mode atomic.Value
	mode.Store("up")
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch mode.Load() {
			case "503":
				http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			case "gone":
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
			case "404":
				http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`, http.StatusNotFound)
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
	proxy := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{Wrap: wrap})
	ref := proxy.Addr + "/test/policy:1"
	clock := fetchtest.NewClock()
	puller, err := image.NewPuller(image.PullOptions{Store: st, Retry: fetch.Retry{Clock: clock}})
	if err != nil {
		t.Fatal(err)
	}
	// pull pulls ref with policy, unpacks it, and returns the log and
	// the requests the registry got.
	pull := func(t *testing.T, ref string, policy image.PullPolicy) (string, []registrytest.ProxyRequest, error) {
		t.Helper()
		before := len(proxy.Requests())
		var log bytes.Buffer
		pulled, err := puller.Pull(testContext(t), ref, image.Request{Policy: policy, Log: &log})
		if err == nil {
			err = image.Unpack(testContext(t), pulled, t.TempDir(), nil)
		}
		return log.String(), proxy.Requests()[before:], err
	}

	if _, _, err := pull(t, ref, image.PullNever); err == nil || !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), "not in the image store") {
		t.Fatalf("--pull never on an empty store: %v; want an error naming %s", err, ref)
	}
	if _, reqs, err := pull(t, ref, image.PullAlways); err != nil || len(reqs) == 0 {
		t.Fatalf("cold pull: %v, %d requests", err, len(reqs))
	}

	t.Run("always asks for the manifest only", func(t *testing.T) {
		_, reqs, err := pull(t, ref, image.PullAlways)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reqs {
			if r.IsBlob() {
				t.Errorf("warm pull fetched %s %s; want manifests only", r.Method, r.Path)
			}
		}
		if len(reqs) == 0 {
			t.Error("warm pull with --pull always did not ask the registry")
		}
	})
	t.Run("missing and never ask nothing", func(t *testing.T) {
		for _, policy := range []image.PullPolicy{image.PullMissing, image.PullNever} {
			log, reqs, err := pull(t, ref, policy)
			if err != nil || len(reqs) != 0 || !strings.Contains(log, "using the stored copy of "+ref) {
				t.Errorf("--pull %s: %v, %d requests, log %q; want the stored copy, no request", policy, err, len(reqs), log)
			}
		}
		byDigest := proxy.Addr + "/test/policy@" + digest.String()
		if _, _, err := pull(t, byDigest, image.PullAlways); err != nil {
			t.Fatal(err)
		}
		if _, reqs, err := pull(t, byDigest, image.PullAlways); err != nil || len(reqs) != 0 {
			t.Errorf("--pull always by digest, stored: %v, %d requests; want none", err, len(reqs))
		}
	})
	t.Run("registry out of reach", func(t *testing.T) {
		if err := clock.Sleep(context.Background(), 3*time.Hour); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"503", "gone"} {
			mode.Store(m)
			log, _, err := pull(t, ref, image.PullAlways)
			if err != nil {
				t.Fatalf("registry %s: %v; want the stored copy", m, err)
			}
			if !strings.Contains(log, "WARNING: the registry is out of reach: using the stored copy of "+ref) ||
				!strings.Contains(log, digest.String()) || !strings.Contains(log, "pulled 3h") {
				t.Errorf("registry %s: log %q; want a warning naming the image, its digest and its age", m, log)
			}
		}
		mode.Store("404")
		if _, _, err := pull(t, ref, image.PullAlways); err == nil {
			t.Error("the registry said the image is gone, yet the stored copy was used")
		}
		mode.Store("gone")
		if err := st.Delete(ld); err != nil {
			t.Fatal(err)
		}
		_, _, err := pull(t, ref, image.PullAlways)
		if err == nil || !strings.Contains(err.Error(), "its stored copy cannot be used: "+ref+": the store has its manifest but not its layer 1 of 1") {
			t.Fatalf("registry out of reach, a stored copy without its layer: %v; want an error saying why the copy cannot stand in", err)
		}
		_, _, err = pull(t, ref, image.PullNever)
		if err == nil || !strings.Contains(err.Error(), "not its layer 1 of 1, "+ld.String()) {
			t.Errorf("--pull never without the layer: %v; want an error naming the layer", err)
		}
		mode.Store("up")
	})
	t.Run("without a store", func(t *testing.T) {
		_, err := image.Pull(testContext(t), ref, image.PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := image.NewPuller(image.PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Pull(testContext(t), ref, image.Request{Policy: image.PullNever}); err == nil || !strings.Contains(err.Error(), "no image store") {
			t.Errorf("--pull never without a store: %v", err)
		}
	})
}

// TestUnpackLayers checks the unpacked layers of the image store: a
// second unpack of an image fetches and unpacks nothing, a layer whose
// uncompressed tar does not match its diff ID is refused and nothing of
// it kept, and an unpack cut short leaves no layer behind.
func TestUnpackLayers(t *testing.T) {
	reg := registrytest.Start(t)
	img := registrytest.BusyboxImage(t, registrytest.LayerFromFiles(t, map[string]string{"etc/top": "top\n"}))
	registrytest.Push(t, reg, "test/layers:1", img)
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	unpack := func(t *testing.T) ([]string, string, int) {
		t.Helper()
		proxy := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{})
		pulled, err := image.Pull(testContext(t), proxy.Addr+"/test/layers:1", image.PullOptions{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		dirs, err := image.UnpackLayers(testContext(t), pulled, st, image.UnpackOptions{Log: &log, AllowDevices: true})
		if err != nil {
			t.Fatalf("UnpackLayers: %v", err)
		}
		return dirs, log.String(), proxy.Count(func(r registrytest.ProxyRequest) bool { return r.IsBlob() })
	}
	cold, _, gets := unpack(t)
	if len(cold) != 2 || gets == 0 {
		t.Fatalf("cold: %d layer directories, %d blob requests", len(cold), gets)
	}
	if got, err := os.ReadFile(filepath.Join(cold[1], "etc/top")); err != nil || string(got) != "top\n" {
		t.Errorf("the top layer's etc/top: %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(cold[1], "bin/busybox")); err == nil {
		t.Error("the top layer's directory holds the lower layer's files")
	}
	warm, log, gets := unpack(t)
	if !slices.Equal(warm, cold) || gets != 0 || strings.Count(log, "unpacked in the store") != 2 {
		t.Errorf("warm: dirs %q (cold %q), %d blob requests, log %q; want the same directories, no request", warm, cold, gets, log)
	}

	// A config that lies about a layer's diff ID.
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[1] = cf.RootFS.DiffIDs[0]
	liar, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.UnpackLayers(testContext(t), liar, fresh, image.UnpackOptions{AllowDevices: true}); err == nil || !strings.Contains(err.Error(), "does not match its diff ID") {
		t.Fatalf("UnpackLayers with a wrong diff ID: %v", err)
	}
	if d, ok := fresh.LayerDir(cf.RootFS.DiffIDs[0]); !ok {
		t.Errorf("the bottom layer, whose diff ID is right, is not stored at %s", d)
	}
	left, _ := os.ReadDir(filepath.Join(fresh.Dir(), "tmp"))
	if layers, _ := os.ReadDir(filepath.Join(fresh.Dir(), "layers", "sha256")); len(layers) != 1 || len(left) != 0 {
		t.Errorf("after the refused layer: %d stored layers, %d temporary entries; want 1 and none", len(layers), len(left))
	}

	// An unpack cut short (its context cancelled) keeps nothing of the
	// layer it was at.
	ctx, cancel := context.WithCancel(testContext(t))
	cancel()
	cut, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.UnpackLayers(ctx, img, cut, image.UnpackOptions{AllowDevices: true}); err == nil {
		t.Fatal("UnpackLayers with a cancelled context succeeded")
	}
	left, _ = os.ReadDir(filepath.Join(cut.Dir(), "tmp"))
	if layers, _ := os.ReadDir(filepath.Join(cut.Dir(), "layers", "sha256")); len(layers) != 0 || len(left) != 0 {
		t.Errorf("after a cut unpack: %d stored layers, %d temporary entries; want none", len(layers), len(left))
	}
}

// TestPullUpdateCutShort checks that an update of a tag whose download
// is cut short leaves the tag's whole stored copy in place: with the
// registry then out of reach, the previous image boots.
func TestPullUpdateCutShort(t *testing.T) {
	reg := registrytest.Start(t)
	v1img, _ := bigImage(t, 64<<10)
	v2img, v2layer := bigImage(t, 1<<20)
	registrytest.Push(t, reg, "test/update:1", v1img)
	v1digest, err := v1img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ld := layerDigest(t, v2layer)
	var mode atomic.Value
	mode.Store("up")
	proxy := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case mode.Load() == "gone":
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					conn.Close()
				}
				return
			case requestMatch(http.MethodGet, "/blobs/"+ld.String())(r):
				w = &cutWriter{ResponseWriter: w, left: 64 << 10}
			}
			next.ServeHTTP(w, r)
		})
	}})
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	puller, err := image.NewPuller(image.PullOptions{Store: st, Retry: fetch.Retry{Clock: fetchtest.NewClock()}})
	if err != nil {
		t.Fatal(err)
	}
	ref := proxy.Addr + "/test/update:1"
	pullUnpack := func() (v1.Hash, error) {
		img, err := puller.Pull(testContext(t), ref, image.Request{})
		if err != nil {
			return v1.Hash{}, err
		}
		d, err := img.Digest()
		if err != nil {
			return d, err
		}
		return d, image.Unpack(testContext(t), img, t.TempDir(), nil)
	}
	if _, err := pullUnpack(); err != nil {
		t.Fatal(err)
	}
	registrytest.Push(t, reg, "test/update:1", v2img)
	if d, err := pullUnpack(); err == nil || d == v1digest {
		t.Fatalf("the update with its layer cut short: %s, %v; want the new image, failing", d, err)
	}
	mode.Store("gone")
	d, err := pullUnpack()
	if err != nil || d != v1digest {
		t.Errorf("registry out of reach after a cut update: %s, %v; want the previous image, %s, whole", d, err, v1digest)
	}
}
