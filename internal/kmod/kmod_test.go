package kmod

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// hostModules is the modules directory of a kernel installed on the
// machine (Debian's linux-image-amd64, which `make test` installs).
var hostModules = func() string {
	dirs, _ := filepath.Glob("/lib/modules/*/modules.dep")
	if len(dirs) == 0 {
		return "/lib/modules/(no kernel installed)"
	}
	return filepath.Dir(dirs[len(dirs)-1])
}()

func names(mods []Module) []string {
	var out []string
	for _, m := range mods {
		out = append(out, m.Name)
	}
	return out
}

func position(t *testing.T, mods []Module, name string) int {
	t.Helper()
	i := slices.Index(names(mods), name)
	if i < 0 {
		t.Fatalf("%s not in closure %v", name, names(mods))
	}
	return i
}

func hostIndex(t testing.TB) *Index {
	t.Helper()
	ix, err := LoadIndex(hostModules)
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestHostClosureVirtioNet(t *testing.T) {
	ix := hostIndex(t)
	mods, err := ix.Closure([]string{"virtio_net"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"}
	if got := names(mods); !sameSet(got, want) {
		t.Fatalf("closure = %v, want the set %v", got, want)
	}
	vn := position(t, mods, "virtio_net")
	if position(t, mods, "failover") > position(t, mods, "net_failover") || position(t, mods, "net_failover") > vn {
		t.Errorf("load order %v: want failover, then net_failover, then virtio_net", names(mods))
	}
	if position(t, mods, "virtio_ring") > position(t, mods, "virtio") {
		t.Errorf("load order %v: virtio needs virtio_ring first", names(mods))
	}
	if mods[vn].Path != "kernel/drivers/net/virtio_net.ko" || mods[vn].Builtin {
		t.Errorf("virtio_net = %+v", mods[vn])
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestHostClosureSharedDepsOnceAndAliases(t *testing.T) {
	ix := hostIndex(t)
	// virtio-pci with a dash, and virtio_net through its device alias.
	mods, err := ix.Closure([]string{"virtio-pci", "virtio:d00000001v00001AF4", "virtio_net"})
	if err != nil {
		t.Fatal(err)
	}
	got := names(mods)
	for _, n := range []string{"virtio", "virtio_ring", "virtio_net", "virtio_pci"} {
		if c := strings.Count(" "+strings.Join(got, " ")+" ", " "+n+" "); c != 1 {
			t.Errorf("%s appears %d times in %v", n, c, got)
		}
	}
	if position(t, mods, "virtio_pci_modern_dev") > position(t, mods, "virtio_pci") {
		t.Errorf("order %v: virtio_pci_modern_dev must come before virtio_pci", got)
	}
}

// TestHostDeviceDriver sorts the default storage modules as the boot's
// storage stage does with hotplug on: disk drivers come with their
// devices, filesystems and overlay must be loaded by name.
func TestHostDeviceDriver(t *testing.T) {
	ix := hostIndex(t)
	for name, want := range map[string]bool{
		"virtio_blk": true, "virtio-scsi": true, "nvme": true, "ahci": true, "sd_mod": true,
		"ext4": false, "overlay": false, "fuse": false, "no_such_module_xyz": false,
	} {
		if got := ix.DeviceDriver(name); got != want {
			t.Errorf("DeviceDriver(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestHostBuiltinAndUnknown(t *testing.T) {
	ix := hostIndex(t)
	mods, err := ix.Closure([]string{"zswap"})
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != 1 || !mods[0].Builtin || mods[0].Path != "" {
		t.Errorf("zswap (builtin) closure = %+v, want one builtin module without a file", mods)
	}
	_, err = ix.Closure([]string{"virtio_net", "no_such_module_xyz"})
	if err == nil || !strings.Contains(err.Error(), "no_such_module_xyz") || !strings.Contains(err.Error(), hostModules) {
		t.Errorf("unknown module error = %v, want it to name the module and %s", err, hostModules)
	}
}

func TestLoadIndexMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	_, err := LoadIndex(dir)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("LoadIndex(%s) error = %v, want it to name the directory", dir, err)
	}
}

// writeIndex makes a modules directory from index file contents.
func writeIndex(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSyntheticIndex(t *testing.T) {
	dir := writeIndex(t, map[string]string{
		"modules.dep": strings.Join([]string{
			"kernel/a/top-mod.ko.zst: kernel/a/mid.ko.xz kernel/a/low.ko.gz",
			"kernel/a/mid.ko.xz: kernel/a/low.ko.gz",
			"kernel/a/low.ko.gz:",
			"kernel/a/pre.ko:",
			"kernel/a/post.ko:",
			"kernel/a/cyc1.ko: kernel/a/cyc2.ko",
			"kernel/a/cyc2.ko: kernel/a/cyc1.ko",
			"kernel/a/needs-pre.ko:",
			"",
		}, "\n"),
		"modules.alias":   "# comment\nalias foo-bar:v[0-9A-F]*x* top_mod\nalias thing:* mid\nalias thing:special pre\nalias gone:* not_here\n",
		"modules.softdep": "softdep top-mod pre: pre missing-soft post: post\nsoftdep needs_pre pre: needs_pre\nsoftdep mid ignored-without-pre\n",
		"modules.builtin": "kernel/fs/built-in.ko\n",
	})
	ix, err := LoadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names []string
		want  []string
	}{
		{[]string{"top-mod"}, []string{"pre", "low", "mid", "top_mod", "post"}},
		{[]string{"foo-bar:v1Fx-y/z"}, []string{"pre", "low", "mid", "top_mod", "post"}},
		{[]string{"mid", "top_mod"}, []string{"low", "mid", "pre", "top_mod", "post"}},
		{[]string{"thing:special"}, []string{"low", "mid", "pre"}},
		{[]string{"built_in", "low"}, []string{"built_in", "low"}},
		{[]string{"needs-pre"}, []string{"needs_pre"}},
	}
	for _, tt := range tests {
		mods, err := ix.Closure(tt.names)
		if err != nil {
			t.Errorf("Closure(%q): %v", tt.names, err)
			continue
		}
		if got := names(mods); !slices.Equal(got, tt.want) {
			t.Errorf("Closure(%q) = %v, want %v", tt.names, got, tt.want)
		}
	}
	mods, _ := ix.Closure([]string{"top_mod"})
	if mods[3].Path != "kernel/a/top-mod.ko.zst" {
		t.Errorf("top_mod path = %q, want the modules.dep path", mods[3].Path)
	}
	// Only soft dependencies are optional; a module asked for after it
	// came in as one is not.
	for _, tt := range []struct {
		names    []string
		optional string
	}{
		{[]string{"top_mod"}, "pre post"},
		{[]string{"top_mod", "pre"}, "post"},
		{[]string{"pre", "top_mod"}, "post"},
	} {
		mods, _ := ix.Closure(tt.names)
		var optional []string
		for _, m := range mods {
			if m.Optional {
				optional = append(optional, m.Name)
			}
		}
		if got := strings.Join(optional, " "); got != tt.optional {
			t.Errorf("Closure(%q): optional %q, want %q", tt.names, got, tt.optional)
		}
	}
	for _, bad := range []string{"gone:x", "foo-bar:vZ", "cyc1"} {
		if _, err := ix.Closure([]string{bad}); err == nil {
			t.Errorf("Closure(%q) succeeded, want an error", bad)
		}
	}
	if _, err := ix.Closure([]string{"cyc1"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle error = %v", err)
	}
}

func TestSyntheticIndexErrors(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"dep line without colon": {"modules.dep": "kernel/a.ko\n"},
		"dep outside dir":        {"modules.dep": "/elsewhere/a.ko:\n"},
		"bad alias line":         {"modules.dep": "a.ko:\n", "modules.alias": "alias onlytwo\n"},
		"bad softdep line":       {"modules.dep": "a.ko:\n", "modules.softdep": "pre: x\n"},
	} {
		dir := writeIndex(t, files)
		if _, err := LoadIndex(dir); err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: LoadIndex error = %v, want one naming the file in %s", name, err, dir)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00008086d00001000sv00001AF4sd00000001bc02sc00i00", false},
		{"dmi:*:pnA/B*", "dmi:x/y:pnA/Bc", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"[0-9]x", "7x", true},
		{"[!0-9]x", "7x", false},
		{"[^0-9]x", "ax", true},
		{"[]]", "]", true},
		{"[a-]", "-", true},
		{"[abc", "[abc", true},
		{"*", "", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/net/virtio_net.ko": "virtio_net",
		"intel-uncore.ko.xz":               "intel_uncore",
		"a-b.ko.zst":                       "a_b",
		"x.ko.gz":                          "x",
		"virtio-pci":                       "virtio_pci",
	} {
		if got := NormalizeName(in); got != want {
			t.Errorf("NormalizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestReadFile compresses a module image with the real xz, zstd and gzip
// tools, as distributions do, and reads it back.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	image := append([]byte("\x7fELF"), make([]byte, 200_000)...)
	if _, err := rand.Read(image[4:1000]); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "m.ko")
	if err := os.WriteFile(plain, image, 0o644); err != nil {
		t.Fatal(err)
	}
	for ext, argv := range map[string][]string{
		".xz":  {"xz", "--check=crc32", "--lzma2=dict=1MiB", "-k", "-f", plain},
		".zst": {"zstd", "-q", "-k", "-f", "-19", plain},
		".gz":  {"gzip", "-k", "-f", "-9", plain},
		"":     nil,
	} {
		if argv != nil {
			if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", argv, err, out)
			}
		}
		got, err := ReadFile(plain + ext)
		if err != nil {
			t.Errorf("ReadFile(m.ko%s): %v", ext, err)
			continue
		}
		if !bytes.Equal(got, image) {
			t.Errorf("ReadFile(m.ko%s) returned %d bytes that differ from the %d-byte image", ext, len(got), len(image))
		}
	}
	// A file that claims xz but is not.
	bogus := filepath.Join(dir, "bad.ko.xz")
	if err := os.WriteFile(bogus, image, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(bogus); err == nil || !strings.Contains(err.Error(), bogus) {
		t.Errorf("ReadFile(corrupt xz) error = %v, want one naming %s", err, bogus)
	}
}

// writeSubset writes into a new directory the index of ix restricted to
// the closure of names, and returns the directory, the closure and the
// files.
func writeSubset(t *testing.T, ix *Index, names ...string) (string, []Module, []IndexFile) {
	t.Helper()
	mods, err := ix.Closure(names)
	if err != nil {
		t.Fatal(err)
	}
	files, err := ix.Subset(mods)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, mods, files
}

func TestSubsetHost(t *testing.T) {
	ix := hostIndex(t)
	dir, mods, files := writeSubset(t, ix, "virtio_pci", "virtio_net")
	got := map[string]string{}
	for _, f := range files {
		got[f.Name] = string(f.Data)
	}
	for _, name := range []string{"modules.dep", "modules.alias", "modules.softdep", "modules.order", "modules.builtin", "modules.builtin.modinfo"} {
		if _, ok := got[name]; !ok {
			t.Errorf("subset lacks %s", name)
		}
	}
	if n := strings.Count(got["modules.dep"], "\n"); n != len(mods) {
		t.Errorf("subset modules.dep has %d lines, want %d:\n%s", n, len(mods), got["modules.dep"])
	}
	if n := strings.Count(got["modules.order"], "\n"); n != len(mods) {
		t.Errorf("subset modules.order has %d lines, want %d", n, len(mods))
	}
	if !strings.Contains(got["modules.alias"], "alias virtio:d00000001v* virtio_net\n") || strings.Contains(got["modules.alias"], "e1000") {
		t.Errorf("subset modules.alias is not restricted to the closure:\n%s", got["modules.alias"])
	}
	if got["modules.softdep"] != "" {
		t.Errorf("subset modules.softdep = %q, want empty (no virtio softdeps)", got["modules.softdep"])
	}
	// The subset is a consistent index giving the same closure.
	sub, err := LoadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := sub.Closure([]string{"virtio_pci", "virtio_net", "zswap"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names(again)[:len(mods)], names(mods)) {
		t.Errorf("closure from subset = %v, want %v", names(again), names(mods))
	}
	// A subset missing a dependency is refused.
	if _, err := ix.Subset([]Module{mods[len(mods)-1]}); err == nil || !strings.Contains(err.Error(), "needs") {
		t.Errorf("Subset without dependencies: error = %v", err)
	}
}

func TestColdplug(t *testing.T) {
	ix := hostIndex(t)
	sys := t.TempDir()
	devs := map[string]string{
		"bus/pci/devices/0000:00:03.0/modalias": "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00\n",
		"bus/pci/devices/0000:00:04.0/modalias": "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
		"bus/virtio/devices/virtio0/modalias":   "virtio:d00000001v00001AF4\n",
		"bus/pci/devices/0000:00:05.0/modalias": "pci:vFFFFdFFFFsv0sd0bc0sc0i0\n",
	}
	for p, data := range devs {
		p = filepath.Join(sys, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	aliases, err := DeviceAliases(sys)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ix.ForAliases(aliases), []string{"virtio_pci", "virtio_net"}; !slices.Equal(got, want) {
		t.Errorf("ForAliases(DeviceAliases) = %v, want %v", got, want)
	}
}

func BenchmarkLoadIndexAndClosure(b *testing.B) {
	for b.Loop() {
		ix := hostIndex(b)
		if _, err := ix.Closure([]string{"virtio_pci", "virtio_net"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadIndex reads the whole tree's index, as a switch-root boot
// with the module tree does before coldplug.
func BenchmarkLoadIndex(b *testing.B) {
	for b.Loop() {
		hostIndex(b)
	}
}

// BenchmarkForAliases matches the 138 real modaliases of testdata against
// the whole tree's index, as each round of coldplug does.
func BenchmarkForAliases(b *testing.B) {
	ix := hostIndex(b)
	aliases := readLines(b, "testdata/modaliases.txt")
	for b.Loop() {
		ix.ForAliases(aliases)
	}
}

func FuzzLoadIndex(f *testing.F) {
	f.Add("kernel/a.ko: kernel/b.ko\nkernel/b.ko:\n", "alias x:* a\n", "softdep a pre: b post: c\n", "a")
	f.Add("a.ko: a.ko\n", "alias [ a\n", "softdep a pre: a\n", "x:y")
	f.Fuzz(func(t *testing.T, dep, alias, softdep, name string) {
		dir := t.TempDir()
		for file, data := range map[string]string{"modules.dep": dep, "modules.alias": alias, "modules.softdep": softdep} {
			if err := os.WriteFile(filepath.Join(dir, file), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ix, err := LoadIndex(dir)
		if err != nil {
			return
		}
		mods, err := ix.Closure([]string{name})
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, m := range mods {
			if seen[m.Name] {
				t.Fatalf("%s twice in %v", m.Name, names(mods))
			}
			seen[m.Name] = true
		}
		if _, err := ix.Subset(mods); err != nil {
			t.Fatalf("Subset of a closure: %v", err)
		}
	})
}

func TestLookupPathLikeAlias(t *testing.T) {
	ix := hostIndex(t)
	// "tun" is a module; a modalias ending in "/tun" must not be taken for it.
	if got := ix.Lookup("dmi:x/tun"); len(got) != 0 {
		t.Errorf("Lookup(dmi:x/tun) = %v, want nothing", got)
	}
	if got := names(ix.Lookup("devname:net/tun")); !slices.Equal(got, []string{"tun"}) {
		t.Errorf("Lookup(devname:net/tun) = %v, want [tun] through its alias", got)
	}
}

// TestDriversColdplug checks coldplug's rounds against the host's index, a
// fake /sys and a stand-in for the kernel: the virtio devices appear
// once virtio_pci is loaded, so a second round loads their drivers; a
// blacklisted module is left out; a module that finds no device to drive
// (ENODEV) is no error, and one that fails does not stop the others.
// Modules load in parallel, as the kernel allows: the stand-in answers
// EEXIST to a second insertion as the kernel does. A Drivers shared with
// hotplug does not try a module twice, nor does a second coldplug, which
// takes the devices the first one was told to leave out.
func TestDriversColdplug(t *testing.T) {
	ix := hostIndex(t)
	sys := t.TempDir()
	device := func(p, alias string) {
		t.Helper()
		p = filepath.Join(sys, p, "modalias")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(alias+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	device("bus/pci/devices/0000:00:03.0", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00") // virtio-net
	device("bus/pci/devices/0000:00:04.0", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00") // e1000
	device("bus/pci/devices/0000:00:05.0", "pci:v000010ECd00008139sv00001AF4sd00001100bc02sc00i00") // rtl8139
	device("bus/pci/devices/0000:00:06.0", "pci:v00001AF4d00001002sv00001AF4sd00000005bc00scFFi00") // virtio-balloon
	var (
		mu       sync.Mutex
		inserted []string
	)
	modules := t.TempDir() // /sys/module
	opts := LoadOptions{SysModuleDir: modules, insert: func(file, _ string) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		name := NormalizeName(filepath.Base(file))
		if _, err := os.Stat(filepath.Join(modules, name)); err == nil {
			return false, nil // EEXIST
		}
		inserted = append(inserted, name)
		switch name {
		case "virtio_pci":
			device("bus/virtio/devices/virtio0", "virtio:d00000001v00001AF4")
			device("bus/virtio/devices/virtio1", "virtio:d00000005v00001AF4")
		case "8139cp":
			return false, unix.ENODEV // as it answers for QEMU's rtl8139
		case "virtio_balloon":
			return false, unix.EINVAL
		}
		return true, os.Mkdir(filepath.Join(modules, name), 0o755)
	}}
	drivers := ix.Drivers(func(_, n string) bool { return n == "e1000" }, opts)
	// A first coldplug leaves the rtl8139 out; the second takes it.
	notRealtek := func(alias string) bool { return !strings.HasPrefix(alias, "pci:v000010EC") }
	first, err := drivers.Coldplug(sys, ColdplugOptions{Only: notRealtek})
	if slices.Contains(names(first), "8139too") || slices.Contains(inserted, "8139cp") || !slices.Contains(names(first), "virtio_net") {
		t.Errorf("coldplug of all but the rtl8139 loaded %v (inserted %v): want virtio_net, and neither 8139cp nor 8139too", names(first), inserted)
	}
	rest, restErr := drivers.Coldplug(sys, ColdplugOptions{})
	loaded, err := append(first, rest...), errors.Join(err, restErr)
	if slices.Contains(names(rest), "virtio_net") {
		t.Errorf("the second coldplug loaded %v again", names(rest))
	}
	if err == nil || !strings.Contains(err.Error(), "loading module virtio_balloon") || strings.Contains(err.Error(), "8139cp") {
		t.Errorf("Coldplug error: %v, want virtio_balloon's alone (8139cp finding no device is no error)", err)
	}
	for _, want := range []string{"virtio_pci", "virtio_net", "8139too"} {
		if !slices.Contains(names(loaded), want) {
			t.Errorf("loaded %v, without %s", names(loaded), want)
		}
	}
	if slices.Contains(inserted, "e1000") || slices.Index(inserted, "virtio_net") < slices.Index(inserted, "virtio_pci") {
		t.Errorf("inserted %v: want no e1000, virtio_net after virtio_pci", inserted)
	}
	seen := map[string]bool{}
	for _, n := range inserted {
		if seen[n] {
			t.Errorf("inserted %v: %s twice", inserted, n)
		}
		seen[n] = true
	}
	// What hotplug then asks for again is not tried twice.
	again, err := drivers.Load([]string{"pci:v000010ECd00008139sv00001AF4sd00001100bc02sc00i00", "virtio:d00000005v00001AF4"})
	if err != nil || len(again) != 0 || len(inserted) != len(seen) {
		t.Errorf("Load of aliases already tried: loaded %v, %v; inserted %v", names(again), err, inserted)
	}
}

// TestDriversSkipByAlias checks that skip is asked for each device's
// modalias: a driver left out for one device is loaded for another.
func TestDriversSkipByAlias(t *testing.T) {
	ix := hostIndex(t)
	modules := t.TempDir() // /sys/module
	var inserted []string
	opts := LoadOptions{SysModuleDir: modules, insert: func(file, _ string) (bool, error) {
		name := NormalizeName(filepath.Base(file))
		inserted = append(inserted, name)
		return true, os.Mkdir(filepath.Join(modules, name), 0o755)
	}}
	var asked []string
	d := ix.Drivers(func(alias, name string) bool {
		asked = append(asked, name+" for "+alias)
		return strings.Contains(alias, "bc02")
	}, opts)
	nic := "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"
	if mods, err := d.Load([]string{nic}); err != nil || len(mods) != 0 || len(inserted) != 0 {
		t.Fatalf("Load of a skipped device: %v, %v; inserted %v", names(mods), err, inserted)
	}
	if !slices.Equal(asked, []string{"e1000 for " + nic}) {
		t.Errorf("skip asked %q", asked)
	}
	// The same driver, matched by another device's modalias.
	other := strings.Replace(nic, "bc02", "bc01", 1)
	if mods, err := d.Load([]string{other}); err != nil || !slices.Contains(names(mods), "e1000") {
		t.Fatalf("Load of a device not skipped: %v, %v", names(mods), err)
	}
}

// TestDriversWaitsForOthers checks that a Load asking for a module
// another call is loading returns once that module is in, so that
// coldplug ends with the drivers hotplug took loaded too.
func TestDriversWaitsForOthers(t *testing.T) {
	ix := hostIndex(t)
	modules := t.TempDir() // /sys/module
	entered, gate := make(chan struct{}), make(chan struct{})
	opts := LoadOptions{SysModuleDir: modules, insert: func(file, _ string) (bool, error) {
		name := NormalizeName(filepath.Base(file))
		if name == "e1000" {
			close(entered)
			<-gate
		}
		return true, os.Mkdir(filepath.Join(modules, name), 0o755)
	}}
	d := ix.Drivers(nil, opts)
	e1000 := []string{"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"}
	first := make(chan error)
	go func() {
		_, err := d.Load(e1000)
		first <- err
	}()
	<-entered
	second := make(chan bool)
	go func() {
		mods, err := d.Load(e1000)
		_, statErr := os.Stat(filepath.Join(modules, "e1000"))
		second <- err == nil && len(mods) == 0 && statErr == nil
	}()
	close(gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if !<-second {
		t.Error("the second Load returned before e1000, which the first was loading, was in, or loaded it again")
	}
}

// fakeKernel returns LoadOptions inserting modules into a kernel of the
// test's own (its /sys/module a new directory): inserted is called once
// per module, with its file, one call at a time; a module already in is
// EEXIST, as the kernel answers.
func fakeKernel(t *testing.T, inserted func(name, file string)) LoadOptions {
	modules := t.TempDir()
	var mu sync.Mutex
	return LoadOptions{SysModuleDir: modules, insert: func(file, _ string) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		name := NormalizeName(filepath.Base(file))
		if _, err := os.Stat(filepath.Join(modules, name)); err == nil {
			return false, nil // 8139cp and 8139too both need mii
		}
		inserted(name, file)
		return true, os.Mkdir(filepath.Join(modules, name), 0o755)
	}}
}

// TestDriversFallback checks that the modaliases the index has no
// module for are looked up in the fallback index, read once and only
// when needed, for the devices want picks; the modules come from the
// index that matched.
func TestDriversFallback(t *testing.T) {
	host := hostIndex(t)
	dir, _, _ := writeSubset(t, host, "virtio_pci", "virtio_net")
	first, err := LoadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	from := map[string]string{}
	opts := fakeKernel(t, func(name, file string) { from[name] = file })
	reads := 0
	d := first.Drivers(nil, opts).Fallback(func() (*Index, error) {
		reads++
		return host, nil
	}, func(alias string) bool { return strings.Contains(alias, "bc02") })

	virtio := "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"
	if got, err := d.Load([]string{virtio}); err != nil || !slices.Contains(names(got), "virtio_pci") || reads != 0 {
		t.Fatalf("Load of a device the index drives: %v, %v; the fallback read %d times, want 0", names(got), err, reads)
	}
	if !strings.HasPrefix(from["virtio_pci"], dir+"/") {
		t.Errorf("virtio_pci came from %s, want the first index's %s", from["virtio_pci"], dir)
	}
	e1000 := "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"
	sound := "pci:v00008086d00002668sv00001AF4sd00001100bc04sc03i00" // QEMU's intel-hda
	got, err := d.Load([]string{e1000, sound})
	if err != nil || !slices.Equal(names(got), []string{"e1000"}) || reads != 1 {
		t.Fatalf("Load of a NIC and a sound card only the fallback drives: %v, %v; the fallback read %d times, want [e1000] and 1", names(got), err, reads)
	}
	if !strings.HasPrefix(from["e1000"], hostModules+"/") {
		t.Errorf("e1000 came from %s, want the fallback's %s", from["e1000"], hostModules)
	}
	rtl := "pci:v000010ECd00008139sv00001AF4sd00001100bc02sc00i00"
	if got, err := d.Load([]string{rtl}); err != nil || !slices.Contains(names(got), "8139too") || reads != 1 {
		t.Errorf("a second NIC only the fallback drives: %v, %v; the fallback read %d times, want once in all", names(got), err, reads)
	}

	broken := first.Drivers(nil, opts).Fallback(func() (*Index, error) {
		return nil, errors.New("no tree")
	}, func(string) bool { return true })
	if _, err := broken.Load([]string{sound}); err == nil || !strings.Contains(err.Error(), "no tree") || !strings.Contains(err.Error(), sound) {
		t.Errorf("Load with an unreadable fallback: %v, want its error, naming the device", err)
	}
}

// TestColdplugBackground checks that a background coldplug inserts its
// modules from threads at the lowest CPU priority, and that no thread of
// that priority serves later loads.
func TestColdplugBackground(t *testing.T) {
	ix := hostIndex(t)
	sys := t.TempDir()
	for i, alias := range []string{
		"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00", // e1000
		"pci:v000010ECd00008139sv00001AF4sd00001100bc02sc00i00", // rtl8139
		"pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", // ahci
	} {
		p := filepath.Join(sys, "bus/pci/devices", fmt.Sprintf("0000:00:%02d.0", i+3), "modalias")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(alias+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// getpriority(2) answers 20 - nice.
	nice := func() int {
		prio, err := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		if err != nil {
			t.Error(err)
		}
		return 20 - prio
	}
	runtime.LockOSThread()
	own := nice()
	runtime.UnlockOSThread()
	seen := map[string]int{} // module → its inserting thread's nice
	opts := fakeKernel(t, func(name, _ string) { seen[name] = nice() })
	isAHCI := func(alias string) bool { return strings.Contains(alias, "bc01") }
	d := ix.Drivers(nil, opts)
	if _, err := d.Coldplug(sys, ColdplugOptions{Only: isAHCI, Background: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Coldplug(sys, ColdplugOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, n := range seen {
		want := own
		if slices.Contains([]string{"ahci", "libahci", "libata", "scsi_mod", "scsi_common"}, name) {
			want = 19
		}
		if n != want {
			t.Errorf("%s inserted at nice %d, want %d", name, n, want)
		}
	}
	if seen["ahci"] != 19 || seen["e1000"] != own || own == 19 {
		t.Errorf("inserted at %v (this test at nice %d): want ahci's at 19, e1000 at the test's own", seen, own)
	}
}
