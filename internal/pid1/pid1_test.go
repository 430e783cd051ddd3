package pid1

import (
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestReaperExitCodes(t *testing.T) {
	r := NewReaper()
	defer r.Stop()
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"kill -KILL $$", 128 + 9},
	} {
		code, err := r.Run(exec.Command("/bin/sh", "-c", tc.script))
		if err != nil {
			t.Fatalf("%q: %v", tc.script, err)
		}
		if code != tc.want {
			t.Errorf("%q: exit status %d, want %d", tc.script, code, tc.want)
		}
	}
	if _, err := r.Run(exec.Command("/nonexistent/binary")); err == nil {
		t.Error("starting a missing binary: no error")
	}
}

func TestReaperCollectsOrphans(t *testing.T) {
	// As a subreaper, orphans come back to this process as they would to
	// PID 1.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	r := NewReaper()
	defer r.Stop()
	// The shell leaves a grandchild that outlives it.
	code, err := r.Run(exec.Command("/bin/sh", "-c", "sleep 0.2 & exit 5"))
	if err != nil || code != 5 {
		t.Fatalf("Run: code %d, err %v; want 5, nil", code, err)
	}
	if !hasChildren() {
		t.Fatal("the orphan is not our child: the subreaper setting did not work")
	}
	deadline := time.Now().Add(time.Minute)
	for hasChildren() {
		if time.Now().After(deadline) {
			t.Fatal("the orphan was not reaped within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMoveTree(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "a/b"), 0o750))
	must(os.WriteFile(filepath.Join(src, "a/b/file"), []byte("content"), 0o640))
	must(os.WriteFile(filepath.Join(src, "suid"), []byte("x"), 0o755))
	must(unix.Chmod(filepath.Join(src, "suid"), 0o4755))
	must(os.Symlink("a/b/file", filepath.Join(src, "link")))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o600))
	must(os.Chown(filepath.Join(src, "a/b/file"), 1234, 5678))

	must(moveTree(src, dst))

	data, err := os.ReadFile(filepath.Join(dst, "a/b/file"))
	if err != nil || string(data) != "content" {
		t.Errorf("a/b/file: %q, %v", data, err)
	}
	var st unix.Stat_t
	must(unix.Lstat(filepath.Join(dst, "a/b/file"), &st))
	if st.Uid != 1234 || st.Gid != 5678 || st.Mode&0o7777 != 0o640 {
		t.Errorf("a/b/file: uid %d gid %d mode %o, want 1234 5678 640", st.Uid, st.Gid, st.Mode&0o7777)
	}
	must(unix.Lstat(filepath.Join(dst, "a"), &st))
	if st.Mode&0o7777 != 0o750 {
		t.Errorf("a: mode %o, want 750", st.Mode&0o7777)
	}
	must(unix.Lstat(filepath.Join(dst, "suid"), &st))
	if st.Mode&0o7777 != 0o4755 {
		t.Errorf("suid: mode %o, want 4755", st.Mode&0o7777)
	}
	if l, err := os.Readlink(filepath.Join(dst, "link")); err != nil || l != "a/b/file" {
		t.Errorf("link: %q, %v", l, err)
	}
	must(unix.Lstat(filepath.Join(dst, "fifo"), &st))
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("fifo: type %o, want fifo", st.Mode&unix.S_IFMT)
	}
	left, err := os.ReadDir(src)
	must(err)
	if len(left) != 0 {
		t.Errorf("source still holds %d entries after the move", len(left))
	}
}

func TestRootMoved(t *testing.T) {
	if RootMoved([]string{"PATH=/bin"}) {
		t.Error("RootMoved without the marker")
	}
	if !RootMoved([]string{"PATH=/bin", movedEnv}) {
		t.Error("not RootMoved with the marker")
	}
}

func TestRequests(t *testing.T) {
	reqs := Requests()
	defer signal.Reset(unix.SIGTERM, unix.SIGINT)
	for _, tc := range []struct {
		sig  unix.Signal
		want Action
	}{
		{unix.SIGTERM, PowerOff},
		{unix.SIGINT, Reboot}, // what the kernel sends on ctrl-alt-del
	} {
		if err := unix.Kill(os.Getpid(), tc.sig); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-reqs:
			if got != tc.want {
				t.Errorf("%v: requested %v, want %v", tc.sig, got, tc.want)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%v: no request within a minute", tc.sig)
		}
	}
}

func TestFreeEarlyMicrocode(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "kernel/x86/microcode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, size := range map[string]int{"GenuineIntel.bin": 30, "AuthenticAMD.bin": 7} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "init"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := FreeEarlyMicrocode(root, "/kernel/x86/microcode")
	want := []EarlyFile{{"AuthenticAMD.bin", 7}, {"GenuineIntel.bin", 30}}
	if err != nil || !slices.Equal(files, want) {
		t.Errorf("FreeEarlyMicrocode = %v, %v; want %v", files, err, want)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 || entries[0].Name() != "init" {
		t.Errorf("the root holds %v after, want init alone", entries)
	}
	if files, err := FreeEarlyMicrocode(root, "/kernel/x86/microcode"); files != nil || err != nil {
		t.Errorf("without microcode: %v, %v", files, err)
	}
}
