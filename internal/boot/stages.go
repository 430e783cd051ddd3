package boot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/clock"
	"github.com/ociboot/ociboot/internal/event"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/hotplug"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/keymap"
	"github.com/ociboot/ociboot/internal/kmod"
	"github.com/ociboot/ociboot/internal/loopdev"
	"github.com/ociboot/ociboot/internal/netconf"
	"github.com/ociboot/ociboot/internal/pipeline"
	"github.com/ociboot/ociboot/internal/runtime"
	"github.com/ociboot/ociboot/internal/trust"
	"golang.org/x/sys/unix"
)

// input is what the boot is asked to do: the configuration `ociboot
// build` baked in, the kernel command line, and the Plan parsed from
// them once.
type input struct {
	baked   bootcfg.Baked
	cmdline string
	plan    *bootcfg.Plan // nil when the baked-in configuration is unreadable
	err     error         // why the configuration was refused, if it was
}

// readInput reads the baked-in configuration and the kernel command line
// and parses them, before anything else is set up: whether an image is
// booted as the OS decides how PID 1 starts. It mounts /proc for that
// moment when it is not mounted yet. On error the Plan still says what to
// do on failure, as far as the command line could be read.
func readInput() input {
	var in input
	in.baked, in.err = readBaked(bootcfg.BakedPath)
	if in.err == nil {
		in.err = readBakedRegistry(&in.baked, bootcfg.AuthPath, bootcfg.CAPath)
	}
	if in.err == nil {
		in.baked.Trust, in.err = trust.ReadDir(trust.Dir)
	}
	if in.err != nil {
		return in
	}
	raw, err := readCmdline()
	if err != nil {
		in.err = fmt.Errorf("reading the kernel command line: %w", err)
		return in
	}
	in.cmdline = strings.TrimSpace(raw)
	in.plan, in.err = bootcfg.Parse(in.cmdline, in.baked)
	return in
}

// readCmdline reads /proc/cmdline, mounting /proc for the moment when it
// is not there.
func readCmdline() (string, error) {
	raw, err := os.ReadFile("/proc/cmdline")
	if err == nil {
		return string(raw), nil
	}
	_ = os.MkdirAll("/proc", 0o555)
	if merr := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); merr != nil {
		return "", err
	}
	defer unix.Unmount("/proc", 0)
	raw, err = os.ReadFile("/proc/cmdline")
	return string(raw), err
}

// loadModules mounts the initramfs's images of modules and firmware,
// inserts the module files asked for, then loads the modules
// baked in at build time and those asked for on the command line, with
// their dependencies, then those of the devices present (coldplug) and of
// the devices that appear later (hotplug). The filesystem modules of the
// storage stage or of the containers' layers load meanwhile.
func loadModules(_ context.Context, s *state) error {
	if err := s.mountImages(); err != nil {
		return err
	}
	for _, f := range s.plan.Insmods {
		if err := kmod.InsertFile(s.treeFile(filepath.Join("/", f))); err != nil {
			return err
		}
		s.say("modules: inserted %s", f)
	}
	if err := s.loadModuleNames(append(append([]string(nil), s.input.baked.Modules...), s.plan.Modules...)); err != nil {
		return err
	}
	// No device needs them: they load while drivers probe their
	// hardware and the network comes up.
	if err := s.startFilesystemModules(); err != nil {
		return err
	}
	if !s.plan.NoColdplug {
		s.plugDrivers()
	}
	return nil
}

// mountImages mounts the initramfs's filesystem images where they belong
// (the module tree and firmware of `ociboot build --modules-all`), after
// loading the modules that needs: from then on, modules are read from
// the mounted tree. In switch-root mode the module tree is mounted apart
// instead, until the hand-over (unstageTree): the first segment's modules
// drive what they can, and the tree's index, 26,000 aliases read from the
// image (0.27 s under TCG), is read only for what they cannot drive
// (s.tree).
func (s *state) mountImages() error {
	if len(s.input.baked.Images) == 0 {
		return nil
	}
	if err := s.loadModuleNames(s.input.baked.ImageModules); err != nil {
		return err
	}
	for _, img := range s.input.baked.Images {
		dir := img.Dir
		staged := rootMode(s) && path.Dir(img.Dir) == modulesDir
		if staged {
			dir = strings.TrimSuffix(img.File, path.Ext(img.File))
		}
		start := time.Now()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("image %s: %w", img.File, err)
		}
		dev, err := loopdev.Mount(img.File, dir, img.FSType)
		if err != nil {
			return err
		}
		s.say("modules: mounted %s at %s through %s in %s", img.File, dir, dev, time.Since(start).Round(time.Millisecond))
		if staged {
			s.tree = &stagedTree{dir: dir, dest: img.Dir, index: sync.OnceValues(func() (*kmod.Index, error) {
				start := time.Now()
				ix, err := kmod.LoadIndex(dir)
				if err == nil {
					s.say("modules: read the module tree's index in %s", time.Since(start).Round(time.Millisecond))
				}
				return ix, err
			})}
		}
	}
	if s.tree == nil {
		s.kmods = nil // read again, from the mounted tree
	}
	return nil
}

// modulesDir holds the module tree of each kernel release.
const modulesDir = "/lib/modules"

// stagedTree is the module tree of `ociboot build --modules-all` in
// switch-root mode, mounted apart until the hand-over.
type stagedTree struct {
	dir   string                      // where it is mounted
	dest  string                      // where it belongs: /lib/modules/KVER
	index func() (*kmod.Index, error) // its index, read once, on first need
}

// treeFile is where the module file f is: in the staged tree when the
// first segment has no such file, else f.
func (s *state) treeFile(f string) string {
	if s.tree == nil {
		return f
	}
	rel, err := filepath.Rel(s.tree.dest, f)
	if err != nil || strings.HasPrefix(rel, "..") {
		return f
	}
	if _, err := os.Stat(f); err == nil {
		return f
	}
	return filepath.Join(s.tree.dir, rel)
}

// unstageTree moves the module tree mounted apart to where it belongs,
// over the first segment's modules, for the hand-over to the new root.
// Nothing may be loading modules from either: call it once hotplug and
// the background loads are over (stopHotplug).
func (s *state) unstageTree() error {
	if s.tree == nil {
		return nil
	}
	if s.fsModules != nil {
		_ = s.fsModules() // its outcome was the storage stage's to say
	}
	if err := os.MkdirAll(s.tree.dest, 0o755); err != nil {
		return fmt.Errorf("modules: %w", err)
	}
	if err := unix.Mount(s.tree.dir, s.tree.dest, "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("modules: moving the module tree from %s to %s: %w", s.tree.dir, s.tree.dest, err)
	}
	s.tree, s.kmods = nil, nil
	return nil
}

// plugDrivers loads the initramfs's modules for the devices present
// (coldplug), but those blacklisted, and starts following the kernel's
// uevents to load those of the devices that come later (hotplug), for the
// machine's life or until switching root. The socket is opened first, so
// that no device added in between is missed; the two share what they
// tried. A driver that fails is said, and the boot goes on: the device it
// would drive may not be needed. The drivers of storage controllers,
// slow to probe (QEMU's IDE 0.6–0.9 s under TCG), load in the background,
// at the lowest CPU priority, while the network comes up and images are
// pulled; the storage stage, the containers that use the machine's
// devices and the switch of root wait for them (waitStorageDrivers). In
// switch-root mode, drivers load only
// for the devices the boot may need (bootNeeds); the booted OS's udev
// loads the others, from the handed-over tree: loading every driver of
// the machine from the module tree took 1.56 s under TCG, QEMU's IDE
// alone 0.8–1.0 s.
func (s *state) plugDrivers() {
	ix, err := s.moduleIndex()
	if err != nil || ix == nil {
		if err != nil {
			s.say("modules: coldplug: %v", err)
		}
		return
	}
	root, disks := rootMode(s), !noStorage(s)
	skip := func(alias, name string) bool {
		if slices.Contains(s.plan.Blacklist, name) {
			return true
		}
		if !root {
			return false
		}
		return bootNeeds(alias) == neededStorage && !disks
	}
	if root {
		var waiting []string
		if !disks {
			waiting = append(waiting, "storage controllers (no cache disk)")
		}
		if s.tree != nil {
			waiting = append(waiting, "the devices only the module tree has drivers for")
		}
		if len(waiting) > 0 {
			s.say("modules: the drivers of %s wait for the booted OS", strings.Join(waiting, " and of "))
		}
	}
	drivers := ix.Drivers(skip, kmod.LoadOptions{})
	if s.tree != nil {
		drivers.Fallback(s.tree.index, func(alias string) bool {
			n := bootNeeds(alias)
			return n == neededAlways || (n == neededStorage && disks)
		})
	}
	coldplug := func(what string, o kmod.ColdplugOptions) {
		start := time.Now()
		mods, err := drivers.Coldplug("/sys", o)
		if len(mods) > 0 {
			s.say("modules: %s: loaded %s in %s", what, moduleNames(mods), time.Since(start).Round(time.Millisecond))
		}
		if err != nil {
			s.say("modules: %s: WARNING: %v", what, err)
		}
	}
	if conn, err := hotplug.Open(); err != nil {
		s.say("modules: hotplug: WARNING: %v: the drivers of devices that come later are not loaded", err)
	} else {
		s.hotplug = hotplug.Listen(conn, hotplug.Options{
			Drivers: drivers,
			Report: func(ev hotplug.Event, mods []kmod.Module, took time.Duration, err error) {
				if len(mods) > 0 {
					s.say("modules: hotplug: loaded %s for %s %s in %s", moduleNames(mods), ev.Subsystem, path.Base(ev.DevPath), took.Round(time.Millisecond))
				}
				if err != nil {
					s.say("modules: hotplug: WARNING: %v", err)
				}
			},
			Lost: func() { coldplug("hotplug: events lost, looking again", kmod.ColdplugOptions{}) },
		})
	}
	deferred := false // a storage controller was left for the background
	coldplug("coldplug", kmod.ColdplugOptions{Only: func(alias string) bool {
		storage := bootNeeds(alias) == neededStorage
		deferred = deferred || storage
		return !storage
	}})
	if !deferred || (root && !disks) {
		return // nothing for the background: no controller, or theirs wait for the booted OS
	}
	done := make(chan struct{})
	s.storageDrivers = done
	go func() {
		defer close(done)
		coldplug("coldplug, in the background", kmod.ColdplugOptions{Background: true})
	}()
}

// waitStorageDrivers waits for the drivers of storage controllers,
// loaded in the background since the modules stage.
func (s *state) waitStorageDrivers() {
	if s.storageDrivers != nil {
		<-s.storageDrivers
	}
}

// need says whether a device's driver must load before switching root.
type need int

const (
	neededAlways  need = iota // network controllers, device-tree devices
	neededStorage             // storage controllers: only with a disk to use
	neededMaybe               // others: only if the first segment has a driver
)

// bootNeeds classes the device of modalias alias for switching root:
// network controllers on PCI (class 02) and the devices of a device tree
// (the NICs and disks of boards) are always needed, storage controllers
// on PCI (class 01) when the boot uses a disk; a device the first
// segment has no driver for (sound, a PC speaker) waits for the booted
// OS's udev.
func bootNeeds(alias string) need {
	if strings.HasPrefix(alias, "of:") {
		return neededAlways
	}
	// pci:v…d…sv…sd…bcXXscXXiXX, the hex digits upper case.
	rest, ok := strings.CutPrefix(alias, "pci:")
	if !ok {
		return neededMaybe
	}
	_, class, ok := strings.Cut(rest, "bc")
	switch {
	case ok && strings.HasPrefix(class, "02"):
		return neededAlways
	case ok && strings.HasPrefix(class, "01"):
		return neededStorage
	}
	return neededMaybe
}

// stopHotplug stops loading drivers as devices come, and waits for those
// being loaded.
func (s *state) stopHotplug() {
	s.waitStorageDrivers()
	if s.hotplug != nil {
		s.hotplug.Stop()
		s.hotplug = nil
	}
}

// moduleNames lists mods' names, comma-separated.
func moduleNames(mods []kmod.Module) string {
	names := make([]string, len(mods))
	for i, m := range mods {
		names[i] = m.Name
	}
	return strings.Join(names, ",")
}

// moduleIndex is the initramfs's module index, read once for the boot's
// stages; nil when the initramfs has no modules.
func (s *state) moduleIndex() (*kmod.Index, error) {
	if s.kmods != nil {
		return s.kmods, nil
	}
	kver, err := kmod.RunningRelease()
	if err != nil {
		return nil, err
	}
	dir := path.Join(modulesDir, kver)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if s.kmods, err = kmod.LoadIndex(dir); err != nil {
		return nil, err
	}
	return s.kmods, nil
}

// loadModuleNames loads the named modules of the initramfs, with their
// dependencies.
func (s *state) loadModuleNames(names []string) error {
	if len(names) == 0 {
		return nil
	}
	ix, err := s.moduleIndex()
	if err != nil {
		return err
	}
	if ix == nil {
		return fmt.Errorf("modules %s: the initramfs holds no modules", strings.Join(names, ","))
	}
	start, all := time.Now(), names
	if s.tree != nil {
		// The first segment's, then the tree's.
		var own, tree []string
		for _, n := range names {
			if ix.Lookup(n) != nil {
				own = append(own, n)
			} else {
				tree = append(tree, n)
			}
		}
		if len(tree) > 0 {
			tix, err := s.tree.index()
			if err != nil {
				return err
			}
			if _, err := tix.Load(tree, kmod.LoadOptions{}); err != nil {
				return err
			}
		}
		names = own
	}
	if _, err := ix.Load(names, kmod.LoadOptions{}); err != nil {
		return err
	}
	s.say("modules: loaded %s in %s", strings.Join(all, ","), time.Since(start).Round(time.Millisecond))
	return nil
}

// bringUpNetwork configures the links (ociboot.iface, the kernel's ip=,
// else DHCP on every link), then keeps them up for the machine's life, or
// until switching root: links that come later, lease renewals.
func bringUpNetwork(ctx context.Context, s *state) error {
	opts := netconf.Options{Log: s.log("network")}
	switch {
	case len(s.plan.Ifaces) > 0:
		opts.Ifaces = s.plan.Ifaces
	case s.plan.KernelIP != nil:
		opts = s.plan.KernelIP.Apply(opts)
	}
	opts.LinkWait = s.plan.LinkWait
	start := time.Now()
	network, err := netconf.Up(ctx, opts)
	if err != nil {
		return err
	}
	s.say("network: up in %s", time.Since(start).Round(time.Millisecond))
	s.network = network
	s.events.Report(event.Identity{MAC: network.BootMAC()})
	s.startReport(s.plan.ExtraArgsURL == "")
	upkeep, stop := context.WithCancel(ctx)
	final := make(chan *netconf.Result, 1)
	go func() {
		r, err := netconf.Maintain(upkeep, opts, network)
		if err != nil {
			s.say("network: %v", err)
			r = network
		}
		final <- r
	}()
	s.stopNetwork = func() *netconf.Result {
		stop()
		return <-final
	}
	return nil
}

// syncClock sets the clock as ociboot.ntp_peer says, with the NTP servers
// DHCP offered for auto. A failure is reported and the boot goes on: TLS
// errors will then say what is wrong.
func syncClock(ctx context.Context, s *state) error {
	log := s.log("") // clock's lines start with "clock: "
	res, err := clock.Sync(ctx, clock.Options{Peer: s.plan.NTPPeer, DHCPServers: s.network.NTP, Log: log})
	switch {
	case err != nil:
		fmt.Fprintf(log, "%v (going on with the clock as it is)\n", err)
	case res.Skipped:
		fmt.Fprintln(log, res)
	default:
		s.events.Report(event.ClockSet{})
	}
	return nil
}

// fetchExtraArgs fetches ociboot.extra_args_url and parses the command
// line again with what it holds.
func fetchExtraArgs(ctx context.Context, s *state) error {
	extra, err := fetchExtra(ctx, s.plan.ExtraArgsURL, fetch.Options{CACerts: s.plan.Registry.CACerts}, s.log("extra_args_url"))
	if err != nil {
		return err
	}
	next, err := bootcfg.ParseWithExtra(s.input.cmdline, s.input.baked, extra)
	if err != nil {
		return err
	}
	if err := s.usePlan(next); err != nil {
		return err
	}
	s.startReport(true)
	s.say("extra_args_url: read %d bytes of parameters from %s", len(extra), s.plan.ExtraArgsURL)
	return nil
}

// runContainers runs the pipeline. Containers see the command line
// without its secrets.
func runContainers(ctx context.Context, s *state) error {
	masked := "/run/ociboot/cmdline"
	if err := os.MkdirAll(filepath.Dir(masked), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(masked, []byte(bootcfg.MaskSecrets(s.input.cmdline)+"\n"), 0o444); err != nil {
		return err
	}
	layers, err := s.layerStore()
	if err != nil {
		return err
	}
	s.result = pipeline.Run(ctx, pipeline.Config{
		Plan:         s.plan,
		Puller:       s.puller,
		Runtime:      runtime.Runtime{Path: s.input.baked.Runtime},
		StateDir:     stateDir,
		Layers:       layers,
		ScratchDir:   s.scratch,
		Volumes:      s.volumeSet(),
		Hooks:        s.volumeHooks(),
		Procs:        s.reaper,
		Events:       s.events,
		CmdlineFile:  masked,
		DevicesReady: s.waitStorageDrivers,
	})
	s.endVolumes()
	s.evictImages()
	return nil
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

// setIdentity gives the machine its host name and the files containers
// expect.
func setIdentity(s *state, name string) {
	s.events.Report(event.Identity{Host: name})
	if err := os.WriteFile("/proc/sys/kernel/hostname", []byte(name), 0); err != nil {
		s.say("setting the hostname: %v (going on)", err)
	}
	hosts := "127.0.0.1\tlocalhost " + name + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	if err := os.WriteFile("/etc/hosts", []byte(hosts), 0o644); err != nil {
		s.say("writing /etc/hosts: %v (going on)", err)
	}
}

// runShell runs an interactive shell on the console and waits for it.
func runShell(s *state, shell string) {
	s.say("starting %s on the console (ociboot.on_failure=shell); the machine powers off when it exits", shell)
	cmd := exec.Command(shell, "-i")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Its own session, with the console as its controlling terminal:
	// job control and ctrl-C work.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	cmd.Env = []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/root", "TERM=linux", "PS1=ociboot# "}
	code, err := s.reaper.Run(cmd)
	if err != nil {
		s.say("the shell: %v", err)
		return
	}
	s.say("the shell exited with status %d", code)
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
