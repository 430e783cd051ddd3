// Package initramfs builds ociboot's initramfs: a newc cpio archive,
// compressed, holding the init binary, the directories and console PID 1
// needs, the OCI runtime with its shared libraries (host layout kept),
// kernel modules with a matching index, extra files, and the baked boot
// configuration. The same inputs give a byte-identical archive.
package initramfs

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ociboot/ociboot/internal/atomicfile"
	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/kmod"
	"github.com/ociboot/ociboot/internal/trust"
	"github.com/u-root/u-root/pkg/cpio"
)

// Options says what goes into the initramfs. Zero values take the defaults
// given for each field.
type Options struct {
	// Output is the file written (atomically). Required.
	Output string
	// Compression defaults to Zstd.
	Compression Compression
	// InitBinary becomes /init; default: this executable (os.Executable).
	InitBinary string
	// Runtime is "crun" (the default) or "runc", looked up on PATH, an
	// absolute path, or "none" for no OCI runtime. It keeps its host path
	// inside the image, with the shared libraries it needs.
	Runtime string
	// Modules are kernel module names or aliases to include, with their
	// dependencies, and to load at boot. Empty means no modules.
	Modules []string
	// StorageModules are kernel modules included with their
	// dependencies, but loaded at boot only when local storage is used
	// (a cache device): disk drivers, filesystems. Empty means none.
	StorageModules []string
	// FscryptModules are kernel modules included with their
	// dependencies, loaded at boot only when a volume on a disk is
	// encrypted (fscrypt_key=): the crypto the kernel's fscrypt asks for
	// by name. Empty means none.
	FscryptModules []string
	// Drivers are the names of driver presets (DriverPresets) whose
	// modules are included, with their dependencies, for coldplug to
	// load those the machine's devices match.
	Drivers []string
	// Mkfs is mke2fs (a path, or a name looked up on PATH and in the
	// sbin directories), kept at its host path with the shared libraries
	// it needs, to format the cache disk; "" or "none" means none.
	Mkfs string
	// KernelVersion names /lib/modules/KVER in the image; default: the
	// base name of ModulesDir, or else the newest version in /lib/modules.
	KernelVersion string
	// ModulesDir is where modules are taken from; default
	// /lib/modules/KernelVersion.
	ModulesDir string
	// Includes are extra host files or directories.
	Includes []Include
	// Cmdline holds default kernel parameters baked into the image.
	Cmdline string
	// RegistryAuth is a docker config.json holding registry credentials,
	// stored as bootcfg.AuthPath with mode 0600. Checked, never printed.
	RegistryAuth []byte
	// CACerts holds PEM CA certificates trusted at boot besides the
	// embedded roots, stored as bootcfg.CAPath.
	CACerts []byte
	// Trust holds the keys and the policy images and rootfs tarballs are
	// verified with at boot, stored in trust.Dir with mode 0644; nil for
	// none.
	Trust *trust.Trust
	// SourceDateEpoch is the modification time of every entry, in seconds
	// since 1970 (SOURCE_DATE_EPOCH); default 0.
	SourceDateEpoch int64
	// Shell, when set, is a host busybox (static, or with the libraries
	// it needs) installed as /bin/busybox with /bin/sh linked to it, for
	// ociboot.on_failure=shell.
	Shell string
	// Programs are more host programs (paths, or names looked up on
	// PATH), each kept at its host path with the shared libraries it
	// needs (ociboot build --include-program).
	Programs []string
	// Keymaps are console keymaps (kbd names such as fr-latin1, or
	// "common" for CommonKeymaps), converted with the host's `loadkeys -b`
	// and stored for ociboot.keymap=.
	Keymaps []string
	// ModulesAll puts the kernel's whole module tree (/lib/modules/KVER,
	// as ModulesDir has it) into a squashfs image in a second,
	// uncompressed cpio segment; PID 1 mounts it over /lib/modules/KVER
	// before loading any driver (makeImages): the boot and an OS booted
	// from an image can then load any driver, and the tree stays
	// compressed in RAM.
	ModulesAll bool
	// Firmware, when set, is a host directory of firmware (such as
	// /lib/firmware): the files the image's modules declare are put into
	// /lib/firmware, xz-compressed (addFirmware). With FirmwareAll or
	// ModulesAll, all of it goes into a squashfs image of the second
	// segment, mounted at /lib/firmware, but for the vendor directories
	// the early microcode is made of (earlyMicrocodeDirs).
	Firmware    string
	FirmwareAll bool
	// Microcode, when set, is a directory holding the CPU vendors'
	// microcode as Debian's intel-microcode and amd64-microcode install
	// it (DefaultMicrocodeDir: intel-ucode/, amd-ucode/): an uncompressed
	// cpio archive of it goes first in the image, where the kernel's
	// early loader updates the CPUs before anything else runs (dracut's
	// --early-microcode). A directory holding neither adds nothing.
	Microcode string
}

// CommonKeymaps are the keymaps --keymaps common ships.
var CommonKeymaps = []string{"us", "uk", "de-latin1", "fr-latin1", "es", "it", "be-latin1", "fr_CH-latin1",
	"sg-latin1", "se-latin1", "no-latin1", "dk-latin1", "fi", "pt-latin1", "br-abnt2", "pl", "cz-lat2", "hu", "ru", "jp106", "dvorak"}

// keymapDirs are where kbd's text keymaps are looked for.
var keymapDirs = []string{"/usr/share/keymaps", "/usr/share/kbd/keymaps"}

// Include puts the host file or directory Src at Dst in the image.
type Include struct {
	Src string
	Dst string
}

// ParseInclude parses "SRC:DST"; DST must be absolute.
func ParseInclude(s string) (Include, error) {
	src, dst, ok := strings.Cut(s, ":")
	if !ok || src == "" || !path.IsAbs(dst) {
		return Include{}, fmt.Errorf("include %q: want SRC:DST with DST an absolute path in the image", s)
	}
	return Include{Src: src, Dst: dst}, nil
}

// File is a host file put into the image.
type File struct {
	Path string // on the host
	Size int64
}

// Module is a kernel module put into the image.
type Module struct {
	Name    string
	Size    int64 // of the file as stored (compressed or not)
	Builtin bool  // built into the kernel: no file
}

// Report says what Build wrote.
type Report struct {
	Output      string
	Compression Compression
	Entries     int   // archive entries of every kind
	Files       int   // regular files among them
	FileBytes   int64 // their total size
	ArchiveSize int64 // uncompressed cpio size
	OutputSize  int64 // size of Output
	Init        File
	// Runtime is the OCI runtime's path in the image ("" for none);
	// RuntimeFile its host file and Libraries what it needs (loader
	// included).
	Runtime       string
	RuntimeFile   File
	Libraries     []File
	KernelVersion string
	Modules       []Module // in load order
	// Presets are the driver presets' modules and sizes.
	Presets []DriverPreset
	// Firmware is what the modules' firmware added (not the whole
	// directory of FirmwareAll).
	Firmware FirmwareReport
	// AuthRegistries are the registries RegistryAuth has credentials for.
	AuthRegistries []string
	// CACerts is how many certificates CACerts holds.
	CACerts int
	// Verify describes Trust, a line each (trust.Trust.Describe).
	Verify []string
	// Shell is the shell's path in the image ("" for none).
	Shell string
	// Mkfs is mke2fs's path in the image ("" for none).
	Mkfs string
	// Programs are the programs of Options.Programs and Mkfs, with their
	// libraries.
	Programs []Program
	// Keymaps are the names of the keymaps stored.
	Keymaps []string
	// FirstSegment is the compressed size of the first segment (all of
	// OutputSize when there is no second). SecondSegment describes the
	// segment of the images (zero without them), and Images the images
	// it holds.
	FirstSegment  int64
	SecondSegment Segment
	Images        []ImageReport
	// Microcode is what the early microcode archive holds, before the
	// first segment (empty without Options.Microcode).
	Microcode MicrocodeReport
}

// Program is a host program put into the image, with the libraries it
// needs.
type Program struct {
	File
	Libraries []File
}

// Segment is the second archive of an image: entries, cpio bytes and
// compressed bytes.
type Segment struct {
	Entries     int
	ArchiveSize int64
	Size        int64
}

// Fixed layout of the image.
const (
	modulesRoot = "/lib/modules"
	initPath    = "/init"
)

// skeleton is what PID 1 needs before it mounts anything.
var skeleton = []struct {
	name string
	perm os.FileMode
}{
	{"/dev", 0o755}, {"/proc", 0o555}, {"/sys", 0o555}, {"/run", 0o755},
	{"/tmp", 0o777 | os.ModeSticky}, {"/etc", 0o755}, {"/root", 0o700},
	{"/var", 0o755}, {"/mnt", 0o755},
}

// Build writes the initramfs described by opts and reports what is in it.
func Build(opts Options) (*Report, error) {
	if opts.Output == "" {
		return nil, fmt.Errorf("initramfs: no output file given")
	}
	comp, err := ParseCompression(string(opts.Compression))
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	rep := &Report{Output: opts.Output, Compression: comp}
	t := newTree()
	for _, d := range skeleton {
		if err := t.addDir(d.name, d.perm, "the skeleton"); err != nil {
			return nil, fmt.Errorf("initramfs: %w", err)
		}
	}
	// Without /dev/console the kernel starts init with no stdin/out/err.
	if err := t.add("/dev/console", &entry{mode: cpio.S_IFCHR | 0o600, rmajor: 5, rminor: 1, from: "the skeleton"}); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	if err := addInit(t, opts.InitBinary, rep); err != nil {
		return nil, err
	}
	if err := addRuntime(t, opts.Runtime, rep); err != nil {
		return nil, err
	}
	images, err := planImages(opts)
	if err != nil {
		return nil, err
	}
	var imageMods []string
	if len(images) > 0 {
		imageMods = imageModules()
	}
	mods, moduleDir, err := addModules(t, opts, imageMods, rep)
	if err != nil {
		return nil, err
	}
	if err := addFirmware(t, opts, moduleDir, mods, rep); err != nil {
		return nil, err
	}
	for _, inc := range opts.Includes {
		from := "--include " + inc.Src + ":" + inc.Dst
		if !path.IsAbs(inc.Dst) {
			return nil, fmt.Errorf("initramfs: %s: the destination must be an absolute path in the image", from)
		}
		if err := t.addHostTree(inc.Src, inc.Dst, from); err != nil {
			return nil, fmt.Errorf("initramfs: %s: %w", from, err)
		}
	}
	if err := addRegistryFiles(t, opts, rep); err != nil {
		return nil, err
	}
	if err := addPrograms(t, opts.Programs, rep); err != nil {
		return nil, err
	}
	if err := addShell(t, opts.Shell, rep); err != nil {
		return nil, err
	}
	if err := addMkfs(t, opts.Mkfs, rep); err != nil {
		return nil, err
	}
	if err := addKeymaps(t, opts.Keymaps, rep); err != nil {
		return nil, err
	}
	baked, err := json.MarshalIndent(bootcfg.Baked{
		Cmdline:        opts.Cmdline,
		Runtime:        rep.Runtime,
		Modules:        opts.Modules,
		StorageModules: opts.StorageModules,
		FscryptModules: opts.FscryptModules,
		Mkfs:           rep.Mkfs,
		KernelVersion:  rep.KernelVersion,
		Shell:          rep.Shell,
		Keymaps:        rep.Keymaps,
		Images:         bakedImages(images),
		ImageModules:   imageMods,
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("initramfs: encoding %s: %w", bootcfg.BakedPath, err)
	}
	if err := t.addData(bootcfg.BakedPath, append(baked, '\n'), 0o644, "the build configuration"); err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	names, err := t.finish()
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	tmp, err := os.MkdirTemp("", "ociboot-build-")
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	defer os.RemoveAll(tmp)
	second, secondNames, err := makeImages(images, t, tmp, opts.SourceDateEpoch, rep)
	if err != nil {
		return nil, err
	}
	var ucode *tree
	var ucodeNames []string
	if opts.Microcode != "" {
		if ucode, ucodeNames, err = microcodeTree(opts.Microcode, &rep.Microcode); err != nil {
			return nil, err
		}
	}
	if err := atomicfile.Write(opts.Output, 0o644, func(w io.Writer) error {
		cw := &countingWriter{w: w}
		if ucode != nil {
			if err := writeMicrocode(cw, ucode, ucodeNames, opts.SourceDateEpoch, &rep.Microcode); err != nil {
				return err
			}
		}
		if err := writeArchive(cw, t, names, comp, opts.SourceDateEpoch, rep); err != nil {
			return err
		}
		rep.FirstSegment = cw.n - rep.Microcode.Size
		if second == nil {
			return nil
		}
		// The kernel takes an uncompressed archive after a compressed one
		// only at an offset that is a multiple of 4 (it skips zeros
		// between archives).
		if _, err := cw.Write(make([]byte, (4-cw.n%4)%4)); err != nil {
			return err
		}
		var seg Report
		if err := writeArchive(cw, second, secondNames, None, opts.SourceDateEpoch, &seg); err != nil {
			return err
		}
		rep.SecondSegment = Segment{Entries: seg.Entries, ArchiveSize: seg.ArchiveSize, Size: cw.n - rep.Microcode.Size - rep.FirstSegment}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("initramfs: writing %s: %w", opts.Output, err)
	}
	st, err := os.Stat(opts.Output)
	if err != nil {
		return nil, fmt.Errorf("initramfs: %w", err)
	}
	rep.OutputSize = st.Size()
	return rep, nil
}

// addRegistryFiles checks and adds the registry credentials and extra CA
// certificates.
func addRegistryFiles(t *tree, opts Options, rep *Report) error {
	if opts.RegistryAuth != nil {
		creds, err := image.ParseDockerConfig(opts.RegistryAuth)
		if err != nil {
			return fmt.Errorf("initramfs: registry credentials: %w", err)
		}
		for host := range creds {
			rep.AuthRegistries = append(rep.AuthRegistries, host)
		}
		sort.Strings(rep.AuthRegistries)
		if err := t.addData(bootcfg.AuthPath, opts.RegistryAuth, 0o600, "the registry credentials"); err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
	}
	if opts.CACerts != nil {
		certs, err := fetch.ParseCACerts(opts.CACerts)
		if err != nil {
			return fmt.Errorf("initramfs: CA certificates: %w", err)
		}
		rep.CACerts = len(certs)
		if err := t.addData(bootcfg.CAPath, opts.CACerts, 0o644, "the CA certificates"); err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
	}
	if opts.Trust != nil {
		files, err := opts.Trust.Files()
		if err != nil {
			return fmt.Errorf("initramfs: the verification policy: %w", err)
		}
		for _, name := range slices.Sorted(maps.Keys(files)) {
			if err := t.addData(path.Join(trust.Dir, name), files[name], 0o644, "the verification keys and policy"); err != nil {
				return fmt.Errorf("initramfs: %w", err)
			}
		}
		rep.Verify = opts.Trust.Describe()
	}
	return nil
}

func addInit(t *tree, bin string, rep *Report) error {
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("initramfs: finding this executable for /init (set the init binary): %w", err)
		}
		bin = exe
	}
	if f, err := elf.Open(bin); err == nil {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				f.Close()
				return fmt.Errorf("initramfs: init binary %s is dynamically linked; /init must be static (build it with CGO_ENABLED=0)", bin)
			}
		}
		f.Close()
	}
	if err := t.addFile(initPath, bin, 0o755, "the init binary"); err != nil {
		return fmt.Errorf("initramfs: init binary: %w", err)
	}
	rep.Init = File{Path: bin, Size: t.entries[clean(initPath)].size}
	return nil
}

// addProgram adds the host program bin (an absolute path to an ELF file)
// with its ELF closure: every shared library it needs, the dynamic loader
// included, each at its host path with the host's symlinks. The program
// goes at its host path too, or at dst when set. It returns what it
// added: the program's file, then the libraries. from says, in
// messages, who asked for it.
func addProgram(t *tree, bin, dst, from string) (File, []File, error) {
	var prog File
	if err := checkELF(bin); err != nil {
		return prog, nil, err
	}
	if dst == "" {
		file, err := t.addHostPath(bin, from)
		if err != nil {
			return prog, nil, err
		}
		prog = File{Path: bin, Size: t.entries[clean(file)].size}
	} else {
		if err := t.addFile(dst, bin, 0o755, from); err != nil {
			return prog, nil, err
		}
		prog = File{Path: bin, Size: t.entries[clean(dst)].size}
	}
	closure, err := libraryClosure(bin)
	if err != nil {
		return prog, nil, fmt.Errorf("%s: %w", bin, err)
	}
	var libs []File
	for _, lib := range closure {
		file, err := t.addHostPath(lib, from)
		if err != nil {
			return prog, nil, fmt.Errorf("library %s of %s: %w", lib, bin, err)
		}
		libs = append(libs, File{Path: lib, Size: t.entries[clean(file)].size})
	}
	return prog, libs, nil
}

// checkELF says what bin is when it is not an ELF file.
func checkELF(bin string) error {
	f, err := os.Open(bin)
	if err != nil {
		return err
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || string(magic) != "\x7fELF" {
		what := "not an ELF program"
		if string(magic[:2]) == "#!" {
			what += " but a script: add its interpreter with --include-program and the script with --include"
		}
		return fmt.Errorf("%s is %s", bin, what)
	}
	return nil
}

// lookProgram finds a program given by name on PATH, or by path, and
// returns its absolute path.
func lookProgram(name string) (string, error) {
	bin, err := exec.LookPath(name)
	if err != nil {
		return "", err
	}
	return filepath.Abs(bin)
}

// addRuntime adds the OCI runtime at its host path, with its ELF closure.
func addRuntime(t *tree, runtime string, rep *Report) error {
	switch {
	case runtime == "none":
		return nil
	case runtime == "":
		runtime = "crun"
	case runtime != "crun" && runtime != "runc" && !filepath.IsAbs(runtime):
		return fmt.Errorf("initramfs: runtime %q: want crun, runc, none or an absolute path", runtime)
	}
	bin, err := lookProgram(runtime)
	if err != nil {
		return fmt.Errorf("initramfs: runtime %s: %w", runtime, err)
	}
	prog, libs, err := addProgram(t, bin, "", "the runtime "+bin)
	if err != nil {
		return fmt.Errorf("initramfs: runtime: %w", err)
	}
	rep.Runtime, rep.RuntimeFile, rep.Libraries = bin, prog, libs
	return nil
}

// sbinDirs are where programs run by root live, often not on a user's
// PATH.
var sbinDirs = []string{"/usr/sbin", "/sbin"}

// lookSystemProgram is lookProgram, trying also the directories of
// programs run by root for a bare name.
func lookSystemProgram(name string) (string, error) {
	bin, err := lookProgram(name)
	for _, dir := range sbinDirs {
		if err == nil || strings.Contains(name, "/") {
			break
		}
		bin, err = lookProgram(filepath.Join(dir, name))
	}
	return bin, err
}

// addMkfs adds mke2fs at its host path, with its ELF closure.
func addMkfs(t *tree, mkfs string, rep *Report) error {
	if mkfs == "" || mkfs == "none" {
		return nil
	}
	bin, err := lookSystemProgram(mkfs)
	if err != nil {
		return fmt.Errorf("initramfs: mkfs %s: %w (install e2fsprogs, or build with --mkfs none: cache_device= then cannot format a disk)", mkfs, err)
	}
	prog, libs, err := addProgram(t, bin, "", "the cache formatter "+bin)
	if err != nil {
		return fmt.Errorf("initramfs: mkfs: %w", err)
	}
	rep.Mkfs = bin
	rep.Programs = append(rep.Programs, Program{File: prog, Libraries: libs})
	return nil
}

// addPrograms adds the programs of --include-program, each at its host
// path with its ELF closure.
func addPrograms(t *tree, names []string, rep *Report) error {
	for _, name := range names {
		bin, err := lookProgram(name)
		if err != nil {
			return fmt.Errorf("initramfs: --include-program %s: %w", name, err)
		}
		prog, libs, err := addProgram(t, bin, "", "--include-program "+name)
		if err != nil {
			return fmt.Errorf("initramfs: --include-program %s: %w", name, err)
		}
		rep.Programs = append(rep.Programs, Program{File: prog, Libraries: libs})
	}
	return nil
}

// Where --shell puts busybox, and the shell linked to it.
const (
	busyboxPath = "/bin/busybox"
	shellPath   = "/bin/sh"
)

// addShell installs the host's busybox as /bin/busybox, with its ELF
// closure if it is not static, and /bin/sh linked to it.
func addShell(t *tree, busybox string, rep *Report) error {
	if busybox == "" {
		return nil
	}
	from := "--shell " + busybox
	out, err := exec.Command(busybox, "sh", "-c", "echo ok").Output()
	if err != nil || string(out) != "ok\n" {
		return fmt.Errorf("initramfs: %s: not a busybox with a working sh applet (%v)", from, err)
	}
	if _, _, err := addProgram(t, busybox, busyboxPath, from); err != nil {
		return fmt.Errorf("initramfs: %s: %w", from, err)
	}
	if err := t.addSymlink(shellPath, "busybox", from); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	rep.Shell = shellPath
	return nil
}

// addKeymaps converts the named kbd keymaps to their binary form with
// `loadkeys -b` (which only writes) and stores them as
// bootcfg.KeymapDir/NAME.bmap.
func addKeymaps(t *tree, names []string, rep *Report) error {
	var all []string
	for _, n := range names {
		if n == "common" {
			all = append(all, CommonKeymaps...)
		} else {
			all = append(all, n)
		}
	}
	for _, name := range all {
		if slices.Contains(rep.Keymaps, name) {
			continue
		}
		src, err := findKeymap(name)
		if err != nil {
			return fmt.Errorf("initramfs: --keymaps: %w", err)
		}
		out, err := exec.Command("loadkeys", "-b", src).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
			}
			return fmt.Errorf("initramfs: --keymaps: loadkeys -b %s (package kbd): %w", src, err)
		}
		if err := t.addData(path.Join(bootcfg.KeymapDir, name+".bmap"), out, 0o644, "--keymaps "+name); err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
		rep.Keymaps = append(rep.Keymaps, name)
	}
	return nil
}

// findKeymap finds kbd's text keymap called name.
func findKeymap(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/ ") {
		return "", fmt.Errorf("keymap %q: expected a name such as fr-latin1", name)
	}
	var found string
	for _, dir := range keymapDirs {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || found != "" {
				return filepath.SkipDir
			}
			for _, ext := range []string{".kmap.gz", ".map.gz", ".kmap", ".map"} {
				if d.Name() == name+ext {
					found = p
					return filepath.SkipAll
				}
			}
			return nil
		})
		if found != "" {
			return found, nil
		}
	}
	return "", fmt.Errorf("keymap %q: not found in %s (packages kbd and console-data)", name, strings.Join(keymapDirs, " or "))
}

// moduleSource is the kernel version and module directory opts name:
// KernelVersion, else ModulesDir's base name, else the newest in
// /lib/modules; ModulesDir, else /lib/modules/KVER.
func moduleSource(opts Options) (kver, dir string, err error) {
	kver, dir = opts.KernelVersion, opts.ModulesDir
	switch {
	case dir != "" && kver == "":
		kver = filepath.Base(dir)
	case kver == "":
		if kver, err = kmod.NewestRelease(modulesRoot); err != nil {
			return "", "", fmt.Errorf("initramfs: choosing the kernel version: %w", err)
		}
	}
	if dir == "" {
		dir = filepath.Join(modulesRoot, kver)
	}
	if strings.ContainsRune(kver, '/') || kver == "." || kver == ".." {
		return "", "", fmt.Errorf("initramfs: kernel version %q is not a directory name", kver)
	}
	return kver, dir, nil
}

// addModules adds the modules' closure, as stored on the host, and the
// index files restricted to it, under /lib/modules/KVER. It returns the
// closure and the host directory it came from.
func addModules(t *tree, opts Options, imageMods []string, rep *Report) ([]kmod.Module, string, error) {
	if len(opts.Modules)+len(opts.StorageModules)+len(opts.FscryptModules)+len(opts.Drivers)+len(imageMods) == 0 {
		return nil, "", nil
	}
	kver, dir, err := moduleSource(opts)
	if err != nil {
		return nil, "", err
	}
	ix, err := kmod.LoadIndex(dir)
	if err != nil {
		return nil, "", fmt.Errorf("initramfs: %w", err)
	}
	drivers, presets, err := presetModules(ix, opts.Drivers)
	if err != nil {
		return nil, "", err
	}
	mods, err := ix.Closure(slices.Concat(opts.Modules, opts.StorageModules, opts.FscryptModules, drivers, imageMods))
	if err != nil {
		return nil, "", fmt.Errorf("initramfs: %w", err)
	}
	dst := path.Join(modulesRoot, kver)
	from := "the modules of " + dir
	renamed := map[string]string{} // module paths stored compressed
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		return nil, "", fmt.Errorf("initramfs: %w", err)
	}
	defer enc.Close()
	for _, m := range mods {
		if m.Builtin {
			rep.Modules = append(rep.Modules, Module{Name: m.Name, Builtin: true})
			continue
		}
		name := path.Join(dst, m.Path)
		var err error
		if strings.HasSuffix(m.Path, ".ko") {
			// Stored compressed, and decompressed when loaded: the
			// kernel unpacks, and the root keeps in RAM, a third of it.
			renamed[m.Path] = m.Path + ".zst"
			name += ".zst"
			err = addCompressedModule(t, enc, name, filepath.Join(dir, m.Path), from)
		} else {
			err = t.addFile(name, filepath.Join(dir, m.Path), 0o644, from)
		}
		if err != nil {
			return nil, "", fmt.Errorf("initramfs: module %s: %w", m.Name, err)
		}
		rep.Modules = append(rep.Modules, Module{Name: m.Name, Size: t.entries[clean(name)].size})
	}
	for _, p := range presets {
		for _, m := range rep.Modules {
			if slices.Contains(p.Modules, m.Name) {
				p.Size += m.Size
			}
		}
		rep.Presets = append(rep.Presets, p)
	}
	files, err := ix.Subset(mods)
	if err != nil {
		return nil, "", fmt.Errorf("initramfs: %w", err)
	}
	for _, f := range files {
		if f.Name == "modules.dep" || f.Name == "modules.order" {
			f.Data = renamePaths(f.Data, renamed)
		}
		if err := t.addData(path.Join(dst, f.Name), f.Data, 0o644, from); err != nil {
			return nil, "", fmt.Errorf("initramfs: %w", err)
		}
	}
	rep.KernelVersion = kver
	return mods, dir, nil
}

// writeArchive writes the entries names of t as a compressed newc cpio
// archive to w.
func writeArchive(w io.Writer, t *tree, names []string, comp Compression, mtime int64, rep *Report) error {
	if mtime < 0 || mtime > 1<<32-1 {
		return fmt.Errorf("initramfs: source date epoch %d does not fit the cpio format (0 to %d)", mtime, uint32(1<<32-1))
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	zw, err := compressor(bw, comp)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	buf := bufio.NewWriterSize(zw, 256<<10)
	counter := &countingWriter{w: buf}
	cw := cpio.Newc.Writer(counter)
	for i, name := range names {
		if err := writeEntry(cw, name, t.entries[name], uint64(i+1), uint64(mtime), rep); err != nil {
			return fmt.Errorf("initramfs: writing /%s (from %s): %w", name, t.entries[name].from, err)
		}
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return fmt.Errorf("initramfs: writing the cpio trailer: %w", err)
	}
	rep.Entries = len(names)
	rep.ArchiveSize = counter.n
	if err := buf.Flush(); err != nil {
		return fmt.Errorf("initramfs: compressing: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("initramfs: compressing: %w", err)
	}
	return bw.Flush()
}

func writeEntry(cw cpio.RecordWriter, name string, e *entry, ino, mtime uint64, rep *Report) error {
	info := cpio.Info{
		Name:   name,
		Ino:    ino,
		Mode:   e.mode,
		NLink:  1,
		MTime:  mtime,
		Rmajor: e.rmajor,
		Rminor: e.rminor,
	}
	if e.kind() == cpio.S_IFDIR {
		info.NLink = 2
	}
	rec := cpio.Record{Info: info}
	switch {
	case e.src != "":
		if e.size > 1<<32-1 {
			return fmt.Errorf("%s is %d bytes, over the cpio limit of 4 GiB", e.src, e.size)
		}
		f, err := os.Open(e.src)
		if err != nil {
			return err
		}
		defer f.Close()
		rec.ReaderAt = io.NewSectionReader(f, 0, e.size)
		rec.FileSize = uint64(e.size)
	case e.data != nil:
		rec.ReaderAt = bytes.NewReader(e.data)
		rec.FileSize = uint64(len(e.data))
	}
	if e.kind() == cpio.S_IFREG {
		rep.Files++
		rep.FileBytes += int64(rec.FileSize)
	}
	return cw.WriteRecord(rec)
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
