package switchroot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// tarEntry is one entry of a test tarball: a directory when its name
// ends with "/".
type tarEntry struct {
	name string
	body []byte
	mode int64
}

// Compressions of test tarballs.
const (
	plainTar   = -2 // no gzip at all
	storedGzip = gzip.NoCompression
	bestGzip   = gzip.BestCompression
	// splitStored and splitBest are gzip in three members, as `cat a.gz
	// b.gz c.gz` makes: the trailer gives the last member's size, not
	// the tar's, so the tree's size is estimated from the file's.
	splitStored = -3
	splitBest   = -4
)

// writeTarball writes the entries as a tar, gzipped at level (or plain
// with plainTar), to a new file and returns its file:// URL and size.
func writeTarball(t *testing.T, level int, entries ...tarEntry) (string, int64) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rootfs.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	var w io.Writer = f
	var zw *gzip.Writer
	var whole bytes.Buffer
	switch level {
	case plainTar:
	case splitStored, splitBest:
		w = &whole
	default:
		if zw, err = gzip.NewWriterLevel(f, level); err != nil {
			t.Fatal(err)
		}
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if level == splitStored || level == splitBest {
		memberLevel := gzip.NoCompression
		if level == splitBest {
			memberLevel = gzip.BestCompression
		}
		half := whole.Len() / 2
		for _, part := range [][]byte{whole.Bytes()[:half], whole.Bytes()[half : whole.Len()-2048]} {
			zw, err := gzip.NewWriterLevel(f, memberLevel)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := zw.Write(part); err != nil {
				t.Fatal(err)
			}
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
		}
		// The tar's end: a third member, small, whose size the trailer
		// gives.
		zw, err := gzip.NewWriterLevel(f, memberLevel)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(whole.Bytes()[whole.Len()-2048:]); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return "file://" + p, fi.Size()
}

// zeros is a tarball holding one file of n zero bytes.
func zeros(t *testing.T, level, n int) (string, int64) {
	t.Helper()
	return writeTarball(t, level,
		tarEntry{name: "etc/", mode: 0o755},
		tarEntry{name: "etc/os-release", body: []byte("ID=test\n"), mode: 0o644},
		tarEntry{name: "data", body: make([]byte, n), mode: 0o644})
}

// fakeMemInfo writes a meminfo file with the sizes, in bytes.
func fakeMemInfo(t *testing.T, total, available int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "meminfo")
	body := fmt.Sprintf("MemTotal:       %8d kB\nMemFree:        %8d kB\nMemAvailable:   %8d kB\nBuffers:               0 kB\n", total>>10, available>>10, available>>10)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// mountPoint makes an empty directory for Prepare and unmounts whatever
// is left mounted on it when the test ends.
func mountPoint(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(dir, "sysroot")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	unmountInCleanup(t, dir)
	return dir
}

// checkLeftAlone checks that a failed Prepare left dir unmounted and
// empty.
func checkLeftAlone(t *testing.T, dir string) {
	t.Helper()
	if isMountPoint(t, dir) {
		t.Errorf("%s is still mounted after the failure", dir)
	}
	if names, err := os.ReadDir(dir); err != nil || len(names) != 0 {
		t.Errorf("%s holds %v, %v after the failure; want it empty", dir, names, err)
	}
}

// tmpfsSize is the size of the filesystem mounted on dir.
func tmpfsSize(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != unix.TMPFS_MAGIC {
		t.Fatalf("%s is not a tmpfs", dir)
	}
	return int64(st.Blocks) * st.Bsize
}

// pageUp rounds n up to whole pages, as tmpfs sizes are.
func pageUp(n int64) int64 {
	page := int64(os.Getpagesize())
	return (n + page - 1) / page * page
}

func TestPrepareDefaultSize(t *testing.T) {
	dir := mountPoint(t)
	src, _ := writeTarball(t, bestGzip,
		tarEntry{name: "etc/", mode: 0o755},
		tarEntry{name: "etc/os-release", body: []byte("ID=test\n"), mode: 0o644},
		tarEntry{name: "sbin/", mode: 0o755},
		tarEntry{name: "sbin/init", body: []byte("#!/bin/sh\nexec sh\n"), mode: 0o755},
		tarEntry{name: "usr/share/doc/big", body: bytes.Repeat([]byte("ociboot "), 64<<10), mode: 0o644})
	var log strings.Builder
	const ram = 8_192_000_000 // whole kB and whole hundredths
	root, err := Prepare(context.Background(), dir, Options{Source: src, MemInfo: fakeMemInfo(t, ram, ram-1<<30), Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if root.Dir != dir || root.Size != ram/2 || root.Used < 512<<10 || root.Entries < 5 || root.Took <= 0 {
		t.Errorf("Root %+v: want dir %s, the default size of half of the RAM (%d), at least the 512 KiB and 5 entries unpacked", root, dir, ram/2)
	}
	if root.MemoryRise != 0 {
		t.Errorf("memory rise %d: want 0, as the fake meminfo does not change", root.MemoryRise)
	}
	if !isMountPoint(t, dir) || tmpfsSize(t, dir) != ram/2 {
		t.Errorf("the tmpfs on %s: want one of %d bytes", dir, ram/2)
	}
	if got := readFile(t, filepath.Join(dir, "etc/os-release")); got != "ID=test\n" {
		t.Errorf("etc/os-release: %q", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "sbin/init")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("sbin/init: %v, %v; want mode 0755", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "usr/share/doc/big")); err != nil || fi.Size() != 512<<10 {
		t.Errorf("usr/share/doc/big: %v, %v; want 512 KiB", fi, err)
	}
	if want := "into a tmpfs of 3.8 GiB"; !strings.Contains(log.String(), want) {
		t.Errorf("log %q, want %q", log.String(), want)
	}
	if _, err := FindInit(dir, ""); err != nil {
		t.Errorf("FindInit in the unpacked tree: %v", err)
	}
}

func TestPrepareTooBigForSize(t *testing.T) {
	dir := mountPoint(t)
	src, size := zeros(t, storedGzip, 64<<10)
	if size <= 16<<10 {
		t.Fatalf("the tarball is %d bytes, want more than 16 KiB", size)
	}
	var log strings.Builder
	root, err := Prepare(context.Background(), dir, Options{
		Source: src, Size: Size{Bytes: 16 << 10}, SizeParam: "ociboot.root_size=16K",
		MemInfo: fakeMemInfo(t, 8<<30, 7<<30), Log: &log,
	})
	if err == nil {
		t.Fatalf("Prepare = %+v, want an error: the tarball is larger than the tmpfs", root)
	}
	for _, want := range []string{"rootfs tarball cannot fit in the root's tmpfs of 16.0 KiB (ociboot.root_size=16K)", "raise ociboot.root_size=16K"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Prepare: %v\nwant an error containing %q", err, want)
		}
	}
	if strings.Contains(log.String(), "into "+dir) {
		t.Errorf("log %q: the unpack started", log.String())
	}
	checkLeftAlone(t, dir)
}

func TestPrepareTooBigForRAM(t *testing.T) {
	dir := mountPoint(t)
	src, _ := zeros(t, bestGzip, 64<<10)
	_, err := Prepare(context.Background(), dir, Options{Source: src, MemInfo: fakeMemInfo(t, 8<<30, 32<<20), Log: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "rootfs tarball cannot fit in RAM") || !strings.Contains(err.Error(), "only 0 B of RAM is available") {
		t.Errorf("Prepare with 32 MiB of RAM available: %v, want an error saying it cannot fit in RAM", err)
	}
	checkLeftAlone(t, dir)

	// A gzip of several members: its size unpacked is not known, only
	// that it is at least the file's, which the RAM available misses by
	// a byte.
	src, size := zeros(t, splitStored, 20<<20)
	if _, err = Prepare(context.Background(), dir, Options{Source: src, MemInfo: fakeMemInfo(t, 8<<30, reserve+size-1), Log: io.Discard}); err == nil || !strings.Contains(err.Error(), "cannot fit in RAM: it is "+formatSize(size)+" compressed, so at least that unpacked") {
		t.Errorf("Prepare with 1 byte too little RAM available: %v, want an error saying it cannot fit in RAM", err)
	}
	checkLeftAlone(t, dir)

	// One member: the trailer says how big the tar is, and the RAM
	// available misses it by a byte, though it holds the compressed file
	// many times over.
	src, _ = zeros(t, bestGzip, 20<<20)
	tar := gzipISize(t, src)
	want := "cannot fit in RAM: it is " + formatSize(tar) + " unpacked, as its gzip trailer says"
	if _, err = Prepare(context.Background(), dir, Options{Source: src, MemInfo: fakeMemInfo(t, 8<<30, reserve+tar-1), Log: io.Discard}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Prepare with 1 byte too little RAM available: %v, want an error saying %q", err, want)
	}
	checkLeftAlone(t, dir)
}

// gzipISize is the size a one-member gzip's trailer gives.
func gzipISize(t *testing.T, src string) int64 {
	t.Helper()
	data, err := os.ReadFile(strings.TrimPrefix(src, "file://"))
	if err != nil {
		t.Fatal(err)
	}
	return int64(binary.LittleEndian.Uint32(data[len(data)-4:]))
}

// The default size grows to the estimate plus a quarter, within the RAM
// available, and never shrinks below half of RAM.
func TestPrepareGrowsDefaultSize(t *testing.T) {
	// About 139.6 MiB of RAM, in whole kB and whole hundredths: the
	// default is half of it, 69.8 MiB.
	const total = 1430 * 102400
	const data = 20 << 20 // stored: about 60 MiB estimated, 75 MiB wanted
	src, size := zeros(t, splitStored, data)
	estimate := 3 * size
	want := estimate + estimate/100*25
	if want <= total/2 || want > total-reserve {
		t.Fatalf("the test's sizes are off: want %d, total %d", want, total)
	}
	type growCase struct {
		name             string
		src              string
		data             int64 // the size of the file in the tarball
		total, available int64
		size             int64 // the tmpfs size wanted
	}
	tests := []growCase{
		{"grown to the estimate plus a quarter", src, data, total, total, want},
		{"grown to the RAM available", src, data, total, 136 << 20, 136<<20 - reserve},
		{"not shrunk below half of RAM", src, data, total, 100 << 20, total / 2},
	}
	// A tarball larger than half of RAM, which fits in the RAM
	// available: the default grows to hold it.
	big, bigSize := zeros(t, splitStored, 70<<20)
	if bigSize <= total/2 || bigSize > total-reserve {
		t.Fatalf("the test's sizes are off: tarball %d, total %d", bigSize, total)
	}
	tests = append(tests, growCase{"compressed size over half of RAM", big, 70 << 20, total, total, total - reserve})
	// A tar whose size the gzip trailer gives: that plus a quarter.
	exact, _ := zeros(t, bestGzip, 60<<20)
	tar := gzipISize(t, exact)
	tests = append(tests, growCase{"grown to the exact size plus a quarter", exact, 60 << 20, total, total, tar + tar/100*25})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := mountPoint(t)
			var log strings.Builder
			root, err := Prepare(context.Background(), dir, Options{Source: tt.src, MemInfo: fakeMemInfo(t, tt.total, tt.available), Log: &log})
			if err != nil {
				t.Fatal(err)
			}
			if root.Size != tt.size {
				t.Errorf("Root.Size %d (%s), want %d (%s)", root.Size, formatSize(root.Size), tt.size, formatSize(tt.size))
			}
			if got := tmpfsSize(t, dir); got != pageUp(root.Size) {
				t.Errorf("the tmpfs has %d bytes, want %d", got, pageUp(root.Size))
			}
			if fi, err := os.Stat(filepath.Join(dir, "data")); err != nil || fi.Size() != tt.data {
				t.Errorf("data: %v, %v", fi, err)
			}
		})
	}
}

// An estimate over an explicit size is only a warning: the tree may fit.
func TestPrepareEstimateOverSize(t *testing.T) {
	t.Run("fits", func(t *testing.T) {
		dir := mountPoint(t)
		src, size := zeros(t, splitStored, 256<<10)
		limit := Size{Bytes: 2 * size}
		var log strings.Builder
		root, err := Prepare(context.Background(), dir, Options{Source: src, Size: limit, SizeParam: "rd.tmpfs.size=" + limit.String(), MemInfo: fakeMemInfo(t, 8<<30, 7<<30), Log: &log})
		if err != nil {
			t.Fatal(err)
		}
		if root.Size != 2*size || tmpfsSize(t, dir) != pageUp(2*size) {
			t.Errorf("Root.Size %d, tmpfs of %d; want %d", root.Size, tmpfsSize(t, dir), 2*size)
		}
		if want := "it may not fit in the tmpfs of " + formatSize(2*size) + "; raise rd.tmpfs.size=" + limit.String() + " if it does not"; !strings.Contains(log.String(), want) {
			t.Errorf("log %q, want %q", log.String(), want)
		}
		if fi, err := os.Stat(filepath.Join(dir, "data")); err != nil || fi.Size() != 256<<10 {
			t.Errorf("data: %v, %v", fi, err)
		}
	})
	t.Run("does not fit", func(t *testing.T) {
		dir := mountPoint(t)
		src, size := zeros(t, splitBest, 16<<20)
		limit := Size{Bytes: 2 * size}
		if limit.Bytes >= 1<<20 {
			t.Fatalf("16 MiB of zeros compressed to %d bytes", size)
		}
		var log strings.Builder
		_, err := Prepare(context.Background(), dir, Options{Source: src, Size: limit, SizeParam: "ociboot.root_size=" + limit.String(), MemInfo: fakeMemInfo(t, 8<<30, 7<<30), Log: &log})
		if !errors.Is(err, unix.ENOSPC) {
			t.Fatalf("Prepare: %v, want ENOSPC", err)
		}
		if want := "the root's tmpfs (" + formatSize(limit.Bytes) + ") is full; raise ociboot.root_size=" + limit.String(); !strings.Contains(err.Error(), want) {
			t.Errorf("Prepare: %v\nwant an error containing %q", err, want)
		}
		if !strings.Contains(log.String(), "it may not fit") {
			t.Errorf("log %q, want a warning", log.String())
		}
		checkLeftAlone(t, dir)
	})
	t.Run("plain tar", func(t *testing.T) {
		dir := mountPoint(t)
		src, size := zeros(t, plainTar, 256<<10)
		var log strings.Builder
		if _, err := Prepare(context.Background(), dir, Options{Source: src, Size: Size{Bytes: 2 * size}, SizeParam: "ociboot.root_size=x", MemInfo: fakeMemInfo(t, 8<<30, 7<<30), Log: &log}); err != nil {
			t.Fatal(err)
		}
		// A plain tar's size is its own, which fits.
		if want := fmt.Sprintf("%s unpacked (as the file's size says), into a tmpfs of %s", formatSize(size), formatSize(2*size)); !strings.Contains(log.String(), want) {
			t.Errorf("log %q, want %q", log.String(), want)
		}
	})
}

// With the exact size known, a tree over an explicit size is refused
// before anything is written, where an estimate could only warn.
func TestPrepareExactOverSize(t *testing.T) {
	dir := mountPoint(t)
	src, size := zeros(t, bestGzip, 16<<20)
	limit := Size{Bytes: 2 * size}
	_, err := Prepare(context.Background(), dir, Options{Source: src, Size: limit, SizeParam: "ociboot.root_size=" + limit.String(), MemInfo: fakeMemInfo(t, 8<<30, 7<<30), Log: io.Discard})
	want := "cannot fit in the root's tmpfs of " + formatSize(limit.Bytes) + " (ociboot.root_size=" + limit.String() + "): it is " + formatSize(gzipISize(t, src)) + " unpacked, as its gzip trailer says"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Prepare: %v\nwant an error containing %q", err, want)
	}
	checkLeftAlone(t, dir)
}

func TestPrepareErrors(t *testing.T) {
	dir := mountPoint(t)
	mem := fakeMemInfo(t, 8<<30, 7<<30)
	if _, err := Prepare(context.Background(), dir, Options{Source: "file:///nonexistent/rootfs.tar", MemInfo: mem, Log: io.Discard}); err == nil || !strings.Contains(err.Error(), "/nonexistent/rootfs.tar") {
		t.Errorf("Prepare of a missing file: %v, want an error naming it", err)
	}
	checkLeftAlone(t, dir)
	if _, err := Prepare(context.Background(), dir, Options{Source: "file:///x", MemInfo: filepath.Join(t.TempDir(), "none"), Log: io.Discard}); err == nil || !strings.Contains(err.Error(), "reading the memory sizes") {
		t.Errorf("Prepare without meminfo: %v", err)
	}
	checkLeftAlone(t, dir)
	if _, err := Prepare(context.Background(), filepath.Join(dir, "none"), Options{Source: "file:///x", MemInfo: mem, Log: io.Discard}); err == nil || !strings.Contains(err.Error(), "mounting the root's tmpfs") {
		t.Errorf("Prepare on a missing directory: %v", err)
	}
}

func TestRaise(t *testing.T) {
	if got, want := (&fitter{}).raise(), "give more RAM or set ociboot.root_size="; got != want {
		t.Errorf("default size: %q, want %q", got, want)
	}
	f := &fitter{o: Options{Size: Size{Percent: 30}, SizeParam: "rd.tmpfs.size=30%"}}
	if got, want := f.raise(), "raise rd.tmpfs.size=30%"; got != want {
		t.Errorf("explicit size: %q, want %q", got, want)
	}
}

func TestLayerRatio(t *testing.T) {
	tests := []struct {
		mt   types.MediaType
		want int64
	}{
		{types.DockerLayer, gzipRatio},
		{types.OCILayer, gzipRatio},
		{types.OCILayerZStd, gzipRatio},
		{types.DockerForeignLayer, gzipRatio},
		{types.DockerUncompressedLayer, 1},
		{types.OCIUncompressedLayer, 1},
		{"application/x-unknown", gzipRatio},
	}
	for _, tt := range tests {
		if got := layerRatio(tt.mt); got != tt.want {
			t.Errorf("layerRatio(%s) = %d, want %d", tt.mt, got, tt.want)
		}
	}
}

func TestReadMemInfo(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, fmt.Sprint(len(body)))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	m, err := readMemInfo(write("MemTotal:        2014084 kB\nMemFree:         1500000 kB\nMemAvailable:    1843792 kB\nHugePages_Total:       0\n"))
	if err != nil || m.total != 2014084<<10 || m.available != 1843792<<10 || m.inUse() != (2014084-1843792)<<10 {
		t.Errorf("readMemInfo = %+v, %v", m, err)
	}
	for _, body := range []string{"", "MemTotal: 1000 kB\n", "MemAvailable: 1000 kB\n", "MemTotal: x kB\nMemAvailable: 1000 kB\n"} {
		if m, err := readMemInfo(write(body)); err == nil || !strings.Contains(err.Error(), "no MemTotal or MemAvailable line") {
			t.Errorf("readMemInfo(%q) = %+v, %v; want an error", body, m, err)
		}
	}
	if _, err := readMemInfo(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "reading the memory sizes") {
		t.Errorf("readMemInfo of a missing file: %v", err)
	}
	if m, err := readMemInfo("/proc/meminfo"); err != nil || m.total <= 0 || m.available <= 0 {
		t.Errorf("readMemInfo(/proc/meminfo) = %+v, %v", m, err)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 64 << 20: "64.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
