package runtime

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ociboot/ociboot/internal/bootcfg"
)

func TestSystemdDetection(t *testing.T) {
	for _, tc := range []struct {
		systemd string
		args    []string
		want    bool
	}{
		{"", []string{"/sbin/init"}, true},
		{"true", []string{"/usr/sbin/init"}, true},
		{"", []string{"/usr/local/sbin/init"}, true},
		{"", []string{"/lib/systemd/systemd", "--log-level=debug"}, true},
		{"", []string{"/usr/lib/systemd/systemd"}, true},
		{"", []string{"systemd"}, true},
		{"", []string{"/bin/sh", "-c", "/sbin/init"}, true},
		{"", []string{"/bin/init"}, false},
		{"", []string{"/bin/sh", "-c", "exec /sbin/init"}, false},
		{"false", []string{"/sbin/init"}, false},
		{"always", []string{"/bin/sh"}, true},
	} {
		if got := Systemd(bootcfg.Container{Systemd: tc.systemd}, tc.args); got != tc.want {
			t.Errorf("Systemd(--systemd=%q, %q) = %v, want %v", tc.systemd, tc.args, got, tc.want)
		}
	}
}

func TestStopSignal(t *testing.T) {
	init := v1.Config{Cmd: []string{"/sbin/init"}}
	for _, tc := range []struct {
		cfg  v1.Config
		c    bootcfg.Container
		want int
	}{
		{v1.Config{Cmd: []string{"sh"}}, bootcfg.Container{}, 15},
		{init, bootcfg.Container{}, SystemdStopSignal},
		{init, bootcfg.Container{Systemd: "false"}, 15},
		{v1.Config{Cmd: []string{"/sbin/init"}, StopSignal: "SIGWINCH"}, bootcfg.Container{}, 28},
		{v1.Config{Cmd: []string{"/sbin/init"}, StopSignal: "SIGWINCH"}, bootcfg.Container{StopSignal: 10}, 10},
	} {
		if got, err := StopSignal(tc.cfg, tc.c); err != nil || got != tc.want {
			t.Errorf("StopSignal(%+v, %+v) = %d, %v; want %d", tc.cfg, tc.c, got, err, tc.want)
		}
	}
	if _, err := StopSignal(v1.Config{StopSignal: "SIGNOPE"}, bootcfg.Container{Image: "x"}); err == nil || !strings.Contains(err.Error(), "the STOPSIGNAL of image x") {
		t.Errorf("a bad STOPSIGNAL: %v, want an error naming the image", err)
	}
}

// TestSpecSystemdMode checks what systemd mode adds to the spec, and
// that the machine ID is written only where the image has none.
func TestSpecSystemdMode(t *testing.T) {
	rootfs := withPasswd(t)
	img := &v1.ConfigFile{Config: v1.Config{Cmd: []string{"/lib/systemd/systemd"}}}
	c := bootcfg.Container{Image: "debian", Mounts: []bootcfg.Mount{{Type: "tmpfs", Target: "/tmp"}, {Type: "bind", Source: t.TempDir(), Target: "/run/data"}}}
	s, err := Spec(img, c, Options{RootfsDir: rootfs, Hostname: "h", ConsolePath: "/dev/null"})
	if err != nil {
		t.Fatal(err)
	}
	var uuid string
	for _, kv := range s.Process.Env {
		if v, ok := strings.CutPrefix(kv, "container_uuid="); ok {
			uuid = v
		}
	}
	if len(uuid) != 32 {
		t.Fatalf("container_uuid %q, want 32 hex digits", uuid)
	}
	if id, err := os.ReadFile(filepath.Join(rootfs, "etc/machine-id")); err != nil || string(id) != uuid+"\n" {
		t.Errorf("/etc/machine-id %q, %v; want the container_uuid", id, err)
	}
	mounts := map[string][]string{}
	for _, m := range s.Mounts {
		mounts[m.Destination] = append(m.Options, m.Type, m.Source)
	}
	for _, dir := range []string{"/run", "/run/lock", "/var/log/journal"} {
		if !slices.Contains(mounts[dir], "tmpcopyup") {
			t.Errorf("%s: %q, want a tmpfs holding the image's files", dir, mounts[dir])
		}
	}
	if slices.Contains(mounts["/tmp"], "tmpcopyup") {
		t.Errorf("/tmp: %q: the container's own --tmpfs was replaced", mounts["/tmp"])
	}
	if o := mounts["/sys/fs/cgroup"]; !slices.Contains(o, "rw") || slices.Contains(o, "ro") {
		t.Errorf("/sys/fs/cgroup: %q, want it writable", o)
	}
	run := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/run" })
	data := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/run/data" })
	if run < 0 || data < run {
		t.Errorf("/run is mount %d, /run/data %d: the tmpfs would hide the volume", run, data)
	}
	if o := mounts["/dev/console"]; !slices.Contains(o, "/dev/null") {
		t.Errorf("/dev/console: %q, want the machine's console bound", o)
	}

	// An image with a machine ID keeps it.
	if err := os.WriteFile(filepath.Join(rootfs, "etc/machine-id"), []byte("0123456789abcdef0123456789abcdef\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := Spec(img, c, Options{RootfsDir: rootfs, Hostname: "h"}); err != nil {
		t.Fatal(err)
	}
	if id, _ := os.ReadFile(filepath.Join(rootfs, "etc/machine-id")); string(id) != "0123456789abcdef0123456789abcdef\n" {
		t.Errorf("/etc/machine-id became %q: the image's was replaced", id)
	}
	// --systemd=false: none of it.
	c.Systemd = "false"
	s, err = Spec(img, c, Options{RootfsDir: rootfs, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range s.Mounts {
		if m.Destination == "/run" || m.Destination == "/dev/console" {
			t.Errorf("--systemd=false: %s mounted", m.Destination)
		}
	}
}

// A privileged container in systemd mode gets the machine's devices but
// its virtual consoles; --shm-size-systemd sizes the tmpfs.
func TestSystemdPrivileged(t *testing.T) {
	dev := t.TempDir()
	for name, rdev := range map[string]uint64{"tty1": unix.Mkdev(4, 1), "tty": unix.Mkdev(5, 0), "ttyS0": unix.Mkdev(4, 64), "null": unix.Mkdev(1, 3)} {
		if err := unix.Mknod(filepath.Join(dev, name), unix.S_IFCHR|0o620, int(rdev)); err != nil {
			t.Fatalf("mknod (the test runs as root): %v", err)
		}
	}
	c := bootcfg.Container{Image: "debian", Dialect: bootcfg.DialectB2C, ShmSizeSystemd: 1 << 20}
	s, err := Spec(&v1.ConfigFile{Config: v1.Config{Cmd: []string{"/sbin/init"}}}, c, Options{RootfsDir: withPasswd(t), Hostname: "h", DevDir: dev})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, d := range s.Linux.Devices {
		paths = append(paths, d.Path)
	}
	slices.Sort(paths)
	if want := []string{"/dev/null", "/dev/tty", "/dev/ttyS0"}; !slices.Equal(paths, want) {
		t.Errorf("devices %q, want %q: no virtual console", paths, want)
	}
	for _, m := range s.Mounts {
		if m.Destination == "/run" && !slices.Contains(m.Options, "size=1048576") {
			t.Errorf("/run: %q, want size=1048576", m.Options)
		}
	}
}
