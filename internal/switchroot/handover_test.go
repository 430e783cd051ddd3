package switchroot

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const kver = "6.1.0-test-amd64"

// fakeInitramfs builds an initramfs whose /lib links to usr/lib, holding
// a module for kver and a firmware file, and returns its directory with
// its links resolved.
func fakeInitramfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tree{
		"lib": symlink("usr/lib"),
		"usr/lib/modules/" + kver + "/kernel/x.ko": file("module x", 0o644),
		"usr/lib/modules/" + kver + "/modules.dep": file("kernel/x.ko:\n", 0o644),
		"usr/lib/firmware/a.bin":                   file("firmware a", 0o644),
	}.build(t, dir)
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return real
}

// unmountInCleanup detaches whatever gets mounted on the paths, before
// the temporary directories are removed.
func unmountInCleanup(t *testing.T, paths ...string) {
	t.Cleanup(func() {
		for _, p := range paths {
			for unix.Unmount(p, unix.MNT_DETACH) == nil {
			}
		}
	})
}

// isMountPoint reports whether p is listed in /proc/self/mountinfo.
func isMountPoint(t *testing.T, p string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == p {
			return true
		}
	}
	return false
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(fa, fb)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestHandOverModules(t *testing.T) {
	initramfs := fakeInitramfs(t)
	modules := filepath.Join(initramfs, "usr/lib/modules", kver)
	firmware := filepath.Join(initramfs, "usr/lib/firmware")

	t.Run("tree without modules or firmware", func(t *testing.T) {
		dir := t.TempDir()
		tree{"lib": symlink("usr/lib"), "usr/lib/os-release": file("ID=test\n", 0o644)}.build(t, dir)
		unmountInCleanup(t, filepath.Join(dir, "usr/lib/modules", kver), filepath.Join(dir, "usr/lib/firmware"))
		var log strings.Builder
		kept, err := HandOverModules(initramfs, dir, kver, &log)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{modules, firmware}; !reflect.DeepEqual(kept, want) {
			t.Errorf("kept %q, want the real paths %q", kept, want)
		}
		// Seen through the tree's /lib link, as the OS will see them.
		if got := readFile(t, filepath.Join(dir, "lib/modules", kver, "kernel/x.ko")); got != "module x" {
			t.Errorf("x.ko in the tree: %q", got)
		}
		if got := readFile(t, filepath.Join(dir, "lib/firmware/a.bin")); got != "firmware a" {
			t.Errorf("a.bin in the tree: %q", got)
		}
		// Mounted on the directories made behind the link, which stays.
		for _, p := range []string{filepath.Join(dir, "usr/lib/modules", kver), filepath.Join(dir, "usr/lib/firmware")} {
			if !isMountPoint(t, p) {
				t.Errorf("%s is not a mount point", p)
			}
		}
		if target, err := os.Readlink(filepath.Join(dir, "lib")); err != nil || target != "usr/lib" {
			t.Errorf("the tree's /lib: %q, %v; want the link to usr/lib left as it was", target, err)
		}
		if !sameFile(t, filepath.Join(dir, "lib/modules", kver), modules) {
			t.Error("the tree's modules directory is not the initramfs's")
		}
		logHas(t, log.String(), "/lib/modules/"+kver+" of the initramfs handed over (1 modules, bind-mounted)", "/lib/firmware of the initramfs handed over (bind-mounted)")
	})

	t.Run("tree with its own modules and empty firmware", func(t *testing.T) {
		dir := t.TempDir()
		tree{
			"lib":                                 symlink("usr/lib"),
			"usr/lib/modules/" + kver + "/own.ko": file("own", 0o644),
			"usr/lib/firmware":                    directory,
		}.build(t, dir)
		unmountInCleanup(t, filepath.Join(dir, "usr/lib/modules", kver), filepath.Join(dir, "usr/lib/firmware"))
		var log strings.Builder
		kept, err := HandOverModules(initramfs, dir, kver, &log)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{firmware}; !reflect.DeepEqual(kept, want) {
			t.Errorf("kept %q, want %q: only the firmware", kept, want)
		}
		if isMountPoint(t, filepath.Join(dir, "usr/lib/modules", kver)) {
			t.Error("the tree's own modules were covered")
		}
		if _, err := os.Stat(filepath.Join(dir, "lib/modules", kver, "own.ko")); err != nil {
			t.Errorf("the tree's own module: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "lib/modules", kver, "kernel/x.ko")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the initramfs's module in the tree: %v, want none", err)
		}
		if got := readFile(t, filepath.Join(dir, "lib/firmware/a.bin")); got != "firmware a" {
			t.Errorf("a.bin in the tree: %q (an empty firmware directory counts as none)", got)
		}
		if want := "the image has its own /lib/modules/" + kver; !strings.Contains(log.String(), want) {
			t.Errorf("log %q, want %q", log.String(), want)
		}
	})

	t.Run("tree with its own firmware", func(t *testing.T) {
		dir := t.TempDir()
		tree{
			"lib":                    symlink("usr/lib"),
			"usr/lib/firmware/b.bin": file("own firmware", 0o644),
		}.build(t, dir)
		unmountInCleanup(t, filepath.Join(dir, "usr/lib/modules", kver), filepath.Join(dir, "usr/lib/firmware"))
		var log strings.Builder
		kept, err := HandOverModules(initramfs, dir, kver, &log)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{modules}; !reflect.DeepEqual(kept, want) {
			t.Errorf("kept %q, want %q: only the modules", kept, want)
		}
		if isMountPoint(t, filepath.Join(dir, "usr/lib/firmware")) {
			t.Error("the tree's own firmware was covered")
		}
		if _, err := os.Stat(filepath.Join(dir, "lib/firmware/a.bin")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the initramfs's firmware in the tree: %v, want none", err)
		}
		if got := readFile(t, filepath.Join(dir, "lib/firmware/b.bin")); got != "own firmware" {
			t.Errorf("the tree's own firmware: %q", got)
		}
		if want := "the image has its own /lib/firmware"; !strings.Contains(log.String(), want) {
			t.Errorf("log %q, want %q", log.String(), want)
		}
	})

	t.Run("tree without /lib", func(t *testing.T) {
		dir := t.TempDir()
		unmountInCleanup(t, filepath.Join(dir, "lib/modules", kver), filepath.Join(dir, "lib/firmware"))
		kept, err := HandOverModules(initramfs, dir, kver, &strings.Builder{})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{modules, firmware}; !reflect.DeepEqual(kept, want) {
			t.Errorf("kept %q, want %q", kept, want)
		}
		if fi, err := os.Lstat(filepath.Join(dir, "lib")); err != nil || !fi.IsDir() {
			t.Errorf("the tree's /lib: %v, %v; want a directory made for the mount", fi, err)
		}
		if got := readFile(t, filepath.Join(dir, "lib/modules", kver, "kernel/x.ko")); got != "module x" {
			t.Errorf("x.ko in the tree: %q", got)
		}
	})

	t.Run("a tree's /lib leading out of it", func(t *testing.T) {
		outside := t.TempDir()
		dir := t.TempDir()
		tree{"lib": symlink(outside), "usr/lib": directory}.build(t, dir)
		unmountInCleanup(t, filepath.Join(outside, "modules", kver), filepath.Join(outside, "firmware"))
		_, _ = HandOverModules(initramfs, dir, kver, &strings.Builder{})
		if names, err := os.ReadDir(outside); err != nil || len(names) != 0 {
			t.Errorf("the directory outside the tree that its /lib names holds %v, %v; want it untouched", names, err)
		}
	})

	t.Run("initramfs without modules for this kernel", func(t *testing.T) {
		dir := t.TempDir()
		unmountInCleanup(t, filepath.Join(dir, "lib/modules/other"), filepath.Join(dir, "lib/firmware"))
		var log strings.Builder
		kept, err := HandOverModules(initramfs, dir, "other", &log)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{firmware}; !reflect.DeepEqual(kept, want) {
			t.Errorf("kept %q, want %q", kept, want)
		}
		if want := "neither the image nor the initramfs has /lib/modules/other"; !strings.Contains(log.String(), want) {
			t.Errorf("log %q, want %q", log.String(), want)
		}
		if _, err := os.Lstat(filepath.Join(dir, "lib/modules")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lib/modules made in the tree: %v, want nothing", err)
		}
	})

	images := map[string]string{"lib/modules/" + kver: "kernel/y.ko", "lib/firmware": "b.bin"}
	// imageInitramfs makes an initramfs whose module tree and firmware
	// are filesystems of their own, as `ociboot build --modules-all`
	// images are, on a private mount, as PID 1's root is: a mount under a
	// shared one cannot be moved.
	imageInitramfs := func(t *testing.T) string {
		initramfs := t.TempDir()
		if err := unix.Mount("tmpfs", initramfs, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		unmountInCleanup(t, initramfs)
		if err := unix.Mount("", initramfs, "", unix.MS_PRIVATE, ""); err != nil {
			t.Fatal(err)
		}
		for dir, name := range images {
			p := filepath.Join(initramfs, dir)
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mount("tmpfs", p, "tmpfs", 0, ""); err != nil {
				t.Fatal(err)
			}
			unmountInCleanup(t, p)
			tree{name: file("from an image", 0o644)}.build(t, p)
		}
		return initramfs
	}

	t.Run("initramfs with its trees mounted from images", func(t *testing.T) {
		initramfs := imageInitramfs(t)
		dir := t.TempDir()
		unmountInCleanup(t, filepath.Join(dir, "lib/modules", kver), filepath.Join(dir, "lib/firmware"))
		var log strings.Builder
		kept, err := HandOverModules(initramfs, dir, kver, &log)
		if err != nil {
			t.Fatal(err)
		}
		if len(kept) != 0 {
			t.Errorf("kept %q, want nothing: the initramfs holds nothing of a moved mount", kept)
		}
		for dir2, name := range images {
			if got := readFile(t, filepath.Join(dir, dir2, name)); got != "from an image" {
				t.Errorf("%s in the tree: %q", name, got)
			}
			if !isMountPoint(t, filepath.Join(dir, dir2)) {
				t.Errorf("/%s is not a mount point of the tree", dir2)
			}
			if isMountPoint(t, filepath.Join(initramfs, dir2)) {
				t.Errorf("/%s is still mounted in the initramfs: moved, it should be gone from there", dir2)
			}
		}
		logHas(t, log.String(), "/lib/modules/"+kver+" of the initramfs handed over (1 modules, its image mount moved)", "/lib/firmware of the initramfs handed over (its image mount moved)")
	})

	t.Run("tree with its own trees, initramfs with images", func(t *testing.T) {
		initramfs := imageInitramfs(t)
		dir := t.TempDir()
		tree{"lib/modules/" + kver + "/own.ko": file("own", 0o644), "lib/firmware/own.bin": file("own", 0o644)}.build(t, dir)
		var log strings.Builder
		kept, err := HandOverModules(initramfs, dir, kver, &log)
		if err != nil {
			t.Fatal(err)
		}
		if len(kept) != 0 {
			t.Errorf("kept %q, want nothing", kept)
		}
		// The images the tree does not take are let go, not left out
		// of reach once the root is switched.
		for dir2 := range images {
			if isMountPoint(t, filepath.Join(initramfs, dir2)) {
				t.Errorf("/%s is still mounted in the initramfs", dir2)
			}
			if isMountPoint(t, filepath.Join(dir, dir2)) {
				t.Errorf("the tree's own /%s was covered", dir2)
			}
		}
		logHas(t, log.String(), "the image has its own /lib/modules/"+kver+" (the initramfs's image unmounted)", "the image has its own /lib/firmware (the initramfs's image unmounted)")
	})

	t.Run("initramfs with an empty firmware directory", func(t *testing.T) {
		bare := t.TempDir()
		tree{"lib/modules/" + kver + "/x.ko": file("x", 0o644), "lib/firmware": directory}.build(t, bare)
		dir := t.TempDir()
		unmountInCleanup(t, filepath.Join(dir, "lib/modules", kver), filepath.Join(dir, "lib/firmware"))
		kept, err := HandOverModules(bare, dir, kver, &strings.Builder{})
		if err != nil {
			t.Fatal(err)
		}
		if len(kept) != 1 || !strings.HasSuffix(kept[0], "/lib/modules/"+kver) {
			t.Errorf("kept %q, want the modules only", kept)
		}
		if _, err := os.Lstat(filepath.Join(dir, "lib/firmware")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("lib/firmware made in the tree: %v, want nothing", err)
		}
	})
}

func TestHandOverNetwork(t *testing.T) {
	state := []byte(`{"links":[{"name":"eth0"}]}` + "\n")
	files := NetworkFiles{State: state, ResolvConf: "nameserver 10.0.2.3\n", Hostname: "box"}

	t.Run("tree without the files", func(t *testing.T) {
		dir, run := t.TempDir(), t.TempDir()
		var log strings.Builder
		if err := HandOverNetwork(dir, run, files, &log); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(run, "ociboot/network.json")); got != string(state) {
			t.Errorf("network.json: %q, want %q", got, state)
		}
		if got := readFile(t, filepath.Join(dir, "etc/resolv.conf")); got != files.ResolvConf {
			t.Errorf("resolv.conf: %q, want %q", got, files.ResolvConf)
		}
		if got := readFile(t, filepath.Join(dir, "etc/hostname")); got != "box\n" {
			t.Errorf("hostname: %q, want %q", got, "box\n")
		}
		if want := "wrote [/run/ociboot/network.json /etc/resolv.conf /etc/hostname]"; !strings.Contains(log.String(), want) {
			t.Errorf("log %q, want %q", log.String(), want)
		}
	})

	t.Run("tree with its own files and links", func(t *testing.T) {
		outside := t.TempDir()
		dir, run := t.TempDir(), t.TempDir()
		tree{
			"etc/hostname":    file("own\n", 0o644),
			"etc/resolv.conf": symlink(filepath.Join(outside, "resolv.conf")), // dangling
		}.build(t, dir)
		var log strings.Builder
		if err := HandOverNetwork(dir, run, files, &log); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(dir, "etc/hostname")); got != "own\n" {
			t.Errorf("the tree's hostname: %q, want it left alone", got)
		}
		if target, err := os.Readlink(filepath.Join(dir, "etc/resolv.conf")); err != nil || target != filepath.Join(outside, "resolv.conf") {
			t.Errorf("the tree's resolv.conf link: %q, %v; want it left alone", target, err)
		}
		if names, err := os.ReadDir(outside); err != nil || len(names) != 0 {
			t.Errorf("the link's target directory holds %v, %v: the link was followed", names, err)
		}
		if got := readFile(t, filepath.Join(run, "ociboot/network.json")); got != string(state) {
			t.Errorf("network.json: %q, want %q", got, state)
		}
		if want := "wrote [/run/ociboot/network.json]"; !strings.Contains(log.String(), want) {
			t.Errorf("log %q, want %q", log.String(), want)
		}
	})

	t.Run("links to existing files", func(t *testing.T) {
		outside := t.TempDir()
		target := filepath.Join(outside, "resolv.conf")
		if err := os.WriteFile(target, []byte("host's\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		dir, run := t.TempDir(), t.TempDir()
		tree{
			"etc/resolv.conf":     symlink("../run/systemd/resolve/stub-resolv.conf"),
			"etc/hostname":        symlink(target),
			"run/systemd/resolve": directory,
		}.build(t, dir)
		if err := HandOverNetwork(dir, run, files, &strings.Builder{}); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, target); got != "host's\n" {
			t.Errorf("the file outside the tree: %q, want it untouched", got)
		}
		if _, err := os.Stat(filepath.Join(dir, "run/systemd/resolve/stub-resolv.conf")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the link's target in the tree: %v, want it not created", err)
		}
	})

	t.Run("nothing to write in the tree", func(t *testing.T) {
		dir, run := t.TempDir(), t.TempDir()
		if err := HandOverNetwork(dir, run, NetworkFiles{State: state}, &strings.Builder{}); err != nil {
			t.Fatal(err)
		}
		if names, err := os.ReadDir(dir); err != nil || len(names) != 0 {
			t.Errorf("the tree holds %v, %v; want nothing written", names, err)
		}
		if got := readFile(t, filepath.Join(run, "ociboot/network.json")); got != string(state) {
			t.Errorf("network.json: %q, want %q", got, state)
		}
	})

	t.Run("a tree's /etc leading out of it", func(t *testing.T) {
		outside := t.TempDir()
		dir, run := t.TempDir(), t.TempDir()
		tree{"etc": symlink(outside)}.build(t, dir)
		_ = HandOverNetwork(dir, run, files, &strings.Builder{})
		if names, err := os.ReadDir(outside); err != nil || len(names) != 0 {
			t.Errorf("the directory outside the tree that its /etc names holds %v, %v; want it untouched", names, err)
		}
	})
}

// logHas fails the test for each of wants that log lacks.
func logHas(t *testing.T, log string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(log, want) {
			t.Errorf("log %q, want %q", log, want)
		}
	}
}

// TestCountModules checks that the count comes from modules.dep, one
// line per module, without walking the tree, and from the files without
// it.
func TestCountModules(t *testing.T) {
	dir := t.TempDir()
	tree{"kernel/a.ko": file("a", 0o644), "kernel/b.ko.xz": file("b", 0o644), "modules.order": file("x", 0o644)}.build(t, dir)
	if n := countModules(dir); n != 2 {
		t.Errorf("countModules without modules.dep = %d, want the 2 module files", n)
	}
	dep := "kernel/a.ko:\nkernel/b.ko.xz: kernel/a.ko\nkernel/c.ko:\n"
	tree{"modules.dep": file(dep, 0o644)}.build(t, dir)
	if n := countModules(dir); n != 3 {
		t.Errorf("countModules = %d, want modules.dep's 3 lines", n)
	}
}
