package kmod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// DeviceAliases returns the modalias of every device under
// sysDir/bus/*/devices (sysDir is usually "/sys"), in the order of their
// sorted paths. Devices without one, or gone while listed, are skipped.
func DeviceAliases(sysDir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(sysDir, "bus", "*", "devices", "*", "modalias"))
	if err != nil {
		return nil, fmt.Errorf("kmod: listing device modaliases under %s: %w", sysDir, err)
	}
	var aliases []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue // the device went away
		}
		if err != nil {
			return nil, fmt.Errorf("kmod: reading device modalias %s: %w", f, err)
		}
		if alias := strings.TrimSpace(string(data)); alias != "" {
			aliases = append(aliases, alias)
		}
	}
	return aliases, nil
}

// ForAliases returns the loadable modules that modaliases match, each
// once, in the order of the aliases; builtin modules and modaliases no
// module claims are left out.
func (ix *Index) ForAliases(aliases []string) []string {
	var names []string
	for _, alias := range aliases {
		for _, m := range ix.Lookup(alias) {
			if !m.Builtin && !slices.Contains(names, m.Name) {
				names = append(names, m.Name)
			}
		}
	}
	return names
}

// Has reports whether the index has the loadable module name.
func (ix *Index) Has(name string) bool {
	_, ok := ix.mods[NormalizeName(name)]
	return ok
}

// DeviceDriver reports whether the module name has a device alias, one of
// the BUS:… forms of devices' modaliases, so that coldplug and hotplug
// load it when such a device is there. Filesystems, overlay and the like
// have none.
func (ix *Index) DeviceDriver(name string) bool {
	n := NormalizeName(name)
	for _, a := range ix.aliases {
		if a.module != n || a.builtin {
			continue
		}
		if bus, _, ok := strings.Cut(a.pattern, ":"); ok && bus != "devname" {
			return true
		}
	}
	return false
}

// maxColdplugRounds bounds Coldplug's rounds: drivers bring devices (a
// host controller its ports, virtio_pci the virtio devices), whose drivers
// bring more, but not forever.
const maxColdplugRounds = 8

// parallelLoads is how many modules Drivers loads at once. A module's
// initialisation mostly waits for its hardware (resets, PHYs, firmware),
// so more than there are CPUs.
const parallelLoads = 8

// Drivers loads the modules devices ask for by modalias, each at most
// once and several at a time. The boot's coldplug and hotplug share one,
// so that neither tries again what the other has. It is safe for
// concurrent use.
type Drivers struct {
	ix    *Index
	skip  func(alias, name string) bool
	opts  LoadOptions
	slots chan struct{}
	// fallback, when set, is the index of the modaliases ix has no
	// module for and want picks, read once, on first need.
	fallback func() (*Index, error)
	want     func(alias string) bool

	mu    sync.Mutex
	tried map[string]chan struct{} // closed once the module is loaded, or failed to
}

// Drivers returns a Drivers loading the index's modules with opts. A
// module skip says so of, for the device's modalias it matched, is left
// out for that device (a blacklist, say: it is still loaded when a
// module needs it, or for a device skip lets it drive).
func (ix *Index) Drivers(skip func(alias, name string) bool, opts LoadOptions) *Drivers {
	return &Drivers{ix: ix, skip: skip, opts: opts, slots: make(chan struct{}, parallelLoads), tried: map[string]chan struct{}{}}
}

// Fallback makes d look up the modaliases its index has no module for,
// and that want picks, in the index fallback returns, which is read once,
// on first need: a boot's own few modules drive the devices they can, a
// whole module tree the rest, without reading the tree's index when
// nothing needs it. It returns d; call it before any Load.
func (d *Drivers) Fallback(fallback func() (*Index, error), want func(alias string) bool) *Drivers {
	d.fallback, d.want = sync.OnceValues(fallback), want
	return d
}

// Load loads the modules the modaliases match, but those left out, in
// parallel, with their dependencies, and waits for them, and for those
// another call is loading. A module that fails to load does not stop the
// others: the errors are returned together with what this call loaded,
// but for ENODEV, which a module answers when it finds nothing to drive
// (8139cp for most RTL8139s, one of the two modules their alias names).
func (d *Drivers) Load(aliases []string) ([]Module, error) {
	_, loaded, err := d.load(aliases, false)
	return loaded, err
}

// load is Load, which also says how many modules it tried; background
// is ColdplugOptions.Background.
func (d *Drivers) load(aliases []string, background bool) (tried int, loaded []Module, err error) {
	type job struct {
		ix   *Index
		name string
		done chan struct{}
	}
	var (
		fresh  []job
		others []chan struct{}
		errs   []error
	)
	d.mu.Lock()
	for _, alias := range aliases {
		ix := d.ix
		names := ix.ForAliases([]string{alias})
		if len(names) == 0 && d.fallback != nil && d.want(alias) {
			fix, err := d.fallback()
			if err != nil {
				errs = append(errs, fmt.Errorf("kmod: the drivers of %s: %w", alias, err))
				continue
			}
			ix, names = fix, fix.ForAliases([]string{alias})
		}
		for _, n := range names {
			if done, ok := d.tried[n]; ok {
				if !slices.Contains(others, done) {
					others = append(others, done)
				}
				continue
			}
			if d.skip != nil && d.skip(alias, n) {
				continue
			}
			j := job{ix, n, make(chan struct{})}
			d.tried[n] = j.done
			fresh = append(fresh, j)
		}
	}
	d.mu.Unlock()

	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for _, j := range fresh {
		wg.Add(1)
		go func() {
			if background {
				// The thread ends with the goroutine, still locked:
				// no other goroutine ever runs at this priority.
				runtime.LockOSThread()
				lowestPriority()
			}
			defer wg.Done()
			defer close(j.done)
			d.slots <- struct{}{}
			defer func() { <-d.slots }()
			mods, err := j.ix.Load([]string{j.name}, d.opts)
			mu.Lock()
			defer mu.Unlock()
			loaded = append(loaded, mods...)
			if err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	for _, done := range others {
		<-done
	}
	return len(fresh), loaded, errors.Join(errs...)
}

// ColdplugOptions adjust Coldplug; the zero value takes every device,
// at normal priority.
type ColdplugOptions struct {
	// Only, when set, picks the devices by their modalias: the others are
	// left for a later call.
	Only func(alias string) bool
	// Background loads the modules on threads of the lowest CPU priority
	// (nice 19): a module's loading and its driver's probe, CPU the
	// kernel spends in the loading thread, then take only what the rest
	// of the machine leaves idle. Under TCG on one vCPU, QEMU's IDE
	// driver loading beside the greeting demo's pull and container cost
	// it 0.23 s at normal priority (bench/boot.sh, medians of 7). A Load
	// that waits for such a module waits at that priority.
	Background bool
}

// lowestPriority gives the calling thread the lowest CPU priority. It
// may fail only without CAP_SYS_NICE, and then the thread keeps its own.
func lowestPriority() {
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
}

// Coldplug loads the modules of the devices under sysDir (see
// DeviceAliases), then those of the devices these drivers brought, round
// after round until one finds nothing new. When it returns, the drivers
// of the devices it saw are loaded, or failed to, though hotplug took
// some of them. Errors are as Load's.
func (d *Drivers) Coldplug(sysDir string, o ColdplugOptions) ([]Module, error) {
	var loaded []Module
	var errs []error
	for range maxColdplugRounds {
		aliases, err := DeviceAliases(sysDir)
		if err != nil {
			return loaded, errors.Join(append(errs, err)...)
		}
		if o.Only != nil {
			aliases = slices.DeleteFunc(aliases, func(a string) bool { return !o.Only(a) })
		}
		fresh, mods, err := d.load(aliases, o.Background)
		loaded = append(loaded, mods...)
		if err != nil {
			errs = append(errs, err)
		}
		if fresh == 0 {
			break
		}
	}
	return loaded, errors.Join(errs...)
}
