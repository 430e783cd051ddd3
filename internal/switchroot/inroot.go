package switchroot

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// The new root is the image's tree: its symbolic links (/lib -> usr/lib,
// /sbin/init -> /lib/systemd/systemd) mean what they mean once it is "/".
// These helpers resolve paths inside it with openat2's RESOLVE_IN_ROOT, so
// that no link leads out of it.

// openInRoot opens name (absolute, as seen from the new root) inside the
// tree whose root directory is open as rootFD, with flags.
func openInRoot(rootFD int, name string, flags int) (int, error) {
	rel := strings.TrimPrefix(path.Clean("/"+name), "/")
	if rel == "" {
		rel = "."
	}
	fd, err := unix.Openat2(rootFD, rel, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return -1, &pathError{op: "open", path: name, err: err}
	}
	return fd, nil
}

// existsInRoot reports whether name exists in the tree (a dangling link
// does not).
func existsInRoot(rootFD int, name string) (bool, error) {
	fd, err := openInRoot(rootFD, name, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	unix.Close(fd)
	return true, nil
}

// mkdirAllInRoot creates the directory name and its missing parents in
// the tree, mode 0755, following the tree's links, and returns an O_PATH
// descriptor of it.
func mkdirAllInRoot(rootFD int, name string) (int, error) {
	clean := path.Clean("/" + name)
	fd, err := openInRoot(rootFD, clean, unix.O_PATH|unix.O_DIRECTORY)
	if err == nil || !errors.Is(err, unix.ENOENT) || clean == "/" {
		return fd, err
	}
	parent, err := mkdirAllInRoot(rootFD, path.Dir(clean))
	if err != nil {
		return -1, err
	}
	defer unix.Close(parent)
	pfd, err := unix.Openat(parent, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &pathError{op: "open", path: path.Dir(clean), err: err}
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, path.Base(clean), 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, &pathError{op: "mkdir", path: clean, err: err}
	}
	return openInRoot(rootFD, clean, unix.O_PATH|unix.O_DIRECTORY)
}

// fdPath is the path through which the kernel reaches an open descriptor,
// for mount(2) targets.
func fdPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// pathError is a failure on a path of the new root.
type pathError struct {
	op, path string
	err      error
}

func (e *pathError) Error() string { return e.op + " " + e.path + " in the new root: " + e.err.Error() }
func (e *pathError) Unwrap() error { return e.err }
