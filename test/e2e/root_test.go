package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/rootfstest"
	"github.com/ociboot/ociboot/internal/vm"
)

// rootInit is the busybox image's /sbin/init in the switch-root tests: it
// reports what it finds, one marker per fact, and powers off.
const rootInit = `#!/bin/sh
echo "ROOT-INIT-RUNNING as pid $$ with args [$*]"
[ "$$" = 1 ] && echo "ROOT-INIT-IS-PID-1"
kver=$(uname -r)
[ -d /lib/modules/$kver ] && echo "ROOT-HAS-MODULES $(find /lib/modules/$kver -name '*.ko*' | wc -l) modules"
[ -e /proc/self/stat ] && echo "ROOT-HAS-PROC"
[ -c /dev/null ] && echo "ROOT-HAS-DEV"
echo "ROOT-HOSTNAME $(hostname)"
[ -f /run/ociboot/network.json ] && echo "ROOT-NETWORK-JSON $(tr -d ' \n' < /run/ociboot/network.json)"
[ -f /etc/resolv.conf ] && echo "ROOT-RESOLV $(grep nameserver /etc/resolv.conf | tr '\n' ' ')"
[ -f /etc/hostname ] && echo "ROOT-ETC-HOSTNAME $(cat /etc/hostname)"
echo "ROOT-ADDRESSES $(ip -4 -o addr show | grep -v ' lo ' | tr -s ' ' | cut -d' ' -f2,4 | tr '\n' ' ')"
others=""
for p in /proc/[0-9]*; do
	c=$(tr '\0' ' ' < $p/cmdline 2>/dev/null)
	case "$c" in ""|"/bin/sh /sbin/"*|tr*) ;; *) others="$others ${p#/proc/}:$c" ;; esac
done
echo "ROOT-OTHER-PROCESSES [$others]"
echo "ROOT-MOUNTS $(cut -d' ' -f2 /proc/mounts | tr '\n' ' ')"
echo "ROOT-INIT-DONE"
poweroff -f
`

// rootLayer adds to the busybox image rootInit as /sbin/init, a second
// init that says it is another, and the applets they use.
func rootLayer(t *testing.T) v1.Layer {
	t.Helper()
	return registrytest.Layer(t,
		registrytest.Entry{Name: "sbin/", Typeflag: tar.TypeDir},
		registrytest.Entry{Name: "sbin/init", Mode: 0o755, Body: rootInit},
		registrytest.Entry{Name: "sbin/other-init", Mode: 0o755, Body: strings.Replace(rootInit, "ROOT-INIT-RUNNING", "ROOT-OTHER-INIT-RUNNING", 1)},
		registrytest.Entry{Name: "run/", Typeflag: tar.TypeDir},
		registrytest.Entry{Name: "bin/ip", Typeflag: tar.TypeSymlink, Linkname: "busybox"},
		registrytest.Entry{Name: "bin/find", Typeflag: tar.TypeSymlink, Linkname: "busybox"},
		registrytest.Entry{Name: "bin/tr", Typeflag: tar.TypeSymlink, Linkname: "busybox"},
		registrytest.Entry{Name: "bin/cut", Typeflag: tar.TypeSymlink, Linkname: "busybox"},
	)
}

// bootRoot boots cmdline, with the registry and ports forwarded, and
// returns the console. A switch-root boot reports no pipeline status: the
// image's init powers off.
func (f *fixture) bootRoot(t *testing.T, initramfs, cmdline string, ports ...int) (vm.Result, string) {
	t.Helper()
	return f.bootRootOn(t, initramfs, cmdline, machine{ports: ports})
}

// bootRootOn is bootRoot on a machine with more forwards or disks.
func (f *fixture) bootRootOn(t *testing.T, initramfs, cmdline string, m machine) (vm.Result, string) {
	t.Helper()
	var console bytes.Buffer
	res, err := vm.Run(context.Background(), vm.Config{
		Initramfs: initramfs,
		Cmdline:   fmt.Sprintf("ociboot.insecure_registry=%s:%d ociboot.poweroff_delay=0 %s", vm.GuestHost, f.reg.Port, cmdline),
		Forwards:  append([]int{f.reg.Port}, m.ports...),
		Disks:     m.disks,
		Timeout:   rootBootTimeout,
		Console:   &lockedWriter{w: &console},
	})
	t.Logf("console:\n%s", console.String())
	if err != nil && (!res.Started || res.ExitCode != 0) {
		t.Fatalf("vm.Run: %v (qemu exit status %d)", err, res.ExitCode)
	}
	return res, console.String()
}

// rootBootTimeout bounds a switch-root boot; a systemd image under TCG
// is slow.
const rootBootTimeout = 8 * time.Minute

// rootTests registers the switch-root subtests of TestBoot.
func (f *fixture) rootTests(t *testing.T) {
	img := registrytest.BusyboxImage(t, rootLayer(t))
	ref := guestRef(registrytest.Push(t, f.reg, "e2e/root-busybox:1", img))
	f.cacheRootTests(t, "e2e/root-busybox:1")
	f.treeDriverTest(t, "e2e/root-busybox:1")

	// The same tree as a gzip'd rootfs tarball, served over HTTP.
	var tgz bytes.Buffer
	zw := gzip.NewWriter(&tgz)
	rc := mutate.Extract(img)
	if _, err := io.Copy(zw, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rootfs.tar.gz"), tgz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	web := serveDir(t, dir)
	tarURL := fmt.Sprintf("http://%s:%d/rootfs.tar.gz", vm.GuestHost, web)
	sum := sha256.Sum256(tgz.Bytes())

	t.Run("root-busybox-oci", func(t *testing.T) {
		t.Parallel()
		res, console := f.bootRoot(t, f.initramfs, fmt.Sprintf(`ociboot.root=%s ociboot.hostname=rooty ociboot.iface=eth0,dhcp,nameserver=192.0.2.53 ociboot.init_args="one 'two words'"`, ref))
		inOrder(t, console,
			"ociboot: ==== root ====",
			"ociboot: root: unpacked in",
			"ociboot: root: starting /sbin/init one two words",
			"ROOT-INIT-RUNNING as pid 1 with args [one two words]",
			"ROOT-INIT-IS-PID-1",
			"ROOT-HAS-MODULES",
			"ROOT-HAS-PROC",
			"ROOT-HAS-DEV",
			"ROOT-HOSTNAME rooty",
			`ROOT-NETWORK-JSON {"hostname":"rooty","links":[{"name":"eth0"`,
			"ROOT-RESOLV nameserver 192.0.2.53",
			"ROOT-ETC-HOSTNAME rooty",
			"ROOT-ADDRESSES eth0 10.0.2.15/24",
			"ROOT-INIT-DONE")
		if !res.HandedOver || vm.ExitStatus(res, nil) != 0 {
			t.Errorf("hand-over seen %v, exit status %d; want true and 0 (the image's init powered off)", res.HandedOver, vm.ExitStatus(res, nil))
		}
		// Nothing of ociboot runs on: the init's shell (and the tr it
		// runs) are all there is.
		if line := lineWith(console, "ROOT-OTHER-PROCESSES"); line != "ROOT-OTHER-PROCESSES []" {
			t.Errorf("processes other than the image's init: %q", line)
		}
		if strings.Contains(lineWith(console, "ROOT-MOUNTS "), "/sysroot") {
			t.Errorf("the new root still shows ociboot's mount points: %q", lineWith(console, "ROOT-MOUNTS "))
		}
	})

	t.Run("root-busybox-tarball", func(t *testing.T) {
		t.Parallel()
		_, console := f.bootRoot(t, f.initramfs,
			fmt.Sprintf(`rd.container.rootfs=%s#sha256=%x init=/sbin/other-init ociboot.keep_network=0`, tarURL, sum), web)
		inOrder(t, console,
			// Its size unpacked, from the gzip trailer: a range request.
			"ociboot: root: rootfs tarball: ", " unpacked (as its gzip trailer says), into a tmpfs of ",
			"verified",
			"ociboot: root: starting /sbin/other-init",
			"ROOT-OTHER-INIT-RUNNING as pid 1",
			"ROOT-INIT-IS-PID-1",
			"ROOT-HAS-MODULES",
			"ROOT-INIT-DONE")
		if line := lineWith(console, "ROOT-ADDRESSES"); strings.TrimSpace(line) != "ROOT-ADDRESSES" {
			t.Errorf("keep_network=0 left addresses: %q", line)
		}
		for _, unwanted := range []string{"ROOT-INIT-RUNNING", "ROOT-NETWORK-JSON", "ROOT-ETC-HOSTNAME"} {
			if strings.Contains(console, unwanted) {
				t.Errorf("the console shows %s: %q", unwanted, lineWith(console, unwanted))
			}
		}
	})

	t.Run("root-size-too-small", func(t *testing.T) {
		t.Parallel()
		res, console := f.bootRoot(t, f.initramfs, fmt.Sprintf(`ociboot.root=%s ociboot.root_size=256K`, ref))
		inOrder(t, console,
			"cannot fit in the root's tmpfs of 256.0 KiB (ociboot.root_size=256K)",
			"raise ociboot.root_size=256K",
			"It's now safe to turn off your computer")
		if strings.Contains(console, "applied") || strings.Contains(console, "ROOT-INIT") {
			t.Error("the image was unpacked or booted although it cannot fit")
		}
		if !res.SafeSeen {
			t.Error("no clean power-off")
		}
	})

	t.Run("root-bad-pin", func(t *testing.T) {
		t.Parallel()
		bad := sha256.Sum256([]byte("not the tarball"))
		_, console := f.bootRoot(t, f.initramfs, fmt.Sprintf(`ociboot.root=%s#sha256=%x`, tarURL, bad), web)
		inOrder(t, console,
			"sha256 mismatch",
			"It's now safe to turn off your computer")
		if strings.Contains(console, "ROOT-INIT") || strings.Contains(console, "root: starting") {
			t.Error("a tarball with a bad pin was booted")
		}
	})

	f.systemdTests(t)
}

// lineWith returns the first console line holding s ("" if none).
func lineWith(console, s string) string {
	for _, l := range strings.Split(console, "\n") {
		if strings.Contains(l, s) {
			return strings.TrimRight(l, "\r")
		}
	}
	return ""
}

// serveDir serves the files of dir over HTTP on 127.0.0.1 until the test
// ends, and returns the port.
func serveDir(t testing.TB, dir string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// systemdPackages are installed with debootstrap's minbase for the systemd
// root: udev makes the device units systemd waits for, kmod gives the OS
// modprobe.
var systemdPackages = []string{"systemd", "systemd-sysv", "udev", "kmod"}

// markerUnit prints what the systemd test checks, once multi-user.target
// is reached, and powers off.
var markerUnit = systemdMarker("ociboot switch-root test marker",
	`echo "SYSTEMD-MARKER target=$(systemctl is-active multi-user.target) pid1=$(cat /proc/1/comm) modprobe=$(modprobe dummy && grep -q "^dummy " /proc/modules && echo ok) firmware=$(cat /lib/firmware/ociboot-test.bin) network=$(test -s /run/ociboot/network.json && echo yes) pcspkr=$(udevadm settle; grep -q "^pcspkr " /proc/modules && echo loaded) ata_piix=$(grep -q "^ata_piix " /proc/modules && echo loaded) trees=$(grep -E " /(usr/)?lib/(modules/[^ ]*|firmware) " /proc/self/mounts | cut -d" " -f2,3 | tr " \n" ":,") memavailable=$(grep ^MemAvailable: /proc/meminfo | tr -s " " | cut -d" " -f2)kB"`)

// systemdMarker is a unit that runs the shell command script once
// multi-user.target is reached, its output on the console, then powers
// off.
func systemdMarker(description, script string) string {
	return "[Unit]\nDescription=" + description + "\nAfter=multi-user.target\n\n" +
		"[Service]\nType=oneshot\nStandardOutput=journal+console\n" +
		"ExecStart=/bin/sh -c '" + script + "'\n" +
		"ExecStart=/bin/systemctl --no-block poweroff\n\n" +
		"[Install]\nWantedBy=multi-user.target\n"
}

// selinuxPackages add Debian's reference policy and its tools to the
// systemd root.
var selinuxPackages = append([]string{"selinux-policy-default", "policycoreutils"}, systemdPackages...)

// selinuxUnit prints, once multi-user.target is reached, what the SELinux
// test checks, and powers off.
var selinuxUnit = systemdMarker("ociboot switch-root SELinux marker",
	`echo "SELINUX-MARKER enforce=$(cat /sys/fs/selinux/enforce) file=$(stat -c %%C /etc/debian_version) init=$(cat /proc/1/attr/current | tr -d "\\0")"`)

// testFirmware is the firmware file the big initramfs carries.
const testFirmware = "ociboot test firmware"

// bigInitramfs builds, once, the initramfs of the systemd tests: the whole
// module tree and a firmware directory in a second segment.
func (f *fixture) bigInitramfs(t *testing.T) string {
	t.Helper()
	f.bigMu.Lock()
	defer f.bigMu.Unlock()
	if f.big != "" {
		return f.big
	}
	// Next to the fixture's initramfs: it must outlive the subtest that
	// happens to build it.
	dir := filepath.Dir(f.initramfs)
	fw := filepath.Join(dir, "firmware")
	if err := os.MkdirAll(fw, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fw, "ociboot-test.bin"), []byte(testFirmware), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "big.img")
	start := time.Now()
	report, err := exec.Command(f.bin, "build", "-o", out, "--modules-all", "--firmware", fw).CombinedOutput()
	if err != nil {
		t.Fatalf("ociboot build --modules-all: %v\n%s", err, report)
	}
	t.Logf("ociboot build --modules-all --firmware (%.1fs):\n%s", time.Since(start).Seconds(), report)
	f.big = out
	return out
}

// stamper records when marker strings first show on a console, from the
// VM's start.
type stamper struct {
	mu      sync.Mutex
	start   time.Time
	buf     bytes.Buffer
	markers []string
	seen    map[string]time.Duration
}

func newStamper(markers ...string) *stamper {
	return &stamper{start: time.Now(), markers: markers, seen: map[string]time.Duration{}}
}

func (s *stamper) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	for _, m := range s.markers {
		if _, ok := s.seen[m]; !ok && bytes.Contains(s.buf.Bytes(), []byte(m)) {
			s.seen[m] = time.Since(s.start)
		}
	}
	return len(p), nil
}

func (s *stamper) at(m string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[m]
}

func (s *stamper) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// readmeCmdline is the dracut container-root README's command line, with
// the rootfs tarball's URL to add: ociboot boots on it unchanged.
const readmeCmdline = "rd.shell=1 ip=dhcp rd.neednet=1 rd.tmpfs.size=3G selinux=0 rd.container.rootfs="

// systemdTests registers the boots of a real Debian with systemd, as an
// OCI image and as a rootfs.tar.xz served over HTTP. With
// $OCIBOOT_BENCH_FORMS set (bench/root.sh sets it), for the figures, also
// as a .tar.zst and a .tar.gz, and the .tar.xz on the dracut
// container-root README's command line, on one CPU and on two; with
// $OCIBOOT_BENCH_DRACUT naming dracut's initramfs (bench/dracut.sh), the
// same two boots of dracut, side by side.
func (f *fixture) systemdTests(t *testing.T) {
	tarball := func(kind string) func(t *testing.T, tarPath string) (string, []int) {
		return func(t *testing.T, tarPath string) (string, []int) {
			file := rootfstest.Compress(t, tarPath, kind)
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			web := serveDir(t, filepath.Dir(file))
			return fmt.Sprintf("http://%s:%d/%s#sha256=%x", vm.GuestHost, web, filepath.Base(file), sha256.Sum256(data)), []int{web}
		}
	}
	type form struct {
		name string
		root func(t *testing.T, tarPath string) (string, []int)
		fit  string // how the fit check knows the unpacked size
		// cpus are the VM's: two for the .tar.xz of xz -T0, whose
		// blocks are then decoded in parallel.
		cpus int
		// readme boots on readmeCmdline, the tarball's URL unpinned.
		readme bool
		// dracut, when set, is dracut's initramfs, booted in place of
		// ociboot's.
		dracut string
	}
	forms := []form{
		{name: "oci", root: func(t *testing.T, tarPath string) (string, []int) {
			img := registrytest.Image(t, v1.Config{Cmd: []string{"/sbin/init"}}, rootfstest.Layer(t, tarPath))
			return guestRef(registrytest.Push(t, f.reg, "e2e/debian-systemd:12", img)), nil
		}, cpus: 1},
		{name: "tarball", root: tarball("xz"), fit: "its xz index", cpus: 2},
	}
	if os.Getenv("OCIBOOT_BENCH_FORMS") != "" {
		forms = append(forms,
			form{name: "readme", root: tarball("xz"), fit: "its xz index", cpus: 2, readme: true},
			form{name: "readme-1cpu", root: tarball("xz"), fit: "its xz index", cpus: 1, readme: true},
			form{name: "tarball-zst", root: tarball("zstd"), fit: "its zstd frame header", cpus: 1},
			form{name: "tarball-gz", root: tarball("gzip"), fit: "its gzip trailer", cpus: 1})
		if img := os.Getenv("OCIBOOT_BENCH_DRACUT"); img != "" {
			forms = append(forms,
				form{name: "dracut", root: tarball("xz"), cpus: 2, readme: true, dracut: img},
				form{name: "dracut-1cpu", root: tarball("xz"), cpus: 1, readme: true, dracut: img})
		}
	}
	t.Run("root-systemd-selinux", func(t *testing.T) {
		t.Parallel()
		// The image's policy is loaded and the tree relabelled before
		// systemd runs: systemd then starts in its own domain, and the
		// files carry the policy's labels.
		base := rootfstest.Debian(t, "bookworm", selinuxPackages...)
		tarPath := rootfstest.WithFiles(t, base,
			rootfstest.File{Path: "etc/selinux/config", Body: "SELINUX=permissive\nSELINUXTYPE=default\n"},
			rootfstest.File{Path: "etc/systemd/system/ociboot-selinux.service", Body: selinuxUnit},
			rootfstest.File{Path: "etc/systemd/system/multi-user.target.wants/ociboot-selinux.service", Linkname: "/etc/systemd/system/ociboot-selinux.service"},
		)
		img := registrytest.Image(t, v1.Config{Cmd: []string{"/sbin/init"}}, rootfstest.Layer(t, tarPath))
		ref := guestRef(registrytest.Push(t, f.reg, "e2e/debian-selinux:12", img))
		res, console := f.bootRoot(t, f.initramfs, "security=selinux selinux=1 ociboot.root="+ref)
		inOrder(t, console,
			"ociboot: selinux: policy loaded (permissive)",
			"ociboot: selinux: root relabelled",
			"ociboot: root: starting /sbin/init",
			"SELINUX-MARKER enforce=0 file=system_u:object_r:etc_t:s0 init=system_u:system_r:init_t:s0",
			"reboot: Power down")
		if !res.HandedOver {
			t.Error("no hand-over seen")
		}
	})

	for _, form := range forms {
		t.Run("root-systemd-"+form.name, func(t *testing.T) {
			t.Parallel()
			base := rootfstest.Debian(t, "bookworm", systemdPackages...)
			tarPath := rootfstest.WithFiles(t, base,
				rootfstest.File{Path: "etc/systemd/system/ociboot-marker.service", Body: markerUnit},
				rootfstest.File{Path: "etc/systemd/system/multi-user.target.wants/ociboot-marker.service", Linkname: "/etc/systemd/system/ociboot-marker.service"},
			)
			root, ports := form.root(t, tarPath)
			initramfs, cmdline := form.dracut, ""
			if initramfs == "" {
				initramfs = f.bigInitramfs(t)
			}
			if form.readme {
				url, _, _ := strings.Cut(root, "#")
				cmdline = readmeCmdline + url
			} else {
				cmdline = fmt.Sprintf("ociboot.insecure_registry=%s:%d ociboot.poweroff_delay=0 ociboot.root=%s", vm.GuestHost, f.reg.Port, root)
				ports = append([]int{f.reg.Port}, ports...)
			}

			// systemdStart is the root's systemd starting, whichever
			// initramfs switched to it.
			const systemdStart, marker = " running in system mode ", "SYSTEMD-MARKER target="
			con := newStamper(systemdStart, marker)
			res, err := vm.Run(context.Background(), vm.Config{
				SMP:       form.cpus,
				Initramfs: initramfs,
				Cmdline:   cmdline,
				Forwards:  ports,
				Timeout:   rootBootTimeout,
				Console:   con,
			})
			console := con.String()
			t.Logf("console:\n%s", console)
			if err != nil && (!res.Started || res.ExitCode != 0) {
				t.Fatalf("vm.Run: %v (qemu exit status %d)", err, res.ExitCode)
			}
			if form.dracut != "" {
				// dracut's root has no modules of the running kernel:
				// modprobe fails, and udev loads nothing. The IDE
				// driver was loaded by dracut's initramfs.
				inOrder(t, console,
					"dracut: container-rootfs: unpacked into /sysroot",
					systemdStart,
					"Welcome to ", "Debian GNU/Linux 12 (bookworm)",
					"SYSTEMD-MARKER target=active pid1=systemd modprobe= firmware= network= pcspkr= ata_piix=loaded trees= memavailable=",
					"reboot: Power down")
			} else {
				checkSystemdBoot(t, console, form.fit, form.cpus)
			}
			// The figures of the closing note, not asserted.
			_, mem, _ := strings.Cut(lineWith(console, "memavailable="), "memavailable=")
			t.Logf("FIGURE systemd %s (%d CPU): VM start to the root's systemd %.1f s, to multi-user.target %.1f s, whole run %.1f s; MemAvailable in the OS %s; %s",
				form.name, form.cpus, con.at(systemdStart).Seconds(), con.at(marker).Seconds(), res.Elapsed.Seconds(), strings.TrimSpace(mem),
				strings.TrimPrefix(lineWith(console, "ociboot: root: unpacked in"), "ociboot: root: "))
		})
	}
}

// treeIndexRead is the line of a switch-root boot reading the module
// tree's index, for a device the first segment has no driver for.
const treeIndexRead = "ociboot: modules: read the module tree's index in "

// checkSystemdBoot checks the console of a systemd root booted by ociboot:
// the module and firmware trees mounted from the initramfs's images and
// handed over, the fit read from fit (the format's own size field; ""
// for an OCI image), the .tar.xz's blocks decoded in parallel on more
// than one CPU, and the marker unit's report.
func checkSystemdBoot(t *testing.T, console, fit string, cpus int) {
	t.Helper()
	// Before switching root, coldplug loads no driver from the tree for
	// a PC speaker (in no driver preset), and none for the IDE controller
	// of a boot without a cache disk (in the storage preset): the booted
	// OS's udev does, from the handed-over tree.
	for _, mod := range []string{"pcspkr", "ata_piix"} {
		if by := loadedBy(console, mod); by != "" {
			t.Errorf("%s loaded %s from the module image before switching root", by, mod)
		}
	}
	// The first segment drives QEMU's NIC: the tree's index is not read.
	if strings.Contains(console, treeIndexRead) {
		t.Error("the module tree's index was read, though the first segment's drivers drive every device the boot needs")
	}
	if fit != "" && !strings.Contains(console, " unpacked (as "+fit+" says), into a tmpfs of ") {
		t.Errorf("the fit check did not read the tarball's size from %s", fit)
	}
	if cpus > 1 && fit == "its xz index" && !strings.Contains(console, " xz blocks decoded in parallel) in ") {
		t.Errorf("the blocks of the .tar.xz were not decoded in parallel on %d CPUs", cpus)
	}
	inOrder(t, console,
		"ociboot: modules: mounted /lib/ociboot/modules.squashfs at /lib/ociboot/modules through /dev/loop",
		"ociboot: modules: mounted /lib/ociboot/firmware.squashfs at /lib/firmware through /dev/loop",
		"ociboot: modules: the drivers of storage controllers (no cache disk) and of the devices only the module tree has drivers for wait for the booted OS",
		"ociboot: root: unpacked in",
		"ociboot: root: modules: /lib/modules/"+kernelRelease(t)+" of the initramfs handed over (",
		" modules, its image mount moved)",
		"ociboot: root: modules: /lib/firmware of the initramfs handed over",
		"ociboot: root: starting /sbin/init",
		"Welcome to ", "Debian GNU/Linux 12 (bookworm)", // with colour codes between
		"SYSTEMD-MARKER target=active pid1=systemd modprobe=ok firmware="+testFirmware+" network=yes pcspkr=loaded ata_piix=loaded"+
			// Debian's /lib leads to usr/lib.
			" trees=/usr/lib/modules/"+kernelRelease(t)+":squashfs,/usr/lib/firmware:squashfs, memavailable=",
		"reboot: Power down")
}
