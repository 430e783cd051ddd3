// Package kmod reads a kernel's module index (modules.dep, modules.alias,
// modules.softdep, modules.builtin), computes the load order of modules with
// their dependencies, finds the modules of present devices (coldplug),
// loads modules into the running kernel, and writes index files restricted
// to a subset of modules. The builder uses it to pick the modules for an
// initramfs; PID 1 uses it to load them.
package kmod

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Module is one kernel module in a load order.
type Module struct {
	// Name is the normalized module name ('_' for '-', no suffix).
	Name string
	// Path is the module file relative to the modules directory, as written
	// in modules.dep (for example "kernel/drivers/net/virtio_net.ko");
	// empty for a builtin module.
	Path string
	// Builtin is true when the module is built into the kernel image, so
	// nothing needs to be loaded.
	Builtin bool
	// Optional is true for a module only a soft dependency brought in,
	// such as a CPU-specific implementation (crct10dif_pclmul): as with
	// modprobe, failing to load it is not an error.
	Optional bool
}

// Index is a kernel's module index, read from its modules directory.
type Index struct {
	dir     string
	mods    map[string]*depEntry // by normalized name
	byPath  map[string]string    // modules.dep path → name
	builtin map[string]bool
	aliases []alias
	// byPrefix holds the positions in aliases of the patterns of each
	// literal prefix: a name's candidates are those of its own prefixes,
	// a few dozen lookups where a whole tree has some 30,000 aliases.
	byPrefix map[string][]int
	softPre  map[string][]string
	softPost map[string][]string
}

type depEntry struct {
	path string
	deps []string // names, in modules.dep order
}

type alias struct {
	pattern string // normalized
	module  string
	builtin bool // from modules.builtin.modinfo
}

// Index file names inside a modules directory.
const (
	depFile            = "modules.dep"
	aliasFile          = "modules.alias"
	softdepFile        = "modules.softdep"
	builtinFile        = "modules.builtin"
	builtinModinfoFile = "modules.builtin.modinfo"
	orderFile          = "modules.order"
)

// NormalizeName returns the module name for a module name or file name:
// directory and .ko/.ko.xz/.ko.zst/.ko.gz suffix dropped, '-' turned to '_'.
func NormalizeName(s string) string {
	s = path.Base(s)
	for _, suf := range []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"} {
		if strings.HasSuffix(s, suf) {
			s = strings.TrimSuffix(s, suf)
			break
		}
	}
	return strings.ReplaceAll(s, "-", "_")
}

// LoadIndex reads the module index of the modules directory dir (usually
// /lib/modules/KVER). modules.dep is required; modules.alias,
// modules.softdep, modules.builtin and modules.builtin.modinfo are read
// when present.
func LoadIndex(dir string) (*Index, error) {
	dep, err := os.ReadFile(filepath.Join(dir, depFile))
	if err != nil {
		return nil, fmt.Errorf("kmod: reading the module index of %s: %w", dir, err)
	}
	modules := bytes.Count(dep, []byte{'\n'}) // a line each: the maps' sizes
	ix := &Index{
		dir:      dir,
		mods:     make(map[string]*depEntry, modules),
		byPath:   make(map[string]string, modules),
		builtin:  map[string]bool{},
		byPrefix: map[string][]int{},
		softPre:  map[string][]string{},
		softPost: map[string][]string{},
	}
	if err := ix.parseDep(dep); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name  string
		parse func([]byte) error
	}{
		{builtinFile, ix.parseBuiltin},
		{aliasFile, ix.parseAlias},
		{softdepFile, ix.parseSoftdep},
		{builtinModinfoFile, ix.parseBuiltinModinfo},
	} {
		data, err := os.ReadFile(filepath.Join(dir, f.name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kmod: reading %s: %w", filepath.Join(dir, f.name), err)
		}
		if err := f.parse(data); err != nil {
			return nil, err
		}
	}
	return ix, nil
}

// Dir returns the modules directory the index was read from.
func (ix *Index) Dir() string { return ix.dir }

// lines calls fn with each non-blank, non-comment line of data and its
// 1-based number. The lines share one copy of data: the strings kept
// from them cost no allocation each (modules.alias has some 26,000).
func lines(data []byte, fn func(n int, line string) error) error {
	rest := string(data)
	for n := 1; rest != ""; n++ {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	return nil
}

// relPath turns a path from modules.dep into one relative to the modules
// directory.
func (ix *Index) relPath(p string) (string, error) {
	if !path.IsAbs(p) {
		return path.Clean(p), nil
	}
	rel, err := filepath.Rel(ix.dir, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("module path %s is outside the modules directory", p)
	}
	return filepath.ToSlash(rel), nil
}

func (ix *Index) parseDep(data []byte) error {
	type raw struct {
		name string
		deps []string
	}
	all := make([]raw, 0, bytes.Count(data, []byte{'\n'}))
	err := lines(data, func(n int, line string) error {
		head, tail, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("kmod: %s line %d: expected \"MODULE: DEPS...\", got %q", filepath.Join(ix.dir, depFile), n, line)
		}
		p, err := ix.relPath(strings.TrimSpace(head))
		if err != nil {
			return fmt.Errorf("kmod: %s line %d: %w", filepath.Join(ix.dir, depFile), n, err)
		}
		name := NormalizeName(p)
		if _, dup := ix.mods[name]; !dup {
			ix.mods[name] = &depEntry{path: p}
			ix.byPath[p] = name
		}
		all = append(all, raw{name: name, deps: strings.Fields(tail)})
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range all {
		e := ix.mods[r.name]
		for _, d := range r.deps {
			e.deps = append(e.deps, NormalizeName(d))
		}
	}
	return nil
}

func (ix *Index) parseBuiltin(data []byte) error {
	return lines(data, func(_ int, line string) error {
		ix.builtin[NormalizeName(line)] = true
		return nil
	})
}

func (ix *Index) parseAlias(data []byte) error {
	count := bytes.Count(data, []byte{'\n'})
	ix.aliases = slices.Grow(ix.aliases, count)
	if len(ix.byPrefix) == 0 {
		ix.byPrefix = make(map[string][]int, count)
	}
	names := map[string]string{} // module → normalized: each has many aliases
	return lines(data, func(n int, line string) error {
		word, rest := firstWord(line)
		pattern, rest := firstWord(rest)
		module, rest := firstWord(rest)
		if word != "alias" || module == "" || rest != "" {
			return fmt.Errorf("kmod: %s line %d: expected \"alias PATTERN MODULE\", got %q", filepath.Join(ix.dir, aliasFile), n, line)
		}
		name, ok := names[module]
		if !ok {
			name = NormalizeName(module)
			names[module] = name
		}
		ix.addAlias(pattern, name, false)
		return nil
	})
}

// firstWord returns the first word of s (words are separated by spaces
// and tabs) and what follows it, its leading spaces trimmed.
func firstWord(s string) (word, rest string) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	j := i
	for j < len(s) && s[j] != ' ' && s[j] != '\t' {
		j++
	}
	word, rest = s[i:j], s[j:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	return word, rest
}

// addAlias adds pattern as an alias of module (a normalized name).
func (ix *Index) addAlias(pattern, module string, builtin bool) {
	p := normalizeAlias(pattern)
	i := strings.IndexAny(p, "*?[")
	prefix := p
	if i >= 0 {
		prefix = p[:i]
	}
	ix.byPrefix[prefix] = append(ix.byPrefix[prefix], len(ix.aliases))
	ix.aliases = append(ix.aliases, alias{pattern: p, module: module, builtin: builtin})
}

// parseBuiltinModinfo reads the "MODULE.alias=VALUE" records of
// modules.builtin.modinfo (NUL separated), so aliases of builtin modules
// resolve.
func (ix *Index) parseBuiltinModinfo(data []byte) error {
	for rec := range bytes.SplitSeq(data, []byte{0}) {
		key, val, ok := bytes.Cut(rec, []byte{'='})
		if !ok {
			continue
		}
		mod, field, ok := bytes.Cut(key, []byte{'.'})
		if ok && string(field) == "alias" {
			ix.addAlias(string(val), NormalizeName(string(mod)), true)
		}
	}
	return nil
}

// parseSoftdep reads "softdep MODULE pre: A B post: C" lines. Names before
// any "pre:" or "post:" are ignored, as modprobe does.
func (ix *Index) parseSoftdep(data []byte) error {
	return lines(data, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "softdep" {
			return fmt.Errorf("kmod: %s line %d: expected \"softdep MODULE pre: ... post: ...\", got %q", filepath.Join(ix.dir, softdepFile), n, line)
		}
		mod := NormalizeName(f[1])
		var dst map[string][]string
		for _, w := range f[2:] {
			switch {
			case w == "pre:":
				dst = ix.softPre
			case w == "post:":
				dst = ix.softPost
			case dst != nil:
				dst[mod] = append(dst[mod], w)
			}
		}
		return nil
	})
}

// normalizeAlias turns '-' into '_' outside bracket expressions, as kmod
// does for aliases and the names looked up among them.
func normalizeAlias(s string) string {
	if !strings.Contains(s, "-") {
		return s
	}
	b := []byte(s)
	inBracket := false
	for i, c := range b {
		switch {
		case c == '[':
			inBracket = true
		case c == ']':
			inBracket = false
		case c == '-' && !inBracket:
			b[i] = '_'
		}
	}
	return string(b)
}

// Lookup returns the modules a name stands for: the module of that name,
// the builtin module of that name, or every module with a matching alias
// (in modules.alias order). It returns nil for an unknown name.
func (ix *Index) Lookup(name string) []Module {
	n := strings.ReplaceAll(name, "-", "_")
	if e, ok := ix.mods[n]; ok {
		return []Module{{Name: n, Path: e.path}}
	}
	if ix.builtin[n] {
		return []Module{{Name: n, Builtin: true}}
	}
	q := normalizeAlias(name)
	var candidates []int
	for k := range len(q) + 1 {
		candidates = append(candidates, ix.byPrefix[q[:k]]...)
	}
	slices.Sort(candidates) // modules.alias order
	var out []Module
	for _, c := range candidates {
		a := ix.aliases[c]
		if !globMatch(a.pattern, q) {
			continue
		}
		var m Module
		if e, ok := ix.mods[a.module]; ok {
			m = Module{Name: a.module, Path: e.path}
		} else if a.builtin || ix.builtin[a.module] {
			m = Module{Name: a.module, Builtin: true}
		} else {
			continue // an alias of a module this kernel does not have
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// Closure returns every module needed for names, in load order:
// dependencies (and pre: soft dependencies) first, each module once. A name
// may be a module name or an alias; a builtin module is listed with Builtin
// set and no file. An unknown name is an error naming it and the modules
// directory.
func (ix *Index) Closure(names []string) ([]Module, error) {
	w := walker{ix: ix, state: map[string]int{}}
	for _, name := range names {
		mods := ix.Lookup(name)
		if len(mods) == 0 {
			return nil, fmt.Errorf("kmod: unknown module %q: not in modules.dep, modules.builtin or modules.alias of %s", name, ix.dir)
		}
		for _, m := range mods {
			if err := w.add(m); err != nil {
				return nil, err
			}
		}
	}
	return w.out, nil
}

const (
	visiting = 1
	done     = 2
)

type walker struct {
	ix    *Index
	state map[string]int
	out   []Module
}

// add appends m and what it needs, unless already there.
func (w *walker) add(m Module) error {
	if !m.Builtin {
		return w.visit(m.Name, nil)
	}
	if w.state[m.Name] == 0 {
		w.state[m.Name] = done
		w.out = append(w.out, m)
	}
	return nil
}

// visit appends the module name after its dependencies (depth first, post
// order). chain is the path of hard dependencies that led here, for errors.
// On error, the states it set are undone.
func (w *walker) visit(name string, chain []string) error {
	switch w.state[name] {
	case done:
		w.require(name)
		return nil
	case visiting:
		return fmt.Errorf("kmod: dependency cycle in %s: %s", filepath.Join(w.ix.dir, depFile), strings.Join(append(chain, name), " -> "))
	}
	e, ok := w.ix.mods[name]
	if !ok {
		if w.ix.builtin[name] {
			return w.add(Module{Name: name, Builtin: true})
		}
		by := "a request"
		if len(chain) > 0 {
			by = chain[len(chain)-1]
		}
		return fmt.Errorf("kmod: module %s (needed by %s) is not in %s", name, by, filepath.Join(w.ix.dir, depFile))
	}
	w.state[name] = visiting
	w.soft(w.ix.softPre[name])
	chain = append(chain, name)
	for _, d := range e.deps {
		if err := w.visit(d, chain); err != nil {
			delete(w.state, name)
			return err
		}
	}
	w.state[name] = done
	w.out = append(w.out, Module{Name: name, Path: e.path})
	w.soft(w.ix.softPost[name])
	return nil
}

// require marks the module name, already in the output, as required:
// a hard dependency or a request, not only a soft dependency.
func (w *walker) require(name string) {
	for i := range w.out {
		if w.out[i].Name == name {
			w.out[i].Optional = false
		}
	}
}

// soft adds optional soft dependencies: names that resolve to nothing, or
// whose own dependencies are broken or cyclic, are left out, as modprobe
// does; what they add is marked Optional.
func (w *walker) soft(names []string) {
	for _, s := range names {
		for _, m := range w.ix.Lookup(s) {
			if w.state[m.Name] != 0 {
				continue
			}
			saved := len(w.out)
			if err := w.add(m); err != nil {
				for _, undo := range w.out[saved:] {
					delete(w.state, undo.Name)
				}
				w.out = w.out[:saved]
			}
			for i := range w.out[saved:] {
				w.out[saved+i].Optional = true
			}
		}
	}
}

// Under returns the names of the modules whose file is under one of the
// paths (relative to the modules directory, such as
// "kernel/drivers/net/ethernet/intel/" or "kernel/fs/ext4/"), sorted.
func (ix *Index) Under(paths []string) []string {
	var out []string
	for name, e := range ix.mods {
		for _, p := range paths {
			if strings.HasPrefix(e.path, p) {
				out = append(out, name)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}
