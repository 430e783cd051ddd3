package cli

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ociboot/ociboot/internal/atomicfile"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/initramfs"
	"github.com/ociboot/ociboot/internal/storage"
	"github.com/ociboot/ociboot/internal/switchroot"
	"github.com/ociboot/ociboot/internal/trust"
	"github.com/ociboot/ociboot/internal/uki"
	"github.com/ociboot/ociboot/internal/usbimage"
	"github.com/ociboot/ociboot/internal/vm"
	"github.com/spf13/cobra"
)

func newBuildCmd() *cobra.Command {
	var (
		opts        initramfs.Options
		compress    string
		modules     string
		storage     string
		fscryptMods string
		drivers     string
		includes    []string
		authFile    string
		caFiles     []string
		verifyKeys  []string
		verifyPol   string
		mirrors     []string
		shell       bool
		keymaps     string
		ukiOut      string
		kernel      string
		stub        string
		usbOut      string
		usbSize     string
		usbCache    string
		microcode   bool
	)
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build an initramfs that boots into OCI containers",
		Long: `Build writes an initramfs holding this executable as /init, an OCI runtime
with its shared libraries, kernel modules with their dependencies (--modules, loaded at every boot;
--storage-modules, loaded when a cache disk is used), mke2fs to format
the cache disk, the default kernel parameters given with --cmdline, and the registry
configuration: credentials (--registry-auth), CA certificates (--ca-file)
and mirrors (--registry-mirror), with --shell, busybox as /bin/sh for
ociboot.on_failure=shell, and with --include-program, more host programs
with the shared libraries they need. SOURCE_DATE_EPOCH, when set, is the
modification time of every file; the same inputs give the same bytes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := initramfs.ParseCompression(compress)
			if err != nil {
				return fmt.Errorf("--compress: %w", err)
			}
			opts.Compression = c
			opts.Modules = splitComma(modules)
			opts.StorageModules = splitComma(storage)
			opts.FscryptModules = splitComma(fscryptMods)
			opts.Drivers = splitComma(drivers)
			opts.Keymaps = splitComma(keymaps)
			if !microcode {
				opts.Microcode = ""
			}
			for _, s := range includes {
				inc, err := initramfs.ParseInclude(s)
				if err != nil {
					return fmt.Errorf("--include: %w", err)
				}
				opts.Includes = append(opts.Includes, inc)
			}
			if err := registryOptions(&opts, authFile, caFiles, mirrors); err != nil {
				return err
			}
			if len(verifyKeys) > 0 || verifyPol != "" {
				if opts.Trust, err = trust.Load(verifyKeys, verifyPol); err != nil {
					return err
				}
			}
			if shell {
				if opts.Shell, err = exec.LookPath("busybox"); err != nil {
					return fmt.Errorf("--shell: %w (install busybox-static)", err)
				}
			}
			if opts.SourceDateEpoch, err = sourceDateEpoch(); err != nil {
				return err
			}
			start := time.Now()
			rep, err := initramfs.Build(opts)
			if err != nil {
				return err
			}
			printBuildReport(cmd.OutOrStdout(), rep, time.Since(start))
			if ukiOut == "" && usbOut == "" {
				return nil
			}
			img, err := makeUKI(cmd.OutOrStdout(), kernel, stub, opts, rep)
			if err != nil {
				return err
			}
			if ukiOut != "" {
				if err := atomicfile.Write(ukiOut, 0o644, func(f io.Writer) error {
					_, err := f.Write(img)
					return err
				}); err != nil {
					return fmt.Errorf("--uki: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %s unified kernel image\n", ukiOut, humanBytes(int64(len(img))))
			}
			if usbOut != "" {
				return writeUSBImage(cmd.OutOrStdout(), usbOut, usbSize, usbCache, img, opts.Mkfs)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Output, "output", "o", "initramfs.img", "initramfs file to write")
	f.StringVar(&compress, "compress", "zstd", "compression: zstd, gzip, xz or none")
	f.StringVar(&opts.InitBinary, "init-binary", "", "binary to install as /init (default: this executable)")
	f.StringVar(&opts.Runtime, "runtime", "crun", "OCI runtime: crun, runc (found on PATH), an absolute path, or none")
	f.StringVar(&modules, "modules", "virtio_pci,virtio_net,virtio_rng", "comma-separated kernel modules (or aliases) to include and load at boot")
	f.StringVar(&drivers, "drivers", DefaultDrivers, "comma-separated driver presets ("+strings.Join(slices.Sorted(maps.Keys(initramfs.DriverPresets())), ", ")+"): module families included for coldplug to load what the machine's devices need (none: \"\")")
	f.StringVar(&storage, "storage-modules", DefaultStorageModules, "comma-separated kernel modules to include, loaded at boot only when a cache device is used")
	f.StringVar(&fscryptMods, "fscrypt-modules", DefaultFscryptModules, "comma-separated kernel modules to include, loaded at boot only when a volume is encrypted with fscrypt_key=")
	f.StringVar(&opts.Mkfs, "mkfs", "mke2fs", "mke2fs to include, with its libraries, to format the cache disk (none: leave it out)")
	f.StringVar(&opts.KernelVersion, "kernel-version", "", "kernel version of the modules (default: base name of --modules-dir, else the newest in /lib/modules)")
	f.StringVar(&opts.ModulesDir, "modules-dir", "", "directory to take modules from (default /lib/modules/VERSION)")
	f.StringArrayVar(&includes, "include", nil, "add a host file or directory as SRC:DST (repeatable)")
	f.StringVar(&opts.Cmdline, "cmdline", "", "default kernel parameters baked into the image")
	f.StringVar(&authFile, "registry-auth", "", "docker config.json with registry credentials to bake in (stored mode 0600)")
	f.StringArrayVar(&caFiles, "ca-file", nil, "PEM file of CA certificates to trust besides the embedded roots (repeatable)")
	verifyFlags(f, &verifyKeys, &verifyPol)
	f.StringArrayVar(&mirrors, "registry-mirror", nil, "REGISTRY=MIRROR[|MIRROR…]: mirrors tried in order before REGISTRY (repeatable)")
	f.BoolVar(&shell, "shell", false, "include busybox (found on PATH) as /bin/sh, for ociboot.on_failure=shell")
	f.StringArrayVar(&opts.Programs, "include-program", nil, "add a host program (a path, or a name found on PATH) at its host path, with the shared libraries it needs (repeatable)")
	f.BoolVar(&opts.ModulesAll, "modules-all", false, "add the whole module tree of the kernel as a squashfs image, mounted at boot, for any hardware and for an OS booted from an image")
	f.StringVar(&opts.Firmware, "firmware", "", "a firmware directory (such as /lib/firmware): add the files the image's modules declare, xz-compressed")
	f.BoolVar(&opts.FirmwareAll, "firmware-all", false, "add the whole --firmware directory as a squashfs image, mounted at boot (--modules-all does too)")
	f.BoolVar(&microcode, "early-microcode", true, "prepend the CPU microcode of the host's intel-microcode and amd64-microcode packages, uncompressed, for the kernel's early loader (none installed: nothing)")
	f.StringVar(&opts.Microcode, "microcode-dir", initramfs.DefaultMicrocodeDir, "where --early-microcode takes the microcode from (intel-ucode/ and amd-ucode/ under it)")
	f.StringVar(&ukiOut, "uki", "", "also write a UEFI unified kernel image to this file: the EFI stub, the kernel, the initramfs and --cmdline")
	f.StringVar(&kernel, "kernel", "", "the kernel of --uki (default: the newest /boot/vmlinuz-*)")
	f.StringVar(&stub, "stub", uki.DefaultStub, "systemd's EFI stub for --uki and --usb-image (package systemd-boot-efi)")
	f.StringVar(&usbOut, "usb-image", "", "also write a USB stick's disk image: a GPT, an EFI system partition booting the unified kernel image")
	f.StringVar(&usbSize, "usb-size", "", "the size of --usb-image (such as 2G; default: as small as its partitions)")
	f.StringVar(&usbCache, "usb-cache", "", "add a B2C_CACHE partition of this size (such as 1G) to --usb-image, formatted ext4, for machines without a disk")
	f.StringVar(&keymaps, "keymaps", "", `console keymaps for ociboot.keymap= (kbd names, comma-separated, or "common"); needs kbd's loadkeys and its keymaps`)
	return cmd
}

// DefaultStorageModules are what cache_device= needs on the disks QEMU
// and most machines have: virtio, NVMe and SATA disk drivers, ext4 and
// overlayfs.
const DefaultStorageModules = "virtio_blk,virtio_scsi,nvme,ahci,sd_mod,ext4,overlay"

// DefaultDrivers are the driver presets of a default build: what common
// servers, desktops and VMs need to reach the network and their disks.
const DefaultDrivers = "net,storage,usb,virt"

// DefaultFscryptModules are the crypto that fscrypt's AES-256-XTS and
// AES-256-CTS policies and its HKDF-SHA512 ask the kernel for, where
// Debian builds them as modules (the kernel cannot load them by itself
// without modprobe).
const DefaultFscryptModules = "xts,ecb,cts,sha512_generic"

// registryOptions reads the registry credentials and CA files, and bakes
// the mirrors in as default ociboot.registry_mirror= parameters.
func registryOptions(opts *initramfs.Options, authFile string, caFiles, mirrors []string) error {
	if authFile != "" {
		data, err := os.ReadFile(authFile)
		if err != nil {
			return fmt.Errorf("--registry-auth: %w", err)
		}
		if _, err := image.ParseDockerConfig(data); err != nil {
			return fmt.Errorf("--registry-auth %s: %w", authFile, err)
		}
		opts.RegistryAuth = data
	}
	for _, f := range caFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
		if _, err := fetch.ParseCACerts(data); err != nil {
			return fmt.Errorf("--ca-file %s: %w", f, err)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		opts.CACerts = append(opts.CACerts, data...)
	}
	for _, m := range mirrors {
		mirror, err := image.ParseMirror(m)
		if err != nil {
			return fmt.Errorf("--registry-mirror %q: %w", m, err)
		}
		opts.Cmdline = strings.TrimSpace(opts.Cmdline + " ociboot.registry_mirror=" + mirror.String())
	}
	return nil
}

// splitComma splits a comma-separated flag value, dropping blanks.
func splitComma(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH (seconds since 1970); unset is 0.
func sourceDateEpoch() (int64, error) {
	v, ok := os.LookupEnv("SOURCE_DATE_EPOCH")
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > 1<<32-1 {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970 between 0 and %d", v, int64(1<<32-1))
	}
	return n, nil
}

func printBuildReport(w io.Writer, rep *initramfs.Report, took time.Duration) {
	fmt.Fprintf(w, "wrote %s: %s %s (%s uncompressed, %d entries, %d files) in %.1fs\n",
		rep.Output, humanBytes(rep.OutputSize), rep.Compression, humanBytes(rep.ArchiveSize), rep.Entries, rep.Files, took.Seconds())
	fmt.Fprintf(w, "  init:    %s (%s)\n", rep.Init.Path, humanBytes(rep.Init.Size))
	if rep.Runtime != "" {
		fmt.Fprintf(w, "  runtime: %s\n", programLine(rep.RuntimeFile, rep.Libraries))
	}
	for _, p := range rep.Programs {
		fmt.Fprintf(w, "  program: %s\n", programLine(p.File, p.Libraries))
	}
	if len(rep.Modules) > 0 {
		var mods []string
		for _, m := range rep.Modules {
			if m.Builtin {
				mods = append(mods, m.Name+" (builtin)")
			} else {
				mods = append(mods, fmt.Sprintf("%s (%s)", m.Name, humanBytes(m.Size)))
			}
		}
		fmt.Fprintf(w, "  modules: %s: %s\n", rep.KernelVersion, strings.Join(mods, ", "))
	}
	for _, p := range rep.Presets {
		fmt.Fprintf(w, "  drivers %s: %d modules (%s, dependencies apart)\n", p.Name, len(p.Modules), humanBytes(p.Size))
	}
	if fw := rep.Firmware; fw.Files > 0 || fw.Missing > 0 {
		fmt.Fprintf(w, "  firmware: %d files (%s xz) for %s; %d declared files not in the directory\n",
			fw.Files, humanBytes(fw.Size), cmp.Or(strings.Join(fw.Modules, ", "), "no module"), fw.Missing)
	}
	if len(rep.AuthRegistries) > 0 {
		fmt.Fprintf(w, "  registry credentials for: %s\n", strings.Join(rep.AuthRegistries, ", "))
	}
	for _, l := range rep.Verify {
		fmt.Fprintf(w, "  verify: %s\n", l)
	}
	if rep.Shell != "" {
		fmt.Fprintf(w, "  shell: %s (busybox)\n", rep.Shell)
	}
	for _, img := range rep.Images {
		left := ""
		if len(img.Excluded) > 0 {
			left = fmt.Sprintf("; %s/ left out: in the early microcode", strings.Join(img.Excluded, "/, "))
		}
		fmt.Fprintf(w, "  image: %s, %s %s of %s (%d files, %s%s), mounted at %s\n",
			img.File, humanBytes(img.Size), img.FSType, img.Source, img.Files, humanBytes(img.TreeSize), left, img.Dir)
	}
	if rep.SecondSegment.Size > 0 {
		fmt.Fprintf(w, "  segments: first %s, second (images, uncompressed) %s\n",
			humanBytes(rep.FirstSegment), humanBytes(rep.SecondSegment.Size))
	}
	if len(rep.Microcode.Vendors) > 0 {
		var vs []string
		for _, v := range rep.Microcode.Vendors {
			vs = append(vs, fmt.Sprintf("%s (%d files, %s)", v.File, v.Files, humanBytes(v.Bytes)))
		}
		fmt.Fprintf(w, "  early microcode: %s, uncompressed, first\n", strings.Join(vs, ", "))
	}
	if len(rep.Keymaps) > 0 {
		fmt.Fprintf(w, "  keymaps: %s\n", strings.Join(rep.Keymaps, " "))
	}
	if rep.CACerts > 0 {
		fmt.Fprintf(w, "  extra CA certificates: %d\n", rep.CACerts)
	}
}

// makeUKI makes the unified kernel image of the initramfs just built,
// with kernel (the newest in /boot when empty) and the build's --cmdline.
// The kernel must be of the release the initramfs's modules are for.
func makeUKI(w io.Writer, kernel, stub string, opts initramfs.Options, rep *initramfs.Report) ([]byte, error) {
	if kernel == "" {
		k, err := vm.DefaultKernel()
		if err != nil {
			return nil, fmt.Errorf("--uki: %w (or give --kernel)", err)
		}
		kernel = k
	}
	var parts uki.Parts
	var err error
	if parts.Kernel, err = os.ReadFile(kernel); err != nil {
		return nil, fmt.Errorf("--kernel: %w", err)
	}
	if parts.Initrd, err = os.ReadFile(opts.Output); err != nil {
		return nil, fmt.Errorf("--uki: %w", err)
	}
	stubImage, err := os.ReadFile(stub)
	if err != nil {
		return nil, fmt.Errorf("--stub: %w (install systemd-boot-efi)", err)
	}
	parts.Cmdline = opts.Cmdline
	img, release, err := uki.Image(stubImage, parts)
	if err != nil {
		return nil, fmt.Errorf("--uki: %s: %w", kernel, err)
	}
	if rep.KernelVersion != "" && release != rep.KernelVersion {
		return nil, fmt.Errorf("--uki: the kernel %s is release %s, but the initramfs's modules are for %s (--kernel-version)", kernel, release, rep.KernelVersion)
	}
	fmt.Fprintf(w, "  unified kernel image: %s (kernel %s %s, initramfs %s, stub %s)\n",
		humanBytes(int64(len(img))), release, humanBytes(int64(len(parts.Kernel))), humanBytes(int64(len(parts.Initrd))), stub)
	return img, nil
}

// writeUSBImage writes the USB stick image of the unified kernel image
// img, of size and with a cache partition of cache when given, and says
// its layout.
func writeUSBImage(w io.Writer, out, size, cache string, img []byte, mkfs string) error {
	o := usbimage.Options{UKI: img}
	var err error
	if size != "" {
		if o.Size, err = switchroot.ParseBytes(size); err != nil {
			return fmt.Errorf("--usb-size: %w", err)
		}
	}
	if cache != "" {
		if o.CacheSize, err = switchroot.ParseBytes(cache); err != nil {
			return fmt.Errorf("--usb-cache: %w", err)
		}
		name := mkfs
		if name == "" || name == "none" {
			name = "mke2fs" // the cache is formatted at build, whatever the image holds
		}
		if o.Mkfs, err = exec.LookPath(name); err != nil {
			return fmt.Errorf("--usb-cache: %w (install e2fsprogs)", err)
		}
	}
	var l usbimage.Layout
	if err := atomicfile.WriteAt(out, 0o644, func(f *os.File) error {
		l, err = usbimage.Write(f, o)
		return err
	}); err != nil {
		return fmt.Errorf("--usb-image: %w", err)
	}
	fmt.Fprintf(w, "wrote %s: %s USB stick image (EFI system partition %s", out, humanBytes(l.Size), humanBytes(l.ESPSize))
	if l.CacheSize != 0 {
		fmt.Fprintf(w, ", %s cache partition %s", storage.CacheLabel, humanBytes(l.CacheSize))
	}
	fmt.Fprintln(w, ")")
	return nil
}

// programLine describes a program and its libraries: their number, the
// total size and their names.
func programLine(prog initramfs.File, libs []initramfs.File) string {
	total := prog.Size
	var names []string
	for _, l := range libs {
		total += l.Size
		names = append(names, filepath.Base(l.Path))
	}
	return fmt.Sprintf("%s + %d libraries (%s): %s", prog.Path, len(libs), humanBytes(total), strings.Join(names, " "))
}

// humanBytes formats a byte count for people.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
