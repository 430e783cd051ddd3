package vm

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// baseCmdline starts every kernel command line: the console on the first
// serial port, and an immediate reboot (which -no-reboot turns into QEMU's
// exit) on a panic.
const baseCmdline = "console=ttyS0 panic=-1"

// qemuArgs returns QEMU's arguments for cfg (defaults already applied) with
// the given accelerator. relay is the program QEMU runs per guest connection
// to a forwarded port; it is only used when cfg.Forwards is not empty.
func qemuArgs(cfg Config, accel, relay string) []string {
	args := []string{"-accel", accel}
	if accel == AccelTCG {
		// A CPU with RDRAND, as every x86 server and PC of the last ten
		// years has: the kernel seeds its random pool from it at boot
		// (Debian trusts the CPU's generator). QEMU's default qemu64
		// lacks it, and the pool then waits for the kernel's jitter
		// entropy, over a second under TCG, which anything reading
		// crypto/rand at start (a Go package's init) sits through.
		args = append(args, "-cpu", "qemu64,+rdrand")
	}
	args = append(args,
		"-nodefaults", "-no-reboot", "-display", "none",
		"-m", strconv.Itoa(cfg.MemoryMB),
		"-smp", strconv.Itoa(cfg.SMP),
		// The serial console on stdio; signal=on keeps Ctrl-C working.
		"-chardev", "stdio,id=console,signal=on",
		"-serial", "chardev:console",
		"-netdev", netdev(cfg.Forwards, relay, cfg.tftp),
		// Entropy from the host: without it the guest kernel's random
		// pool takes minutes to initialise under TCG, and everything
		// that needs random numbers (DHCP, TLS) waits for it.
		"-object", "rng-random,id=rng0,filename=/dev/urandom",
		"-device", "virtio-rng-pci,rng=rng0",
	)
	// The USB controller of USB NICs and disks, once.
	if slices.Contains(cfg.NICs, "usb") || slices.ContainsFunc(cfg.Disks, func(d Disk) bool { return d.Bus == "usb" }) {
		args = append(args, "-device", "qemu-xhci,id=xhci")
	}
	nics := cfg.NICs
	if len(nics) == 0 {
		nics = []string{"virtio"}
	}
	for i, model := range nics {
		dev := nicDevices[model]
		if model == "usb" {
			dev += ",bus=xhci.0"
		}
		if i == 0 {
			dev += ",netdev=n0" // the user network, and its forwards
			if cfg.MAC != "" {
				dev += ",mac=" + cfg.MAC
			}
		}
		args = append(args, "-device", dev)
	}
	for i := range cfg.Taps {
		// The tap's descriptor is the child's fd 3+i (exec.Cmd.ExtraFiles).
		id := fmt.Sprintf("t%d", i+1)
		args = append(args, "-netdev", fmt.Sprintf("tap,id=%s,fd=%d", id, 3+i),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=%s,mac=52:54:00:12:35:%02x", id, 0x10+i))
	}
	if cfg.Monitor != "" {
		args = append(args, "-monitor", "unix:"+optEscape(cfg.Monitor)+",server=on,wait=off")
	}
	ahci, scsi, lsi := 0, false, false
	for i, d := range cfg.Disks {
		file := "file=" + optEscape(d.Path) + ",format=raw"
		id := fmt.Sprintf("disk%d", i)
		switch d.Bus {
		case "", "virtio":
			args = append(args, "-drive", file+",if=virtio")
		case "nvme":
			args = append(args, "-drive", file+",if=none,id="+id, "-device", fmt.Sprintf("nvme,drive=%s,serial=ociboot%d", id, i))
		case "ahci":
			if ahci == 0 {
				args = append(args, "-device", "ich9-ahci,id=ahci")
			}
			args = append(args, "-drive", file+",if=none,id="+id, "-device", fmt.Sprintf("ide-hd,drive=%s,bus=ahci.%d", id, ahci))
			ahci++
		case "scsi":
			if !scsi {
				args = append(args, "-device", "virtio-scsi-pci,id=scsi")
				scsi = true
			}
			args = append(args, "-drive", file+",if=none,id="+id, "-device", fmt.Sprintf("scsi-hd,drive=%s,bus=scsi.0", id))
		case "lsi":
			if !lsi {
				args = append(args, "-device", "lsi53c895a,id=lsi")
				lsi = true
			}
			args = append(args, "-drive", file+",if=none,id="+id, "-device", fmt.Sprintf("scsi-hd,drive=%s,bus=lsi.0", id))
		case "usb":
			args = append(args, "-drive", file+",if=none,id="+id, "-device", fmt.Sprintf("usb-storage,drive=%s,bus=xhci.0", id))
		}
	}
	cmdline := baseCmdline
	if cfg.Cmdline != "" {
		cmdline += " " + cfg.Cmdline
	}
	if cfg.UEFI {
		args = append(args, "-bios", DefaultOVMF)
	}
	if cfg.Netboot != "" {
		// The first NIC's option ROM (QEMU's iPXE) boots first.
		return append(args, "-boot", "order=n")
	}
	if cfg.UEFI && cfg.UKI == "" && cfg.Initramfs == "" {
		return args // the firmware boots from the disks
	}
	if cfg.UKI != "" {
		// OVMF starts it as an EFI application; QEMU hands it -append as
		// its load options, which systemd's stub takes for the command
		// line in place of its own.
		args = append(args, "-kernel", cfg.UKI)
		if cfg.Cmdline != "" {
			args = append(args, "-append", cmdline)
		}
		return args
	}
	return append(args, "-kernel", cfg.Kernel, "-initrd", cfg.Initramfs, "-append", cmdline)
}

// Disk is a raw disk image (or a block device) and the bus it is on.
type Disk struct {
	Path string
	// Bus is virtio ("" too), nvme, ahci (SATA, on an ICH9 controller),
	// scsi (on a virtio-scsi controller), lsi (SCSI on an LSI 53C895A,
	// whose sym53c8xx is in no driver preset) or usb (usb-storage on
	// xHCI).
	Bus string
}

// diskBuses are the buses a Disk may be on.
var diskBuses = map[string]bool{"": true, "virtio": true, "nvme": true, "ahci": true, "scsi": true, "lsi": true, "usb": true}

// busWant says what a Disk's bus may be, for errors.
const busWant = "virtio, nvme, ahci, scsi, lsi or usb"

// nicDevices are QEMU's device of each NIC model Config.NICs may name.
var nicDevices = map[string]string{
	"virtio": "virtio-net-pci", "e1000": "e1000", "e1000e": "e1000e", "rtl8139": "rtl8139",
	"vmxnet3": "vmxnet3", "usb": "usb-net",
	// An Intel PRO/100 (i82551, revision 0x0f): e100 asks it for the
	// d102e microcode, firmware the initramfs may carry.
	"e100": "i82551",
}

// NICModels are the NIC models Config.NICs may name, for messages.
const NICModels = "virtio, e1000, e1000e, rtl8139, vmxnet3, e100 or usb"

// ParseDisk reads PATH[,if=BUS], as ociboot vm --disk takes it: BUS is
// virtio (the default), nvme, ahci, scsi, lsi or usb.
func ParseDisk(s string) (Disk, error) {
	i := strings.LastIndex(s, ",if=")
	if i < 0 {
		return Disk{Path: s}, nil
	}
	if bus := s[i+len(",if="):]; diskBuses[bus] && bus != "" {
		return Disk{Path: s[:i], Bus: bus}, nil
	}
	return Disk{}, fmt.Errorf("%q: expected PATH or PATH,if=BUS with BUS %s", s, busWant)
}

// netdev returns the user-network backend: restricted to the guestfwd rules,
// one per forwarded port.
//
// A guestfwd whose target is a character device ("-tcp:127.0.0.1:PORT") is
// connected once, when QEMU starts, and every guest connection shares that
// one stream: a second HTTP request never gets an answer. The "cmd:" form
// runs the relay once per guest connection instead, with the connection on
// its standard input and output.
//
// With tftp set, slirp's TFTP serves that directory and its DHCP names
// netbootFile as the boot file.
func netdev(forwards []int, relay, tftp string) string {
	s := "user,id=n0,restrict=on"
	if tftp != "" {
		s += ",tftp=" + optEscape(tftp) + ",bootfile=" + netbootFile
	}
	for _, p := range forwards {
		cmd := shellQuote(relay) + " " + strconv.Itoa(p)
		s += fmt.Sprintf(",guestfwd=tcp:%s:%d-cmd:%s", GuestHost, p, optEscape(cmd))
	}
	return s
}

// optEscape escapes a value inside a comma-separated QEMU option list.
func optEscape(s string) string {
	return strings.ReplaceAll(s, ",", ",,")
}

// shellQuote quotes s for g_shell_parse_argv, which libslirp uses to split a
// guestfwd command.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
