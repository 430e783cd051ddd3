package initramfs

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/kmod"
	"github.com/u-root/u-root/pkg/cpio"
)

// hostKernel is the newest kernel installed on the machine (Debian's
// linux-image-amd64, which `make test` installs), and hostModules its
// modules directory. An empty hostKernel makes the tests that need it fail.
var (
	hostKernel, _ = kmod.NewestRelease("/lib/modules")
	hostModules   = "/lib/modules/" + hostKernel
)

// archive is a cpio archive read back with u-root's reader.
type archive struct {
	order   []string
	records map[string]cpio.Record
	content map[string][]byte
}

func readCPIO(t testing.TB, raw []byte) *archive {
	t.Helper()
	a := &archive{records: map[string]cpio.Record{}, content: map[string][]byte{}}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("reading the cpio archive: %v", err)
	}
	for _, r := range recs {
		if _, dup := a.records[r.Name]; dup {
			t.Errorf("%s appears twice in the archive", r.Name)
		}
		a.order = append(a.order, r.Name)
		a.records[r.Name] = r
		data, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatal(err)
		}
		a.content[r.Name] = data
	}
	return a
}

func (a *archive) mode(name string) uint64 { return a.records[name].Mode }

// resolve follows the archive's symlinks in name, as the kernel would
// inside the booted initramfs, and returns the entry it leads to.
func (a *archive) resolve(t *testing.T, name string) string {
	t.Helper()
	resolved := ""
	rest := strings.Split(strings.Trim(name, "/"), "/")
	for hops := 0; len(rest) > 0; hops++ {
		if hops > 40 {
			t.Fatalf("symlink loop resolving %s", name)
		}
		cur := path.Join(resolved, rest[0])
		rest = rest[1:]
		r, ok := a.records[cur]
		if !ok {
			t.Fatalf("resolving /%s: /%s is not in the archive", name, cur)
		}
		if r.Mode&cpio.S_IFMT != cpio.S_IFLNK {
			resolved = cur
			continue
		}
		base := path.Dir(cur)
		if path.IsAbs(string(a.content[cur])) {
			base = ""
		}
		next := path.Join(base, string(a.content[cur]), path.Join(rest...))
		resolved, rest = "", strings.Split(strings.Trim(next, "/"), "/")
	}
	return resolved
}

// smallInit is a stand-in /init, so most tests need not copy the test binary.
func smallInit(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(p, []byte("#!/not/run\ninit stand-in\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func build(t testing.TB, opts Options) (*Report, []byte) {
	t.Helper()
	rep, err := Build(opts)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	data, err := os.ReadFile(opts.Output)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OutputSize != int64(len(data)) {
		t.Errorf("report says %d bytes, the file has %d", rep.OutputSize, len(data))
	}
	return rep, data
}

// includeTree makes a directory to include: a file, a subdirectory and a
// relative symlink.
func includeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o750))
	must(t, os.WriteFile(filepath.Join(dir, "sub", "hello.txt"), []byte("hello\n"), 0o640))
	must(t, os.Symlink("sub/hello.txt", filepath.Join(dir, "link")))
	return dir
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeFiles writes files (path under dir → content), making their
// directories.
func writeFiles[T string | []byte](t testing.TB, dir string, files map[string]T) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(data), 0o644))
	}
}

func TestBuildContents(t *testing.T) {
	out := filepath.Join(t.TempDir(), "initramfs.img")
	initBin := smallInit(t)
	inc := includeTree(t)
	single := filepath.Join(t.TempDir(), "resolv.conf")
	must(t, os.WriteFile(single, []byte("nameserver 127.0.0.1\n"), 0o644))
	rep, raw := build(t, Options{
		Output:      out,
		Compression: None,
		InitBinary:  initBin,
		Modules:     []string{"virtio_pci", "virtio_net"},
		ModulesDir:  hostModules,
		Includes:    []Include{{Src: inc, Dst: "/opt/extra"}, {Src: single, Dst: "/etc/resolv.conf"}, {Src: inc, Dst: "/lib/firmware/x"}},
		Cmdline:     "ociboot.container=busybox",
	})
	a := readCPIO(t, raw)

	// Order: sorted, parents before children, every parent a directory.
	if !slices.IsSorted(a.order) {
		t.Errorf("entries are not sorted: %v", a.order)
	}
	inos := map[uint64]string{}
	for _, name := range a.order {
		r := a.records[name]
		if d := path.Dir(name); d != "." && a.mode(d)&cpio.S_IFMT != cpio.S_IFDIR {
			t.Errorf("parent of %s is mode %o, want a directory entry", name, a.mode(d))
		}
		if r.UID != 0 || r.GID != 0 || r.MTime != 0 {
			t.Errorf("%s: uid %d gid %d mtime %d, want 0 0 0", name, r.UID, r.GID, r.MTime)
		}
		if other, dup := inos[r.Ino]; dup || r.Ino == 0 {
			t.Errorf("%s: inode %d (also %q)", name, r.Ino, other)
		}
		inos[r.Ino] = name
	}

	// The skeleton PID 1 relies on.
	for name, want := range map[string]uint64{
		"init": cpio.S_IFREG | 0o755, "dev": cpio.S_IFDIR | 0o755, "tmp": cpio.S_IFDIR | 0o1777,
		"root": cpio.S_IFDIR | 0o700, "proc": cpio.S_IFDIR | 0o555, "run": cpio.S_IFDIR | 0o755,
		"dev/console": cpio.S_IFCHR | 0o600,
	} {
		if got := a.mode(name); got != want {
			t.Errorf("%s mode = %o, want %o", name, got, want)
		}
	}
	if c := a.records["dev/console"]; c.Rmajor != 5 || c.Rminor != 1 {
		t.Errorf("dev/console is %d,%d, want 5,1", c.Rmajor, c.Rminor)
	}
	if want, _ := os.ReadFile(initBin); !bytes.Equal(a.content["init"], want) {
		t.Errorf("/init differs from %s", initBin)
	}

	// The baked configuration.
	var baked bootcfg.Baked
	must(t, json.Unmarshal(a.content[strings.TrimPrefix(bootcfg.BakedPath, "/")], &baked))
	if baked.Cmdline != "ociboot.container=busybox" || baked.KernelVersion != hostKernel ||
		!slices.Equal(baked.Modules, []string{"virtio_pci", "virtio_net"}) || baked.Runtime != rep.Runtime || !path.IsAbs(baked.Runtime) {
		t.Errorf("baked configuration = %+v (runtime reported %q)", baked, rep.Runtime)
	}

	// crun, its loader and libc, through the host's symlinks.
	crun := a.resolve(t, baked.Runtime)
	if a.mode(crun) != cpio.S_IFREG|0o755 {
		t.Errorf("runtime %s resolves to %s with mode %o", baked.Runtime, crun, a.mode(crun))
	}
	if host, _ := os.ReadFile(baked.Runtime); !bytes.Equal(a.content[crun], host) {
		t.Errorf("runtime %s differs from the host's", crun)
	}
	for _, p := range []string{"lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6"} {
		got := a.resolve(t, p)
		if a.mode(got)&cpio.S_IFMT != cpio.S_IFREG || len(a.content[got]) == 0 {
			t.Errorf("/%s resolves to /%s, mode %o, not a non-empty file", p, got, a.mode(got))
		}
	}
	// Every symlink taken from the host has the host's target.
	for _, name := range a.order {
		if a.mode(name)&cpio.S_IFMT != cpio.S_IFLNK || strings.HasPrefix(name, "opt/") || strings.Contains(name, "firmware") {
			continue
		}
		host, err := os.Readlink("/" + name)
		if err != nil || host != string(a.content[name]) {
			t.Errorf("symlink /%s -> %q, host has %q (%v)", name, a.content[name], host, err)
		}
	}
	if host, err := os.Readlink("/lib64"); err == nil && string(a.content["lib64"]) != host {
		t.Errorf("/lib64 is a host symlink to %s; archive has %q", host, a.content["lib64"])
	}
	libNames := ""
	for _, l := range rep.Libraries {
		libNames += " " + path.Base(l.Path)
	}
	for _, want := range []string{"libc.so.6", "ld-linux-x86-64.so.2", "libseccomp.so.2"} {
		if !strings.Contains(libNames+" ", " "+want+" ") {
			t.Errorf("reported libraries%s lack %s", libNames, want)
		}
	}

	// Modules, their files as on the host but compressed with zstd, and
	// the small index, naming them so.
	modDir := a.resolve(t, "lib/modules/"+hostKernel)
	vnet := a.resolve(t, "lib/modules/"+hostKernel+"/kernel/drivers/net/virtio_net.ko.zst")
	stored := filepath.Join(t.TempDir(), "virtio_net.ko.zst")
	must(t, os.WriteFile(stored, a.content[vnet], 0o644))
	if host, _ := os.ReadFile(hostModules + "/kernel/drivers/net/virtio_net.ko"); len(a.content[vnet]) >= len(host) || !readsAs(t, stored, host) {
		t.Errorf("virtio_net.ko.zst (%d bytes) is not the host's virtio_net.ko (%d bytes) compressed", len(a.content[vnet]), len(host))
	}
	dep := string(a.content[modDir+"/modules.dep"])
	if !strings.Contains(dep, "kernel/drivers/net/virtio_net.ko.zst: kernel/drivers/net/net_failover.ko.zst") || strings.Count(dep, "\n") != len(rep.Modules) {
		t.Errorf("modules.dep in the image:\n%s\nwant one line per module of %v", dep, rep.Modules)
	}
	for _, f := range []string{"modules.alias", "modules.builtin", "modules.order", "modules.softdep"} {
		if _, ok := a.records[modDir+"/"+f]; !ok {
			t.Errorf("%s/%s missing", modDir, f)
		}
	}
	var modNames []string
	for _, m := range rep.Modules {
		modNames = append(modNames, m.Name)
		if m.Size <= 0 {
			t.Errorf("module %s reported with size %d", m.Name, m.Size)
		}
	}
	if !slices.Contains(modNames, "virtio_pci_modern_dev") || modNames[len(modNames)-1] != "virtio_net" {
		t.Errorf("reported modules %v", modNames)
	}

	// Includes: files, modes, symlinks kept; under /lib they follow the
	// archive's lib symlink rather than shadowing it.
	if string(a.content["opt/extra/sub/hello.txt"]) != "hello\n" || a.mode("opt/extra/sub/hello.txt") != cpio.S_IFREG|0o640 {
		t.Errorf("included file: mode %o content %q", a.mode("opt/extra/sub/hello.txt"), a.content["opt/extra/sub/hello.txt"])
	}
	if a.mode("opt/extra/sub") != cpio.S_IFDIR|0o750 {
		t.Errorf("included dir mode %o", a.mode("opt/extra/sub"))
	}
	if a.mode("opt/extra/link")&cpio.S_IFMT != cpio.S_IFLNK || string(a.content["opt/extra/link"]) != "sub/hello.txt" {
		t.Errorf("included symlink: mode %o target %q", a.mode("opt/extra/link"), a.content["opt/extra/link"])
	}
	if string(a.content["etc/resolv.conf"]) != "nameserver 127.0.0.1\n" {
		t.Errorf("included single file: %q", a.content["etc/resolv.conf"])
	}
	if fw := a.resolve(t, "lib/firmware/x/sub/hello.txt"); string(a.content[fw]) != "hello\n" {
		t.Errorf("include under /lib landed at %s", fw)
	}

	// Report figures.
	if rep.Entries != len(a.order) || rep.ArchiveSize != int64(len(raw)) || rep.Files == 0 || rep.FileBytes == 0 {
		t.Errorf("report %+v for %d entries, %d bytes", rep, len(a.order), len(raw))
	}

	// GNU cpio agrees on the entry list.
	cmd := exec.Command("cpio", "-it", "--quiet")
	cmd.Stdin = bytes.NewReader(raw)
	listing, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -it: %v", err)
	}
	if got := strings.Fields(string(listing)); !slices.Equal(got, a.order) {
		t.Errorf("cpio -it lists %d entries, u-root's reader %d", len(got), len(a.order))
	}
}

// decompressors are the real tools, not the encoders' own decoders.
var decompressors = map[Compression][]string{
	Zstd: {"zstd", "-d", "-c", "-q"},
	Gzip: {"gzip", "-d", "-c"},
	XZ:   {"xz", "-d", "-c"},
}

func TestCompressions(t *testing.T) {
	dir := t.TempDir()
	opts := Options{InitBinary: smallInit(t), Runtime: "none", Modules: []string{"virtio_net"}, ModulesDir: hostModules}
	opts.Output, opts.Compression = filepath.Join(dir, "plain.img"), None
	_, plain := build(t, opts)
	readCPIO(t, plain)
	for c, argv := range decompressors {
		opts.Output, opts.Compression = filepath.Join(dir, string(c)+".img"), c
		_, packed := build(t, opts)
		if len(packed) >= len(plain) {
			t.Errorf("%s: %d bytes, not smaller than the %d-byte cpio", c, len(packed), len(plain))
		}
		got, err := exec.Command(argv[0], append(argv[1:], opts.Output)...).Output()
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(argv, " "), err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("%s: decompresses to %d bytes that differ from the %d-byte cpio", c, len(got), len(plain))
		}
	}
	// The kernel's xz decoder needs CRC32 (or no) checks.
	list, err := exec.Command("xz", "--robot", "--list", filepath.Join(dir, "xz.img")).Output()
	if err != nil {
		t.Fatalf("xz --list: %v", err)
	}
	for _, line := range strings.Split(string(list), "\n") {
		if f := strings.Split(line, "\t"); f[0] == "file" && f[6] != "CRC32" {
			t.Errorf("xz check is %q, want CRC32 (line %q)", f[6], line)
		}
	}
	if !strings.Contains(string(list), "CRC32") {
		t.Errorf("xz --list output has no CRC32:\n%s", list)
	}
}

func TestReproducible(t *testing.T) {
	dir := t.TempDir()
	opts := Options{InitBinary: smallInit(t), Modules: []string{"virtio_pci", "virtio_net"}, ModulesDir: hostModules, Includes: []Include{{Src: includeTree(t), Dst: "/opt"}}}
	var outs [][]byte
	for i, epoch := range []int64{0, 0, 1700000000} {
		opts.Output, opts.SourceDateEpoch = filepath.Join(dir, string(rune('a'+i))+".img"), epoch
		_, data := build(t, opts)
		outs = append(outs, data)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatalf("two builds from the same inputs differ (%d and %d bytes)", len(outs[0]), len(outs[1]))
	}
	if bytes.Equal(outs[0], outs[2]) {
		t.Fatal("SOURCE_DATE_EPOCH did not change the output")
	}
	raw, err := exec.Command("zstd", "-d", "-c", "-q", filepath.Join(dir, "c.img")).Output()
	if err != nil {
		t.Fatal(err)
	}
	a := readCPIO(t, raw)
	for _, name := range a.order {
		if m := a.records[name].MTime; m != 1700000000 {
			t.Errorf("%s: mtime %d, want 1700000000", name, m)
		}
	}
}

// staticBinary builds a small static Go program, as ociboot is built.
func staticBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() { println(\"hello\") }\n"), 0o644))
	cmd := exec.Command("go", "build", "-o", "hello", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "hello")
}

func hasInterp(t *testing.T, p string) bool {
	t.Helper()
	f, err := elf.Open(p)
	must(t, err)
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

func TestDefaultInitIsThisExecutable(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "i.img")
	opts := Options{Output: out, Compression: None, Runtime: "none"}
	if hasInterp(t, exe) {
		// `go test` with cgo links the test binary dynamically: the
		// default /init is still this executable, refused as not static.
		_, err := Build(opts)
		if err == nil || !strings.Contains(err.Error(), exe) || !strings.Contains(err.Error(), "dynamically linked") {
			t.Errorf("Build with the dynamic test binary as /init: error = %v", err)
		}
		return
	}
	rep, raw := build(t, opts)
	a := readCPIO(t, raw)
	want, _ := os.ReadFile(exe)
	if rep.Init.Path != exe || !bytes.Equal(a.content["init"], want) {
		t.Errorf("/init is %d bytes from %s, want this test binary %s", len(a.content["init"]), rep.Init.Path, exe)
	}
	if len(rep.Modules) != 0 || rep.Runtime != "" {
		t.Errorf("no modules or runtime asked for, got %+v", rep)
	}
}

func TestStaticInitBinary(t *testing.T) {
	hello := staticBinary(t)
	_, raw := build(t, Options{Output: filepath.Join(t.TempDir(), "s.img"), Compression: None, Runtime: "none", InitBinary: hello})
	a := readCPIO(t, raw)
	want, _ := os.ReadFile(hello)
	if !bytes.Equal(a.content["init"], want) || a.mode("init") != cpio.S_IFREG|0o755 {
		t.Errorf("/init: %d bytes mode %o, want the %d-byte static binary, mode 755", len(a.content["init"]), a.mode("init"), len(want))
	}
	// A static binary needs no libraries.
	if libs, err := libraryClosure(hello); err != nil || len(libs) != 0 {
		t.Errorf("closure of a static binary = %v, %v", libs, err)
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	base := Options{Output: filepath.Join(dir, "x.img"), InitBinary: smallInit(t), Runtime: "none"}
	missing := filepath.Join(dir, "no-such-dir")
	tests := []struct {
		name   string
		change func(*Options)
		want   []string
	}{
		{"unknown module", func(o *Options) { o.Modules = []string{"virtio_net", "no_such_mod_q"}; o.ModulesDir = hostModules },
			[]string{"no_such_mod_q", hostModules}},
		{"missing include", func(o *Options) { o.Includes = []Include{{Src: missing, Dst: "/x"}} },
			[]string{"--include", missing}},
		{"relative include destination", func(o *Options) { o.Includes = []Include{{Src: dir, Dst: "x"}} },
			[]string{"absolute"}},
		{"bad compression", func(o *Options) { o.Compression = "lz4" }, []string{`"lz4"`, "zstd"}},
		{"bad runtime", func(o *Options) { o.Runtime = "youki" }, []string{`"youki"`, "crun"}},
		{"missing runtime", func(o *Options) { o.Runtime = missing }, []string{missing}},
		{"dynamic init", func(o *Options) { o.InitBinary = "/usr/bin/crun" }, []string{"/usr/bin/crun", "static"}},
		{"missing init", func(o *Options) { o.InitBinary = missing }, []string{missing}},
		{"missing modules dir", func(o *Options) { o.Modules = []string{"x"}; o.ModulesDir = missing }, []string{missing}},
		{"conflicting include", func(o *Options) {
			o.Runtime = ""
			o.Includes = []Include{{Src: base.InitBinary, Dst: "/usr/bin/crun"}}
		}, []string{"/usr/bin/crun", "conflicts", "--include"}},
		{"negative epoch", func(o *Options) { o.SourceDateEpoch = -1 }, []string{"-1"}},
	}
	for _, tt := range tests {
		opts := base
		tt.change(&opts)
		_, err := Build(opts)
		if err == nil {
			t.Errorf("%s: Build succeeded", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tt.name, err, w)
			}
		}
	}
	if _, err := os.Stat(base.Output); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed builds left %s behind (%v)", base.Output, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".x.img.tmp-*")); len(left) != 0 {
		t.Errorf("failed builds left temporary files %v", left)
	}
}

func TestParseInclude(t *testing.T) {
	inc, err := ParseInclude("/host/a:b:/img/c")
	if err == nil {
		t.Errorf("ParseInclude with a relative destination = %+v, want an error", inc)
	}
	inc, err = ParseInclude("./files:/opt/files")
	if err != nil || inc != (Include{Src: "./files", Dst: "/opt/files"}) {
		t.Errorf("ParseInclude = %+v, %v", inc, err)
	}
	for _, bad := range []string{"nocolon", ":/x", "a:"} {
		if _, err := ParseInclude(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseInclude(%q) error = %v", bad, err)
		}
	}
	for _, good := range []string{"", "zstd", "gzip", "xz", "none"} {
		if _, err := ParseCompression(good); err != nil {
			t.Errorf("ParseCompression(%q): %v", good, err)
		}
	}
}

func TestLibraryClosureCrun(t *testing.T) {
	libs, err := libraryClosure("/usr/bin/crun")
	if err != nil {
		t.Fatal(err)
	}
	var bases []string
	for _, l := range libs {
		bases = append(bases, path.Base(l))
		if _, err := os.Stat(l); err != nil {
			t.Errorf("library %s: %v", l, err)
		}
	}
	for _, want := range []string{"libc.so.6", "ld-linux-x86-64.so.2", "libsystemd.so.0", "libcap.so.2", "libyajl.so.2"} {
		if !slices.Contains(bases, want) {
			t.Errorf("crun's closure %v lacks %s", libs, want)
		}
	}
	if libs[0] != "/lib64/ld-linux-x86-64.so.2" {
		t.Errorf("first entry %s, want crun's PT_INTERP /lib64/ld-linux-x86-64.so.2", libs[0])
	}
	if slices.Contains(bases, "ld-linux-x86-64.so.2") && strings.Count(strings.Join(bases, " "), "ld-linux") != 1 {
		t.Errorf("the loader appears more than once: %v", libs)
	}
}

func TestMissingLibraryNamed(t *testing.T) {
	// A copy of crun with a RUNPATH-less lookup that cannot succeed: point
	// DT_NEEDED at a library name no directory has, by patching the string.
	data, err := os.ReadFile("/usr/bin/crun")
	must(t, err)
	patched := bytes.Replace(data, []byte("libyajl.so.2\x00"), []byte("libzzzz.so.2\x00"), 1)
	if bytes.Equal(patched, data) {
		t.Fatal("libyajl.so.2 not found in crun's dynamic strings")
	}
	p := filepath.Join(t.TempDir(), "crun")
	must(t, os.WriteFile(p, patched, 0o755))
	_, err = libraryClosure(p)
	if err == nil || !strings.Contains(err.Error(), "libzzzz.so.2") || !strings.Contains(err.Error(), p) {
		t.Errorf("error = %v, want it to name libzzzz.so.2 and %s", err, p)
	}
}

func TestTreeFollowsArchiveSymlinks(t *testing.T) {
	tr := newTree()
	must(t, tr.addSymlink("/lib", "usr/lib", "test"))
	must(t, tr.addSymlink("/usr/lib/abs", "/opt/real", "test"))
	must(t, tr.addData("/lib/modules/k/modules.dep", []byte("x"), 0o644, "test"))
	must(t, tr.addData("/lib/abs/f", []byte("y"), 0o644, "test"))
	names, err := tr.finish()
	must(t, err)
	want := []string{"lib", "opt", "opt/real", "opt/real/f", "usr", "usr/lib", "usr/lib/abs", "usr/lib/modules", "usr/lib/modules/k", "usr/lib/modules/k/modules.dep"}
	if !slices.Equal(names, want) {
		t.Errorf("names = %v\nwant %v", names, want)
	}
	// A file where a directory is needed is an error naming both.
	tr = newTree()
	must(t, tr.addData("/a", []byte("x"), 0o644, "first"))
	must(t, tr.addData("/a/b", []byte("y"), 0o644, "second"))
	if _, err := tr.finish(); err == nil || !strings.Contains(err.Error(), "first") || !strings.Contains(err.Error(), "second") {
		t.Errorf("file-as-directory error = %v", err)
	}
}

// BenchmarkBuildZstd builds the default image: crun, virtio_pci and
// virtio_net, zstd, with this test binary's bytes (its ELF magic spoiled,
// as it may be dynamically linked) standing in for a 15 MB ociboot.
func BenchmarkBuildZstd(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		b.Fatal(err)
	}
	initBin := filepath.Join(b.TempDir(), "init")
	must(b, os.WriteFile(initBin, append([]byte("NOTELF"), data...), 0o755))
	opts := Options{Output: filepath.Join(b.TempDir(), "bench.img"), InitBinary: initBin, Modules: []string{"virtio_pci", "virtio_net"}, ModulesDir: hostModules}
	var rep *Report
	for b.Loop() {
		if rep, err = Build(opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rep.OutputSize), "bytes/image")
	b.ReportMetric(float64(rep.ArchiveSize), "bytes/cpio")
}

// TestIncludeProgram checks --include-program with the next tool the
// boot needs, Debian's mke2fs: unpacked with cpio(1), the image runs it
// in a chroot, every shared library found inside.
func TestIncludeProgram(t *testing.T) {
	out := filepath.Join(t.TempDir(), "initramfs.img")
	rep, raw := build(t, Options{Output: out, Compression: None, InitBinary: smallInit(t), Runtime: "none", Programs: []string{"mke2fs"}})
	if len(rep.Programs) != 1 || rep.Programs[0].Path != "/usr/sbin/mke2fs" || len(rep.Programs[0].Libraries) < 3 {
		t.Fatalf("report: %+v, want mke2fs with its libraries", rep.Programs)
	}
	a := readCPIO(t, raw)
	for _, f := range append([]File{rep.Programs[0].File}, rep.Programs[0].Libraries...) {
		if _, ok := a.records[a.resolve(t, f.Path)]; !ok {
			t.Errorf("%s is not in the image", f.Path)
		}
	}
	root := t.TempDir()
	unpack := exec.Command("cpio", "-id", "--quiet")
	unpack.Dir, unpack.Stdin = root, bytes.NewReader(raw)
	if b, err := unpack.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v\n%s", err, b)
	}
	run := exec.Command("/usr/sbin/mke2fs", "-V")
	run.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	b, err := run.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "mke2fs") {
		t.Errorf("mke2fs -V in the image: %v\n%s", err, b)
	}
}

func TestIncludeProgramErrors(t *testing.T) {
	script := filepath.Join(t.TempDir(), "script")
	must(t, os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755))
	for _, tc := range []struct{ program, want string }{
		{"no-such-program-q", `--include-program no-such-program-q: exec: "no-such-program-q": executable file not found`},
		{script, "--include-program " + script + ": " + script + " is not an ELF program but a script"},
	} {
		_, err := Build(Options{Output: filepath.Join(t.TempDir(), "x.img"), InitBinary: smallInit(t), Runtime: "none", Programs: []string{tc.program}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.program, err, tc.want)
		}
	}
}

// readsAs tells whether kmod reads the module file at p as want.
func readsAs(t *testing.T, p string, want []byte) bool {
	t.Helper()
	got, err := kmod.ReadFile(p)
	if err != nil {
		t.Error(err)
	}
	return bytes.Equal(got, want)
}
