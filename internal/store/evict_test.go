package store_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ociboot/ociboot/internal/store"
)

// putBlob stores data and returns its digest.
func putBlob(t *testing.T, s *store.Store, data []byte) v1.Hash {
	t.Helper()
	d := digestOf(data)
	if _, err := s.Put(d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return d
}

// putImage stores an image called name, pulled at: for each of layers, a
// blob and an unpacked tree of that size; a config and a manifest.
// Layers given the same seed are the same layer.
func putImage(t *testing.T, s *store.Store, name string, at time.Time, layers ...string) {
	t.Helper()
	var cf v1.ConfigFile
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	for _, seed := range layers {
		content := bytes.Repeat([]byte(seed), 64<<10/len(seed))
		bd := putBlob(t, s, content)
		diffID := digestOf(append([]byte("tar "), content...))
		if _, ok := s.LayerDir(diffID); !ok {
			w, err := s.NewLayer(diffID)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(w.Dir(), "f"), content, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCILayer, Digest: bd, Size: int64(len(content))})
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, diffID)
	}
	cf.RootFS.Type = "layers"
	raw, err := json.Marshal(cf)
	if err != nil {
		t.Fatal(err)
	}
	m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: putBlob(t, s, raw), Size: int64(len(raw))}
	if raw, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRef(store.Ref{Name: name, Digest: putBlob(t, s, raw), Pulled: at}); err != nil {
		t.Fatal(err)
	}
}

// TestEvict checks eviction: what no ref needs goes first, then the
// least recently used images with what only they need; the images of
// this boot stay, whatever the limit.
func TestEvict(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	putImage(t, s, "old", day, "base", "old")
	// old was verified: the signature kept with it is one of its blobs.
	r, err := s.Ref("old")
	if err != nil {
		t.Fatal(err)
	}
	r.Signature = putBlob(t, s, []byte(`{"signed":"sha256:…"}`))
	if err := s.SetRef(r); err != nil {
		t.Fatal(err)
	}
	putImage(t, s, "mid", day.Add(time.Hour), "base", "mid")
	putImage(t, s, "new", day.Add(2*time.Hour), "base", "new")
	orphan := putBlob(t, s, bytes.Repeat([]byte("orphan"), 10000))

	// The next boot: nothing in use yet, until it uses old.
	s = open(t, dir)
	if err := s.UseRef("old", day.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	all, err := s.Usage()
	if err != nil {
		t.Fatal(err)
	}
	evicted, used, err := s.Evict(all)
	if err != nil || len(evicted) != 0 || s.Has(orphan) || used >= all {
		t.Fatalf("Evict(all) = %q, %d, %v; want nothing evicted but the orphan blob (%v left), less than %d", evicted, used, err, s.Has(orphan), all)
	}
	evicted, after, err := s.Evict(used - 1)
	if err != nil || !slices.Equal(evicted, []string{"mid"}) || after >= used {
		t.Fatalf("Evict(just under) = %q, %d, %v; want mid, the least recently used not in use", evicted, after, err)
	}
	if _, err := s.Ref("mid"); err == nil {
		t.Error("mid's ref is still there")
	}
	evicted, last, err := s.Evict(0)
	if err != nil || !slices.Equal(evicted, []string{"new"}) {
		t.Fatalf("Evict(0) = %q, %v; want new, and old kept as this boot's", evicted, err)
	}
	// What is left is old's: base and old, blobs and trees, its config,
	// manifest and signature.
	if _, err := s.Ref("old"); err != nil {
		t.Errorf("old's ref: %v", err)
	}
	layers, _ := filepath.Glob(filepath.Join(dir, "layers/sha256/*"))
	blobs, _ := filepath.Glob(filepath.Join(dir, "blobs/sha256/*"))
	if len(layers) != 2 || len(blobs) != 5 || !s.Has(r.Signature) {
		t.Errorf("left: %d layers, %d blobs (its signature: %v); want old's 2 and 5, its signature among them", len(layers), len(blobs), s.Has(r.Signature))
	}
	if now, _ := s.Usage(); now != last || last <= 0 {
		t.Errorf("Usage %d, Evict said %d", now, last)
	}
	s = open(t, dir)
	if evicted, left, err := s.Evict(0); err != nil || !slices.Equal(evicted, []string{"old"}) || left != 0 {
		t.Errorf("the next boot's Evict(0) = %q, %d, %v; want old gone, nothing left", evicted, left, err)
	}
}
