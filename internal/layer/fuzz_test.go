package layer_test

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/layer/layertest"

	"github.com/ociboot/ociboot/internal/layer"
)

// FuzzApplyLayer feeds arbitrary bytes to ApplyLayer, twice over the same
// root so that entries meet what the first pass left: it must never panic
// and never change anything outside root.
func FuzzApplyLayer(f *testing.F) {
	for _, seed := range [][]layertest.Entry{
		{layertest.Dir("a/", 0o755), layertest.File("a/f", "x", 0o644), layertest.Symlink("a/l", "../.."), layertest.Hardlink("a/h", "a/f")},
		{layertest.Symlink("l", "../sibling"), layertest.File("l/x", "x", 0o644), layertest.Whiteout("l/.wh.keep")},
		{layertest.File("../../x", "x", 0o4755), layertest.Whiteout("d/.wh..wh..opq"), layertest.File("d/f", "f", 0o644)},
		{layertest.Symlink("s", "/"), layertest.Hardlink("h", "s/../sibling/keep"), layertest.Dir("s/", 0o700)},
		{layertest.Whiteout(".wh..wh..opq"), layertest.Whiteout("../.wh.sibling"), layertest.File("/abs", "a", 0o600)},
	} {
		f.Add(layertest.Tar(f, seed...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := layertest.Sandbox(t)
		root := filepath.Join(base, "root")
		before := layertest.OutsideSnapshot(t, base)
		_ = layer.Apply(bytes.NewReader(data), root)
		_ = layer.Apply(bytes.NewReader(data), root)
		if after := layertest.OutsideSnapshot(t, base); !slices.Equal(before, after) {
			t.Fatalf("outside root changed:\nbefore %q\nafter  %q", before, after)
		}
	})
}

// FuzzApplyLayerEntries builds well-formed tars from a line-based spec, so
// that the fuzzer explores names, link targets and entry kinds rather than
// tar checksums. A line is KIND|NAME|TARGET with KIND one of f (file), d
// (directory), l (symlink), h (hard link), p (fifo), c (char device), b
// (block device); a line "--" starts the next layer. The layers are
// applied twice: with devices refused, which must leave no device node
// anywhere, and with devices allowed; neither may touch anything outside
// root.
func FuzzApplyLayerEntries(f *testing.F) {
	for _, seed := range []string{
		"l|link|../sibling\nf|link/evil|x",
		"l|etc|/\n--\nf|etc/passwd|x\nh|h|etc/passwd",
		"d|d|\nf|d/a|x\n--\nf|d/.wh..wh..opq|\nf|d/b|y\nf|d/.wh.a|",
		"l|up|../../..\nf|up/sibling/keep|x\nh|k|up/sibling/keep\np|up/p|",
		"f|/abs/../../x|x\nl|x|x\nd|x/y|\nc|dev/null|",
		"l|s|s\nf|s/x|\nf|.wh.s|\nf|../.wh.sibling|",
		"c|dev/null|\nh|dev/null2|dev/null\n--\nb|dev/sda|\nl|d|dev\nb|d/sdb|",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		base := layertest.Sandbox(t)
		root := filepath.Join(base, "root")
		before := layertest.OutsideSnapshot(t, base)
		layers := strings.Split(spec, "\n--\n")
		for _, l := range layers {
			_ = layer.ApplyWith(bytes.NewReader(specTar(l)), root, layer.Options{})
		}
		if dev := findDevice(t, root); dev != "" {
			t.Fatalf("device node %s made with devices refused", dev)
		}
		for _, l := range layers {
			_ = layer.Apply(bytes.NewReader(specTar(l)), root)
		}
		if after := layertest.OutsideSnapshot(t, base); !slices.Equal(before, after) {
			t.Fatalf("outside root changed:\nbefore %q\nafter  %q", before, after)
		}
	})
}

// specTar turns spec lines into a tar, leaving out what archive/tar refuses.
func specTar(spec string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, line := range strings.Split(spec, "\n") {
		kind, rest, _ := strings.Cut(line, "|")
		name, target, _ := strings.Cut(rest, "|")
		h := &tar.Header{Name: name, Linkname: target, Mode: 0o644}
		switch kind {
		case "f":
			h.Typeflag, h.Size, h.Linkname = tar.TypeReg, int64(len(target)), ""
		case "d":
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case "l":
			h.Typeflag = tar.TypeSymlink
		case "h":
			h.Typeflag = tar.TypeLink
		case "p":
			h.Typeflag = tar.TypeFifo
		case "c":
			h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, 1, 3
		case "b":
			h.Typeflag, h.Devmajor, h.Devminor = tar.TypeBlock, 7, 0
		default:
			continue
		}
		if tw.WriteHeader(h) != nil {
			continue
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte(target))
		}
	}
	_ = tw.Close()
	return buf.Bytes()
}

// findDevice returns the first character or block device below root, "" if none.
func findDevice(t *testing.T, root string) string {
	t.Helper()
	found := ""
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeDevice != 0 && found == "" {
			found = p
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return found
}
