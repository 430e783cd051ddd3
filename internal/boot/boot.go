// Package boot is the init's main sequence: the walk from the kernel command
// line to power-off, one stage after the other. Each stage lives in its own
// package; this one only strings them together and decides what a failure
// means.
package boot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/clock"
	"github.com/ociboot/ociboot/internal/console"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/keymap"
	"github.com/ociboot/ociboot/internal/kmod"
	"github.com/ociboot/ociboot/internal/netconf"
	"github.com/ociboot/ociboot/internal/pid1"
	"github.com/ociboot/ociboot/internal/pipeline"
	"github.com/ociboot/ociboot/internal/runtime"
	"golang.org/x/sys/unix"
)

// failDelay is how long a failed boot waits, so that a person can read the
// error, before powering off (unless a poweroff delay was given).
const failDelay = 5 * time.Second

// stageError is a failure of one boot stage.
type stageError struct {
	stage string
	err   error
}

func (e *stageError) Error() string { return e.stage + ": " + e.err.Error() }

func stage(name string, err error) error {
	if err == nil {
		return nil
	}
	return &stageError{name, err}
}

// Main runs the init. It never returns.
func Main() {
	con := os.Stdout
	if !pid1.RootMoved(os.Environ()) && !wantsSwitchRoot() {
		// The kernel's rootfs cannot be pivoted away from, as the
		// container runtime must: move into a tmpfs and re-execute from
		// there (does not return on success). Switch-root mode needs no
		// pivot_root, and stays.
		err := pid1.MoveRootToTmpfs("75%")
		fail(con, nil, nil, stage("root", err))
	}
	if err := pid1.MountAPI(); err != nil {
		fail(con, nil, nil, stage("mounts", err))
	}
	if err := pid1.SetupConsole(); err != nil {
		fmt.Fprintf(con, "ociboot: console: %v (going on)\n", err)
	}
	reaper := pid1.NewReaper()
	defer func() {
		if p := recover(); p != nil {
			fail(con, reaper, nil, fmt.Errorf("internal error: %v\n%s", p, debug.Stack()))
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	var requested atomic.Int32 // a pid1.Action; PowerOff unless asked
	go func() {
		a := <-pid1.Requests()
		requested.Store(int32(a))
		fmt.Fprintf(con, "ociboot: %s requested: stopping the containers\n", a)
		cancel()
	}()

	plan, res, err := run(ctx, con, reaper)
	if err != nil {
		fail(con, reaper, plan, err)
	}
	console.Section(con, "end")
	fmt.Fprintf(con, "%s%d\n", console.StatusPrefix, res.Status)
	action := pid1.PowerOff
	if res.Action == pipeline.Reboot {
		action = pid1.Reboot
	}
	if ctx.Err() != nil {
		// Asked from outside (SIGTERM, ctrl-alt-del): that wins.
		action = pid1.Action(requested.Load())
	}
	if plan.PoweroffDelay > 0 {
		fmt.Fprintf(con, "ociboot: %s in %ds\n", action, plan.PoweroffDelay)
		time.Sleep(time.Duration(plan.PoweroffDelay) * time.Second)
	}
	pid1.ShutdownWith(action, reaper, con, endCommand(plan, action))
}

// endCommand is the command the plan gives for action, if any.
func endCommand(plan *bootcfg.Plan, action pid1.Action) []string {
	if plan == nil {
		return nil
	}
	if action == pid1.Reboot {
		return plan.RebootCmd
	}
	return plan.ShutdownCmd
}

// run is the walk itself: every stage in order, returning the pipeline
// status or the first stage error.
func run(ctx context.Context, con io.Writer, reaper *pid1.Reaper) (*bootcfg.Plan, pipeline.Result, error) {
	var none pipeline.Result
	baked, err := readBaked(bootcfg.BakedPath)
	if err == nil {
		err = readBakedRegistry(&baked, bootcfg.AuthPath, bootcfg.CAPath)
	}
	if err != nil {
		return nil, none, stage("config", err)
	}
	console.Section(con, "configuration")
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, none, stage("cmdline", err)
	}
	cmdline := strings.TrimSpace(string(raw))
	plan, err := bootcfg.Parse(cmdline, baked)
	if err != nil {
		// Honour on_failure and poweroff_delay as far as they can be read.
		action, delay := bootcfg.FailureSettings(cmdline, baked)
		return &bootcfg.Plan{OnFailure: action, PoweroffDelay: delay}, none, stage("cmdline", withShell(err, baked.Shell))
	}
	ipHostname := ""
	if plan.KernelIP != nil {
		ipHostname = plan.KernelIP.Hostname
	}
	setIdentity(con, cmp.Or(plan.Hostname, ipHostname, "ociboot"))

	if plan.Keymap != "" {
		if err := loadKeymap(plan.Keymap); err != nil {
			return plan, none, stage("keymap", err)
		}
		fmt.Fprintf(con, "ociboot: keymap: %s loaded\n", plan.Keymap)
	}

	console.Section(con, "modules")
	for _, f := range plan.Insmods {
		if err := kmod.InsertFile(filepath.Join("/", f)); err != nil {
			return plan, none, stage("modules", err)
		}
		fmt.Fprintf(con, "ociboot: modules: inserted %s\n", f)
	}
	modules := append(append([]string(nil), baked.Modules...), plan.Modules...)
	if err := loadModules(con, modules); err != nil {
		return plan, none, stage("modules", err)
	}

	console.Section(con, "network")
	start := time.Now()
	netOpts := netconf.Options{Log: console.Stage(con, "network")}
	switch {
	case len(plan.Ifaces) > 0:
		netOpts.Ifaces = plan.Ifaces
	case plan.KernelIP != nil:
		netOpts = plan.KernelIP.Apply(netOpts)
	}
	network, err := netconf.Up(ctx, netOpts)
	if err != nil {
		return plan, none, stage("network", err)
	}
	fmt.Fprintf(con, "ociboot: network: up in %s\n", time.Since(start).Round(time.Millisecond))
	// For the machine's life (or until switching root): links that come
	// later, lease renewals.
	netCtx, stopNet := context.WithCancel(ctx)
	final := make(chan *netconf.Result, 1)
	go func() {
		r, err := netconf.Maintain(netCtx, netOpts, network)
		if err != nil {
			fmt.Fprintf(con, "ociboot: network: %v\n", err)
			r = network
		}
		final <- r
	}()
	stopNetwork := func() *netconf.Result {
		stopNet()
		return <-final
	}

	console.Section(con, "clock")
	syncClock(ctx, con, plan, network.NTP)

	if plan.ExtraArgsURL != "" {
		console.Section(con, "extra_args_url")
		extra, err := fetchExtraArgs(ctx, plan.ExtraArgsURL, fetch.Options{CACerts: plan.CACerts}, console.Stage(con, "extra_args_url"))
		if err != nil {
			return plan, none, stage("extra_args_url", err)
		}
		next, err := bootcfg.ParseWithExtra(cmdline, baked, extra)
		if err != nil {
			return plan, none, stage("extra_args_url", err)
		}
		plan = next
		fmt.Fprintf(con, "ociboot: extra_args_url: read %d bytes of parameters from %s\n", len(extra), plan.ExtraArgsURL)
	}

	if plan.Root != "" {
		hostname := cmp.Or(plan.Hostname, ipHostname)
		return plan, none, stage("root", switchRoot(ctx, con, reaper, plan, hostname, stopNetwork))
	}

	console.Section(con, "containers")
	// Containers see the command line without its secrets.
	masked := "/run/ociboot/cmdline"
	if err := os.MkdirAll(filepath.Dir(masked), 0o755); err != nil {
		return plan, none, stage("containers", err)
	}
	if err := os.WriteFile(masked, []byte(bootcfg.MaskSecrets(cmdline)+"\n"), 0o444); err != nil {
		return plan, none, stage("containers", err)
	}
	res := pipeline.Run(ctx, pipeline.Config{
		Plan:        plan,
		Runtime:     runtime.Runtime{Path: baked.Runtime},
		StateDir:    "/var/lib/ociboot",
		Procs:       reaper,
		Log:         con,
		CmdlineFile: masked,
	})
	return plan, res, nil
}

// loadKeymap loads the keymap name that `ociboot build --keymaps` stored
// into the keyboard driver, through the first virtual console.
func loadKeymap(name string) error {
	file := filepath.Join(bootcfg.KeymapDir, name+".bmap")
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	m, err := keymap.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return keymap.Load("/dev/tty0", m)
}

// syncClock sets the clock as ociboot.ntp_peer says, with the NTP servers
// DHCP offered for auto. A failure is reported and the boot goes on: TLS
// errors will then say what is wrong.
func syncClock(ctx context.Context, con io.Writer, plan *bootcfg.Plan, dhcpServers []net.IP) {
	log := console.Ours(con) // clock's lines start with "clock: "
	res, err := clock.Sync(ctx, clock.Options{Peer: plan.NTPPeer, DHCPServers: dhcpServers, Log: log})
	switch {
	case err != nil:
		fmt.Fprintf(log, "%v (going on with the clock as it is)\n", err)
	case res.Skipped:
		fmt.Fprintln(log, res)
	}
}

// shellError carries, with a command-line error, the shell the initramfs
// has: the Plan that would say so could not be made.
type shellError struct {
	error
	shell string
}

func (e shellError) Unwrap() error { return e.error }

func withShell(err error, shell string) error {
	if shell == "" {
		return err
	}
	return shellError{err, shell}
}

// fail reports a stage failure on the console, waits so that it can be
// read, and powers off or reboots (or starts a shell first) as the plan,
// if there is one yet, says.
func fail(con io.Writer, reaper *pid1.Reaper, plan *bootcfg.Plan, err error) {
	fmt.Fprintf(con, "ociboot: boot failed at %v\n", err)
	if reaper == nil {
		reaper = pid1.NewReaper()
	}
	if plan != nil && plan.OnFailure == bootcfg.FailShell {
		shell := plan.Shell()
		var se shellError
		if errors.As(err, &se) {
			shell = se.shell
		}
		if shell != "" {
			runShell(con, reaper, shell)
			plan.PoweroffDelay = 0 // the shell's user has read the error
		}
	}
	wait, action := failDelay, pid1.PowerOff
	if plan != nil {
		if plan.PoweroffDelay >= 0 {
			wait = time.Duration(plan.PoweroffDelay) * time.Second
		}
		if plan.OnFailure == bootcfg.FailReboot {
			action = pid1.Reboot
		}
	}
	if wait > 0 {
		fmt.Fprintf(con, "ociboot: %s in %s\n", action, wait)
		time.Sleep(wait)
	}
	pid1.ShutdownWith(action, reaper, con, endCommand(plan, action))
}

// runShell runs an interactive shell on the console and waits for it.
func runShell(con io.Writer, reaper *pid1.Reaper, shell string) {
	fmt.Fprintf(con, "ociboot: starting %s on the console (ociboot.on_failure=shell); the machine powers off when it exits\n", shell)
	cmd := exec.Command(shell, "-i")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Its own session, with the console as its controlling terminal:
	// job control and ctrl-C work.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	cmd.Env = []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/root", "TERM=linux", "PS1=ociboot# "}
	code, err := reaper.Run(cmd)
	if err != nil {
		fmt.Fprintf(con, "ociboot: the shell: %v\n", err)
		return
	}
	fmt.Fprintf(con, "ociboot: the shell exited with status %d\n", code)
}

// readBaked reads the configuration `ociboot build` baked in.
func readBaked(path string) (bootcfg.Baked, error) {
	var b bootcfg.Baked
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return b, fmt.Errorf("%s is missing: was this initramfs made by `ociboot build`?", path)
	}
	if err != nil {
		return b, err
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("%s: %w", path, err)
	}
	if b.Runtime == "" {
		return b, fmt.Errorf("%s names no OCI runtime", path)
	}
	return b, nil
}

// readBakedRegistry reads the registry credentials and CA certificates
// `ociboot build` baked in, when there are any.
func readBakedRegistry(b *bootcfg.Baked, authPath, caPath string) error {
	auth, err := os.ReadFile(authPath)
	switch {
	case err == nil:
		if b.RegistryAuth, err = image.ParseDockerConfig(auth); err != nil {
			return fmt.Errorf("%s: %w", authPath, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	ca, err := os.ReadFile(caPath)
	switch {
	case err == nil:
		if _, err := fetch.ParseCACerts(ca); err != nil {
			return fmt.Errorf("%s: %w", caPath, err)
		}
		b.CACerts = ca
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return nil
}

// setIdentity gives the machine its host name and the files containers
// expect.
func setIdentity(con io.Writer, name string) {
	if err := os.WriteFile("/proc/sys/kernel/hostname", []byte(name), 0); err != nil {
		fmt.Fprintf(con, "ociboot: setting the hostname: %v (going on)\n", err)
	}
	hosts := "127.0.0.1\tlocalhost " + name + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if err := os.WriteFile("/etc/hosts", []byte(hosts), 0o644); err != nil {
		fmt.Fprintf(con, "ociboot: writing /etc/hosts: %v (going on)\n", err)
	}
}

// loadModules loads the modules baked in at build time and those asked for
// on the command line.
func loadModules(con io.Writer, names []string) error {
	if len(names) == 0 {
		return nil
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return fmt.Errorf("uname: %w", err)
	}
	kver := unix.ByteSliceToString(uts.Release[:])
	start := time.Now()
	if err := kmod.LoadModules("/lib/modules/"+kver, names); err != nil {
		return err
	}
	fmt.Fprintf(con, "ociboot: modules: loaded %s in %s\n", strings.Join(names, ","), time.Since(start).Round(time.Millisecond))
	return nil
}
