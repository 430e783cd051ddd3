package initramfs

import (
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ociboot/ociboot/internal/bootcfg"
)

// DefaultMicrocodeDir is where Debian's intel-microcode and
// amd64-microcode packages put the CPU vendors' microcode.
const DefaultMicrocodeDir = "/lib/firmware"

// microcodeVendors are the vendor files the early loader reads (in
// bootcfg.EarlyMicrocodeDir), and the files of a microcode directory they
// are made of.
var microcodeVendors = []struct {
	file  string // in bootcfg.EarlyMicrocodeDir
	dir   string // under the microcode directory
	match func(name string) bool
}{
	// intel-microcode: FF-MM-SS files, and FF-MM-SS.initramfs ones for
	// models whose update may only be loaded early.
	{"GenuineIntel.bin", "intel-ucode", func(n string) bool { return !strings.HasPrefix(n, ".") }},
	// amd64-microcode: microcode_amd*.bin containers (not their .asc
	// signatures).
	{"AuthenticAMD.bin", "amd-ucode", func(n string) bool { return strings.HasSuffix(n, ".bin") }},
}

// MicrocodeReport says what the early microcode archive holds.
type MicrocodeReport struct {
	// Vendors are the files written (GenuineIntel.bin, AuthenticAMD.bin)
	// with the number of source files and bytes each holds.
	Vendors []MicrocodeVendor
	// Size is the uncompressed cpio archive's size.
	Size int64
}

// MicrocodeVendor is one vendor file of the early archive.
type MicrocodeVendor struct {
	File  string
	Files int
	Bytes int64
}

// microcodeTree returns the early microcode tree made of dir's vendor
// directories, nil when dir holds none: each vendor's files
// concatenated in name order, as the kernel expects them.
func microcodeTree(dir string, rep *MicrocodeReport) (*tree, []string, error) {
	t := newTree()
	found := false
	for _, v := range microcodeVendors {
		src := filepath.Join(dir, v.dir)
		entries, err := os.ReadDir(src)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("initramfs: early microcode: %w", err)
		}
		var names []string
		for _, e := range entries {
			if e.Type().IsRegular() && v.match(e.Name()) {
				names = append(names, e.Name())
			}
		}
		if len(names) == 0 {
			continue
		}
		slices.Sort(names)
		var data []byte
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(src, n))
			if err != nil {
				return nil, nil, fmt.Errorf("initramfs: early microcode: %w", err)
			}
			data = append(data, b...)
		}
		from := "the microcode in " + src
		if err := t.addData(path.Join(bootcfg.EarlyMicrocodeDir, v.file), data, 0o644, from); err != nil {
			return nil, nil, fmt.Errorf("initramfs: early microcode: %w", err)
		}
		rep.Vendors = append(rep.Vendors, MicrocodeVendor{File: v.file, Files: len(names), Bytes: int64(len(data))})
		found = true
	}
	if !found {
		return nil, nil, nil
	}
	names, err := t.finish()
	if err != nil {
		return nil, nil, fmt.Errorf("initramfs: early microcode: %w", err)
	}
	return t, names, nil
}

// writeMicrocode writes the early microcode archive, uncompressed, as the
// early loader reads it.
func writeMicrocode(w io.Writer, t *tree, names []string, mtime int64, rep *MicrocodeReport) error {
	var seg Report
	if err := writeArchive(w, t, names, None, mtime, &seg); err != nil {
		return err
	}
	rep.Size = seg.ArchiveSize
	return nil
}
