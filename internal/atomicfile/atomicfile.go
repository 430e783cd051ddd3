// Package atomicfile writes files so that, after a crash or a power cut,
// a name holds its old content or its new one, whole: the new content
// goes to a temporary file beside it, is synced, renamed over the name,
// and the directory is synced so that the rename lasts.
package atomicfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Write replaces name with what write writes, with mode perm. On error
// name is left as it was and the temporary file removed.
func Write(name string, perm fs.FileMode, write func(io.Writer) error) error {
	return WriteAt(name, perm, func(f *os.File) error { return write(f) })
}

// WriteAt is Write for a writer that needs the file itself: to size it
// and write at offsets (a disk image).
func WriteAt(name string, perm fs.FileMode, write func(*os.File) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(name))
}

// WriteFile replaces name with data, with mode perm.
func WriteFile(name string, data []byte, perm fs.FileMode) error {
	return Write(name, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir makes the renames and removals done in dir last.
func SyncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
