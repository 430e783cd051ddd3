package kmod

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// IndexFile is one index file of a modules directory.
type IndexFile struct {
	// Name is the file name inside the modules directory ("modules.dep").
	Name string
	// Data is the file's content.
	Data []byte
}

// Subset returns the index files of the modules directory restricted to
// mods (usually a Closure): modules.dep, modules.alias, modules.softdep and
// modules.order keep only the lines of those modules. modules.builtin and
// modules.builtin.modinfo describe the kernel image rather than module
// files, so they are kept whole, and a builtin name still resolves at boot.
// Optional files missing from the directory are left out. It is an error
// when a module in mods needs one that is not in mods.
func (ix *Index) Subset(mods []Module) ([]IndexFile, error) {
	keep := map[string]bool{}
	for _, m := range mods {
		if !m.Builtin {
			keep[m.Name] = true
		}
	}
	for _, m := range mods {
		if e := ix.mods[m.Name]; e != nil && !m.Builtin {
			for _, d := range e.deps {
				if !keep[d] && !ix.builtin[d] {
					return nil, fmt.Errorf("kmod: module %s needs %s, which is not in the module subset taken from %s", m.Name, d, ix.dir)
				}
			}
		}
	}
	filters := []struct {
		name     string
		required bool
		keep     func(line string) bool // nil: keep the whole file
	}{
		{depFile, true, func(l string) bool {
			head, _, _ := strings.Cut(l, ":")
			return keep[NormalizeName(strings.TrimSpace(head))]
		}},
		{aliasFile, false, func(l string) bool { return keep[nthField(l, 2)] }},
		{softdepFile, false, func(l string) bool { return keep[nthField(l, 1)] }},
		{orderFile, false, func(l string) bool { return keep[NormalizeName(strings.TrimSpace(l))] }},
		{builtinFile, false, nil},
		{builtinModinfoFile, false, nil},
	}
	var out []IndexFile
	for _, f := range filters {
		file := filepath.Join(ix.dir, f.name)
		data, err := os.ReadFile(file)
		if os.IsNotExist(err) && !f.required {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kmod: reading %s for the module subset: %w", file, err)
		}
		if f.keep != nil {
			data = filterLines(data, f.keep)
		}
		out = append(out, IndexFile{Name: f.name, Data: data})
	}
	return out, nil
}

// filterLines keeps the non-comment lines of data for which keep is true.
func filterLines(data []byte, keep func(string) bool) []byte {
	var b strings.Builder
	for line := range strings.Lines(string(data)) {
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' || !keep(t) {
			continue
		}
		b.WriteString(t)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// nthField returns the normalized module name in field i of line, or "".
func nthField(line string, i int) string {
	f := strings.Fields(line)
	if i >= len(f) {
		return ""
	}
	return NormalizeName(f[i])
}
