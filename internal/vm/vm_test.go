package vm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestQEMUArgs(t *testing.T) {
	cfg := Config{
		QEMU: DefaultQEMU, Kernel: "/boot/vmlinuz-x", Initramfs: "/tmp/i.img",
		Cmdline: "quiet ociboot.container=alpine", MemoryMB: 512, SMP: 2,
		Forwards: []int{8080, 5000},
		Disks:    []Disk{{Path: "/tmp/a.img"}, {Path: "/x/with,comma.img", Bus: "virtio"}, {Path: "/n.img", Bus: "nvme"}, {Path: "/s1.img", Bus: "ahci"}, {Path: "/s2.img", Bus: "ahci"}},
		Taps:     []*os.File{os.Stdin, os.Stdout}, // any files: only their count matters
	}
	args := qemuArgs(cfg, AccelTCG, "/usr/bin/ociboot")
	want := []string{
		"-accel", "tcg", "-cpu", "qemu64,+rdrand", "-nodefaults", "-no-reboot", "-display", "none", "-m", "512", "-smp", "2",
		"-chardev", "stdio,id=console,signal=on", "-serial", "chardev:console",
		"-netdev", "user,id=n0,restrict=on" +
			",guestfwd=tcp:10.0.2.100:8080-cmd:'/usr/bin/ociboot' 8080" +
			",guestfwd=tcp:10.0.2.100:5000-cmd:'/usr/bin/ociboot' 5000",
		"-object", "rng-random,id=rng0,filename=/dev/urandom",
		"-device", "virtio-rng-pci,rng=rng0",
		"-device", "virtio-net-pci,netdev=n0",
		"-netdev", "tap,id=t1,fd=3", "-device", "virtio-net-pci,netdev=t1,mac=52:54:00:12:35:10",
		"-netdev", "tap,id=t2,fd=4", "-device", "virtio-net-pci,netdev=t2,mac=52:54:00:12:35:11",
		"-drive", "file=/tmp/a.img,format=raw,if=virtio",
		"-drive", "file=/x/with,,comma.img,format=raw,if=virtio",
		"-drive", "file=/n.img,format=raw,if=none,id=disk2", "-device", "nvme,drive=disk2,serial=ociboot2",
		"-device", "ich9-ahci,id=ahci",
		"-drive", "file=/s1.img,format=raw,if=none,id=disk3", "-device", "ide-hd,drive=disk3,bus=ahci.0",
		"-drive", "file=/s2.img,format=raw,if=none,id=disk4", "-device", "ide-hd,drive=disk4,bus=ahci.1",
		"-kernel", "/boot/vmlinuz-x", "-initrd", "/tmp/i.img",
		"-append", "console=ttyS0 panic=-1 quiet ociboot.container=alpine",
	}
	if !slices.Equal(args, want) {
		t.Errorf("qemuArgs =\n%q\nwant\n%q", args, want)
	}

	// More NIC models, the first on the network; disks on virtio-scsi,
	// LSI and USB, behind one xHCI controller with the USB NIC.
	cfg = Config{Kernel: "k", Initramfs: "i", MemoryMB: 1, SMP: 1, NICs: []string{"e1000", "usb", "vmxnet3", "e100"},
		Disks: []Disk{{Path: "/a", Bus: "scsi"}, {Path: "/b", Bus: "usb"}, {Path: "/c", Bus: "scsi"}, {Path: "/d", Bus: "lsi"}, {Path: "/e", Bus: "lsi"}}}
	args = qemuArgs(cfg, AccelTCG, "")
	i := slices.Index(args, "virtio-rng-pci,rng=rng0")
	want = []string{
		"-device", "qemu-xhci,id=xhci",
		"-device", "e1000,netdev=n0", "-device", "usb-net,bus=xhci.0", "-device", "vmxnet3", "-device", "i82551",
		"-device", "virtio-scsi-pci,id=scsi",
		"-drive", "file=/a,format=raw,if=none,id=disk0", "-device", "scsi-hd,drive=disk0,bus=scsi.0",
		"-drive", "file=/b,format=raw,if=none,id=disk1", "-device", "usb-storage,drive=disk1,bus=xhci.0",
		"-drive", "file=/c,format=raw,if=none,id=disk2", "-device", "scsi-hd,drive=disk2,bus=scsi.0",
		"-device", "lsi53c895a,id=lsi",
		"-drive", "file=/d,format=raw,if=none,id=disk3", "-device", "scsi-hd,drive=disk3,bus=lsi.0",
		"-drive", "file=/e,format=raw,if=none,id=disk4", "-device", "scsi-hd,drive=disk4,bus=lsi.0",
		"-kernel",
	}
	if i < 0 || !slices.Equal(args[i+1:i+1+len(want)], want) {
		t.Errorf("qemuArgs with NICs and SCSI and USB disks =\n%q\nwant after the rng\n%q", args, want)
	}
}

func TestParseDisk(t *testing.T) {
	for in, want := range map[string]Disk{
		"/d.img":             {Path: "/d.img"},
		"/d.img,if=nvme":     {Path: "/d.img", Bus: "nvme"},
		"/a,b.img,if=ahci":   {Path: "/a,b.img", Bus: "ahci"},
		"/with,comma.img":    {Path: "/with,comma.img"},
		"/dev/sdb,if=virtio": {Path: "/dev/sdb", Bus: "virtio"},
	} {
		if got, err := ParseDisk(in); err != nil || got != want {
			t.Errorf("ParseDisk(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"/d.img,if=floppy", "/d.img,if="} {
		if _, err := ParseDisk(bad); err == nil || !strings.Contains(err.Error(), "expected PATH or PATH,if=BUS") {
			t.Errorf("ParseDisk(%q): %v, want an error", bad, err)
		}
	}
}

// TestQEMUArgsUKI checks a unified kernel image's boot: OVMF, the image
// as the kernel, no initrd, and a command line only when one is given.
func TestQEMUArgsUKI(t *testing.T) {
	args := qemuArgs(Config{MemoryMB: 1, SMP: 1, UKI: "/u.efi", UEFI: true}, AccelTCG, "")
	tail := args[len(args)-4:]
	if want := []string{"-bios", DefaultOVMF, "-kernel", "/u.efi"}; !slices.Equal(tail, want) {
		t.Errorf("qemuArgs ends with %q, want %q: the image's own command line", tail, want)
	}
	args = qemuArgs(Config{MemoryMB: 1, SMP: 1, UKI: "/u.efi", UEFI: true, Cmdline: "quiet"}, AccelTCG, "")
	if tail := args[len(args)-4:]; !slices.Equal(tail, []string{"-kernel", "/u.efi", "-append", "console=ttyS0 panic=-1 quiet"}) || slices.Contains(args, "-initrd") {
		t.Errorf("qemuArgs = %q, want the given command line after the image, and no -initrd", args)
	}
	args = qemuArgs(Config{MemoryMB: 1, SMP: 1, UEFI: true, Disks: []Disk{{Path: "/stick.img", Bus: "usb"}}}, AccelTCG, "")
	if tail := args[len(args)-2:]; !slices.Equal(tail, []string{"-bios", DefaultOVMF}) || slices.Contains(args, "-kernel") {
		t.Errorf("qemuArgs booting a USB stick = %q, want OVMF and no kernel", args)
	}
	args = qemuArgs(Config{MemoryMB: 1, SMP: 1, Kernel: "k", Initramfs: "i", UEFI: true}, AccelTCG, "")
	if i := slices.Index(args, "-bios"); i < 0 || args[i+1] != DefaultOVMF || !slices.Contains(args, "-initrd") {
		t.Errorf("qemuArgs with UEFI = %q, want OVMF and the kernel and initramfs", args)
	}
}

func TestQEMUArgsWithoutForwards(t *testing.T) {
	args := qemuArgs(Config{MemoryMB: 1, SMP: 1, Kernel: "k", Initramfs: "i"}, AccelKVM, "")
	i := slices.Index(args, "-netdev")
	if i < 0 || args[i+1] != "user,id=n0,restrict=on" {
		t.Errorf("netdev = %q, want a restricted user network with no rules", args[i+1])
	}
	if args[len(args)-1] != "console=ttyS0 panic=-1" {
		t.Errorf("-append %q, want the base command line alone", args[len(args)-1])
	}
	if !slices.Contains(args, "virtio-net-pci,netdev=n0") {
		t.Errorf("no NIC in %q", args)
	}
}

func TestNetdevQuotesRelayPath(t *testing.T) {
	got := netdev([]int{80}, "/a b/it's,x", "")
	want := `user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:'/a b/it'\''s,,x' 80`
	if got != want {
		t.Errorf("netdev = %s\nwant       %s", got, want)
	}
}

func TestNetbootArgs(t *testing.T) {
	cfg, err := withDefaults(Config{Netboot: "http://127.0.0.1:8080/boot.ipxe?x=1", MAC: "52:54:00:00:00:0a", Forwards: []int{5000}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Forwards, []int{5000, 8080}) {
		t.Errorf("forwards %v, want the URL's port added", cfg.Forwards)
	}
	cfg.tftp, err = netbootScript(cfg.Netboot)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(cfg.tftp)
	script, err := os.ReadFile(filepath.Join(cfg.tftp, netbootFile))
	if err != nil || !strings.HasSuffix(string(script), "\nchain --autofree http://10.0.2.100:8080/boot.ipxe?x=1\n") {
		t.Errorf("TFTP script %q (%v), want a chain to the URL through the guest's forward", script, err)
	}
	args := strings.Join(qemuArgs(cfg, AccelTCG, "/relay"), " ")
	for _, want := range []string{",tftp=" + cfg.tftp + ",bootfile=boot.ipxe,", "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:0a", "-boot order=n"} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q: %s", want, args)
		}
	}
	if strings.Contains(args, "-kernel") {
		t.Errorf("a netboot with -kernel: %s", args)
	}
	if !strings.Contains(args, "-cpu qemu64,+rdrand") {
		t.Errorf("a TCG guest without RDRAND: %s", args)
	}
	for _, bad := range []Config{
		{Netboot: "http://10.0.0.1:80/boot.ipxe"},
		{Netboot: "https://127.0.0.1:80/boot.ipxe"},
		{Netboot: "http://127.0.0.1/boot.ipxe"},
		{Netboot: "http://127.0.0.1:80/boot.ipxe", Initramfs: "i"},
		{Netboot: "http://127.0.0.1:80/boot.ipxe", MAC: "52:54"},
		{Netboot: "http://127.0.0.1:80/boot.ipxe", NICs: []string{"usb"}},
	} {
		if _, err := withDefaults(bad); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestConsoleScansLinesAcrossWrites(t *testing.T) {
	var res Result
	var out bytes.Buffer
	c := &console{out: &out, res: &res}
	stream := "boot\r\n[  1.5] Execution is over, pipeline status: 42\r\nIt's now safe to turn off your computer\r\nlast"
	for i := 0; i < len(stream); i += 5 { // split lines across writes
		n, err := c.Write([]byte(stream[i:min(i+5, len(stream))]))
		if err != nil || n == 0 {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	c.flush()
	if out.String() != stream {
		t.Errorf("Console got %q, want the stream unchanged", out.String())
	}
	wantLines := []string{"boot", "[  1.5] Execution is over, pipeline status: 42", "It's now safe to turn off your computer", "last"}
	if !slices.Equal(res.Lines, wantLines) {
		t.Errorf("Lines = %q, want %q", res.Lines, wantLines)
	}
	if !res.StatusSeen || res.Status != 42 || !res.SafeSeen {
		t.Errorf("status %d seen %v safe %v, want 42 seen and safe", res.Status, res.StatusSeen, res.SafeSeen)
	}
	if res.HandedOver {
		t.Error("HandedOver set by a pipeline run")
	}
}

func TestConsoleSeesHandover(t *testing.T) {
	var res Result
	c := &console{out: io.Discard, res: &res}
	for _, line := range []string{"ociboot: root: unpacked in 1.0s\r\n", "ociboot: root: starting /sbin/init , 9.27 s since boot\r\n"} {
		if _, err := c.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if !res.HandedOver || res.StatusSeen {
		t.Errorf("HandedOver %v, StatusSeen %v; want true, false", res.HandedOver, res.StatusSeen)
	}
}

func TestConsoleKeepsLastLines(t *testing.T) {
	var res Result
	c := &console{res: &res}
	for range maxLines + 10 {
		c.Write([]byte("x\n"))
	}
	c.Write([]byte("final\n"))
	if len(res.Lines) != maxLines || res.Lines[len(res.Lines)-1] != "final" {
		t.Errorf("%d lines ending %q, want %d ending with the last", len(res.Lines), res.Lines[len(res.Lines)-1], maxLines)
	}
}

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int
		ok   bool
	}{
		{"Execution is over, pipeline status: 0", 0, true},
		{"Execution is over, pipeline status: 125 ", 125, true},
		{"Execution is over, pipeline status: -1", -1, true},
		{"Execution is over, pipeline status: ", 0, false},
		{"Execution is over, pipeline status: x", 0, false},
		{"pipeline status: 3", 0, false},
	} {
		got, ok := parseStatus(tc.line)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseStatus(%q) = %d, %v; want %d, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		res  Result
		err  error
		want int
	}{
		{Result{Started: true, Status: 7, StatusSeen: true}, nil, 7},
		{Result{Started: true, Status: 0, StatusSeen: true}, nil, 0},
		{Result{Started: true}, nil, NoStatusExit},
		{Result{Started: true, Status: 3, StatusSeen: true}, errors.New("timed out"), NoStatusExit},
		{Result{Started: true, Status: 256, StatusSeen: true}, nil, 255},
		{Result{Started: true, Status: -1, StatusSeen: true}, nil, 255},
		{Result{}, errors.New("no initramfs"), 1},
		// Switch-root mode: the OS powered off, or the VM stopped oddly.
		{Result{Started: true, HandedOver: true, ExitCode: 0}, nil, 0},
		{Result{Started: true, HandedOver: true, ExitCode: 3}, nil, 3},
		{Result{Started: true, HandedOver: true}, errors.New("timed out"), NoStatusExit},
	} {
		if got := ExitStatus(tc.res, tc.err); got != tc.want {
			t.Errorf("ExitStatus(%+v, %v) = %d, want %d", tc.res, tc.err, got, tc.want)
		}
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ok := Config{Kernel: file, Initramfs: file}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no initramfs", func(c *Config) { c.Initramfs = "" }, "no initramfs"},
		{"UKI and initramfs", func(c *Config) { c.UKI = c.Initramfs }, "give one or the other"},
		{"UEFI without a disk", func(c *Config) { c.Initramfs, c.UEFI = "", true }, "no initramfs, unified kernel image or disk"},
		{"missing UKI", func(c *Config) { c.Initramfs, c.UKI = "", dir+"/nope.efi" }, "nope.efi"},
		{"missing initramfs", func(c *Config) { c.Initramfs = dir + "/nope.img" }, "nope.img"},
		{"missing kernel", func(c *Config) { c.Kernel = dir + "/vmlinuz-nope" }, "vmlinuz-nope"},
		{"missing disk", func(c *Config) { c.Disks = []Disk{{Path: dir + "/disk.img"}} }, "disk.img"},
		{"directory disk", func(c *Config) { c.Disks = []Disk{{Path: dir}} }, "want a file or a block device"},
		{"unknown bus", func(c *Config) { c.Disks = []Disk{{Path: dir + "/x", Bus: "floppy"}} }, `bus "floppy": want virtio, nvme, ahci, scsi, lsi or usb`},
		{"unknown NIC", func(c *Config) { c.NICs = []string{"e1000", "ne2k"} }, `NIC model "ne2k": want virtio, e1000`},
		{"port 0", func(c *Config) { c.Forwards = []int{0} }, "forwarded port 0: want 1..65535"},
		{"port too big", func(c *Config) { c.Forwards = []int{65536} }, "forwarded port 65536"},
		{"port twice", func(c *Config) { c.Forwards = []int{80, 80} }, "port 80 given twice"},
		{"accel", func(c *Config) { c.Accel = "hvf" }, `accelerator "hvf"`},
		{"memory", func(c *Config) { c.MemoryMB = -1 }, "must not be negative"},
		{"qemu", func(c *Config) { c.QEMU = dir + "/no-qemu"; c.Accel = AccelTCG }, "starting " + dir + "/no-qemu"},
	} {
		cfg := ok
		tc.edit(&cfg)
		res, err := Run(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Run error = %v, want one containing %q", tc.name, err, tc.want)
		}
		if res.Started || ExitStatus(res, err) != 1 {
			t.Errorf("%s: started %v, ExitStatus %d; want not started, 1", tc.name, res.Started, ExitStatus(res, err))
		}
	}
}

func TestNewestKernel(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{
		"vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-56-amd64", "vmlinuz-6.9.12-amd64",
		"vmlinuz-6.10.1-amd64", "vmlinuz-5.19.0", "config-7.0.0", "initrd.img-7.0.0",
	} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := newestKernel(dir)
	if err != nil || got != filepath.Join(dir, "vmlinuz-6.10.1-amd64") {
		t.Errorf("newestKernel = %q, %v; want vmlinuz-6.10.1-amd64", got, err)
	}
	if _, err := newestKernel(t.TempDir()); err == nil || !strings.Contains(err.Error(), "vmlinuz-*") {
		t.Errorf("newestKernel of an empty directory: %v, want an error naming the pattern", err)
	}
}

func TestProbeImage(t *testing.T) {
	img := probeImage()
	if len(img) != 64<<10 {
		t.Fatalf("probe image is %d bytes, want 64 KiB", len(img))
	}
	le16 := func(off int) int { return int(img[off]) | int(img[off+1])<<8 }
	le32 := func(off int) int { return le16(off) | le16(off+2)<<16 }
	checks := []struct {
		what      string
		got, want int
	}{
		{"reset vector: jmp far", int(img[probeReset]), 0xea},
		{"reset vector target", le32(probeReset + 1), 0xf000<<16 | probeCode16},
		{"code16 lgdt operand", le16(probeCode16 + 9), probeGDTR},
		{"code16 jump target", le32(probeCode32 - 6), 0xF0000 + probeCode32},
		{"code16 jump selector", le16(probeCode32 - 2), 0x08},
		{"code32 starts with mov ax, 0x10", le32(probeCode32), 0x0010b866},
		{"code32 jump target", le32(probeCode64 - 6), 0xF0000 + probeCode64},
		{"code32 jump selector", le16(probeCode64 - 2), 0x18},
		{"GDTR limit", le16(probeGDTR), 31},
		{"GDTR base", le32(probeGDTR + 2), 0xF0000 + probeGDT},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %#x, want %#x", c.what, c.got, c.want)
		}
	}
	// mov al, 1; out 0xf4, al; hlt
	if !bytes.Equal(img[probeCode64:probeCode64+5], []byte{0xb0, 0x01, 0xe6, 0xf4, 0xf4}) {
		t.Errorf("code64 = % x", img[probeCode64:probeCode64+5])
	}
	if !bytes.Equal(img[probeCode64+5:probeGDT], []byte{0}) || img[probeGDT+8+5] != 0x9a || img[probeGDT+24+6] != 0xaf {
		t.Errorf("GDT misplaced or wrong: % x", img[probeCode64:probeGDTR])
	}
}

// The probe image must run to its end under TCG: that shows the image, not
// the host, is right.
func TestProbeRunsUnderTCG(t *testing.T) {
	start := time.Now()
	if err := probeKVM(context.Background(), DefaultQEMU, AccelTCG, 5*time.Minute); err != nil {
		t.Fatalf("probe under TCG: %v", err)
	}
	t.Logf("probe under TCG took %s", time.Since(start))
}

// Under KVM the probe either passes or gives up at probeWait (a guest
// that hangs is killed then); which one depends on the host. A watchdog
// far beyond any load fails the test if the probe hangs.
func TestProbeKVMReturns(t *testing.T) {
	done := make(chan error, 1)
	go func() { done <- probeKVM(context.Background(), DefaultQEMU, AccelKVM, probeWait) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		t.Fatalf("the KVM probe still runs 5 minutes after it started, with a %s limit", probeWait)
	}
	t.Logf("probe under KVM: %v", err)
	var log bytes.Buffer
	accel := chooseAccel(context.Background(), Config{QEMU: DefaultQEMU, Accel: AccelAuto, Log: &log})
	if want := map[bool]string{true: AccelKVM, false: AccelTCG}[err == nil]; accel != want {
		t.Errorf("chooseAccel = %s, want %s (probe error: %v)", accel, want, err)
	}
	if !strings.HasPrefix(log.String(), "vm: using "+accel) || strings.Count(log.String(), "\n") != 1 {
		t.Errorf("log = %q, want one line naming %s", log.String(), accel)
	}
}

// relay passes data and half-closes both ways between a guest connection
// (a socketpair end, as QEMU gives it) and a host service.
func TestRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // the host service: read to EOF, answer, close
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var buf bytes.Buffer
		buf.ReadFrom(c)
		c.Write([]byte("got " + buf.String()))
	}()

	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	guest, qemuSide := fileConn(t, fds[0]), fileConn(t, fds[1])
	host, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		relay(qemuSide, host)
		close(done)
	}()

	guest.Write([]byte("hello"))
	guest.(*net.UnixConn).CloseWrite()
	guest.SetReadDeadline(time.Now().Add(time.Minute))
	var reply bytes.Buffer
	if _, err := reply.ReadFrom(guest); err != nil {
		t.Fatalf("reading the reply: %v", err)
	}
	if reply.String() != "got hello" {
		t.Errorf("reply %q, want %q", reply.String(), "got hello")
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Error("relay did not return after both sides closed")
	}
}

func fileConn(t *testing.T, fd int) net.Conn {
	t.Helper()
	f := os.NewFile(uintptr(fd), "socketpair")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRelayMainRejectsBadPort(t *testing.T) {
	for _, p := range []string{"0", "65536", "x", ""} {
		if got := relayMain(p); got != 2 {
			t.Errorf("relayMain(%q) = %d, want 2", p, got)
		}
	}
}
