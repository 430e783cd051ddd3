package initramfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// maxSymlinkHops bounds symlink resolution, as the kernel's 40.
const maxSymlinkHops = 40

// entry is one file of the archive.
type entry struct {
	mode           uint64 // cpio.S_IF* | permission bits
	src            string // host file holding a regular file's content
	size           int64  // size of src
	data           []byte // inline content, or a symlink's target
	rmajor, rminor uint64 // device numbers
	from           string // what added it, for conflict messages
}

func (e *entry) kind() uint64 { return e.mode & cpio.S_IFMT }

// same reports whether adding e over o changes nothing.
func (e *entry) same(o *entry) bool {
	if e.kind() == cpio.S_IFDIR && o.kind() == cpio.S_IFDIR {
		return true // directories merge; the first one's mode stays
	}
	return e.mode == o.mode && e.src == o.src && bytes.Equal(e.data, o.data) &&
		e.rmajor == o.rmajor && e.rminor == o.rminor
}

// tree is the set of archive entries, by archive path (no leading '/').
type tree struct {
	entries map[string]*entry
}

func newTree() *tree { return &tree{entries: map[string]*entry{}} }

// clean turns an absolute or relative archive path into the key form.
func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// add puts e at name. Adding the same thing twice is fine; anything else
// at a taken path is an error naming both origins.
func (t *tree) add(name string, e *entry) error {
	name = clean(name)
	if name == "" {
		return nil // the root directory exists already
	}
	if old, ok := t.entries[name]; ok {
		if !e.same(old) {
			return fmt.Errorf("/%s from %s conflicts with /%s from %s", name, e.from, name, old.from)
		}
		return nil
	}
	t.entries[name] = e
	return nil
}

func (t *tree) addDir(name string, perm fs.FileMode, from string) error {
	return t.add(name, &entry{mode: cpio.S_IFDIR | unixPerm(perm), from: from})
}

func (t *tree) addSymlink(name, target, from string) error {
	return t.add(name, &entry{mode: cpio.S_IFLNK | 0o777, data: []byte(target), from: from})
}

func (t *tree) addData(name string, data []byte, perm uint64, from string) error {
	return t.add(name, &entry{mode: cpio.S_IFREG | perm, data: data, size: int64(len(data)), from: from})
}

// addFile adds the regular host file src at name with its permission bits
// (or perm, when not zero).
func (t *tree) addFile(name, src string, perm uint64, from string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s)", src, st.Mode().Type())
	}
	if perm == 0 {
		perm = unixPerm(st.Mode())
	}
	return t.add(name, &entry{mode: cpio.S_IFREG | perm, src: src, size: st.Size(), from: from})
}

// unixPerm converts Go permission and special bits to Unix mode bits.
func unixPerm(m fs.FileMode) uint64 {
	p := uint64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= cpio.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		p |= cpio.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		p |= cpio.S_ISVTX
	}
	return p
}

// addHostPath adds the host file p at the same path in the archive,
// keeping the host layout: every symlink met on the way (in directories
// or at the end) becomes a symlink entry, directories keep their modes,
// and the regular file it leads to is added. It returns that file's host
// path.
func (t *tree) addHostPath(p, from string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("%s is not an absolute path", p)
	}
	resolved := "/"
	rest := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	for hops := 0; len(rest) > 0; {
		cur := path.Join(resolved, rest[0])
		rest = rest[1:]
		st, err := os.Lstat(cur)
		if err != nil {
			return "", err
		}
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			if hops++; hops > maxSymlinkHops {
				return "", fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			target, err := os.Readlink(cur)
			if err != nil {
				return "", err
			}
			if err := t.addSymlink(cur, target, from); err != nil {
				return "", err
			}
			if path.IsAbs(target) {
				resolved = "/"
			}
			rest = append(strings.Split(strings.Trim(target, "/"), "/"), rest...)
		case st.IsDir():
			if err := t.addDir(cur, st.Mode(), from); err != nil {
				return "", err
			}
			resolved = cur
		case st.Mode().IsRegular() && len(rest) == 0:
			return cur, t.addFile(cur, cur, 0, from)
		default:
			return "", fmt.Errorf("%s: %s is a %s, want a directory, symlink or (last) a regular file", p, cur, st.Mode().Type())
		}
	}
	return "", fmt.Errorf("%s is a directory, want a file", p)
}

// addHostTree adds the host file or directory src at dst; a directory is
// added recursively with its symlinks kept as symlinks. src itself is
// followed when it is a symlink.
func (t *tree) addHostTree(src, dst, from string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return t.addFile(dst, src, 0, from)
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := path.Join(dst, filepath.ToSlash(rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch m := info.Mode(); {
		case m.IsDir():
			return t.addDir(name, m, from)
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return t.addSymlink(name, target, from)
		case m.IsRegular():
			return t.addFile(name, p, 0, from)
		default:
			return fmt.Errorf("%s is a %s; only files, directories and symlinks can be included", p, m.Type())
		}
	})
}

// finish makes the tree loadable in one pass of the kernel's unpacker and
// returns the entry names in archive order. An entry below a path that is a
// symlink in the archive moves to where the symlink leads (the unpacker
// would follow it, and its target may come later in the archive); missing
// parent directories are added with mode 0755.
func (t *tree) finish() ([]string, error) {
	names := slices.Sorted(maps.Keys(t.entries))
	for _, name := range names {
		e := t.entries[name]
		dir, err := t.resolveDir(path.Dir(name))
		if err != nil {
			return nil, fmt.Errorf("/%s from %s: %w", name, e.from, err)
		}
		moved := path.Join(dir, path.Base(name))
		if moved == name {
			continue
		}
		delete(t.entries, name)
		if err := t.add(moved, e); err != nil {
			return nil, fmt.Errorf("/%s reached through a symlink: %w", name, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(t.entries)) {
		e := t.entries[name]
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if p, ok := t.entries[d]; ok {
				if p.kind() != cpio.S_IFDIR {
					return nil, fmt.Errorf("/%s from %s needs /%s to be a directory, but %s made it something else", name, e.from, d, p.from)
				}
				continue
			}
			t.entries[d] = &entry{mode: cpio.S_IFDIR | 0o755, from: "a parent of /" + name}
		}
	}
	return slices.Sorted(maps.Keys(t.entries)), nil
}

// resolveDir follows the archive's own symlinks in the directory path dir.
func (t *tree) resolveDir(dir string) (string, error) {
	resolved := "" // the root
	rest := strings.Split(dir, "/")
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			resolved = clean(path.Dir(resolved))
			continue
		}
		cur := path.Join(resolved, c)
		e, ok := t.entries[cur]
		if !ok || e.kind() != cpio.S_IFLNK {
			resolved = cur
			continue
		}
		if hops++; hops > maxSymlinkHops {
			return "", fmt.Errorf("too many levels of symbolic links in /%s", dir)
		}
		target := string(e.data)
		if path.IsAbs(target) {
			resolved = ""
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return resolved, nil
}
