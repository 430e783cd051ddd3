package layer

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// CopyTree copies the tree at src into the existing directory dst, as an
// unpack would have made it: every entry's type, content, mode (setuid,
// setgid and sticky included), owner, modification time, extended
// attributes (overlayfs's own left out) and hard links (files sharing an
// inode in src share one in dst). It does not cross into other mounts.
// dst's own attributes are left as they are. It is how a root image is
// copied from the image store's layers (mounted with overlayfs) into the
// RAM of the machine booting it.
func CopyTree(src, dst string) error {
	var root unix.Stat_t
	if err := unix.Lstat(src, &root); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	c := copier{links: map[uint64]string{}, buf: make([]byte, 256<<10)}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		if st.Dev != root.Dev {
			return filepath.SkipDir // another mount
		}
		if err := c.entry(path, filepath.Join(dst, rel), &st); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		return nil
	})
	if err == nil {
		err = c.setDirTimes()
	}
	if err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// copier is one CopyTree call.
type copier struct {
	links map[uint64]string // inode in src → its first copy, for hard links
	dirs  []dirCopy         // directories, whose times are set last
	buf   []byte
}

type dirCopy struct {
	path  string
	times []unix.Timespec
}

func (c *copier) entry(path, target string, st *unix.Stat_t) error {
	kind := st.Mode & unix.S_IFMT
	if kind != unix.S_IFDIR && st.Nlink > 1 {
		if first, ok := c.links[st.Ino]; ok {
			return unix.Link(first, target)
		}
		c.links[st.Ino] = target
	}
	switch kind {
	case unix.S_IFDIR:
		if err := unix.Mkdir(target, 0o700); err != nil {
			return err
		}
		c.dirs = append(c.dirs, dirCopy{target, []unix.Timespec{st.Atim, st.Mtim}})
	case unix.S_IFREG:
		if err := c.copyFile(path, target); err != nil {
			return err
		}
	case unix.S_IFLNK:
		link, err := os.Readlink(path)
		if err != nil {
			return err
		}
		if err := unix.Symlink(link, target); err != nil {
			return err
		}
	default:
		if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	}
	if err := unix.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if kind != unix.S_IFLNK {
		// After chown, which clears setuid and setgid bits.
		if err := unix.Chmod(target, st.Mode&0o7777); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	// After chown, which clears security.capability.
	if err := copyXattrs(path, target); err != nil {
		return err
	}
	if kind == unix.S_IFDIR {
		return nil
	}
	return unix.UtimesNanoAt(unix.AT_FDCWD, target, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
}

func (c *copier) copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, c.buf)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// setDirTimes gives the directories their times, once nothing is added
// to them any more.
func (c *copier) setDirTimes() error {
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, d.path, d.times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("times of %s: %w", d.path, err)
		}
	}
	return nil
}

// copyXattrs copies the extended attributes of path to target, but
// overlayfs's own; a filesystem that does not take one is not an error,
// as when applying a layer.
func copyXattrs(path, target string) error {
	names, err := listXattrs(path)
	if err != nil {
		return err
	}
	for _, name := range names {
		if strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		value, err := getXattr(path, name)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read extended attribute %q: %w", name, err)
		}
		if err := xattrErr(name, unix.Lsetxattr(target, name, value, 0)); err != nil {
			return err
		}
	}
	return nil
}

// maxXattrs bounds the buffers for extended attributes: the kernel's
// limit, 64 KiB, with room.
const maxXattrs = 1 << 20

// listXattrs lists the extended attributes of path (not following a
// symlink).
func listXattrs(path string) ([]string, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Llistxattr(path, buf)
		switch {
		case errors.Is(err, unix.ERANGE) && size < maxXattrs:
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("list extended attributes: %w", err)
		}
		var names []string
		for _, name := range strings.Split(string(buf[:n]), "\x00") {
			if name != "" {
				names = append(names, name)
			}
		}
		return names, nil
	}
}

// getXattr reads one extended attribute of path (not following a
// symlink).
func getXattr(path, name string) ([]byte, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) && size < maxXattrs {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
