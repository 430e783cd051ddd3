package initramfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestFirmware builds with e100 and r8169 and a firmware directory
// holding three of the files they declare (one plain, one the host's xz
// compressed, one zstd-compressed) and one no module declares: the three
// are in the image as NAME.xz with a CRC32 check, as the kernel's loader
// wants them, and decompress, with the real xz, to what they were; the
// fourth is left out. With FirmwareAll the whole directory goes, as it
// is, into the second segment.
func TestFirmware(t *testing.T) {
	fw := t.TempDir()
	files := map[string][]byte{
		"e100/d101m_ucode.bin":  bytes.Repeat([]byte("d101m "), 90),
		"e100/d101s_ucode.bin":  bytes.Repeat([]byte("d101s "), 90),
		"rtl_nic/rtl8168d-1.fw": bytes.Repeat([]byte("rtl8168d-1 "), 300),
		"unused/other.bin":      []byte("no module wants me"),
	}
	writeFiles(t, fw, files)
	zst, err := zstd.NewWriter(nil)
	must(t, err)
	src := filepath.Join(fw, "e100/d101s_ucode.bin")
	must(t, os.WriteFile(src+".zst", zst.EncodeAll(files["e100/d101s_ucode.bin"], nil), 0o644))
	must(t, os.Remove(src))
	if out, err := exec.Command("xz", "--check=crc32", filepath.Join(fw, "rtl_nic/rtl8168d-1.fw")).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v: %s", err, out)
	}

	opts := Options{Output: filepath.Join(t.TempDir(), "i.img"), Compression: None, InitBinary: smallInit(t), Runtime: "none",
		ModulesDir: hostModules, Modules: []string{"e100", "r8169"}, Firmware: fw}
	rep, raw := build(t, opts)
	a := readCPIO(t, raw)
	if rep.Firmware.Files != 3 || rep.Firmware.Missing != 3+20-3 || !slices.Equal(slices.Sorted(slices.Values(rep.Firmware.Modules)), []string{"e100", "r8169"}) {
		t.Errorf("report: %+v; want 3 files for e100 and r8169, 20 missing", rep.Firmware)
	}
	for name, want := range files {
		stored := "lib/firmware/" + name + ".xz"
		data, ok := a.content[stored]
		if name == "unused/other.bin" {
			if ok || a.content["lib/firmware/"+name] != nil {
				t.Errorf("%s, which no module declares, is in the image", name)
			}
			continue
		}
		if !ok {
			t.Errorf("/%s is missing", stored)
			continue
		}
		p := filepath.Join(t.TempDir(), "f.xz")
		must(t, os.WriteFile(p, data, 0o644))
		list, err := exec.Command("xz", "--robot", "--list", p).Output()
		if err != nil || !strings.Contains(string(list), "\tCRC32\t") {
			t.Errorf("xz --list /%s: %v\n%s; want a CRC32 check", stored, err, list)
		}
		if got, err := exec.Command("xz", "-dc", p).Output(); err != nil || !bytes.Equal(got, want) {
			t.Errorf("xz -dc /%s: %v, %d bytes; want the %d bytes of the firmware", stored, err, len(got), len(want))
		}
	}

	opts.FirmwareAll, opts.Output = true, filepath.Join(t.TempDir(), "all.img")
	rep, raw = build(t, opts)
	second := readCPIO(t, bytes.TrimLeft(raw[rep.FirstSegment:], "\x00"))
	tree := unsquashfs(t, second.content["lib/ociboot/firmware.squashfs"])
	if got, _ := os.ReadFile(filepath.Join(tree, "unused/other.bin")); string(got) != "no module wants me" || rep.Firmware.Files != 0 {
		t.Errorf("--firmware-all: other.bin %q in the firmware image, %d files compressed; want it as it is, none", got, rep.Firmware.Files)
	}

	opts.FirmwareAll, opts.Firmware = false, filepath.Join(fw, "e100/d101m_ucode.bin")
	if _, err := Build(opts); err == nil || !strings.Contains(err.Error(), "--firmware "+opts.Firmware) || !strings.Contains(err.Error(), "directory") {
		t.Errorf("--firmware naming a file: %v, want an error naming it", err)
	}
}
