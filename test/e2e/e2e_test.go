// Package e2e boots the real ociboot initramfs in QEMU with the Debian
// kernel, against the real CNCF distribution registry on 127.0.0.1, and
// asserts on the serial console and the VM's exit.
package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
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
	"github.com/ociboot/ociboot/internal/netnstest"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/vm"
)

// secretMarker is part of every password the tests put on a command
// line, to look for it in what is printed.
const secretMarker = "S3CRET-3c9f"

// bootTimeout bounds one VM run; a TCG boot with a pull takes ~20 s.
const bootTimeout = 4 * time.Minute

// fixture is what every boot shares: the ociboot binary, one initramfs
// built by it, and one registry holding the test images.
type fixture struct {
	bin       string // the ociboot binary under test
	initramfs string
	reg       *registrytest.Registry
	images    map[string]string // name → reference as the guest sees it

	bigMu sync.Mutex
	big   string // the --modules-all initramfs, once built (bigInitramfs)
}

// guestRef turns a reference pushed to 127.0.0.1:PORT into the one the
// guest uses through the guestfwd at 10.0.2.100:PORT.
func guestRef(ref string) string {
	return strings.Replace(ref, "127.0.0.1:", vm.GuestHost+":", 1)
}

func setup(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{
		bin:       filepath.Join(dir, "ociboot"),
		initramfs: filepath.Join(dir, "initramfs.img"),
		images:    map[string]string{},
	}
	goBuild(t, f.bin, "github.com/ociboot/ociboot/cmd/ociboot")
	// The dummy network driver's module file, for b2c.insmods.
	dummy, err := filepath.Glob("/lib/modules/" + kernelRelease(t) + "/kernel/drivers/net/dummy.ko*")
	if err != nil || len(dummy) != 1 {
		t.Fatalf("the dummy module of the test kernel: %v %v", dummy, err)
	}
	// A firmware directory: the microcode e100 asks an i82551 for (of
	// the right size, with offsets e100 accepts; QEMU ignores what it
	// holds), and a file no module declares.
	fw := filepath.Join(dir, "firmware")
	for name, size := range map[string]int{e100Firmware: e100FirmwareSize, "unused/other.bin": 10} {
		p := filepath.Join(fw, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{0x5a}, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(f.bin, "build", "-o", f.initramfs, "--include", dummy[0]+":/lib/extra/"+filepath.Base(dummy[0]), "--keymaps", "fr-latin1",
		"--firmware", fw).CombinedOutput()
	if err != nil {
		t.Fatalf("ociboot build: %v\n%s", err, out)
	}
	t.Logf("ociboot build:\n%s", out)

	f.reg = registrytest.Start(t)
	f.images["busybox"] = guestRef(registrytest.Push(t, f.reg, "e2e/busybox:1", registrytest.BusyboxImage(t)))
	// Layer 2 deletes a file of layer 1 and adds one; layer 3 makes a
	// directory opaque.
	layered := registrytest.BusyboxImage(t,
		registrytest.LayerFromFiles(t, map[string]string{
			"/etc/deleted-later": "you must not see me\n",
			"/data/old/a":        "lower\n",
		}),
		registrytest.LayerFromFiles(t, map[string]string{"/etc/added": "added in layer 3\n"}, "/etc/deleted-later"),
		registrytest.LayerFromFiles(t, map[string]string{"/data/old/b": "upper\n"}, "/data/old/"),
	)
	f.images["layered"] = guestRef(registrytest.Push(t, f.reg, "e2e/layered:1", layered))
	f.images["umoci"] = guestRef(registrytest.Push(t, f.reg, "e2e/umoci:1", umociBusybox(t)))
	return f
}

// The firmware file e100 asks QEMU's i82551 for, and its size.
const (
	e100Firmware     = "e100/d102e_ucode.bin"
	e100FirmwareSize = 539
)

// goBuild builds the static program pkg as bin.
func goBuild(t testing.TB, bin, pkg string) {
	t.Helper()
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, out)
	}
}

// umociBusybox is a busybox image made by umoci itself, whose layer
// starts with an entry for "/".
func umociBusybox(t *testing.T) v1.Image {
	t.Helper()
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(registrytest.BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(src, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "made-by"), []byte("umoci insert\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return registrytest.UmociImage(t, src)
}

// boot runs a VM with the registry forwarded and returns its result and
// console.
// More ports of 127.0.0.1 may be forwarded too.
func (f *fixture) boot(t *testing.T, cmdline string, ports ...int) (vm.Result, string, error) {
	t.Helper()
	return f.bootWith(t, cmdline, machine{ports: ports})
}

// machine is what a boot's VM has besides the registry's forward.
type machine struct {
	ports []int      // more ports of 127.0.0.1 forwarded
	taps  []*os.File // more NICs, backed by these tap devices
	disks []vm.Disk  // raw disk images, in order
	// kill, when closed, stops the VM at once, as a power cut would.
	kill <-chan struct{}
	// watch, when set, gets the console as it comes too.
	watch io.Writer
	// monitor, when set, is where QEMU's monitor listens (vm.Config.Monitor).
	monitor string
	// nics are the NIC models (vm.Config.NICs); none: one virtio NIC.
	nics []string
	// secure leaves out ociboot.insecure_registry for the test registry:
	// containers reach it with --tls-verify=false.
	secure bool
	// mac is the first NIC's MAC address (vm.Config.MAC).
	mac string
}

// bootWith is boot on a machine with more NICs, disks or forwards.
func (f *fixture) bootWith(t *testing.T, cmdline string, m machine) (vm.Result, string, error) {
	t.Helper()
	var console bytes.Buffer
	cfg := vm.Config{
		Initramfs: f.initramfs,
		Cmdline:   fmt.Sprintf("ociboot.insecure_registry=%s:%d %s", vm.GuestHost, f.reg.Port, cmdline),
		Forwards:  append([]int{f.reg.Port}, m.ports...),
		Taps:      m.taps,
		Disks:     m.disks,
		Monitor:   m.monitor,
		NICs:      m.nics,
		MAC:       m.mac,
		Timeout:   bootTimeout,
		Console:   &lockedWriter{w: &console},
	}
	if m.watch != nil {
		cfg.Console = io.MultiWriter(cfg.Console, m.watch)
	}
	if m.secure {
		cfg.Cmdline = cmdline
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if m.kill != nil {
		go func() {
			select {
			case <-m.kill:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	res, err := vm.Run(ctx, cfg)
	t.Logf("console:\n%s", console.String())
	return res, console.String(), err
}

// lockedWriter lets the VM's console be written from QEMU's reader
// goroutine while the test reads it afterwards.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// sighting closes seen when the console it watches first shows text.
type sighting struct {
	text string
	seen chan struct{}
	mu   sync.Mutex
	tail []byte
	done bool
}

func newSighting(text string) *sighting {
	return &sighting{text: text, seen: make(chan struct{})}
}

func (s *sighting) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return len(p), nil
	}
	s.tail = append(s.tail, p...)
	if bytes.Contains(s.tail, []byte(s.text)) {
		s.done = true
		close(s.seen)
		return len(p), nil
	}
	if keep := len(s.text); len(s.tail) > keep {
		s.tail = append(s.tail[:0], s.tail[len(s.tail)-keep:]...)
	}
	return len(p), nil
}

// inOrder checks that every want appears in console, one after the other.
func inOrder(t *testing.T, console string, wants ...string) {
	t.Helper()
	rest := console
	for _, w := range wants {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Errorf("console lacks %q (after the previous expected lines)", w)
			return
		}
		rest = rest[i+len(w):]
	}
}

func TestBoot(t *testing.T) {
	f := setup(t)
	f.rootTests(t)
	f.storageTests(t)
	f.netbootTests(t)
	f.podmanTests(t)
	f.systemdContainerTests(t)
	f.reportTests(t)
	f.verifyTests(t)

	t.Run("pipeline", func(t *testing.T) {
		t.Parallel()
		cmdline := fmt.Sprintf(
			`ociboot.container="%s sh -c 'echo first container on \"$(hostname)\"; test -e /etc/deleted-later && echo DELETED-$((40+2)); cat /etc/added; echo old dir holds $(ls /data/old).'" `+
				`b2c.container="-e GREETING=hello %s sh -c 'echo second container says $GREETING'" `+
				`ociboot.container="%s /bin/sh -c 'echo third container from an image by $(/bin/busybox cat /made-by)'"`,
			f.images["layered"], f.images["busybox"], f.images["umoci"])
		res, console, err := f.boot(t, cmdline)
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		if !res.StatusSeen || res.Status != 0 {
			t.Errorf("pipeline status: seen %v, %d; want 0", res.StatusSeen, res.Status)
		}
		inOrder(t, console,
			// The early microcode archive reached the kernel (its loader
			// stays off in a VM), and the image after it unpacked.
			"ociboot: early microcode: the kernel was handed AuthenticAMD.bin (", "GenuineIntel.bin (", "; freed",
			`first container on "ociboot"`,
			"added in layer 3",
			"old dir holds b.", // only the opaque directory's upper file
			"second container says hello",
			"third container from an image by umoci insert",
			"Execution is over, pipeline status: 0",
			"It's now safe to turn off your computer")
		// The IDE controller's driver loads while the network comes up
		// and the images are pulled; the second container, privileged
		// (boot2container's), gets the machine's devices and waits for it.
		if by := loadedBy(console, "ata_piix"); by != backgroundColdplug {
			t.Errorf("ata_piix loaded by %q, want %s", by, backgroundColdplug)
		}
		inOrder(t, console, "ociboot: modules: "+backgroundColdplug+": loaded ", "starting container-2", "second container says hello")
		// The kernel echoes its command line: look for what only the
		// container's shell can print.
		if strings.Contains(console, "DELETED-42") {
			t.Error("a file deleted by an upper layer is visible in the container")
		}
		// Without root=, the initramfs is a tmpfs, used in place.
		if strings.Contains(console, "moved into a tmpfs") {
			t.Error("the initramfs was moved into a tmpfs though the kernel made it one")
		}
	})

	t.Run("exit-status", func(t *testing.T) {
		t.Parallel()
		// Through the real CLI: `ociboot vm` exits with the pipeline
		// status, the first failing container's. With root= given, the
		// kernel makes the initramfs a ramfs, which the init moves into a
		// tmpfs (other boots use it in place).
		cmdline := fmt.Sprintf(
			`root=/dev/nonexistent ociboot.insecure_registry=%s:%d `+
				`ociboot.container="%s sh -c 'echo hi; exit 3'" ociboot.container="%s sh -c 'exit 4'"`,
			vm.GuestHost, f.reg.Port, f.images["busybox"], f.images["busybox"])
		events := filepath.Join(t.TempDir(), "boot.jsonl")
		cmd := exec.Command(f.bin, "vm", "--initramfs", f.initramfs, "--timeout", bootTimeout.String(),
			"--forward", fmt.Sprint(f.reg.Port), "--cmdline", cmdline, "--report", events)
		out, err := cmd.CombinedOutput()
		t.Logf("ociboot vm:\n%s", out)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("ociboot vm: %v; want exit status 3", err)
		}
		inOrder(t, string(out), "ociboot: root: the kernel made the initramfs a ramfs (root= was given), so it was moved into a tmpfs",
			"hi", "Execution is over, pipeline status: 3", "It's now safe to turn off your computer")
		// `ociboot vm --report` wrote the boot's events; `ociboot
		// analyze` tells where its time went, from them and from the
		// console.
		checkAnalyze(t, f.bin, events, string(out))
	})

	t.Run("uki", func(t *testing.T) {
		t.Parallel()
		// Through the real CLI: `ociboot build --uki`, booted under OVMF by
		// `ociboot vm --uki`. Its .cmdline is the command line when the
		// firmware gives none; a command line given replaces it.
		dir := t.TempDir()
		efi := filepath.Join(dir, "ociboot.efi")
		own := fmt.Sprintf(`console=ttyS0 panic=-1 ociboot.insecure_registry=%s:%d ociboot.container="%s sh -c 'echo own-cmdline-$((6*7))'"`,
			vm.GuestHost, f.reg.Port, f.images["busybox"])
		if out, err := exec.Command(f.bin, "build", "-o", filepath.Join(dir, "i.img"), "--uki", efi, "--cmdline", own).CombinedOutput(); err != nil {
			t.Fatalf("ociboot build --uki: %v\n%s", err, out)
		}
		boot := func(args ...string) string {
			t.Helper()
			cmd := exec.Command(f.bin, append([]string{"vm", "--uki", efi, "--timeout", bootTimeout.String(), "--forward", fmt.Sprint(f.reg.Port)}, args...)...)
			out, err := cmd.CombinedOutput()
			t.Logf("ociboot vm %s:\n%s", strings.Join(args, " "), out)
			if err != nil {
				t.Fatalf("ociboot vm --uki: %v", err)
			}
			return string(out)
		}
		console := boot()
		// The microcode rides at the start of .initrd (Debian 12's stub,
		// systemd 252, has no .ucode section).
		inOrder(t, console, "EFI stub: Loaded initrd", "Kernel command line: "+own, "ociboot: early microcode: the kernel was handed AuthenticAMD.bin (",
			"own-cmdline-42", "Execution is over, pipeline status: 0")
		given := fmt.Sprintf(`ociboot.insecure_registry=%s:%d ociboot.container="%s sh -c 'echo given-cmdline-$((6*7))'"`,
			vm.GuestHost, f.reg.Port, f.images["busybox"])
		console = boot("--cmdline", given)
		inOrder(t, console, "Kernel command line: console=ttyS0 panic=-1 "+given, "given-cmdline-42", "Execution is over, pipeline status: 0")
		if strings.Contains(console, "own-cmdline-42") {
			t.Error("the image's own command line ran though another was given")
		}
	})

	t.Run("usb-image", func(t *testing.T) {
		t.Parallel()
		// Through the real CLI: `ociboot build --usb-image --usb-cache`,
		// booted by OVMF from a usb-storage stick behind xHCI, with the
		// image's own command line; the stick's cache partition is found
		// as soon as usb-storage brings the disk, and used.
		dir := t.TempDir()
		stick := filepath.Join(dir, "stick.img")
		own := fmt.Sprintf(`console=ttyS0 panic=-1 ociboot.cache_device=auto ociboot.cache_wait=600 ociboot.insecure_registry=%s:%d `+
			`ociboot.container="%s sh -c 'echo from-the-stick-$((6*7))'"`, vm.GuestHost, f.reg.Port, f.images["busybox"])
		if out, err := exec.Command(f.bin, "build", "-o", filepath.Join(dir, "i.img"), "--usb-image", stick, "--usb-cache", "96M", "--cmdline", own).CombinedOutput(); err != nil {
			t.Fatalf("ociboot build --usb-image: %v\n%s", err, out)
		}
		out, err := exec.Command(f.bin, "vm", "--usb-image", stick, "--timeout", bootTimeout.String(), "--forward", fmt.Sprint(f.reg.Port)).CombinedOutput()
		t.Logf("ociboot vm --usb-image:\n%s", out)
		if err != nil {
			t.Fatalf("ociboot vm --usb-image: %v", err)
		}
		inOrder(t, string(out), "EFI stub: Loaded initrd", "Kernel command line: "+own,
			`ociboot: storage: /dev/sda2 (ext4 "B2C_CACHE") mounted on /storage`, "from-the-stick-42", "Execution is over, pipeline status: 0")
		if by := loadedBy(string(out), "usb_storage"); by != "hotplug" {
			t.Errorf("usb_storage loaded by %q, want hotplug", by)
		}
	})

	t.Run("b2c-pipeline", func(t *testing.T) {
		t.Parallel()
		// boot2container's parameters: a service, the pipeline with its
		// environment, a post container, a container asking for a
		// reboot (129), the host name and the reboot command.
		img := f.images["busybox"]
		// The post container comes from extra_args_url, served here.
		extra := fmt.Sprintf(`b2c.post_container="%s sh -c 'echo post sees mode $B2C_PIPELINE_SHUTDOWN_MODE'"`+"\n", img)
		web := serve(t, map[string]string{"/extra-args": extra})
		cmdline := fmt.Sprintf(`b2c.hostname=runner-12 `+
			`b2c.service="%[1]s sh -c 'trap exit TERM; echo service up; while true; do sleep 1; done'" `+
			`b2c.container="%[1]s sh -c 'echo first on $(hostname); exit 3'" `+
			`b2c.container="%[1]s sh -c 'echo second sees status $B2C_PIPELINE_STATUS, previous exit $OCIBOOT_PIPELINE_PREV_CONTAINER_EXIT_CODE; exit 129'" `+
			`b2c.extra_args_url=http://%[2]s:%[3]d/extra-args `+
			`b2c.container="%[1]s cat /proc/cmdline" ociboot.registry_auth=registry.lan,bob,%[4]s `+
			`b2c.container="-t %[1]s sh -c 'test -t 1 && echo terminal: $(tty)'" `+
			// The key at the Q position types a: the French keymap is loaded.
			`b2c.keymap=fr-latin1 b2c.container="%[1]s sh -c 'echo key16=$(busybox dumpkmap | busybox od -An -tx2 -j 295 -N 2)'" `+
			`b2c.reboot_cmd="/init version"`, img, vm.GuestHost, web, "pw-"+secretMarker)
		res, console, err := f.boot(t, cmdline, web)
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		if !res.StatusSeen || res.Status != 3 {
			t.Errorf("pipeline status: seen %v, %d; want 3", res.StatusSeen, res.Status)
		}
		// Only the kernel's own echo of its command line shows the
		// password.
		for _, line := range strings.Split(console, "\n") {
			if strings.Contains(line, secretMarker) && !strings.Contains(line, "ommand line:") {
				t.Errorf("the console shows the password: %q", line)
			}
		}
		inOrder(t, console,
			"ociboot: keymap: fr-latin1 loaded",
			"ociboot: ==== network ==== ",
			"ociboot: ==== clock ==== ",
			"clock: warning: no NTP peer",
			"extra_args_url: read ",
			"first on runner-12",
			"second sees status 3, previous exit 3",
			`ociboot.registry_auth="registry.lan,bob,***"`, // the container's /proc/cmdline
			"terminal: /dev/pts/0",
			"key16= 0b61",
			"post sees mode reboot",
			"service 1/1 ("+img+"): stopped",
			"Execution is over, pipeline status: 3",
			"It's now safe to turn off your computer",
			// The reboot command ran (it prints the version), returned,
			// and ociboot rebooted itself.
			`reboot command "/init version" did not reboot: it exited with status 0`,
			"reboot: Restarting system")
		// The service runs beside the containers: its line comes
		// before it is stopped, in any order with theirs (the first
		// container's came first on a loaded machine). A line of its
		// own: the command lines the console shows hold "echo service
		// up".
		inOrder(t, console, "extra_args_url: read ", "\nservice up", "service 1/1 ("+img+"): stopped")
	})

	t.Run("ntp", func(t *testing.T) {
		t.Parallel()
		// NTP is UDP, which QEMU's user networking does not forward: the
		// VM's second NIC is a tap in a network namespace of the test's,
		// where dnsmasq gives it an address and an SNTP responder runs
		// one hour ahead (see internal/netnstest).
		// dnsmasq offers the responder as NTP server (option 42): auto
		// takes it from the lease.
		tap, ntp := ntpNetwork(t)
		cmdline := fmt.Sprintf(`b2c.ntp_peer=auto ociboot.container="%s sh -c 'echo guest time $(date +%%s)'"`, f.images["busybox"])
		res, console, err := f.bootWith(t, cmdline, machine{taps: []*os.File{tap}})
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		if res.Status != 0 || ntp.Requests() == 0 {
			t.Errorf("status %d, %d NTP requests: want 0 and some", res.Status, ntp.Requests())
		}
		// The guest's clock starts from the host's, a few seconds behind
		// by the time it is set.
		inOrder(t, console, "eth1: 192.168.77.", "clock: 192.168.77.1 stratum 2: offset +", "clock set", "guest time ")
		var guest int64
		if i := strings.LastIndex(console, "\nguest time "); i >= 0 {
			_, _ = fmt.Sscanf(console[i+1:], "guest time %d", &guest)
		}
		if d := time.Until(time.Unix(guest, 0)); d < 59*time.Minute || d > 61*time.Minute {
			t.Errorf("the container's clock is %v ahead of the host's, want one hour", d)
		}
	})

	t.Run("pipefail-insmods-130", func(t *testing.T) {
		t.Parallel()
		// A module file inserted with b2c.insmods; 130 is no failure and
		// makes the end action a power-off; pipefail stops the pipeline
		// at the first failure; the post container still runs.
		img := f.images["busybox"]
		cmdline := fmt.Sprintf(`b2c.insmods=/lib/extra/dummy.ko b2c.pipefail `+
			`b2c.container="%[1]s sh -c 'grep -o ^dummy /proc/modules; exit 130'" b2c.container="%[1]s false" `+
			`b2c.container="%[1]s echo never-printed" b2c.post_container="%[1]s echo post ran"`, img)
		res, console, err := f.boot(t, cmdline)
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		if res.Status != 1 {
			t.Errorf("status %d, want 1 (false)", res.Status)
		}
		inOrder(t, console, "modules: inserted /lib/extra/dummy.ko", "\ndummy", "not started: pipefail", "post ran",
			"Execution is over, pipeline status: 1", "reboot: Power down")
		if strings.Contains(console, "\nnever-printed") {
			t.Error("a container ran after the failure despite pipefail")
		}
	})

	t.Run("interactive", func(t *testing.T) {
		t.Parallel()
		// -i: the container reads what is typed on the console; one
		// without -i reads nothing (its stdin is /dev/null).
		// The first characters typed may be lost while the serial line
		// is being set up: the line is typed again until it has gone
		// through whole.
		typed, typing := io.Pipe()
		console := newTypist("ready-to-read")
		go console.typeUntil(typing, "typed line\r", "with -i got: typed line")
		img := f.images["busybox"]
		res, err := vm.Run(context.Background(), vm.Config{
			Initramfs: f.initramfs,
			Cmdline: fmt.Sprintf(`ociboot.insecure_registry=%s:%d `+
				`b2c.container="%[3]s sh -c 'read -t 5 line; echo without -i read $? \"$line\"'" `+
				`b2c.container="-i %[3]s sh -c 'echo ready-to-read; while read line; do echo with -i got: $line; case $line in typed?line) break;; esac; done'"`, vm.GuestHost, f.reg.Port, img),
			Forwards: []int{f.reg.Port},
			Timeout:  bootTimeout,
			Console:  console,
			Stdin:    typed,
		})
		typing.Close()
		t.Logf("console:\n%s", console.String())
		if err != nil || res.Status != 0 {
			t.Fatalf("vm.Run: %v, status %d", err, res.Status)
		}
		inOrder(t, console.String(), `without -i read 1 ""`, "ready-to-read", "with -i got: typed line")
	})

	t.Run("ip-static", func(t *testing.T) {
		t.Parallel()
		// The kernel's static ip= form, host name included, on the user
		// network (10.0.2.0/24).
		cmdline := fmt.Sprintf(`ip=10.0.2.15::10.0.2.2:255.255.255.0:ip-host:eth0:off b2c.container="%s sh -c 'echo on $(hostname): $(/bin/busybox ip -4 -o addr show eth0)'"`, f.images["busybox"])
		res, console, err := f.boot(t, cmdline)
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		if res.Status != 0 {
			t.Errorf("status %d, want 0", res.Status)
		}
		inOrder(t, console, "network: eth0: 10.0.2.15/24 via 10.0.2.2", "(static)", "on ip-host: 2: eth0 inet 10.0.2.15/24")
	})

	t.Run("iface-two-nics", func(t *testing.T) {
		t.Parallel()
		// b2c.iface: DHCP on eth0 (the user network, for the registry), a
		// static address, route and name server on eth1, a tap in a
		// network namespace of the test's.
		ns := netnstest.New(t)
		tap := ns.Tap(t, "tap0", "192.168.77.1/24")
		cmdline := fmt.Sprintf(`b2c.iface=eth0,dhcp b2c.iface=eth1,address=192.168.77.5/24,route=192.168.88.0/24:192.168.77.1,nameserver=192.168.77.1 `+
			`b2c.container="%s sh -c '/bin/busybox ping -c 1 -W 10 192.168.77.1 >/dev/null && echo ping ok; grep nameserver /etc/resolv.conf; /bin/busybox ip route show dev eth1'"`, f.images["busybox"])
		res, console, err := f.bootWith(t, cmdline, machine{taps: []*os.File{tap}})
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		if res.Status != 0 {
			t.Errorf("status %d, want 0", res.Status)
		}
		// The links are configured at once: their lines come in any order.
		inOrder(t, console, "network: eth0: 10.0.2.15/24", "ping ok")
		inOrder(t, console, "network: eth1: 192.168.77.5/24, dns 192.168.77.1, route 192.168.88.0/24 via 192.168.77.1 (static)", "ping ok",
			"nameserver 192.168.77.1", "192.168.88.0/24 via 192.168.77.1 dev eth1")
	})

	t.Run("on-failure-shell", func(t *testing.T) {
		t.Parallel()
		// An initramfs with a shell; a boot that fails at the modules
		// stage starts it on the console, which the test types into.
		img := filepath.Join(t.TempDir(), "shell.img")
		if out, err := exec.Command(f.bin, "build", "--shell", "-o", img).CombinedOutput(); err != nil {
			t.Fatalf("ociboot build --shell: %v\n%s", err, out)
		}
		// Typed once the shell shows its prompt, and again until it has
		// run the line: a loaded machine may still be setting up the
		// terminal (which flushes what came before), or waiting for its
		// answer to busybox's cursor query, which comes first.
		typed, typing := io.Pipe()
		console := newTypist("ociboot# ")
		go console.typeUntil(typing, "\x1b[1;1R"+"echo typed-in-the-shell-$((6*7)); exit 3\r", "typed-in-the-shell-42")
		res, err := vm.Run(context.Background(), vm.Config{
			Initramfs: img,
			Cmdline:   "ociboot.on_failure=shell ociboot.insmods=/lib/nothing.ko",
			Timeout:   bootTimeout,
			Console:   console,
			Stdin:     typed,
		})
		typing.Close()
		t.Logf("console:\n%s", console.String())
		if err == nil || res.StatusSeen {
			t.Errorf("vm.Run: %v, status seen %v: want no pipeline status", err, res.StatusSeen)
		}
		inOrder(t, console.String(), "boot failed at modules", "starting /bin/sh on the console",
			"typed-in-the-shell-42", "the shell exited with status 3", "It's now safe to turn off your computer")
	})

	t.Run("unknown-parameter", func(t *testing.T) {
		t.Parallel()
		res, console, err := f.boot(t, `ociboot.poweroff_delay=0 ociboot.bogus=1 ociboot.container="`+f.images["busybox"]+` true"`)
		if err == nil {
			t.Fatal("vm.Run: no error, want one for a VM that reports no status")
		}
		if res.StatusSeen {
			t.Errorf("a pipeline ran (status %d) despite an unknown parameter", res.Status)
		}
		inOrder(t, console, `unknown kernel parameter "ociboot.bogus"`, "It's now safe to turn off your computer")
	})

	t.Run("tls-auth-mirror", func(t *testing.T) {
		t.Parallel()
		// A registry that wants TLS (a private CA) and a password, reached
		// through a mirror that is down: all three come from the
		// configuration baked in by `ociboot build`.
		const user, password = "ci", "s3cret-pw-e2e"
		ca := registrytest.NewCA(t)
		reg := registrytest.StartWith(t, registrytest.Options{
			TLS:      ca,
			TLSIPs:   []net.IP{net.ParseIP(vm.GuestHost)},
			Htpasswd: map[string]string{user: password},
		})
		ref := guestRef(registrytest.Push(t, reg, "e2e/private:1", registrytest.BusyboxImage(t)))
		registry := fmt.Sprintf("%s:%d", vm.GuestHost, reg.Port)
		deadMirror := freePort(t)

		dir := t.TempDir()
		auth := filepath.Join(dir, "config.json")
		token := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
		if err := os.WriteFile(auth, []byte(`{"auths":{"`+registry+`":{"auth":"`+token+`"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		img := filepath.Join(dir, "initramfs.img")
		out, err := exec.Command(f.bin, "build", "-o", img, "--registry-auth", auth, "--ca-file", ca.CertFile,
			"--registry-mirror", fmt.Sprintf("%s=%s:%d", registry, vm.GuestHost, deadMirror)).CombinedOutput()
		if err != nil {
			t.Fatalf("ociboot build: %v\n%s", err, out)
		}
		if strings.Contains(string(out), password) {
			t.Error("ociboot build printed the registry password")
		}
		var console bytes.Buffer
		res, err := vm.Run(context.Background(), vm.Config{
			Initramfs: img,
			Cmdline:   fmt.Sprintf(`ociboot.container="%s sh -c 'echo private image: $((6*7))'"`, ref),
			Forwards:  []int{reg.Port, deadMirror},
			Timeout:   bootTimeout,
			Console:   &lockedWriter{w: &console},
		})
		t.Logf("console:\n%s", console.String())
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		if res.Status != 0 {
			t.Errorf("pipeline status %d, want 0", res.Status)
		}
		inOrder(t, console.String(), "private image: 42", "Execution is over, pipeline status: 0")
		if strings.Contains(console.String(), password) || strings.Contains(console.String(), token) {
			t.Error("the console shows the registry credentials")
		}
	})

	t.Run("registry-down", func(t *testing.T) {
		t.Parallel()
		// A port nothing listens on, forwarded like the registry's.
		port := freePort(t)
		ref := fmt.Sprintf("%s:%d/e2e/busybox:1", vm.GuestHost, port)
		var console bytes.Buffer
		res, err := vm.Run(context.Background(), vm.Config{
			Initramfs: f.initramfs,
			Cmdline:   fmt.Sprintf(`ociboot.insecure_registry=%s:%d ociboot.container="%s true"`, vm.GuestHost, port, ref),
			Forwards:  []int{port},
			Timeout:   bootTimeout,
			Console:   &lockedWriter{w: &console},
		})
		t.Logf("console:\n%s", console.String())
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		if res.Status != 125 || !res.SafeSeen {
			t.Errorf("status %d (seen %v), safe line %v; want 125 and a clean power-off", res.Status, res.StatusSeen, res.SafeSeen)
		}
		if !strings.Contains(console.String(), ref) {
			t.Errorf("the console does not name the image %s", ref)
		}
	})
}

// freePort returns a loopback port that nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// serve serves files (path → content) over HTTP on 127.0.0.1 until the
// test ends, and returns the port.
func serve(t *testing.T, files map[string]string) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		content, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, content)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// typist records a VM's console and types into it once a prompt has
// shown.
type typist struct {
	prompt string
	seen   chan struct{} // closed once prompt has shown
	mu     sync.Mutex
	buf    bytes.Buffer
}

func newTypist(prompt string) *typist {
	return &typist{prompt: prompt, seen: make(chan struct{})}
}

func (c *typist) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Look at the end only, where prompt may span this write and the last.
	from := max(c.buf.Len()-len(c.prompt), 0)
	c.buf.Write(p)
	if c.seen != nil && bytes.Contains(c.buf.Bytes()[from:], []byte(c.prompt)) {
		close(c.seen)
		c.seen = nil
	}
	return len(p), nil
}

func (c *typist) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// typeUntil waits for the prompt, then types text every 2 s until the
// console shows done (30 times at most), and closes w.
func (c *typist) typeUntil(w io.WriteCloser, text, done string) {
	c.mu.Lock()
	seen := c.seen
	c.mu.Unlock()
	if seen != nil {
		<-seen
	}
	for i := 0; i < 30 && !strings.Contains(c.String(), done); i++ {
		time.Sleep(time.Second)
		_, _ = io.WriteString(w, text)
		time.Sleep(time.Second)
	}
	w.Close()
}

// kernelRelease is the version of the kernel the VMs boot.
func kernelRelease(t *testing.T) string {
	t.Helper()
	k, err := vm.DefaultKernel()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(filepath.Base(k), "vmlinuz-")
}
