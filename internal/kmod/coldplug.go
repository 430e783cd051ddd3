package kmod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Coldplug returns the modules for the devices present now: the modalias
// of every device under sysDir/bus/*/devices (sysDir is usually "/sys"),
// looked up among the index's aliases. Modaliases no module claims are
// skipped. The result has each module once, in the order the devices were
// found (sorted paths), ready for Load.
func (ix *Index) Coldplug(sysDir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(sysDir, "bus", "*", "devices", "*", "modalias"))
	if err != nil {
		return nil, fmt.Errorf("kmod: listing device modaliases under %s: %w", sysDir, err)
	}
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue // the device went away
		}
		if err != nil {
			return nil, fmt.Errorf("kmod: reading device modalias %s: %w", f, err)
		}
		alias := strings.TrimSpace(string(data))
		if alias == "" {
			continue
		}
		for _, m := range ix.Lookup(alias) {
			if !m.Builtin && !slices.Contains(names, m.Name) {
				names = append(names, m.Name)
			}
		}
	}
	return names, nil
}

// maxColdplugRounds bounds LoadPresent's rounds: drivers bring devices
// (a host controller its ports, virtio_pci the virtio devices), whose
// drivers bring more, but not forever.
const maxColdplugRounds = 8

// LoadPresent loads the modules of the devices under sysDir (see
// Coldplug), then those of the devices these drivers brought, round after
// round until one finds nothing new. Modules skip says so of are left
// out (a blacklist, for aliases only: they are still loaded when a module
// needs them). A module that fails to load does not stop the others: the
// errors are returned together with what was loaded, but for ENODEV, which
// a module answers when it finds nothing to drive.
func (ix *Index) LoadPresent(sysDir string, skip func(name string) bool, opts LoadOptions) ([]Module, error) {
	tried := map[string]bool{}
	var loaded []Module
	var errs []error
	for range maxColdplugRounds {
		names, err := ix.Coldplug(sysDir)
		if err != nil {
			return loaded, err
		}
		fresh := 0
		for _, n := range names {
			if tried[n] || skip != nil && skip(n) {
				continue
			}
			tried[n] = true
			fresh++
			mods, err := ix.Load([]string{n}, opts)
			loaded = append(loaded, mods...)
			// ENODEV: one of the modules an alias names, which finds
			// nothing to drive (8139cp for most RTL8139s).
			if err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, err)
			}
		}
		if fresh == 0 {
			break
		}
	}
	return loaded, errors.Join(errs...)
}
