// Package pid1 does what the init process must do and nothing else: make
// the root filesystem one that pivot_root works from for the container
// runtime, mount the API filesystems, keep a console, reap orphans, and shut
// the machine down.
package pid1

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// movedEnv marks the re-executed init that already runs on the tmpfs root.
const movedEnv = "OCIBOOT_ROOT_MOVED=1"

// newRootDir is where the tmpfs is mounted before it is moved onto "/".
const newRootDir = "/.ociboot-root"

// RootMoved reports whether this process already runs on the tmpfs root.
func RootMoved(environ []string) bool {
	for _, e := range environ {
		if e == movedEnv {
			return true
		}
	}
	return false
}

// PivotableRoot makes the root one that an OCI runtime can pivot_root
// away from: the kernel's initramfs root (rootfs) has no parent mount,
// and pivot_root refuses to leave it. When rootfs is a tmpfs (the kernel
// makes it one when no root= is given) it is used in place: bound onto a
// directory of itself, that bind mount moved onto "/" and entered, its
// size limit set to size (such as "75%"). Nothing is copied and the init
// goes on (it returns nil). Otherwise (a ramfs, which has no size limit)
// the contents are moved into a tmpfs, as MoveRootToTmpfs does, and the
// init re-executed: on success that does not return.
func PivotableRoot(size string) error {
	var root unix.Statfs_t
	if err := unix.Statfs("/", &root); err != nil {
		return fmt.Errorf("statfs /: %w", err)
	}
	if root.Type != unix.TMPFS_MAGIC {
		return MoveRootToTmpfs(size)
	}
	if err := os.MkdirAll(newRootDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", newRootDir, err)
	}
	if err := unix.Mount("/", newRootDir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("binding the initramfs root onto %s: %w", newRootDir, err)
	}
	if err := MoveOntoRoot(newRootDir); err != nil {
		return fmt.Errorf("the initramfs root: %w", err)
	}
	// The directory the bind mount came through is an empty one in it.
	_ = os.Remove(newRootDir)
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT, "size="+size); err != nil {
		return fmt.Errorf("setting the initramfs root's size to %s: %w", size, err)
	}
	return nil
}

// MoveRootToTmpfs moves the initramfs contents into a fresh tmpfs, makes
// that tmpfs the root and re-executes the init from it. The kernel's
// initramfs root (rootfs) cannot be pivot_root'ed away from, so an OCI
// runtime could not start a container on it. size is the tmpfs size option
// (such as "75%"). On success it does not return.
func MoveRootToTmpfs(size string) error {
	if err := os.MkdirAll(newRootDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", newRootDir, err)
	}
	if err := unix.Mount("tmpfs", newRootDir, "tmpfs", 0, "mode=0755,size="+size); err != nil {
		return fmt.Errorf("mounting the tmpfs root on %s (size=%s): %w", newRootDir, size, err)
	}
	if err := moveTree("/", newRootDir); err != nil {
		return err
	}
	if err := MoveOntoRoot(newRootDir); err != nil {
		return fmt.Errorf("the tmpfs root: %w", err)
	}
	env := append(os.Environ(), movedEnv)
	exe := "/init"
	if err := unix.Exec(exe, append([]string{exe}, os.Args[1:]...), env); err != nil {
		return fmt.Errorf("re-executing %s from the tmpfs root: %w", exe, err)
	}
	return nil
}

// EarlyFile is a file the kernel was handed in the initrd, and its size.
type EarlyFile struct {
	Name string
	Size int64
}

// FreeEarlyMicrocode removes dir (bootcfg.EarlyMicrocodeDir) under root
// and the directories between them that it leaves empty: the CPU
// microcode the kernel's early loader read from the initrd, which the
// kernel also unpacked into the root. The kernel updated its CPUs and
// keeps what they need; left there it would hold RAM for the machine's
// life. It returns the files removed, none when there were none.
func FreeEarlyMicrocode(root, dir string) ([]EarlyFile, error) {
	root = filepath.Clean(root)
	dir = filepath.Join(root, dir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("early microcode: %w", err)
	}
	var files []EarlyFile
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			files = append(files, EarlyFile{e.Name(), info.Size()})
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return files, fmt.Errorf("early microcode: %w", err)
	}
	for d := filepath.Dir(dir); d != root && strings.HasPrefix(d, root); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break // not empty
		}
	}
	return files, nil
}

// MoveOntoRoot makes the filesystem mounted on dir the root: it moves
// the mount onto "/" and chroots there (the kernel's rootfs cannot be
// pivot_root'ed away from). The process's working directory is then "/".
// What was on the old root stays reachable only through open files.
func MoveOntoRoot(dir string) error {
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("entering %s: %w", dir, err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving %s onto /: %w", dir, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot into %s: %w", dir, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir / in the new root: %w", err)
	}
	return nil
}

// moveTree moves every entry of the filesystem holding src into dst (on
// another filesystem), deleting each source entry once copied so that the
// memory it held is freed. It does not cross into other mounts and skips
// dst itself.
func moveTree(src, dst string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return fmt.Errorf("stat %s: %w", src, err)
	}
	rootDev := st.Dev
	var dirs []string
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == dst {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return fmt.Errorf("stat %s: %w", path, err)
		}
		if st.Dev != rootDev {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if err := copyEntry(path, target, &st); err != nil {
			return err
		}
		if d.IsDir() {
			if rel != "." {
				dirs = append(dirs, path)
			}
			return nil
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("removing %s after copying it: %w", path, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("moving the initramfs into the tmpfs root: %w", err)
	}
	// Deepest first; a directory still holding a mount point stays.
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		_ = os.Remove(d)
	}
	return nil
}

// copyEntry copies one file, directory, symlink or device node from path to
// target, keeping mode, owner and times.
func copyEntry(path, target string, st *unix.Stat_t) error {
	mode := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("creating %s: %w", target, err)
		}
	case unix.S_IFREG:
		if err := copyFile(path, target); err != nil {
			return err
		}
	case unix.S_IFLNK:
		link, err := os.Readlink(path)
		if err != nil {
			return fmt.Errorf("reading link %s: %w", path, err)
		}
		if err := os.Symlink(link, target); err != nil {
			return fmt.Errorf("creating link %s: %w", target, err)
		}
	default:
		if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("creating node %s: %w", target, err)
		}
	}
	if err := unix.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", target, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(target, mode); err != nil {
			return fmt.Errorf("chmod %s: %w", target, err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times of %s: %w", target, err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("opening %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	return nil
}

// mountPoint is one API filesystem PID 1 mounts.
type mountPoint struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	mode                   os.FileMode
}

// apiMounts lists what MountAPI mounts, in order.
func apiMounts() []mountPoint {
	return []mountPoint{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "", 0o555},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", 0o755},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666", 0o755},
		{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", 0o1777},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", 0o755},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", 0o1777},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, "nsdelegate", 0o555},
	}
}

// MountAPI mounts proc, sys, dev (devtmpfs), devpts, shm, run, tmp and the
// cgroup2 hierarchy. A target that is already a mount point is left alone.
func MountAPI() error {
	for _, m := range apiMounts() {
		if err := os.MkdirAll(m.target, m.mode); err != nil {
			return fmt.Errorf("creating %s: %w", m.target, err)
		}
		if IsMountPoint(m.target) {
			continue
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.fstype, m.target, err)
		}
	}
	// Enable every available controller for the containers' cgroups.
	ctrls, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err == nil && len(strings.TrimSpace(string(ctrls))) > 0 {
		var enable []string
		for _, c := range strings.Fields(string(ctrls)) {
			enable = append(enable, "+"+c)
		}
		// Best effort: a controller that cannot be enabled only limits
		// what resource options containers may use.
		_ = os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte(strings.Join(enable, " ")), 0)
	}
	return nil
}

// IsMountPoint reports whether a filesystem is mounted at path: whether
// it is on another device than its parent.
func IsMountPoint(path string) bool {
	var st, pst unix.Stat_t
	if unix.Stat(path, &st) != nil || unix.Stat(filepath.Dir(path), &pst) != nil {
		return false
	}
	return st.Dev != pst.Dev
}

// SetupConsole makes /dev/console the process's stdin, stdout and stderr,
// so that the init and everything it starts talks on the console the
// kernel was told to use (console=ttyS0 for a serial line).
func SetupConsole() error {
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening /dev/console: %w", err)
	}
	for _, target := range []int{0, 1, 2} {
		if err := unix.Dup3(fd, target, 0); err != nil {
			unix.Close(fd)
			return fmt.Errorf("duplicating the console onto fd %d: %w", target, err)
		}
	}
	return unix.Close(fd)
}
