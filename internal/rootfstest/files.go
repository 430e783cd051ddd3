package rootfstest

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// File is a file WithFiles adds to a tar.
type File struct {
	// Path is where the file goes, relative to the root
	// ("etc/systemd/system/x.service"; a leading slash is ignored).
	Path string
	// Body is a regular file's content.
	Body string
	// Mode is the permission bits: 0644 for a file, 0777 for a symlink
	// when zero.
	Mode int64
	// Linkname, when set, makes the file a symlink to it; Body must then
	// be empty.
	Linkname string
}

// WithFiles returns the path of a new tar in t.TempDir(): the tar at base,
// followed by files, in order, each owned by 0:0 with modification time 0
// (so the result depends only on its inputs, and XZ's cache works for it).
// An entry of base with the same path as one of files is left out rather
// than overwritten at unpacking; replacing a directory is refused. Parent
// directories missing from base are added (0755, owned by 0:0) before the
// file; a parent that is a symlink in base fails the test (name the path
// through the link's target, usr/lib/... rather than lib/..., so that
// no unpacker has to follow a symlink). Names are written in the style of
// base's: with a "./" prefix if its first entry has one.
func WithFiles(t testing.TB, base string, files ...File) string {
	t.Helper()
	add := make([]File, len(files))
	byPath := map[string]bool{}
	for i, f := range files {
		p := path.Clean(strings.TrimLeft(f.Path, "/"))
		if p == "." || p == ".." || strings.HasPrefix(p, "../") || f.Path == "" {
			t.Fatalf("rootfstest: WithFiles: path %q does not name a file below the root", f.Path)
		}
		if byPath[p] {
			t.Fatalf("rootfstest: WithFiles: %q given twice", p)
		}
		if f.Linkname != "" && f.Body != "" {
			t.Fatalf("rootfstest: WithFiles: %q has both a body and a symlink target", p)
		}
		byPath[p] = true
		f.Path = p
		add[i] = f
	}
	out := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := withFiles(base, out, add); err != nil {
		t.Fatalf("rootfstest: WithFiles %s: %v", base, err)
	}
	return out
}

// withFiles writes base followed by files to out (see WithFiles); files'
// paths are clean and relative.
func withFiles(base, out string, files []File) error {
	in, err := os.Open(base)
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(w)

	replaced := map[string]bool{}
	for _, f := range files {
		replaced[f.Path] = true
	}
	kinds := map[string]*tar.Header{} // base's entries by clean name
	prefix := ""
	tr := tar.NewReader(bufio.NewReaderSize(in, 1<<20))
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if i == 0 && strings.HasPrefix(hdr.Name, "./") {
			prefix = "./"
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		if replaced[name] {
			if hdr.Typeflag == tar.TypeDir {
				return fmt.Errorf("%s is a directory in the base tar, not replaced by a file", name)
			}
			continue
		}
		if hdr.Typeflag == tar.TypeLink && replaced[path.Clean(strings.TrimPrefix(hdr.Linkname, "/"))] {
			return fmt.Errorf("%s is hard-linked from %s in the base tar, not replaced", hdr.Linkname, name)
		}
		kinds[name] = hdr
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("copy %s: %w", hdr.Name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("copy %s: %w", hdr.Name, err)
		}
	}

	epoch := time.Unix(0, 0)
	for _, file := range files {
		var dirs []string
		for d := path.Dir(file.Path); d != "."; d = path.Dir(d) {
			dirs = append(dirs, d)
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			d := dirs[i]
			h, ok := kinds[d]
			switch {
			case !ok:
				h = &tar.Header{Typeflag: tar.TypeDir, Name: prefix + d + "/", Mode: 0o755, ModTime: epoch}
				if err := tw.WriteHeader(h); err != nil {
					return fmt.Errorf("add directory %s: %w", d, err)
				}
				kinds[d] = h
			case h.Typeflag == tar.TypeSymlink:
				return fmt.Errorf("parent %s of %s is a symlink to %s in the base tar: give the path through the link's target", d, file.Path, h.Linkname)
			case h.Typeflag != tar.TypeDir:
				return fmt.Errorf("parent %s of %s is not a directory in the base tar", d, file.Path)
			}
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: prefix + file.Path, Mode: file.Mode, Size: int64(len(file.Body)), ModTime: epoch}
		if file.Linkname != "" {
			h.Typeflag, h.Linkname, h.Size = tar.TypeSymlink, file.Linkname, 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeSymlink {
				h.Mode = 0o777
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("add %s: %w", file.Path, err)
		}
		if _, err := io.WriteString(tw, file.Body); err != nil {
			return fmt.Errorf("add %s: %w", file.Path, err)
		}
		kinds[file.Path] = h
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
