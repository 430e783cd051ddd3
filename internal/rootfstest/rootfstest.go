// Package rootfstest makes real OS root filesystems for the switch-root
// tests, built with debootstrap from Debian's packages and cached between
// runs. Debian returns such a tree as an uncompressed tar, WithFiles adds
// files to a tar (a systemd unit and the symlink enabling it, say), XZ
// compresses one as a rootfs tarball is served, and Layer wraps one as a
// one-layer OCI image's layer. It is imported only by tests.
//
// # The cache
//
// Everything lives in CacheDir:
//
//	debian-SUITE-ARCH-minbase[+PKG,PKG...]-fN.tar  a root filesystem (Debian)
//	debian-...-fN.tar.log                          its debootstrap log, kept from the last build
//	sha256-HEX-xzN.tar.xz                          an xz copy of the tar whose SHA-256 is HEX (XZ)
//	sha256-HEX-gzipN.tar.gz                        a gzip copy of it, a layer's blob (Layer)
//	debs-ARCH/                                     .deb files debootstrap downloaded (--cache-dir)
//	*.lock                                         lock files (flock); never removed
//
// N is a format version, bumped whenever the way a file is made changes,
// so that an older entry is not used. A file is made under a temporary
// name in the cache directory and renamed into place once complete, so a
// name that exists is always whole; a killed run leaves at most a
// temporary file or build directory, removed by the next build of the same
// entry. Each entry is built under an exclusive flock on its own lock
// file, so parallel subtests and separate test processes (go test ./...
// runs packages in parallel) build it once and never see it half written.
// flock locks belong to the open file, and each caller opens the lock file
// anew, so goroutines of one process exclude each other just as processes
// do: the package has no global state.
//
// Entries are never refreshed: a root filesystem stays as Debian's archive
// was on the day it was built. Deleting the directory, or any entry, is
// safe while no test runs; the next run rebuilds what it needs (a Debian build reaches
// the Debian mirror, see Debian). Nothing is pruned: each distinct tar
// given to XZ or Layer adds a compressed copy.
package rootfstest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// CacheEnv names the environment variable that overrides CacheDir's
// default.
const CacheEnv = "OCIBOOT_TEST_CACHE"

// lockWait bounds the wait for another test's build of the same cache
// entry: longer than the slowest build (debootstrap's timeout plus
// writing the tar).
const lockWait = 20 * time.Minute

// CacheDir is the directory the package caches its files in:
// $OCIBOOT_TEST_CACHE, else $HOME/.cache/ociboot-test (or
// ociboot-test-cache in the temporary directory when there is no home). It
// is created when first needed; a relative $OCIBOOT_TEST_CACHE is taken
// relative to the test's working directory (its package's directory).
func CacheDir() string {
	if d := os.Getenv(CacheEnv); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), "ociboot-test-cache")
	}
	return filepath.Join(home, ".cache", "ociboot-test")
}

// cacheDir returns CacheDir as an absolute path (debootstrap's --cache-dir
// wants one), creating it.
func cacheDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(CacheDir())
	if err != nil {
		t.Fatalf("rootfstest: cache directory %q: %v", CacheDir(), err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("rootfstest: create the cache directory (set $%s to use another): %v", CacheEnv, err)
	}
	return dir
}

// isFile reports whether name is a regular file. Cache entries appear by
// rename only, so one that exists is complete.
func isFile(name string) bool {
	fi, err := os.Stat(name)
	return err == nil && fi.Mode().IsRegular()
}

// cached returns out, making it first with build unless it exists. build
// writes the whole file to tmp (a name in the same directory, removed
// beforehand if a killed run left it); out appears only once build has
// succeeded and the file is synced. The build runs under out's lock file,
// so concurrent callers (goroutines or processes) build once; the others
// wait and then find the file.
func cached(t testing.TB, out string, build func(ctx context.Context, tmp string) error) string {
	t.Helper()
	if isFile(out) {
		return out
	}
	unlock, err := lockFile(t.Context(), out+".lock", lockWait, func() {
		t.Logf("rootfstest: waiting for another test that is making %s", filepath.Base(out))
	})
	if err != nil {
		t.Fatalf("rootfstest: %v", err)
	}
	defer unlock()
	if isFile(out) { // made while we waited
		return out
	}
	tmp := out + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("rootfstest: remove a leftover %s: %v", tmp, err)
	}
	if err := build(t.Context(), tmp); err != nil {
		os.Remove(tmp)
		t.Fatalf("rootfstest: make %s: %v", out, err)
	}
	if err := commit(tmp, out); err != nil {
		os.Remove(tmp)
		t.Fatalf("rootfstest: %v", err)
	}
	return out
}

// commit syncs tmp and renames it to out, then syncs the directory, so
// that out is either absent or whole even after a crash.
func commit(tmp, out string) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s to sync it: %w", tmp, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("rename the finished file into place: %w", err)
	}
	d, err := os.Open(filepath.Dir(out))
	if err != nil {
		return fmt.Errorf("open %s to sync it: %w", filepath.Dir(out), err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Dir(out), err)
	}
	return nil
}

// lockFile takes an exclusive flock on name, creating the file if needed,
// and returns its release. It polls (so that ctx and wait bound it) and
// calls waiting once if the lock is held by someone else. flock locks
// belong to the open file description: every call opens its own, so
// goroutines of one process exclude each other as processes do. The lock
// is released when the holder closes the file or dies.
func lockFile(ctx context.Context, name string, wait time.Duration, waiting func()) (unlock func(), err error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	deadline := time.Now().Add(wait)
	told := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: still held by another build after %v", name, wait)
		}
		if !told && waiting != nil {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, context.Cause(ctx))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fileSHA256 returns the hex SHA-256 of the file name.
func fileSHA256(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// command returns a command bound to ctx: when ctx ends, the program and
// every process it started (debootstrap runs dpkg, wget and chroot) are
// killed, and Wait gives up on its output 10 s later. The processes stay
// in the test's process group, so an interrupt from the terminal reaches
// them too. Run it with run, so that it also dies with the test process
// (killed, or timed out by go test) instead of building on unattended.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return killTree(cmd.Process.Pid) }
	cmd.WaitDelay = 10 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// run runs cmd on a goroutine locked to its OS thread: the parent death
// signal (Pdeathsig) fires when the thread that started the child exits,
// so that thread must outlive the child.
func run(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Run()
}

// killTree kills pid and its descendants (found through /proc) with
// SIGKILL: the parent first, so that it starts no more children.
func killTree(pid int) error {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue // gone
		}
		// "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, err1 := strconv.Atoi(f[1])
		p, err2 := strconv.Atoi(filepath.Base(filepath.Dir(s)))
		if err1 == nil && err2 == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	order := []int{pid}
	for i := 0; i < len(order); i++ {
		order = append(order, children[order[i]]...)
	}
	err := syscall.Kill(pid, syscall.SIGKILL)
	for _, p := range order[1:] {
		syscall.Kill(p, syscall.SIGKILL)
	}
	return err
}
