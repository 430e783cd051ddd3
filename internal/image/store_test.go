package image_test

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"

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

	unpack := func(t *testing.T, proxy *registrytest.Proxy) string {
		t.Helper()
		pulled, err := image.Pull(testContext(t), proxy.Addr+"/test/store:1", image.PullOptions{Store: st})
		if err != nil {
			t.Fatalf("Pull: %v", err)
		}
		root := t.TempDir()
		if err := image.Unpack(testContext(t), pulled, root, nil); err != nil {
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
		if n := warm.Count(isBlobGet(ld)); n != 0 {
			t.Errorf("warm pull: %d blob GETs, want none", n)
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
