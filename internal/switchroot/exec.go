package switchroot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/ociboot/ociboot/internal/pid1"
	"golang.org/x/sys/unix"
)

// MoveAPIMounts moves /dev, /sys, /run and /proc (with what is mounted
// below them: /dev/pts, /dev/shm, /sys/fs/cgroup) into the tree at dir,
// creating their mount points there as needed, and detaches the
// initramfs's /tmp. After it, the initramfs has no /proc: only Exec and
// chroot'ed commands (LoadSELinuxPolicy) are left to run.
func MoveAPIMounts(dir string) error {
	root, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the new root %s: %w", dir, err)
	}
	defer unix.Close(root)
	// /proc last: the moves before it reach their targets through
	// /proc/self/fd.
	for _, m := range []string{"/dev", "/sys", "/run", "/proc"} {
		fd, err := mkdirAllInRoot(root, m)
		if err != nil {
			return err
		}
		err = unix.Mount(m, fdPath(fd), "", unix.MS_MOVE, "")
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("moving %s into the new root: %w", m, err)
		}
	}
	if err := unix.Unmount("/tmp", unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting the initramfs's /tmp: %w", err)
	}
	return nil
}

// Exec frees the initramfs (every file of the filesystem holding "/",
// except the paths in keep and their contents, which HandOverModules
// bind-mounted into the new root), makes the tree at dir the root
// (mount --move onto /, chroot) and executes init there as PID 1 with
// args and env. It returns only on failure, and by then the initramfs
// is gone: check the init (FindInit) first.
func Exec(dir, init string, args, env []string, keep []string, log io.Writer) error {
	if err := freeInitramfs("/", dir, keep, log); err != nil {
		return err
	}
	if err := pid1.MoveOntoRoot(dir); err != nil {
		return fmt.Errorf("switching to the new root: %w", err)
	}
	argv := append([]string{init}, args...)
	if err := unix.Exec(init, argv, env); err != nil {
		return fmt.Errorf("executing %s in the new root: %w", init, err)
	}
	return nil
}

// freeInitramfs removes every entry of the filesystem holding top
// (without crossing into other mounts, and leaving newRoot and the paths
// in keep alone), so that the memory the initramfs held is given back.
// A directory that still holds something kept stays.
func freeInitramfs(top, newRoot string, keep []string, log io.Writer) error {
	var st unix.Stat_t
	if err := unix.Lstat(top, &st); err != nil {
		return fmt.Errorf("freeing the initramfs: %w", err)
	}
	dev := st.Dev
	var dirs []string
	var failed []string
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			failed = append(failed, err.Error())
			return nil
		}
		if p == newRoot || slices.Contains(keep, p) {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			failed = append(failed, err.Error())
			return nil
		}
		if st.Dev != dev {
			return filepath.SkipDir
		}
		if d.IsDir() {
			if p != top {
				dirs = append(dirs, p)
			}
			return nil
		}
		if err := unix.Unlink(p); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", p, err))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("freeing the initramfs: %w", err)
	}
	// Deepest first; directories holding a mount point or something kept
	// stay (and are empty or hold only that).
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		_ = unix.Rmdir(d)
	}
	if len(failed) > 0 {
		// The memory of what could not be removed stays used, but the
		// boot can go on.
		fmt.Fprintf(log, "freeing the initramfs: %d entries not removed: %s\n", len(failed), strings.Join(failed[:min(len(failed), 3)], "; "))
	}
	return nil
}
