package runtime

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ociboot/ociboot/internal/bootcfg"
)

const (
	testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment

daemon:x:2:2:daemon:/sbin:/sbin/nologin
broken line
app:x:1000:1000:App:/home/app:/bin/sh
`
	testGroup = `root:x:0:root
wheel:x:10:root,app
audio:x:29:app
app:x:1000:
staff:x:50:
`
)

// testRootfs makes a rootfs directory holding the given files.
func testRootfs(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func withPasswd(t *testing.T) string {
	return testRootfs(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
}

func TestArgsOverrideMatrix(t *testing.T) {
	full := v1.Config{Entrypoint: []string{"/ep", "-x"}, Cmd: []string{"default", "cmd"}}
	cmdOnly := v1.Config{Cmd: []string{"/bin/sh"}}
	epOnly := v1.Config{Entrypoint: []string{"/ep"}}
	tests := []struct {
		name       string
		image      v1.Config
		entrypoint []string
		command    []string
		want       []string
	}{
		{"image defaults", full, nil, nil, []string{"/ep", "-x", "default", "cmd"}},
		{"command replaces Cmd", full, nil, []string{"run"}, []string{"/ep", "-x", "run"}},
		{"entrypoint drops Cmd", full, []string{"/other"}, nil, []string{"/other"}},
		{"entrypoint and command", full, []string{"/other"}, []string{"a", "b"}, []string{"/other", "a", "b"}},
		{"empty entrypoint runs the command alone", full, []string{}, []string{"/bin/true"}, []string{"/bin/true"}},
		{`entrypoint [""] counts as none`, full, []string{""}, []string{"/bin/true"}, []string{"/bin/true"}},
		{"Cmd only", cmdOnly, nil, nil, []string{"/bin/sh"}},
		{"Cmd only, command", cmdOnly, nil, []string{"/bin/ls", "/"}, []string{"/bin/ls", "/"}},
		{"Entrypoint only", epOnly, nil, nil, []string{"/ep"}},
		{"Entrypoint only, command", epOnly, nil, []string{"x"}, []string{"/ep", "x"}},
		{"empty image, command", v1.Config{}, nil, []string{"/bin/sh"}, []string{"/bin/sh"}},
		{"empty image, entrypoint", v1.Config{}, []string{"/ep"}, nil, []string{"/ep"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := bootcfg.Container{Image: "example/app", Entrypoint: tt.entrypoint, Command: tt.command}
			s, err := Spec(&v1.ConfigFile{Config: tt.image}, c, Options{RootfsDir: testRootfs(t, nil), Hostname: "h", DevDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Process.Args, tt.want) {
				t.Errorf("args = %q, want %q", s.Process.Args, tt.want)
			}
		})
	}
}

func TestNothingToRun(t *testing.T) {
	for _, c := range []bootcfg.Container{
		{Image: "example/empty"},
		{Image: "example/empty", Entrypoint: []string{}},
		{Image: "example/empty", Entrypoint: []string{""}},
	} {
		_, err := Spec(&v1.ConfigFile{Config: v1.Config{Cmd: []string{"ignored-when-entrypoint-set"}}}, c, Options{RootfsDir: testRootfs(t, nil)})
		if c.Entrypoint == nil {
			_, err = Spec(nil, c, Options{RootfsDir: testRootfs(t, nil)})
		}
		if err == nil || !strings.Contains(err.Error(), "image example/empty has no Entrypoint or Cmd") {
			t.Errorf("entrypoint %q: error %v, want one naming the image", c.Entrypoint, err)
		}
	}
}

func TestEnv(t *testing.T) {
	img := &v1.ConfigFile{Config: v1.Config{
		Cmd: []string{"sh"},
		Env: []string{"PATH=/opt/bin:/bin", "A=image", "B=image", "EMPTY="},
	}}
	c := bootcfg.Container{Image: "x", Env: []string{"A=user", "D=user", "B=user=2"}}
	o := Options{RootfsDir: withPasswd(t), Hostname: "ci-box", Env: []string{"B=ociboot", "C=ociboot"}, DevDir: t.TempDir()}
	s, err := Spec(img, c, o)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/opt/bin:/bin", "A=user", "B=user=2", "EMPTY=", "C=ociboot", "D=user", "HOSTNAME=ci-box", "HOME=/root", "container=ociboot"}
	if !reflect.DeepEqual(s.Process.Env, want) {
		t.Errorf("env = %q\nwant  %q", s.Process.Env, want)
	}

	c = bootcfg.Container{Image: "x", Env: []string{"HOME=/srv", "HOSTNAME=mine"}, Hostname: "named"}
	s, err = Spec(&v1.ConfigFile{Config: v1.Config{Cmd: []string{"sh"}}}, c, o)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"B=ociboot", "C=ociboot", "HOME=/srv", "HOSTNAME=mine", "PATH=" + DefaultPath, "container=ociboot"}
	if !reflect.DeepEqual(s.Process.Env, want) {
		t.Errorf("env = %q\nwant  %q", s.Process.Env, want)
	}
	if s.Hostname != "named" {
		t.Errorf("hostname = %q, want the container's --hostname", s.Hostname)
	}
}

func TestUser(t *testing.T) {
	rootfs := withPasswd(t)
	tests := []struct {
		user        string
		imageUser   string
		uid, gid    uint32
		groups      []uint32
		home        string
		wantErr     string
		rootfsNoEtc bool
	}{
		{user: "", uid: 0, gid: 0, groups: []uint32{0, 10}, home: "/root"},
		{imageUser: "app", uid: 1000, gid: 1000, groups: []uint32{10, 29}, home: "/home/app"},
		{user: "app", imageUser: "daemon", uid: 1000, gid: 1000, groups: []uint32{10, 29}, home: "/home/app"},
		{user: "1000", uid: 1000, gid: 1000, groups: []uint32{10, 29}, home: "/home/app"},
		{user: "daemon", uid: 2, gid: 2, home: "/sbin"},
		{user: "app:staff", uid: 1000, gid: 50, home: "/home/app"},
		{user: "1000:50", uid: 1000, gid: 50, home: "/home/app"},
		{user: "app:4242", uid: 1000, gid: 4242, home: "/home/app"},
		{user: "4242", uid: 4242, gid: 0, home: "/"},
		{user: "4242:wheel", uid: 4242, gid: 10, home: "/"},
		{user: "nobody", wantErr: `user "nobody" of image example/app: no user "nobody" in the image's /etc/passwd`},
		{user: "app:nogroup", wantErr: `no group "nogroup" in the image's /etc/group`},
		{user: "app", rootfsNoEtc: true, wantErr: `no user "app": the image has no /etc/passwd`},
		{user: "0:wheel", rootfsNoEtc: true, wantErr: `no group "wheel": the image has no /etc/group`},
		{user: "1000:50", rootfsNoEtc: true, uid: 1000, gid: 50, home: "/"},
		{user: "", rootfsNoEtc: true, uid: 0, gid: 0, home: "/"},
	}
	for _, tt := range tests {
		dir := rootfs
		if tt.rootfsNoEtc {
			dir = testRootfs(t, nil)
		}
		img := &v1.ConfigFile{Config: v1.Config{Cmd: []string{"sh"}, User: tt.imageUser}}
		s, err := Spec(img, bootcfg.Container{Image: "example/app", User: tt.user}, Options{RootfsDir: dir, Hostname: "h", DevDir: t.TempDir()})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("user %q: error %v, want one containing %q", tt.user, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("user %q: %v", tt.user, err)
			continue
		}
		u := s.Process.User
		if u.UID != tt.uid || u.GID != tt.gid || !reflect.DeepEqual(u.AdditionalGids, tt.groups) {
			t.Errorf("user %q (image %q) = %d:%d %v, want %d:%d %v", tt.user, tt.imageUser, u.UID, u.GID, u.AdditionalGids, tt.uid, tt.gid, tt.groups)
		}
		if !slices.Contains(s.Process.Env, "HOME="+tt.home) {
			t.Errorf("user %q: env %q lacks HOME=%s", tt.user, s.Process.Env, tt.home)
		}
	}
}

func TestWorkdir(t *testing.T) {
	rootfs := withPasswd(t)
	img := &v1.ConfigFile{Config: v1.Config{Cmd: []string{"sh"}, WorkingDir: "/srv/app"}}
	o := Options{RootfsDir: rootfs, Hostname: "h", DevDir: t.TempDir()}

	s, err := Spec(img, bootcfg.Container{Image: "x", User: "app"}, o)
	if err != nil {
		t.Fatal(err)
	}
	if s.Process.Cwd != "/srv/app" {
		t.Errorf("cwd = %q, want the image's /srv/app", s.Process.Cwd)
	}
	for _, d := range []string{"srv", "srv/app"} {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(rootfs, d), &st); err != nil {
			t.Fatalf("workdir not created: %v", err)
		}
		if st.Uid != 1000 || st.Gid != 1000 || st.Mode&0o777 != 0o755 {
			t.Errorf("/%s: owner %d:%d mode %o, want 1000:1000 755", d, st.Uid, st.Gid, st.Mode&0o777)
		}
	}

	s, err = Spec(img, bootcfg.Container{Image: "x", Workdir: "/etc"}, o)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if s.Process.Cwd != "/etc" || unix.Stat(filepath.Join(rootfs, "etc"), &st) != nil || st.Uid != uint32(os.Getuid()) {
		t.Errorf("cwd = %q; an existing /etc must be kept as it is", s.Process.Cwd)
	}

	s, err = Spec(&v1.ConfigFile{Config: v1.Config{Cmd: []string{"sh"}}}, bootcfg.Container{Image: "x"}, o)
	if err != nil || s.Process.Cwd != "/" {
		t.Errorf("no workdir: cwd %v, %v; want /", s, err)
	}

	_, err = Spec(img, bootcfg.Container{Image: "x", Workdir: "/etc/passwd/sub"}, o)
	if err == nil || !strings.Contains(err.Error(), `working directory "/etc/passwd/sub" of image x`) {
		t.Errorf("workdir under a file: error %v", err)
	}
	_, err = Spec(img, bootcfg.Container{Image: "x", Workdir: "/etc/passwd"}, o)
	if err == nil || !strings.Contains(err.Error(), "/etc/passwd exists in the rootfs and is not a directory") {
		t.Errorf("workdir on a file: error %v", err)
	}
}

func TestRootfsMustBeAbsolute(t *testing.T) {
	_, err := Spec(nil, bootcfg.Container{Image: "x", Command: []string{"sh"}}, Options{RootfsDir: "rootfs"})
	if err == nil || !strings.Contains(err.Error(), `rootfs directory "rootfs": expected an absolute path`) {
		t.Errorf("error %v", err)
	}
}

// TestSpecJSON checks the shape of config.json as the runtime reads it.
func TestSpecJSON(t *testing.T) {
	etc := testRootfs(t, map[string]string{"resolv.conf": "nameserver 10.0.2.3\n"})
	s, err := Spec(&v1.ConfigFile{Config: v1.Config{Cmd: []string{"sh"}}}, bootcfg.Container{Image: "x", Privileged: true},
		Options{RootfsDir: withPasswd(t), Hostname: "h", HostEtcDir: etc, DevDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	bundle := t.TempDir()
	if err := WriteBundle(bundle, s); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OCIVersion string `json:"ociVersion"`
		Hostname   string
		Root       struct{ Path string }
		Process    struct {
			Terminal     *bool
			Cwd          string
			Capabilities map[string][]string
		}
		Mounts []struct{ Destination, Type, Source string }
		Linux  map[string]json.RawMessage
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OCIVersion != "1.0.2" || doc.Hostname != "h" || doc.Root.Path != s.Root.Path || doc.Process.Cwd != "/" {
		t.Errorf("ociVersion %q hostname %q root %q cwd %q", doc.OCIVersion, doc.Hostname, doc.Root.Path, doc.Process.Cwd)
	}
	if doc.Process.Terminal != nil {
		t.Errorf("terminal = %v, want false (omitted)", *doc.Process.Terminal)
	}
	wantCaps := hostBoundingSet(t)
	for _, set := range []string{"bounding", "effective", "permitted"} {
		if got := doc.Process.Capabilities[set]; !reflect.DeepEqual(got, wantCaps) {
			t.Errorf("%s capabilities %q, want the host's bounding set %q", set, got, wantCaps)
		}
	}
	var namespaces []struct{ Type, Path string }
	if err := json.Unmarshal(doc.Linux["namespaces"], &namespaces); err != nil {
		t.Fatal(err)
	}
	var nsTypes []string
	for _, ns := range namespaces {
		nsTypes = append(nsTypes, ns.Type)
	}
	if want := []string{"mount", "pid", "ipc", "uts", "cgroup"}; !reflect.DeepEqual(nsTypes, want) {
		t.Errorf("namespaces %q, want %q (no network, no user)", nsTypes, want)
	}
	for _, key := range []string{"seccomp", "maskedPaths", "readonlyPaths", "uidMappings", "gidMappings"} {
		if _, ok := doc.Linux[key]; ok {
			t.Errorf("linux.%s is set: %s", key, doc.Linux[key])
		}
	}
	var resources bytes.Buffer
	if err := json.Compact(&resources, doc.Linux["resources"]); err != nil || resources.String() != `{"devices":[{"allow":true,"access":"rwm"}]}` {
		t.Errorf("linux.resources = %s (%v), want every device allowed", doc.Linux["resources"], err)
	}
	var mounts []string
	for _, m := range doc.Mounts {
		mounts = append(mounts, m.Destination+" "+m.Type+" "+m.Source)
	}
	// Parents first.
	want := []string{
		"/proc proc proc", "/dev tmpfs tmpfs", "/sys sysfs sysfs", "/dev/pts devpts devpts", "/dev/shm tmpfs shm",
		"/dev/mqueue mqueue mqueue", "/etc/resolv.conf bind " + filepath.Join(etc, "resolv.conf"), "/sys/fs/cgroup cgroup cgroup",
	}
	if !reflect.DeepEqual(mounts, want) {
		t.Errorf("mounts\n %q\nwant %q", mounts, want)
	}
}

func TestCapabilitiesOfOtherUsers(t *testing.T) {
	s, err := Spec(&v1.ConfigFile{Config: v1.Config{Cmd: []string{"sh"}, User: "1000"}}, bootcfg.Container{Image: "x", Privileged: true},
		Options{RootfsDir: testRootfs(t, nil), Hostname: "h", DevDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Process.Capabilities
	if !reflect.DeepEqual(c.Bounding, hostBoundingSet(t)) || len(c.Effective)+len(c.Permitted)+len(c.Inheritable)+len(c.Ambient) != 0 {
		t.Errorf("capabilities of uid 1000: %+v, want a full bounding set only", c)
	}
}

func TestAllCapabilities(t *testing.T) {
	all := allCapabilities()
	if len(all) != unix.CAP_LAST_CAP+1 {
		t.Errorf("%d capabilities, the kernel headers know %d", len(all), unix.CAP_LAST_CAP+1)
	}
	for name, n := range map[string]int{
		"CAP_CHOWN": unix.CAP_CHOWN, "CAP_NET_ADMIN": unix.CAP_NET_ADMIN, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN,
		"CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "CAP_MKNOD": unix.CAP_MKNOD, "CAP_AUDIT_READ": unix.CAP_AUDIT_READ,
		"CAP_BPF": unix.CAP_BPF, "CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
	} {
		if n >= len(all) || all[n] != name {
			t.Errorf("%s is not at index %d", name, n)
		}
	}
}

// hostBoundingSet decodes CapBnd of /proc/self/status into capability
// names: a privileged container gets exactly these.
func hostBoundingSet(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "CapBnd:\t")
	if !ok {
		t.Fatal("no CapBnd in /proc/self/status")
	}
	mask, err := strconv.ParseUint(strings.Fields(rest)[0], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i, name := range allCapabilities() {
		if mask&(1<<i) != 0 {
			names = append(names, name)
		}
	}
	return names
}

func TestHostDevices(t *testing.T) {
	dev := t.TempDir()
	mknod := func(name string, mode uint32, major, minor uint32) {
		t.Helper()
		p := filepath.Join(dev, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mknod(p, mode, int(unix.Mkdev(major, minor))); err != nil {
			t.Fatalf("mknod %s (the test runs as root): %v", p, err)
		}
		if err := os.Chmod(p, os.FileMode(mode&0o777)); err != nil {
			t.Fatal(err)
		}
	}
	mknod("null", unix.S_IFCHR|0o666, 1, 3)
	mknod("loop0", unix.S_IFBLK|0o660, 7, 0)
	mknod("dri/card0", unix.S_IFCHR|0o660, 226, 0)
	mknod("console", unix.S_IFCHR|0o600, 5, 1)
	mknod("ptmx", unix.S_IFCHR|0o666, 5, 2)
	mknod("pts/0", unix.S_IFCHR|0o620, 136, 0)
	mknod("shm/x", unix.S_IFCHR|0o620, 1, 3)
	if err := os.Symlink("null", filepath.Join(dev, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dev, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dev, "loop0"), 0, 6); err != nil {
		t.Fatal(err)
	}

	got, err := hostDevices(dev)
	if err != nil {
		t.Fatal(err)
	}
	var desc []string
	for _, d := range got {
		desc = append(desc, strings.Join([]string{d.Path, d.Type, itoa(d.Major), itoa(d.Minor), d.FileMode.String(), itoa(int64(*d.UID)), itoa(int64(*d.GID))}, " "))
	}
	want := []string{
		"/dev/dri/card0 c 226 0 -rw-rw---- 0 0",
		"/dev/loop0 b 7 0 -rw-rw---- 0 6",
		"/dev/null c 1 3 -rw-rw-rw- 0 0",
	}
	if !reflect.DeepEqual(desc, want) {
		t.Errorf("devices\n %q\nwant %q", desc, want)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestWriteBundleReplaces(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "bundle")
	for _, host := range []string{"first", "second"} {
		if err := WriteBundle(dir, &specs.Spec{Version: specs.Version, Hostname: host}); err != nil {
			t.Fatal(err)
		}
		var s specs.Spec
		data, err := os.ReadFile(filepath.Join(dir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &s); err != nil || s.Hostname != host {
			t.Errorf("config.json holds hostname %q (%v), want %q", s.Hostname, err, host)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("bundle holds %v (%v), want config.json alone", entries, err)
	}
	if err := WriteBundle(filepath.Join(dir, "config.json"), &specs.Spec{}); err == nil || !strings.Contains(err.Error(), "bundle directory") {
		t.Errorf("bundle in a file: error %v", err)
	}
}

// TestImageLinksResolveInside checks that the image's absolute links mean
// what they mean once the image is "/": /etc/passwd linked to
// /usr/share/base/passwd, and a working directory below /srv linked to
// /data, resolve inside the rootfs, never on the host.
func TestImageLinksResolveInside(t *testing.T) {
	rootfs := testRootfs(t, map[string]string{"usr/share/base/passwd": testPasswd, "etc/group": testGroup})
	if err := os.Symlink("/usr/share/base/passwd", filepath.Join(rootfs, "etc/passwd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(rootfs, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/data", filepath.Join(rootfs, "srv")); err != nil {
		t.Fatal(err)
	}
	img := &v1.ConfigFile{Config: v1.Config{Cmd: []string{"sh"}, WorkingDir: "/srv/app"}}
	s, err := Spec(img, bootcfg.Container{Image: "x", User: "app"}, Options{RootfsDir: rootfs, Hostname: "h", DevDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Process.User; u.UID != 1000 || u.GID != 1000 {
		t.Errorf("user app through the linked /etc/passwd: %d:%d, want 1000:1000", u.UID, u.GID)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(rootfs, "data/app"), &st); err != nil || st.Uid != 1000 {
		t.Errorf("/srv/app through /srv -> /data: %v, owner %d; want the rootfs's /data/app, owned by app", err, st.Uid)
	}
	if _, err := os.Stat("/data/app"); err == nil {
		t.Error("/data/app was made on the host")
	}
}

// TestUsesHostDevices checks which containers read the machine's device
// nodes: privileged ones (boot2container's all are), --device, and a
// bind mount of a node under /dev; not a bind of /dev itself, which
// shows nodes as they come.
func TestUsesHostDevices(t *testing.T) {
	for spec, want := range map[string]bool{
		`busybox true`:                               false,
		`-v /srv/data:/data busybox true`:            false,
		`-v /dev:/dev busybox true`:                  false,
		`--tmpfs /dev/x busybox true`:                false,
		`--privileged busybox true`:                  true,
		`--device /dev/sda busybox true`:             true,
		`-v /dev/sda:/dev/xvda busybox true`:         true,
		`-v /dev/disk/by-label/X:/x busybox true`:    true,
		`--device-read-bps /dev/vda:1m busybox true`: true,
		`--blkio-weight 300 busybox true`:            false,
	} {
		c, err := bootcfg.ParseContainer(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := UsesHostDevices(c); got != want {
			t.Errorf("UsesHostDevices(%s) = %v, want %v", spec, got, want)
		}
	}
	if !UsesHostDevices(bootcfg.Container{Image: "busybox", Dialect: bootcfg.DialectB2C}) {
		t.Error("a boot2container container does not use the host's devices")
	}
}

// TestSpecPodmanOptions checks the spec fields of the options whose
// effect needs the VM's cgroup controllers to be seen (the e2e tests
// look from inside), and those that only write the spec.
func TestSpecPodmanOptions(t *testing.T) {
	labels := filepath.Join(t.TempDir(), "labels")
	if err := os.WriteFile(labels, []byte("# lab\nrack=4\n\nrow=b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := bootcfg.ParseContainer("-m 512m --memory-reservation 256m -c 512 --cpus 1.5 --cpuset-cpus 0-1 --pids-limit 0 --cgroup-conf memory.high=400m " +
		"--cgroup-parent /ci -l owner=ci --label-file " + labels + " --annotation io.x=y --image-volume tmpfs --read-only --read-only-tmpfs=false " +
		"--unsetenv-all -e KEPT=1 --uts host --cgroupns host --security-opt unmask=ALL busybox")
	if err != nil {
		t.Fatal(err)
	}
	img := &v1.ConfigFile{Config: v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin", "IMG=1"}, Volumes: map[string]struct{}{"/data": {}, "/cache/": {}}}}
	s, err := Spec(img, c, Options{RootfsDir: withPasswd(t), ID: "job-1", Env: []string{"B2C_PIPELINE_STATUS=0"}, Hostname: "box"})
	if err != nil {
		t.Fatal(err)
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != 512<<20 || *r.Memory.Swap != 1<<30 || *r.Memory.Reservation != 256<<20 {
		t.Errorf("memory %+v: want 512m, swap 1g (twice, podman's default), reservation 256m", r.Memory)
	}
	if *r.CPU.Shares != 512 || *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 || r.CPU.Cpus != "0-1" {
		t.Errorf("cpu %+v", r.CPU)
	}
	if *r.Pids.Limit != -1 || r.Unified["memory.high"] != "400m" {
		t.Errorf("pids %+v, unified %v: want no limit (-1) and memory.high", r.Pids, r.Unified)
	}
	if s.Linux.CgroupsPath != "/ci/job-1" {
		t.Errorf("cgroups path %q, want /ci/job-1", s.Linux.CgroupsPath)
	}
	if want := map[string]string{"owner": "ci", "rack": "4", "row": "b", "io.x": "y"}; !reflect.DeepEqual(s.Annotations, want) {
		t.Errorf("annotations %v, want %v", s.Annotations, want)
	}
	var tmpfs []string
	for _, m := range s.Mounts {
		if m.Type == "tmpfs" && slices.Contains(m.Options, "tmpcopyup") {
			tmpfs = append(tmpfs, m.Destination)
		}
	}
	if want := []string{"/cache", "/data"}; !reflect.DeepEqual(tmpfs, want) || !s.Root.Readonly {
		t.Errorf("tmpfs with the image's files on %q, want %q (and no /run, /tmp: --read-only-tmpfs=false); read-only root %v", tmpfs, want, s.Root.Readonly)
	}
	if want := []string{"KEPT=1"}; !reflect.DeepEqual(s.Process.Env, want) {
		t.Errorf("env %q, want %q: --unsetenv-all leaves what the options set", s.Process.Env, want)
	}
	if s.Hostname != "" || len(s.Linux.MaskedPaths)+len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("hostname %q (want none: --uts host), masked %q, read-only %q (want none: unmask=ALL)", s.Hostname, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.UTSNamespace || ns.Type == specs.CgroupNamespace {
			t.Errorf("namespace %s, which the options share with the machine", ns.Type)
		}
	}
}
