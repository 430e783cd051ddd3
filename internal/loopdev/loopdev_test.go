package loopdev

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/hosttest"
	"golang.org/x/sys/unix"
)

// needsLoop fails the test where loop devices cannot be set up: the tests
// run as root on a machine with the loop driver, as CI's do.
func needsLoop(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Fatal("the loop device tests need root")
	}
	if _, err := os.Stat(Control); err != nil {
		t.Fatalf("%v: load the loop module", err)
	}
}

func TestMount(t *testing.T) {
	needsLoop(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello"), []byte("from the image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "tree.squashfs")
	hosttest.Run(t, "mksquashfs", src, img, "-noappend", "-quiet", "-no-progress", "-comp", "xz")
	dir := t.TempDir()

	dev, err := Mount(img, dir, "squashfs")
	if err != nil {
		t.Fatal(err)
	}
	mounted := true
	defer func() {
		if mounted {
			_ = unix.Unmount(dir, 0)
		}
	}()
	if got, err := os.ReadFile(filepath.Join(dir, "hello")); err != nil || string(got) != "from the image\n" {
		t.Fatalf("reading through %s: %q, %v", dev, got, err)
	}
	sys := filepath.Join("/sys/block", filepath.Base(dev), "loop")
	for file, want := range map[string]string{"backing_file": img, "autoclear": "1"} {
		if got, err := os.ReadFile(filepath.Join(sys, file)); err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("%s/%s = %q, %v; want %q", sys, file, got, err, want)
		}
	}
	if ro, _ := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "ro")); strings.TrimSpace(string(ro)) != "1" {
		t.Errorf("%s is not read-only (ro=%q)", dev, ro)
	}
	if err := os.WriteFile(filepath.Join(dir, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("creating a file in the mounted image: %v, want EROFS", err)
	}

	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	waitDetached(t, dev)
}

func TestMountErrors(t *testing.T) {
	needsLoop(t)
	dir := t.TempDir()
	if _, err := Mount(filepath.Join(dir, "missing.squashfs"), dir, "squashfs"); err == nil || !strings.Contains(err.Error(), "missing.squashfs") {
		t.Errorf("a missing image: %v, want an error naming it", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.squashfs")
	if err := os.WriteFile(junk, make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	dev, err := Mount(junk, dir, "squashfs")
	if err == nil {
		_ = unix.Unmount(dir, 0)
		t.Fatalf("an image of zeroes mounted on %s", dev)
	}
	for _, want := range []string{"junk.squashfs", "squashfs", "mounting /dev/loop"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The device the failed mount used is let go.
	_, name, _ := strings.Cut(err.Error(), "mounting ")
	name, _, _ = strings.Cut(name, " ")
	waitDetached(t, name)
}

// waitDetached waits for the loop device dev to be unbound, which
// autoclear does once nothing holds it.
func waitDetached(t *testing.T, dev string) {
	t.Helper()
	backing := filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(backing); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still bound (%s exists) after its last user let it go", dev, backing)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
