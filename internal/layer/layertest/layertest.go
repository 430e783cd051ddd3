// Package layertest builds layer tars entry by entry and checks trees,
// for the tests of the layer applier and of what uses it.
package layertest

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Entry is a tar header plus the body of a regular file.
type Entry struct {
	tar.Header
	Body string
}

// File is a regular file entry.
func File(name, body string, mode int64) Entry {
	return Entry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: time.Unix(1e9, 0)}, body}
}

// Dir is a directory entry; its name ends with "/".
func Dir(name string, mode int64) Entry {
	return Entry{Header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: time.Unix(1e9, 0)}}
}

// Symlink is a symbolic link entry.
func Symlink(name, target string) Entry {
	return Entry{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: time.Unix(1e9, 0)}}
}

// Hardlink is a hard link entry.
func Hardlink(name, target string) Entry {
	return Entry{Header: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}}
}

// Whiteout is a whiteout or opaque marker entry (its name says which).
func Whiteout(name string) Entry { return File(name, "", 0) }

// Tar writes entries as an uncompressed tar, headers as they are.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Header
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", e.Name, err)
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			t.Fatalf("tar body %q: %v", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Lstat is unix.Lstat, failing the test on error.
func Lstat(t testing.TB, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return &st
}

// ReadFile reads a file, failing the test on error.
func ReadFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// MustNotExist reports p if it exists.
func MustNotExist(t testing.TB, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: want it gone, lstat says %v", p, err)
	}
}

// Sandbox makes base/root (to apply into) and base/sibling (which must
// stay untouched) and returns base.
func Sandbox(t testing.TB) string {
	t.Helper()
	base := t.TempDir()
	for _, d := range []string{"root", "sibling/sub"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "sibling/keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	return base
}

// OutsideSnapshot lists everything in base except below root, with sizes,
// modes, owners and mtimes.
func OutsideSnapshot(t testing.TB, base string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == filepath.Join(base, "root") {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		line := fmt.Sprintf("%s %o %d:%d size=%d mtime=%d nlink=%d", rel, st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Nano(), st.Nlink)
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			b, _ := os.ReadFile(p)
			line += " " + string(b)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", base, err)
	}
	return out
}
