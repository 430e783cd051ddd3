package kmod

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
