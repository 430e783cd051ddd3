package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/atomicfile"
)

// Ref is what a name (an image reference and a platform) stood for when
// it was last pulled: the digest of a manifest kept in the store, when
// the registry said so, and when the image was last used (eviction takes
// the least recently used first). Signature, when set, is a blob of the
// store holding the signature the image was verified with, which the
// image needs as it needs its layers.
type Ref struct {
	Name      string    `json:"name"`
	Digest    v1.Hash   `json:"digest"`
	Pulled    time.Time `json:"pulled"`
	Used      time.Time `json:"used,omitzero"`
	Signature v1.Hash   `json:"signature,omitzero"`
}

// lastUsed is when r was last used, or pulled.
func (r Ref) lastUsed() time.Time {
	if r.Used.After(r.Pulled) {
		return r.Used
	}
	return r.Pulled
}

// refPath is the file of the ref called name, under refs/: names are
// free text, so the file is named by their hash.
func (s *Store) refPath(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(s.dir, "refs", hex.EncodeToString(sum[:]))
}

// SetRef records r, replacing what r.Name stood for, atomically: after a
// power cut the ref is the old one or the new one, whole. The image is in
// use: Evict keeps it for as long as the store is open.
func (s *Store) SetRef(r Ref) error {
	if _, err := check(r.Digest); err != nil {
		return fmt.Errorf("store: ref %s: %w", r.Name, err)
	}
	s.mu.Lock()
	s.inUse[r.Name] = true
	s.mu.Unlock()
	data, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("store: ref %s: %w", r.Name, err)
	}
	final := s.refPath(r.Name)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return fmt.Errorf("store: ref %s: %w", r.Name, err)
	}
	f, err := os.CreateTemp(s.tmp(), "ref-*")
	if err != nil {
		return fmt.Errorf("store: ref %s: %w", r.Name, err)
	}
	defer os.Remove(f.Name()) // after the rename, nothing
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("store: ref %s: %w", r.Name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("store: ref %s: sync: %w", r.Name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: ref %s: %w", r.Name, err)
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return fmt.Errorf("store: ref %s: %w", r.Name, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("store: ref %s: %w", r.Name, err)
	}
	return nil
}

// Ref returns what name stood for when it was last recorded; a name
// never recorded is an error wrapping fs.ErrNotExist.
func (s *Store) Ref(name string) (Ref, error) {
	data, err := os.ReadFile(s.refPath(name))
	if err != nil {
		return Ref{}, fmt.Errorf("store: ref %s: %w", name, err)
	}
	var r Ref
	if err := json.Unmarshal(data, &r); err != nil {
		return Ref{}, fmt.Errorf("store: ref %s: %s is damaged (%v): %w", name, s.refPath(name), err, fs.ErrNotExist)
	}
	if r.Name != name {
		return Ref{}, fmt.Errorf("store: ref %s: %s holds %q: %w", name, s.refPath(name), r.Name, fs.ErrNotExist)
	}
	if _, err := check(r.Digest); err != nil {
		return Ref{}, fmt.Errorf("store: ref %s: %w (%w)", name, err, fs.ErrNotExist)
	}
	return r, nil
}

// UseRef records that the image name stands for is used now, at.
func (s *Store) UseRef(name string, at time.Time) error {
	r, err := s.Ref(name)
	if err != nil {
		return err
	}
	r.Used = at
	return s.SetRef(r)
}

// ReadBlob returns the whole blob d, verified; a damaged blob is deleted
// and an error wrapping ErrCorrupt returned. It is for small blobs:
// manifests and configs.
func (s *Store) ReadBlob(d v1.Hash) ([]byte, error) {
	rc, _, err := s.Open(d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
