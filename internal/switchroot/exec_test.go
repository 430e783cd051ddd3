package switchroot

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a tmpfs on the directory p, made as needed, until
// the test ends.
func mountTmpfs(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", p, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mounting a tmpfs on %s: %v (the tests run as root with CAP_SYS_ADMIN)", p, err)
	}
	unmountInCleanup(t, p)
}

// listTree lists the entries under top, relative, without crossing into
// other filesystems.
func listTree(t *testing.T, top string) []string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(top, &st); err != nil {
		t.Fatal(err)
	}
	var names []string
	err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == top {
			return nil
		}
		rel, _ := filepath.Rel(top, p)
		names = append(names, rel)
		var sub unix.Stat_t
		if err := unix.Lstat(p, &sub); err != nil {
			return err
		}
		if d.IsDir() && sub.Dev != st.Dev {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

func TestFreeInitramfs(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(base, "initramfs")
	mountTmpfs(t, top)
	outside := filepath.Join(base, "outside")
	tree{
		"init":                   file(elfHead, 0o755),
		"bin/busybox":            file(elfHead, 0o755),
		"bin/sh":                 symlink("busybox"),
		"etc/ociboot/build.json": file("{}", 0o644),
		"lib":                    symlink("usr/lib"),
		"usr/lib/libc.so.6":      file("libc", 0o755),
		"usr/lib/modules/" + kver + "/kernel/x.ko":       file("module x", 0o644),
		"usr/lib/modules/" + kver + "/modules.dep":       file("kernel/x.ko:\n", 0o644),
		"usr/lib/modules/" + kver + "-other/kernel/y.ko": file("module y", 0o644),
		"usr/lib/firmware/a.bin":                         file("firmware a", 0o644),
		"empty":                                          directory,
		"deep/er/and/deeper":                             directory,
		"escape":                                         symlink(outside),
		"fifo":                                           {fifo: true},
		".hidden":                                        file("x", 0o600),
		"read-only-dir/file":                             file("x", 0o444),
	}.build(t, top)
	if err := os.Chmod(filepath.Join(top, "read-only-dir"), 0o555); err != nil {
		t.Fatal(err)
	}
	tree{"keep-me": file("outside the initramfs", 0o644)}.build(t, outside)

	// The new root and another mount (as /dev would be) are other
	// filesystems: left alone.
	newRoot := filepath.Join(top, "sysroot")
	mountTmpfs(t, newRoot)
	tree{"etc/os-release": file("ID=test\n", 0o644), "sbin/init": file(elfHead, 0o755)}.build(t, newRoot)
	dev := filepath.Join(top, "dev")
	mountTmpfs(t, dev)
	tree{"console": file("c", 0o600)}.build(t, dev)

	keep := []string{filepath.Join(top, "usr/lib/modules", kver), filepath.Join(top, "usr/lib/firmware")}
	var log strings.Builder
	if err := freeInitramfs(top, newRoot, keep, &log); err != nil {
		t.Fatal(err)
	}
	if log.Len() != 0 {
		t.Errorf("log %q: want nothing (every entry removed)", log.String())
	}
	want := []string{
		"dev",
		"sysroot",
		"usr", "usr/lib",
		"usr/lib/firmware", "usr/lib/firmware/a.bin",
		"usr/lib/modules",
		"usr/lib/modules/" + kver, "usr/lib/modules/" + kver + "/kernel", "usr/lib/modules/" + kver + "/kernel/x.ko", "usr/lib/modules/" + kver + "/modules.dep",
	}
	if got := listTree(t, top); !reflect.DeepEqual(got, want) {
		t.Errorf("left in the initramfs:\n%q\nwant\n%q", got, want)
	}
	if got := listTree(t, newRoot); !reflect.DeepEqual(got, []string{"etc", "etc/os-release", "sbin", "sbin/init"}) {
		t.Errorf("the new root holds %q, want it untouched", got)
	}
	if got := readFile(t, filepath.Join(newRoot, "etc/os-release")); got != "ID=test\n" {
		t.Errorf("the new root's os-release: %q", got)
	}
	if got := listTree(t, dev); !reflect.DeepEqual(got, []string{"console"}) {
		t.Errorf("the other mount holds %q, want it untouched", got)
	}
	if got := readFile(t, filepath.Join(top, "usr/lib/modules", kver, "kernel/x.ko")); got != "module x" {
		t.Errorf("the kept module: %q", got)
	}
	if got := readFile(t, filepath.Join(outside, "keep-me")); got != "outside the initramfs" {
		t.Errorf("the file a link pointed to: %q", got)
	}
}

// A failure to remove an entry is logged; the walk goes on.
func TestFreeInitramfsFailures(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(base, "initramfs")
	mountTmpfs(t, top)
	tree{"a": file("a", 0o644), "dir/busy": file("", 0o644), "dir/c": file("c", 0o644), "z": file("z", 0o644)}.build(t, top)
	// A file of the same filesystem bind-mounted on another: the mount
	// point, on the same device, cannot be unlinked.
	busy := filepath.Join(top, "dir/busy")
	if err := unix.Mount(filepath.Join(top, "z"), busy, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting a file: %v", err)
	}
	unmountInCleanup(t, busy)

	var log strings.Builder
	if err := freeInitramfs(top, filepath.Join(top, "none"), nil, &log); err != nil {
		t.Fatal(err)
	}
	if want := "freeing the initramfs: 1 entries not removed: " + busy + ": device or resource busy"; !strings.Contains(log.String(), want) {
		t.Errorf("log %q, want %q", log.String(), want)
	}
	if got := listTree(t, top); !reflect.DeepEqual(got, []string{"dir", "dir/busy"}) {
		t.Errorf("left: %q, want only what could not be removed", got)
	}
}
