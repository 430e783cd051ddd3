package registry_test

import (
	"archive/tar"
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/ociboot/ociboot/internal/registry"
)

// seedArchive is a small docker-archive: a manifest.json, a config, a
// layer, and a symlink to the layer as docker 25 writes them.
func seedArchive(f *testing.F) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			f.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			f.Fatal(err)
		}
	}
	add(&tar.Header{Name: "manifest.json", Mode: 0o644}, `[{"Config":"c.json","RepoTags":["x:v1"],"Layers":["l/layer.tar"]}]`)
	add(&tar.Header{Name: "c.json", Mode: 0o644}, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	add(&tar.Header{Name: "blobs/sha256/aa", Mode: 0o644}, "layer")
	add(&tar.Header{Name: "l/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../blobs/sha256/aa"}, "")
	if err := tw.Close(); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzArchive feeds AddArchive arbitrary tarballs: it must return an
// error or a registry that serves, never panic.
func FuzzArchive(f *testing.F) {
	f.Add(seedArchive(f))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(dir, "a.tar")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r := registry.New()
		if r.AddArchive("x", "", file) != nil {
			return
		}
		for _, tag := range r.Tags("x") {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/x/manifests/"+tag, nil))
			if rec.Code != http.StatusOK {
				t.Errorf("tag %s: %d %s", tag, rec.Code, rec.Body)
			}
		}
	})
}

// FuzzServe sends arbitrary paths: answers, never a panic.
func FuzzServe(f *testing.F) {
	for _, p := range []string{"/v2/", "/v2/x/tags/list", "/v2/x/manifests/v1", "/v2/x/blobs/sha256:00", "/v2/a/b/referrers/sha256:00", "/v2//manifests/", "/v2/x/tags/list?n=-1&last=~"} {
		f.Add(p)
	}
	file := filepath.Join(f.TempDir(), "a.tar")
	if err := os.WriteFile(file, seedArchive(f), 0o644); err != nil {
		f.Fatal(err)
	}
	r := registry.New()
	if err := r.AddArchive("x", "", file); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path string) {
		req, err := http.NewRequest(http.MethodGet, "http://h"+path, nil)
		if err != nil {
			return
		}
		r.ServeHTTP(httptest.NewRecorder(), req)
	})
}
