// Package store keeps what a boot fetched on local storage, the cache
// disk or RAM, so that the next use needs no network: blobs by digest,
// unpacked layers by diff ID, and refs, what a name (an image reference)
// stood for when it was pulled, written so that a power cut at any moment
// leaves a store that is whole (a blob, a layer or a ref is in it
// entirely, verified, or not at all); blobs are checked again whenever
// they are read.
//
// Layout under the store's directory:
//
//	blobs/ALGORITHM/HEX   verified blobs, read-only
//	layers/ALGORITHM/HEX  unpacked layers, by diff ID, whole
//	refs/SHA256-OF-NAME   refs, JSON
//	tmp/                  what is being written; emptied by Open
package store

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/atomicfile"
)

// ErrCorrupt marks a stored blob whose content does not match its digest.
// It has been deleted: fetch it again.
var ErrCorrupt = errors.New("stored blob does not match its digest")

// Store is a directory of blobs. Its methods may be called from several
// goroutines.
type Store struct {
	dir string

	mu    sync.Mutex
	inUse map[string]bool // refs set or used since Open: never evicted
}

// Open opens the store in dir, creating it when missing, and discards
// what a write cut short (by a crash or a power cut) left behind.
func Open(dir string) (*Store, error) {
	s := &Store{dir: dir, inUse: map[string]bool{}}
	if err := os.RemoveAll(s.tmp()); err != nil {
		return nil, fmt.Errorf("store %s: discarding unfinished writes: %w", dir, err)
	}
	for _, d := range []string{filepath.Join(dir, "blobs"), s.tmp()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("store %s: %w", dir, err)
		}
	}
	return s, nil
}

// OpenExisting opens the store in dir for reading only: nothing is
// created or discarded, so that a store another process is writing to
// (an `ociboot pull --store` beside an `ociboot serve`) is left alone.
func OpenExisting(dir string) (*Store, error) {
	if _, err := os.Stat(filepath.Join(dir, "blobs")); err != nil {
		return nil, fmt.Errorf("store %s: not a store (no blobs directory): %w", dir, err)
	}
	return &Store{dir: dir, inUse: map[string]bool{}}, nil
}

func (s *Store) tmp() string { return filepath.Join(s.dir, "tmp") }

// path is where the blob d lives; d must be a valid digest.
func (s *Store) path(d v1.Hash) string {
	return filepath.Join(s.dir, "blobs", d.Algorithm, d.Hex)
}

// check refuses digests that could not be written by a registry: an
// unknown algorithm, or a hex part that is not lower-case hex of the
// algorithm's size (it becomes a file name).
func check(d v1.Hash) (hash.Hash, error) {
	h, err := v1.Hasher(d.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("digest %s: %w", d, err)
	}
	if len(d.Hex) != 2*h.Size() {
		return nil, fmt.Errorf("digest %s: want %d hex digits", d, 2*h.Size())
	}
	for _, c := range d.Hex {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return nil, fmt.Errorf("digest %s: want lower-case hex digits", d)
		}
	}
	return h, nil
}

// Has reports whether the blob d is in the store (it is verified when
// read).
func (s *Store) Has(d v1.Hash) bool {
	if _, err := check(d); err != nil {
		return false
	}
	st, err := os.Stat(s.path(d))
	return err == nil && st.Mode().IsRegular()
}

// Put stores the blob d from r, which must give exactly its content, of
// size bytes (-1: unknown), as a Writer does, and returns the bytes read
// from r.
func (s *Store) Put(d v1.Hash, size int64, r io.Reader) (int64, error) {
	w, err := s.Writer(d, size)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(w, r)
	if err != nil {
		w.Abort()
		return n, fmt.Errorf("store: blob %s after %d bytes: %w", d, n, err)
	}
	return n, w.Commit()
}

// Writer stores a blob as it is written: to a temporary file, hashed on
// the way; Commit syncs it and renames it into place only when its
// digest and size match, so that a reader of the store never sees a
// partial or wrong blob, whenever the power is cut. A blob already there
// is replaced by the same bytes.
type Writer struct {
	s    *Store
	d    v1.Hash
	size int64
	f    *os.File
	h    hash.Hash
	n    int64
}

// Writer starts storing the blob d, of size bytes (-1: unknown).
func (s *Store) Writer(d v1.Hash, size int64) (*Writer, error) {
	h, err := check(d)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.tmp(), d.Algorithm+"-"+d.Hex+"-*")
	if err != nil {
		return nil, fmt.Errorf("store: blob %s: %w", d, err)
	}
	return &Writer{s: s, d: d, size: size, f: f, h: h}, nil
}

// Write adds p to the blob.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("store: blob %s: %w", w.d, err)
	}
	return n, nil
}

// Name is the temporary file being written, which others may read
// meanwhile (it is renamed by Commit, removed by Abort).
func (w *Writer) Name() string { return w.f.Name() }

// Abort discards what was written.
func (w *Writer) Abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}

// Commit checks what was written against the digest and size, and makes
// it the stored blob. On error nothing is stored.
func (w *Writer) Commit() (err error) {
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	if got := fmt.Sprintf("%x", w.h.Sum(nil)); got != w.d.Hex {
		return fmt.Errorf("store: blob %s: the %d bytes given have digest %s:%s", w.d, w.n, w.d.Algorithm, got)
	}
	if w.size >= 0 && w.n != w.size {
		return fmt.Errorf("store: blob %s: %d bytes given, want %d", w.d, w.n, w.size)
	}
	if err := w.f.Chmod(0o400); err != nil {
		return fmt.Errorf("store: blob %s: %w", w.d, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("store: blob %s: sync: %w", w.d, err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("store: blob %s: %w", w.d, err)
	}
	final := w.s.path(w.d)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return fmt.Errorf("store: blob %s: %w", w.d, err)
	}
	if err := os.Rename(w.f.Name(), final); err != nil {
		return fmt.Errorf("store: blob %s: %w", w.d, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(final)); err != nil {
		return fmt.Errorf("store: blob %s: %w", w.d, err)
	}
	return nil
}

// Open returns the blob d and its size. The content is hashed as it is
// read: the read that reaches the end fails with an error wrapping
// ErrCorrupt if it does not match d, and the blob is then deleted, so
// that it is fetched again rather than used. A blob not in the store is
// an error wrapping fs.ErrNotExist.
func (s *Store) Open(d v1.Hash) (io.ReadCloser, int64, error) {
	f, size, err := s.BlobFile(d)
	if err != nil {
		return nil, 0, err
	}
	r, err := Verify(f, d)
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return &verifier{f: f, r: r, d: d, path: s.path(d)}, size, nil
}

// OpenVerified is Open, but reads the whole blob first: a blob that does
// not match d is deleted and an error wrapping ErrCorrupt returned before
// any of it is used. It is for readers that act on the bytes as they come
// (applying a layer) and could not take them back.
func (s *Store) OpenVerified(d v1.Hash) (io.ReadCloser, int64, error) {
	rc, size, err := s.Open(d)
	if err != nil {
		return nil, 0, err
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.path(d))
	if err != nil {
		return nil, 0, fmt.Errorf("store: blob %s: %w", d, err)
	}
	return f, size, nil
}

// BlobFile opens the file of blob d for a reader that verifies what it
// reads itself, such as a registry client fetching ranges of it: nothing
// here checks the content. A blob not in the store is an error wrapping
// fs.ErrNotExist.
func (s *Store) BlobFile(d v1.Hash) (*os.File, int64, error) {
	if _, err := check(d); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.path(d))
	if err != nil {
		return nil, 0, fmt.Errorf("store: blob %s: %w", d, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("store: blob %s: %w", d, err)
	}
	return f, st.Size(), nil
}

// Delete removes the blob d; a blob not there is not an error.
func (s *Store) Delete(d v1.Hash) error {
	if _, err := check(d); err != nil {
		return err
	}
	if err := os.Remove(s.path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: blob %s: %w", d, err)
	}
	return nil
}

// ErrMismatch marks content that does not match the digest it was
// given with.
var ErrMismatch = errors.New("content does not match its digest")

// Verify returns a reader of r that hashes what is read and, when r
// ends, fails the last read with an error wrapping ErrMismatch if the
// hash is not d.
func Verify(r io.Reader, d v1.Hash) (io.Reader, error) {
	h, err := check(d)
	if err != nil {
		return nil, err
	}
	return &digestAtEOF{r: r, h: h, want: d}, nil
}

type digestAtEOF struct {
	r    io.Reader
	h    hash.Hash
	want v1.Hash
	n    int64
}

func (d *digestAtEOF) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	d.n += int64(n)
	if err == io.EOF {
		if got := fmt.Sprintf("%x", d.h.Sum(nil)); got != d.want.Hex {
			return n, fmt.Errorf("%w: got %s:%s after %d bytes", ErrMismatch, d.want.Algorithm, got, d.n)
		}
	}
	return n, err
}

// verifier reads a stored blob through Verify and deletes it when its
// end shows it corrupt.
type verifier struct {
	f    *os.File
	r    io.Reader
	d    v1.Hash
	path string
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	if errors.Is(err, ErrMismatch) {
		os.Remove(v.path)
		return n, fmt.Errorf("store: blob %s, deleted: %w (%w)", v.d, ErrCorrupt, err)
	}
	return n, err
}

func (v *verifier) Close() error { return v.f.Close() }

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }
