package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// layerPath is where the unpacked layer d lives; d must be valid.
func (s *Store) layerPath(d v1.Hash) string {
	return filepath.Join(s.dir, "layers", d.Algorithm, d.Hex)
}

// LayerDir returns the directory of the unpacked layer whose diff ID
// (the digest of its uncompressed tar) is d, and whether the store has
// it. A layer there is whole: it was put there only once written and
// synced (see LayerWriter).
func (s *Store) LayerDir(d v1.Hash) (string, bool) {
	if _, err := check(d); err != nil {
		return "", false
	}
	p := s.layerPath(d)
	st, err := os.Stat(p)
	return p, err == nil && st.IsDir()
}

// LayerWriter is a layer being unpacked into the store: into a
// directory under tmp/, which Commit moves into place once everything
// in it is on the disk. A power cut before that leaves only the
// temporary directory, which Open removes.
type LayerWriter struct {
	s   *Store
	d   v1.Hash
	dir string
}

// NewLayer starts unpacking the layer of diff ID d: unpack it into Dir.
func (s *Store) NewLayer(d v1.Hash) (*LayerWriter, error) {
	if _, err := check(d); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(s.tmp(), "layer-"+d.Algorithm+"-"+d.Hex+"-")
	if err != nil {
		return nil, fmt.Errorf("store: layer %s: %w", d, err)
	}
	// The layer's root becomes the container's root when no layer above
	// has one.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("store: layer %s: %w", d, err)
	}
	return &LayerWriter{s: s, d: d, dir: dir}, nil
}

// Dir is where the layer is to be unpacked.
func (w *LayerWriter) Dir() string { return w.dir }

// Abort discards what was unpacked.
func (w *LayerWriter) Abort() { os.RemoveAll(w.dir) }

// Commit syncs the filesystem the layer was unpacked on and moves the
// layer into place; it returns the layer's directory. When another
// writer committed the same layer first, this one is discarded.
func (w *LayerWriter) Commit() (string, error) {
	fd, err := unix.Open(w.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		w.Abort()
		return "", fmt.Errorf("store: layer %s: %w", w.d, err)
	}
	err = unix.Syncfs(fd)
	unix.Close(fd)
	if err != nil {
		w.Abort()
		return "", fmt.Errorf("store: layer %s: sync: %w", w.d, err)
	}
	final := w.s.layerPath(w.d)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		w.Abort()
		return "", fmt.Errorf("store: layer %s: %w", w.d, err)
	}
	if err := os.Rename(w.dir, final); err != nil {
		w.Abort()
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return final, nil
		}
		return "", fmt.Errorf("store: layer %s: %w", w.d, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(final)); err != nil {
		return "", fmt.Errorf("store: layer %s: %w", w.d, err)
	}
	return final, nil
}

// DeleteLayer removes the unpacked layer d; one not there is not an
// error. It is moved out of place first, so that a power cut mid-way
// leaves no partial layer where a whole one is expected.
func (s *Store) DeleteLayer(d v1.Hash) error {
	if _, err := check(d); err != nil {
		return err
	}
	gone, err := os.MkdirTemp(s.tmp(), "deleted-")
	if err != nil {
		return fmt.Errorf("store: layer %s: %w", d, err)
	}
	if err := os.Rename(s.layerPath(d), filepath.Join(gone, "layer")); err != nil && !errors.Is(err, os.ErrNotExist) {
		os.RemoveAll(gone)
		return fmt.Errorf("store: layer %s: %w", d, err)
	}
	return os.RemoveAll(gone)
}
