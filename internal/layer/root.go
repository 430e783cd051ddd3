package layer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// An image's tree means what it means once it is "/": its symbolic links
// (/lib -> usr/lib, /etc/passwd -> /usr/share/...) are resolved as if the
// tree's root directory were the root, and nothing, ".." included, leads
// out of it. These helpers reach into such a tree with openat2's
// RESOLVE_IN_ROOT, given a descriptor of its root directory. Names are
// relative to the root or absolute (the same thing); "", "." and "/" are
// the root.

// OpenInRoot opens name inside the tree whose root directory is open as
// root, with flags (O_CLOEXEC added). Errors are the system's, as they
// are: the caller names the path.
func OpenInRoot(root int, name string, flags int) (int, error) {
	rel := strings.TrimPrefix(path.Clean("/"+name), "/")
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(root, rel, &how)
		// EAGAIN: a concurrent rename somewhere in the filesystem; retry.
		if (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) && i < 16 {
			continue
		}
		return fd, err
	}
}

// ExistsInRoot reports whether name exists in the tree (a dangling link
// does not).
func ExistsInRoot(root int, name string) (bool, error) {
	fd, err := OpenInRoot(root, name, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	unix.Close(fd)
	return true, nil
}

// ReadFileInRoot reads the file name of the tree.
func ReadFileInRoot(root int, name string) ([]byte, error) {
	fd, err := OpenInRoot(root, name, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return io.ReadAll(f)
}

// MkdirAllInRoot returns an O_PATH descriptor of the directory name of
// the tree, creating it and its missing parents with mode (as the umask
// leaves it), each resolved inside the tree. made, when set, is called
// with each directory created, open O_PATH, for the caller to give it an
// owner; its descriptor is closed afterwards.
func MkdirAllInRoot(root int, name string, mode uint32, made ...func(fd int, name string) error) (int, error) {
	const flags = unix.O_PATH | unix.O_DIRECTORY
	rel := strings.TrimPrefix(path.Clean("/"+name), "/")
	fd, err := OpenInRoot(root, rel, flags)
	if err == nil || rel == "" {
		return fd, err
	}
	if !errors.Is(err, unix.ENOENT) {
		return -1, fmt.Errorf("directory /%s: %w", rel, err)
	}
	cur, err := OpenInRoot(root, "", flags)
	if err != nil {
		return -1, fmt.Errorf("open the root: %w", err)
	}
	parts := strings.Split(rel, "/")
	for i, base := range parts {
		sub := strings.Join(parts[:i+1], "/")
		next, err := OpenInRoot(root, sub, flags)
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(cur, base, mode); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(cur)
				return -1, fmt.Errorf("create directory /%s: %w", sub, err)
			}
			next, err = OpenInRoot(root, sub, flags)
			if errors.Is(err, unix.ENOENT) {
				unix.Close(cur)
				return -1, fmt.Errorf("directory /%s exists but does not resolve to a directory inside the root (dangling symlink?)", sub)
			}
			if err == nil {
				for _, f := range made {
					if ferr := f(next, "/"+sub); ferr != nil {
						unix.Close(next)
						unix.Close(cur)
						return -1, ferr
					}
				}
			}
		}
		unix.Close(cur)
		if err != nil {
			return -1, fmt.Errorf("directory /%s: %w", sub, err)
		}
		cur = next
	}
	return cur, nil
}
