package initramfs

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// elfFile is what the dynamic loader needs to know about one ELF file.
type elfFile struct {
	class   elf.Class
	machine elf.Machine
	order   elf.Data
	interp  string   // PT_INTERP, empty for a static binary
	needed  []string // DT_NEEDED
	search  []string // DT_RUNPATH, or DT_RPATH when there is no RUNPATH, $ORIGIN expanded
}

func readELF(p string) (*elfFile, error) {
	f, err := elf.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	e := &elfFile{class: f.Class, machine: f.Machine, order: f.Data}
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, prog.Filesz)
		if _, err := prog.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("reading PT_INTERP of %s: %w", p, err)
		}
		e.interp = strings.TrimRight(string(b), "\x00")
	}
	if f.Section(".dynamic") == nil && dynamicProg(f) == nil {
		return e, nil // static
	}
	if e.needed, err = f.DynString(elf.DT_NEEDED); err != nil {
		return nil, fmt.Errorf("reading DT_NEEDED of %s: %w", p, err)
	}
	paths, err := f.DynString(elf.DT_RUNPATH)
	if err == nil && len(paths) == 0 {
		paths, err = f.DynString(elf.DT_RPATH)
	}
	if err != nil {
		return nil, fmt.Errorf("reading DT_RUNPATH/DT_RPATH of %s: %w", p, err)
	}
	origin := path.Dir(p)
	for _, list := range paths {
		for _, dir := range strings.Split(list, ":") {
			dir = strings.ReplaceAll(dir, "${ORIGIN}", origin)
			dir = strings.ReplaceAll(dir, "$ORIGIN", origin)
			if dir != "" {
				e.search = append(e.search, dir)
			}
		}
	}
	return e, nil
}

func dynamicProg(f *elf.File) *elf.Prog {
	for _, p := range f.Progs {
		if p.Type == elf.PT_DYNAMIC {
			return p
		}
	}
	return nil
}

// multiarch gives the Debian multiarch triplet of an ELF machine.
func multiarch(e *elfFile) string {
	switch e.machine {
	case elf.EM_X86_64:
		return "x86_64-linux-gnu"
	case elf.EM_386:
		return "i386-linux-gnu"
	case elf.EM_AARCH64:
		return "aarch64-linux-gnu"
	case elf.EM_ARM:
		return "arm-linux-gnueabihf"
	case elf.EM_RISCV:
		return "riscv64-linux-gnu"
	case elf.EM_PPC64:
		if e.order == elf.ELFDATA2LSB {
			return "powerpc64le-linux-gnu"
		}
		return "powerpc64-linux-gnu"
	case elf.EM_S390:
		return "s390x-linux-gnu"
	}
	return ""
}

// defaultLibDirs are the loader's trusted directories for e's machine.
func defaultLibDirs(e *elfFile) []string {
	var dirs []string
	if t := multiarch(e); t != "" {
		dirs = append(dirs, "/lib/"+t, "/usr/lib/"+t)
	}
	return append(dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}

// libraryClosure returns the host paths of what the ELF binary exe needs
// at run time: its dynamic loader (PT_INTERP) and every DT_NEEDED library,
// recursively, in the order found. Libraries are searched as the loader
// does: the needing object's DT_RUNPATH (or DT_RPATH), then the default
// directories, skipping files of another ELF class or machine. A static
// binary needs nothing.
func libraryClosure(exe string) ([]string, error) {
	resolved, err := filepath.EvalSymlinks(exe)
	if err != nil {
		return nil, err
	}
	top, err := readELF(resolved)
	if err != nil {
		return nil, fmt.Errorf("reading %s as ELF: %w", exe, err)
	}
	var out []string
	bySoname := map[string]bool{} // DT_NEEDED names already resolved
	seen := map[string]bool{}     // host paths already in out
	type item struct {
		path string
		elf  *elfFile
	}
	queue := []item{{resolved, top}}
	if top.interp != "" {
		if _, err := os.Stat(top.interp); err != nil {
			return nil, fmt.Errorf("dynamic loader %s needed by %s: %w", top.interp, exe, err)
		}
		out = append(out, top.interp)
		bySoname[path.Base(top.interp)] = true
		seen[top.interp] = true
	}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		for _, name := range it.elf.needed {
			if bySoname[name] {
				continue
			}
			lib, libELF, err := findLibrary(name, it.elf)
			if err != nil {
				return nil, fmt.Errorf("library %s needed by %s: %w", name, it.path, err)
			}
			bySoname[name] = true
			if seen[lib] {
				continue
			}
			seen[lib] = true
			out = append(out, lib)
			queue = append(queue, item{lib, libELF})
		}
	}
	return out, nil
}

// findLibrary looks for the shared library name as the loader would for
// an object described by needer.
func findLibrary(name string, needer *elfFile) (string, *elfFile, error) {
	candidates := []string{name}
	if !strings.Contains(name, "/") {
		candidates = nil
		for _, dir := range append(slices.Clone(needer.search), defaultLibDirs(needer)...) {
			candidates = append(candidates, path.Join(dir, name))
		}
	}
	for _, p := range candidates {
		e, err := readELF(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil || e.class != needer.class || e.machine != needer.machine {
			continue // not a usable library for this binary, as the loader skips it
		}
		return p, e, nil
	}
	return "", nil, fmt.Errorf("no usable %s-bit %s library among %s", strings.TrimPrefix(needer.class.String(), "ELFCLASS"), needer.machine, strings.Join(candidates, ", "))
}
