package switchroot

import (
	"fmt"

	"github.com/ociboot/ociboot/internal/layer"
)

// The new root is the image's tree: its symbolic links (/lib -> usr/lib,
// /sbin/init -> /lib/systemd/systemd) mean what they mean once it is "/".
// These helpers resolve paths inside it with openat2's RESOLVE_IN_ROOT, so
// that no link leads out of it.

// openInRoot opens name (absolute, as seen from the new root) inside the
// tree whose root directory is open as rootFD, with flags.
func openInRoot(rootFD int, name string, flags int) (int, error) {
	fd, err := layer.OpenInRoot(rootFD, name, flags)
	if err != nil {
		return -1, &pathError{op: "open", path: name, err: err}
	}
	return fd, nil
}

// existsInRoot reports whether name exists in the tree (a dangling link
// does not).
func existsInRoot(rootFD int, name string) (bool, error) {
	ok, err := layer.ExistsInRoot(rootFD, name)
	if err != nil {
		return false, &pathError{op: "open", path: name, err: err}
	}
	return ok, nil
}

// mkdirAllInRoot creates the directory name and its missing parents in
// the tree, mode 0755, following the tree's links, and returns an O_PATH
// descriptor of it.
func mkdirAllInRoot(rootFD int, name string) (int, error) {
	fd, err := layer.MkdirAllInRoot(rootFD, name, 0o755)
	if err != nil {
		return -1, fmt.Errorf("in the new root: %w", err)
	}
	return fd, nil
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
