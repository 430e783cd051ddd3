// Package vm runs an ociboot initramfs in a QEMU virtual machine, for
// `ociboot vm` and for the end-to-end tests.
//
// Run boots a kernel and initramfs with the serial console streamed to a
// writer, watches the console for the pipeline status line that ociboot
// prints before it powers off, and reports that status with the VM's exit.
//
// The guest reaches nothing but the host services it is given: QEMU's user
// network runs with restrict=on, and each forwarded port is one guestfwd rule
// from 10.0.2.100:PORT in the guest to 127.0.0.1:PORT on the host. QEMU runs
// a relay process per guest connection for each rule; that relay is this
// program itself, started by QEMU with an environment variable that makes
// the package's init function relay and exit (see relay.go).
package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	contract "github.com/ociboot/ociboot/internal/console"
)

// Accelerator choices for Config.Accel.
const (
	AccelAuto = "auto" // KVM when a probe shows it runs guest code, else TCG
	AccelTCG  = "tcg"  // software emulation: slow, always works
	AccelKVM  = "kvm"  // hardware virtualisation, without a probe
)

// Defaults applied by Run to zero Config fields.
const (
	DefaultQEMU     = "qemu-system-x86_64"
	DefaultMemoryMB = 2048
	DefaultSMP      = 1
)

// GuestHost is the address at which the guest reaches forwarded host ports.
const GuestHost = "10.0.2.100"

// NoStatusExit is the exit status ExitStatus gives when the VM did not
// report a pipeline status (it stopped early, timed out or was cancelled).
const NoStatusExit = 125

// Console lines that ociboot prints at the end of a run.
const (
	StatusPrefix   = contract.StatusPrefix
	SafeLine       = contract.SafeLine
	HandoverPrefix = contract.HandoverPrefix
)

// errTimedOut ends a run at Config.Timeout.
var errTimedOut = errors.New("timed out")

// maxLines bounds Result.Lines; older lines are dropped first.
const maxLines = 10000

// DefaultOVMF is the UEFI firmware of UEFI boots: Debian's ovmf, code and
// variables in one image.
const DefaultOVMF = "/usr/share/ovmf/OVMF.fd"

// Config describes one VM run. Only Initramfs (or UKI, or UEFI and a
// bootable disk) is required.
type Config struct {
	QEMU      string // QEMU binary; default DefaultQEMU
	Kernel    string // kernel image; default DefaultKernel()
	Initramfs string // initramfs image (required, but with UKI)
	Cmdline   string // appended to "console=ttyS0 panic=-1"
	// UKI, when set, is a unified kernel image that UEFI firmware boots
	// in place of Kernel and Initramfs. The command line is then the
	// image's own (its .cmdline) unless Cmdline is given, which replaces
	// it, as a boot loader's would.
	UKI string
	// UEFI boots through UEFI firmware (OVMF, whose variables live only as
	// long as the VM) rather than the BIOS; UKI implies it. With neither
	// UKI nor Initramfs, the firmware boots from the disks (a USB stick
	// image).
	UEFI bool
	// Netboot, when set, is the URL of an iPXE script served on this
	// host's loopback (http://127.0.0.1:PORT/boot.ipxe, as `ociboot
	// serve` answers it): the VM boots from its first NIC's firmware
	// (QEMU's iPXE ROM), to which slirp's DHCP and TFTP (they answer with
	// restrict=on too) hand a script chaining that URL through PORT's
	// forward, added when missing. Kernel, Initramfs and Cmdline are then
	// not used: the server says what to boot.
	Netboot string
	// MAC is the first NIC's MAC address; "" is QEMU's 52:54:00:12:34:56.
	MAC      string
	MemoryMB int    // guest memory in MiB; default DefaultMemoryMB
	SMP      int    // virtual CPUs; default DefaultSMP
	Forwards []int  // host 127.0.0.1:PORT seen in the guest at GuestHost:PORT
	Disks    []Disk // raw images (or block devices) attached as disks, in order
	// NICs are the models of the NICs, in order (NICModels); the first
	// carries the user network and its forwards, the others no network.
	// Empty means one virtio NIC.
	NICs    []string
	Timeout time.Duration // stop the VM after this long; 0 means no limit
	Accel   string        // AccelAuto (also ""), AccelTCG or AccelKVM
	Console io.Writer     // receives the serial console as it comes; nil discards
	Stdin   io.Reader     // serial console input; nil gives none
	Log     io.Writer     // one line saying which accelerator is used; nil discards
	// Monitor, when set, is the path of a Unix socket that QEMU's human
	// monitor listens on (see MonitorCommand): tests press keys with it.
	Monitor string
	// Taps are open tap devices (made by the caller, say in a network
	// namespace of its own), each the backend of one more virtio NIC,
	// after the user-network one: eth1, eth2... in the guest.
	Taps []*os.File

	// tftp is the directory slirp's TFTP serves the netboot script from.
	tftp string

	// afterFunc arms the timeout: time.AfterFunc's Stop when nil. Tests
	// fire it on an event instead of racing the wall clock.
	afterFunc func(d time.Duration, f func()) (stop func() bool)
}

// Result is what a run observed. Run returns it even with an error, filled
// in as far as the run got.
type Result struct {
	Status     int           // pipeline status, valid when StatusSeen
	StatusSeen bool          // the console showed StatusPrefix and a number
	SafeSeen   bool          // the console showed SafeLine
	HandedOver bool          // switch-root mode: the image's init was started
	Started    bool          // QEMU was started (the configuration was sound)
	Accel      string        // accelerator used: AccelTCG or AccelKVM
	ExitCode   int           // QEMU's exit status; -1 if it died from a signal or never ran
	Elapsed    time.Duration // from QEMU's start to its exit
	Lines      []string      // console lines without line endings (the last maxLines)
}

// Run boots the VM described by cfg and waits for QEMU to exit. It returns
// an error when the VM stops without the pipeline reporting a status, when
// cfg.Timeout passes (QEMU is then stopped), when ctx is cancelled (likewise)
// or when the configuration is wrong.
func Run(ctx context.Context, cfg Config) (Result, error) {
	res := Result{ExitCode: -1}
	cfg, err := withDefaults(cfg)
	if err != nil {
		return res, err
	}
	relay := ""
	if len(cfg.Forwards) > 0 {
		if relay, err = os.Executable(); err != nil {
			return res, fmt.Errorf("vm: finding this program to relay forwarded ports: %w", err)
		}
	}
	if cfg.Netboot != "" {
		if cfg.tftp, err = netbootScript(cfg.Netboot); err != nil {
			return res, err
		}
		defer os.RemoveAll(cfg.tftp)
	}
	res.Accel = chooseAccel(ctx, cfg)
	args := qemuArgs(cfg, res.Accel, relay)

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if cfg.Timeout > 0 {
		arm := cfg.afterFunc
		if arm == nil {
			arm = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
		}
		stop := arm(cfg.Timeout, func() { cancel(errTimedOut) })
		defer stop()
	}

	con := &console{out: cfg.Console, res: &res}
	stderr := &tailBuffer{max: 2048}
	cmd := exec.CommandContext(runCtx, cfg.QEMU, args...)
	if cfg.Stdin != nil {
		// Our own pipe and copy: exec.Cmd would wait for a copy from a
		// reader that may never end, after QEMU has exited.
		pr, pw, err := os.Pipe()
		if err != nil {
			return res, fmt.Errorf("vm: console input: %w", err)
		}
		defer pw.Close()
		go func() { _, _ = io.Copy(pw, cfg.Stdin) }()
		cmd.Stdin = pr
		defer pr.Close()
	}
	cmd.ExtraFiles = cfg.Taps // fd 3, 4...: see qemuArgs
	cmd.Stdout = con
	cmd.Stderr = stderr
	if relay != "" {
		cmd.Env = append(os.Environ(), relayEnv+"=1")
	}
	// SIGTERM lets QEMU restore the terminal; WaitDelay kills it if it lingers.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 3 * time.Second

	start := time.Now()
	runErr := cmd.Run()
	res.Elapsed = time.Since(start)
	res.Started = cmd.Process != nil
	con.flush()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	var exitErr *exec.ExitError
	switch {
	case !res.Started:
		return res, fmt.Errorf("vm: starting %s: %w", cfg.QEMU, runErr)
	case ctx.Err() != nil:
		return res, fmt.Errorf("vm: the VM was stopped: %w", context.Cause(ctx))
	case errors.Is(context.Cause(runCtx), errTimedOut):
		return res, fmt.Errorf("vm: the VM timed out after %s%s", cfg.Timeout, statusNote(res))
	case runErr != nil && !errors.As(runErr, &exitErr):
		return res, fmt.Errorf("vm: running %s: %w", cfg.QEMU, runErr)
	case !res.StatusSeen && !res.HandedOver:
		return res, fmt.Errorf("vm: the VM stopped before the pipeline reported a status (%q was never printed; qemu %s)%s",
			strings.TrimSpace(StatusPrefix)+" N", cmd.ProcessState, stderr.note())
	}
	return res, nil
}

// ExitStatus maps a Run outcome to a process exit status: the pipeline
// status when the run succeeded, 1 when QEMU never started (a configuration
// error) and NoStatusExit otherwise. A status outside 0..255 gives 255 so
// that it can never read as success. In switch-root mode, where no
// pipeline reports a status, a run that handed over to the image's init
// and stopped by itself gives QEMU's exit status (0 when the OS powered
// off).
func ExitStatus(res Result, err error) int {
	switch {
	case !res.Started:
		return 1
	case err == nil && !res.StatusSeen && res.HandedOver:
		return min(max(res.ExitCode, 0), 255)
	case err != nil || !res.StatusSeen:
		return NoStatusExit
	case res.Status < 0 || res.Status > 255:
		return 255
	}
	return res.Status
}

func statusNote(res Result) string {
	if res.StatusSeen {
		return fmt.Sprintf(" (the pipeline reported status %d, but the VM did not power off)", res.Status)
	}
	return " (the pipeline reported no status)"
}

// withDefaults fills in zero fields of cfg and checks the rest.
func withDefaults(cfg Config) (Config, error) {
	if cfg.QEMU == "" {
		cfg.QEMU = DefaultQEMU
	}
	if cfg.MemoryMB == 0 {
		cfg.MemoryMB = DefaultMemoryMB
	}
	if cfg.SMP == 0 {
		cfg.SMP = DefaultSMP
	}
	if cfg.Accel == "" {
		cfg.Accel = AccelAuto
	}
	if cfg.MAC != "" {
		if _, err := net.ParseMAC(cfg.MAC); err != nil {
			return cfg, fmt.Errorf("vm: MAC address: %w", err)
		}
	}
	switch {
	case cfg.Netboot != "":
		if cfg.Initramfs != "" || cfg.UKI != "" || cfg.Cmdline != "" || cfg.UEFI {
			return cfg, errors.New("vm: a netboot's server says what to boot: give no initramfs, unified kernel image, command line or UEFI")
		}
		if len(cfg.NICs) > 0 && cfg.NICs[0] == "usb" {
			return cfg, errors.New("vm: netboot: the first NIC boots, and a USB NIC has no boot ROM: make it a PCI one")
		}
		port, err := netbootPort(cfg.Netboot)
		if err != nil {
			return cfg, err
		}
		if !slices.Contains(cfg.Forwards, port) {
			cfg.Forwards = append(slices.Clone(cfg.Forwards), port)
		}
	case cfg.Initramfs == "" && cfg.UKI == "" && !cfg.UEFI:
		return cfg, errors.New("vm: no initramfs given")
	case cfg.Initramfs == "" && cfg.UKI == "" && len(cfg.Disks) == 0:
		return cfg, errors.New("vm: no initramfs, unified kernel image or disk to boot from given")
	case cfg.Kernel == "":
		k, err := DefaultKernel()
		if err != nil {
			return cfg, err
		}
		cfg.Kernel = k
	}
	if cfg.UKI != "" && cfg.Initramfs != "" {
		return cfg, errors.New("vm: a unified kernel image holds its initramfs: give one or the other")
	}
	cfg.UEFI = cfg.UEFI || cfg.UKI != ""
	if cfg.MemoryMB < 0 || cfg.SMP < 0 || cfg.Timeout < 0 {
		return cfg, fmt.Errorf("vm: memory (%d MiB), CPUs (%d) and timeout (%s) must not be negative", cfg.MemoryMB, cfg.SMP, cfg.Timeout)
	}
	switch cfg.Accel {
	case AccelAuto, AccelTCG, AccelKVM:
	default:
		return cfg, fmt.Errorf("vm: accelerator %q: want %s, %s or %s", cfg.Accel, AccelAuto, AccelTCG, AccelKVM)
	}
	seen := map[int]bool{}
	for _, p := range cfg.Forwards {
		if p < 1 || p > 65535 {
			return cfg, fmt.Errorf("vm: forwarded port %d: want 1..65535", p)
		}
		if seen[p] {
			return cfg, fmt.Errorf("vm: forwarded port %d given twice", p)
		}
		seen[p] = true
	}
	for _, n := range cfg.NICs {
		if nicDevices[n] == "" {
			return cfg, fmt.Errorf("vm: NIC model %q: want %s", n, NICModels)
		}
	}
	var files []string
	switch {
	case cfg.UKI != "":
		files = []string{cfg.UKI}
	case cfg.Initramfs != "":
		files = []string{cfg.Kernel, cfg.Initramfs}
	}
	if cfg.UEFI {
		files = append(files, DefaultOVMF)
	}
	for _, d := range cfg.Disks {
		if _, ok := diskBuses[d.Bus]; !ok {
			return cfg, fmt.Errorf("vm: disk %s: bus %q: want %s", d.Path, d.Bus, busWant)
		}
		files = append(files, d.Path)
	}
	for _, f := range files {
		if err := regularFile(f); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func regularFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	if !fi.Mode().IsRegular() && fi.Mode()&os.ModeDevice == 0 {
		return fmt.Errorf("vm: %s: want a file or a block device, found %s", path, fi.Mode().Type())
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// note formats the tail for an error message, or "" when it is empty.
func (t *tailBuffer) note() string {
	s := string(bytes.TrimSpace(t.buf))
	if s == "" {
		return ""
	}
	return "; qemu stderr: " + s
}
