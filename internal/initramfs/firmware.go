package initramfs

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ociboot/ociboot/internal/kmod"
	"github.com/ulikunitz/xz"
)

// firmwareRoot is where the kernel's firmware loader looks.
const firmwareRoot = "/lib/firmware"

// FirmwareReport says what addFirmware put into the image.
type FirmwareReport struct {
	Files   int      // firmware files added
	Size    int64    // their compressed size
	Modules []string // the modules they are for
	// Missing are the files modules declare that the directory lacks
	// (a module declares every variant of its hardware's firmware).
	Missing int
}

// firmwareWhole says whether opts.Firmware goes whole, as it is, into the
// second segment: with FirmwareAll, and with ModulesAll, whose modules may
// ask for any of it.
func firmwareWhole(opts Options) bool {
	return opts.Firmware != "" && (opts.FirmwareAll || opts.ModulesAll)
}

// addFirmware adds, under /lib/firmware, the files of opts.Firmware that
// the image's modules mods (from moduleDir) declare (`modinfo -F
// firmware`), xz-compressed with a CRC32 check as the kernel's firmware
// loader reads them (CONFIG_FW_LOADER_COMPRESS: it tries NAME.xz when
// NAME is missing; zstd came in only with Linux 5.19). Files the
// directory holds compressed (NAME.xz, NAME.zst) are found too.
func addFirmware(t *tree, opts Options, moduleDir string, mods []kmod.Module, rep *Report) error {
	if opts.Firmware == "" || firmwareWhole(opts) {
		return nil
	}
	from := "--firmware " + opts.Firmware
	if st, err := os.Stat(opts.Firmware); err != nil || !st.IsDir() {
		return fmt.Errorf("initramfs: %s: want a directory of firmware files (such as /lib/firmware)", from)
	}
	added := map[string]bool{}
	for _, m := range mods {
		if m.Builtin {
			continue // no file to read (modules.builtin.modinfo declares no firmware on Debian)
		}
		image, err := kmod.ReadFile(filepath.Join(moduleDir, m.Path))
		if err != nil {
			return fmt.Errorf("initramfs: module %s: %w", m.Name, err)
		}
		declared, err := kmod.Modinfo(image, "firmware")
		if err != nil {
			return fmt.Errorf("initramfs: module %s: %w", m.Name, err)
		}
		for _, name := range declared {
			if name != path.Clean(name) || path.IsAbs(name) || strings.HasPrefix(name, "../") {
				return fmt.Errorf("initramfs: module %s declares firmware %q: want a path under %s", m.Name, name, firmwareRoot)
			}
			files, err := findFirmware(opts.Firmware, name)
			if err != nil {
				return fmt.Errorf("initramfs: %s: %w", from, err)
			}
			if len(files) == 0 {
				rep.Firmware.Missing++
			}
			for _, f := range files {
				if added[f.name] {
					continue
				}
				added[f.name] = true
				data, err := kmod.ReadFile(f.src)
				if err != nil {
					return fmt.Errorf("initramfs: %s: firmware %s: %w", from, f.name, err)
				}
				packed, err := compressFirmware(data)
				if err != nil {
					return fmt.Errorf("initramfs: firmware %s: %w", f.name, err)
				}
				if err := t.addData(path.Join(firmwareRoot, f.name)+".xz", packed, 0o644, from); err != nil {
					return fmt.Errorf("initramfs: %w", err)
				}
				rep.Firmware.Files++
				rep.Firmware.Size += int64(len(packed))
				if !slices.Contains(rep.Firmware.Modules, m.Name) {
					rep.Firmware.Modules = append(rep.Firmware.Modules, m.Name)
				}
			}
		}
	}
	return nil
}

// firmwareFile is a file of the firmware directory: its name as modules
// declare it, and the host file holding it (maybe compressed).
type firmwareFile struct {
	name, src string
}

// findFirmware finds the files of dir that a module's declared name
// stands for: NAME, else NAME.xz, else NAME.zst; a name with wildcards
// (a few modules declare "dir/*.bin") stands for every file matching.
func findFirmware(dir, name string) ([]firmwareFile, error) {
	var names []string
	if strings.ContainsAny(name, "*?[") {
		matches, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return nil, fmt.Errorf("firmware %q: %w", name, err)
		}
		for _, m := range matches {
			rel, err := filepath.Rel(dir, m)
			if err != nil {
				return nil, err
			}
			names = append(names, strings.TrimSuffix(strings.TrimSuffix(filepath.ToSlash(rel), ".xz"), ".zst"))
		}
	} else {
		names = []string{name}
	}
	var files []firmwareFile
	for _, n := range names {
		for _, ext := range []string{"", ".xz", ".zst"} {
			src := filepath.Join(dir, filepath.FromSlash(n)+ext)
			if st, err := os.Stat(src); err == nil && st.Mode().IsRegular() {
				files = append(files, firmwareFile{n, src})
				break
			}
		}
	}
	return slices.CompactFunc(files, func(a, b firmwareFile) bool { return a.name == b.name }), nil
}

// compressFirmware compresses data as xz with a CRC32 check (the kernel's
// decoder takes no other) and a dictionary no bigger than data, which
// the kernel allocates when it decompresses.
func compressFirmware(data []byte) ([]byte, error) {
	dict := 4096 // xz's smallest
	for dict < len(data) && dict < 8<<20 {
		dict *= 2
	}
	var buf bytes.Buffer
	w, err := xz.WriterConfig{CheckSum: xz.CRC32, DictCap: dict}.NewWriter(&buf)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
