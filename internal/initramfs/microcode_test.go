package initramfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ociboot/ociboot/internal/hosttest"
)

// TestEarlyMicrocode checks the layout the kernel's early loader reads:
// an uncompressed newc archive first, holding each vendor's files
// concatenated in name order, then the compressed image, whole.
func TestEarlyMicrocode(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"intel-ucode/06-5e-03":               "intel-a;",
		"intel-ucode/06-4e-03.initramfs":     "intel-early;",
		"intel-ucode/.hidden":                "not me",
		"amd-ucode/microcode_amd.bin":        "amd-a;",
		"amd-ucode/microcode_amd.bin.asc":    "a signature",
		"amd-ucode/microcode_amd_fam17h.bin": "amd-b;",
	})
	opts := Options{Output: filepath.Join(t.TempDir(), "i.img"), Compression: Zstd, InitBinary: smallInit(t), Runtime: "none", Microcode: dir}
	rep, raw := build(t, opts)
	want := []MicrocodeVendor{{"GenuineIntel.bin", 2, 20}, {"AuthenticAMD.bin", 2, 12}}
	if len(rep.Microcode.Vendors) != 2 || rep.Microcode.Vendors[0] != want[0] || rep.Microcode.Vendors[1] != want[1] {
		t.Errorf("report %+v, want %+v", rep.Microcode.Vendors, want)
	}
	early := readCPIO(t, raw[:rep.Microcode.Size])
	for name, content := range map[string]string{
		"kernel/x86/microcode/GenuineIntel.bin": "intel-early;intel-a;",
		"kernel/x86/microcode/AuthenticAMD.bin": "amd-a;amd-b;",
	} {
		if got := string(early.content[name]); got != content {
			t.Errorf("%s = %q, want %q", name, got, content)
		}
	}
	if rep.Microcode.Size%4 != 0 || rep.FirstSegment+rep.Microcode.Size != rep.OutputSize {
		t.Errorf("early archive %d bytes, first segment %d, file %d: want the early archive 4-aligned and the segment right after", rep.Microcode.Size, rep.FirstSegment, rep.OutputSize)
	}
	zr, err := zstd.NewReader(bytes.NewReader(raw[rep.Microcode.Size:]))
	must(t, err)
	defer zr.Close()
	var main bytes.Buffer
	if _, err := main.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	if a := readCPIO(t, main.Bytes()); a.content["init"] == nil {
		t.Error("the image after the early archive has no /init")
	}
	// GNU cpio reads the first archive as the kernel's early loader does.
	cmd := exec.Command(hosttest.Path(t, "cpio"), "-t", "--quiet")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "kernel/x86/microcode/AuthenticAMD.bin\n") {
		t.Errorf("cpio -t: %v\n%s", err, out)
	}

	// A directory without microcode adds nothing.
	opts.Microcode, opts.Output = t.TempDir(), filepath.Join(t.TempDir(), "none.img")
	if rep, _ := build(t, opts); rep.Microcode.Size != 0 || rep.FirstSegment != rep.OutputSize {
		t.Errorf("no microcode: %+v", rep.Microcode)
	}
}

// TestEarlyMicrocodeDebian builds from the host's real microcode
// (Debian's intel-microcode and amd64-microcode, which install-deps
// installs) and has iucode_tool, Debian's own tool, read the Intel file
// back: every update of the packages is in it.
func TestEarlyMicrocodeDebian(t *testing.T) {
	opts := Options{Output: filepath.Join(t.TempDir(), "i.img"), Compression: None, InitBinary: smallInit(t), Runtime: "none", Microcode: DefaultMicrocodeDir}
	rep, raw := build(t, opts)
	if len(rep.Microcode.Vendors) != 2 {
		t.Fatalf("vendors %+v, want Intel's and AMD's (install intel-microcode and amd64-microcode)", rep.Microcode.Vendors)
	}
	early := readCPIO(t, raw[:rep.Microcode.Size])
	intel := filepath.Join(t.TempDir(), "GenuineIntel.bin")
	must(t, os.WriteFile(intel, early.content["kernel/x86/microcode/GenuineIntel.bin"], 0o644))
	ours := updates(hosttest.Run(t, "iucode_tool", "-l", intel))
	theirs := updates(hosttest.Run(t, "iucode_tool", "-l", filepath.Join(DefaultMicrocodeDir, "intel-ucode")))
	if len(ours) < 100 || !slices.Equal(ours, theirs) {
		t.Errorf("iucode_tool lists %d updates in GenuineIntel.bin, %d in the directory; want the same, and many", len(ours), len(theirs))
	}
}

// updates are the microcode updates `iucode_tool -l` lists, sorted:
// signature, platforms, date and revision.
func updates(list string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^\s+[0-9]+/[0-9]+: (sig .*)$`).FindAllStringSubmatch(list, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

// TestEarlyMicrocodeLeftOutOfFirmware checks that the whole firmware
// directory's image leaves out the vendor directories the early archive
// was made of, and keeps them when the microcode came from elsewhere.
func TestEarlyMicrocodeLeftOutOfFirmware(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"intel-ucode/06-5e-03":        "intel-a;",
		"amd-ucode/microcode_amd.bin": "amd-a;",
		"e100/d101m_ucode.bin":        "a NIC's",
	})
	opts := Options{Output: filepath.Join(t.TempDir(), "i.img"), Compression: Zstd, InitBinary: smallInit(t), Runtime: "none",
		Microcode: dir, Firmware: dir, FirmwareAll: true}
	image := func(opts Options) (ImageReport, string) {
		t.Helper()
		rep, raw := build(t, opts)
		if len(rep.Images) != 1 || len(rep.Microcode.Vendors) != 2 {
			t.Fatalf("images %+v, microcode %+v: want the firmware's image and both vendors", rep.Images, rep.Microcode.Vendors)
		}
		second := readCPIO(t, bytes.TrimLeft(raw[rep.Microcode.Size+rep.FirstSegment:], "\x00"))
		return rep.Images[0], unsquashfs(t, second.content["lib/ociboot/firmware.squashfs"])
	}
	ir, tree := image(opts)
	if got, _ := os.ReadFile(filepath.Join(tree, "e100/d101m_ucode.bin")); string(got) != "a NIC's" {
		t.Errorf("the NIC's firmware in the image: %q", got)
	}
	for _, d := range []string{"intel-ucode", "amd-ucode"} {
		if _, err := os.Stat(filepath.Join(tree, d)); err == nil {
			t.Errorf("%s/ is in the firmware image, and in the early archive", d)
		}
	}
	if !slices.Equal(ir.Excluded, []string{"intel-ucode", "amd-ucode"}) || ir.Files != 1 {
		t.Errorf("report: left out %q, %d files; want intel-ucode and amd-ucode, 1 file", ir.Excluded, ir.Files)
	}

	// Microcode from another directory: the firmware goes whole.
	other := t.TempDir()
	must(t, os.CopyFS(other, os.DirFS(dir)))
	opts.Microcode, opts.Output = other, filepath.Join(t.TempDir(), "j.img")
	ir, tree = image(opts)
	if got, _ := os.ReadFile(filepath.Join(tree, "intel-ucode/06-5e-03")); string(got) != "intel-a;" || len(ir.Excluded) != 0 || ir.Files != 3 {
		t.Errorf("microcode from elsewhere: intel-ucode/06-5e-03 %q, left out %q, %d files; want it kept, nothing left out, 3 files", got, ir.Excluded, ir.Files)
	}
}
