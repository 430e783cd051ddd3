package image

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ociboot/ociboot/internal/hosttest"
)

// sizeData is 3 MiB that compress some: words from a small vocabulary.
func sizeData() []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("root bin etc usr lib share doc systemd debian x86_64 linux gnu 0 1 2 3 4 5 6 7 8 9")
	var b bytes.Buffer
	for b.Len() < 3<<20 {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(" \n"[rng.IntN(2)])
	}
	return b.Bytes()[:3<<20]
}

// fileTail reads a file's tail as tarSize asks for it.
func fileTail(t *testing.T, p string) ([]byte, int64, func(int64) ([]byte, error)) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(data))
	return data, size, func(n int64) ([]byte, error) { return data[size-n:], nil }
}

// xzListSize is the uncompressed size `xz --robot --list` gives.
func xzListSize(t *testing.T, p string) int64 {
	t.Helper()
	out := hosttest.Run(t, "xz", "--robot", "--list", p)
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, "\t"); f[0] == "totals" && len(f) > 4 {
			n, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("xz --list %s: no totals\n%s", p, out)
	return 0
}

// TestTarSizeXZ reads the size from the index of files made by xz(1)
// with several presets, checks and block layouts, as xz --list does;
// a file of two streams is not read (-1).
func TestTarSizeXZ(t *testing.T) {
	data := sizeData()[:1<<20]
	dir := t.TempDir()
	src := filepath.Join(dir, "data")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-0"}, {"-6"}, {"-9e"}, {"--check=none"}, {"--check=sha256"}, {"--check=crc32"},
		{"-T2", "--block-size=16KiB"}, // 64 blocks
		{"--x86", "--lzma2=preset=6"},
	} {
		name := strings.Join(args, "_")
		out := filepath.Join(dir, name+".xz")
		cmd := exec.Command(hosttest.Path(t, "xz"), append(append([]string{"-c", "-k"}, args...), src)...)
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout = f
		if err := cmd.Run(); err != nil {
			t.Fatalf("xz %s: %v", name, err)
		}
		f.Close()
		head, size, tail := fileTail(t, out)
		if got, want := tarSize("xz", head, size, tail), xzListSize(t, out); got != want || got != int64(len(data)) {
			t.Errorf("xz %s: %d, xz --list says %d, the data is %d", name, got, want, len(data))
		}
		// A tail too short for the index asks for the length it needs.
		if n, err := xzUncompressedSize(head[size-16:], size); name == "-T2_--block-size=16KiB" {
			more, ok := err.(needMore)
			if !ok {
				t.Fatalf("xz %s: 16 bytes of tail: %d, %v; want needMore", name, n, err)
			}
			if n, err := xzUncompressedSize(head[size-int64(more):], size); err != nil || n != int64(len(data)) {
				t.Errorf("xz %s: the %d bytes asked for: %d, %v", name, int64(more), n, err)
			}
		}
	}
	// Two streams (cat a.xz b.xz), with stream padding: not one stream.
	one, err := os.ReadFile(filepath.Join(dir, "-0.xz"))
	if err != nil {
		t.Fatal(err)
	}
	two := append(append(bytes.Clone(one), 0, 0, 0, 0), one...)
	if got := tarSize("xz", two, int64(len(two)), func(n int64) ([]byte, error) { return two[int64(len(two))-n:], nil }); got != -1 {
		t.Errorf("two streams: %d, want -1", got)
	}
	// Padding after the one stream is allowed.
	padded := append(bytes.Clone(one), make([]byte, 8)...)
	if got := tarSize("xz", padded, int64(len(padded)), func(n int64) ([]byte, error) { return padded[int64(len(padded))-n:], nil }); got != int64(len(data)) {
		t.Errorf("stream padding: %d, want %d", got, len(data))
	}
}

func TestTarSizeGzipZstd(t *testing.T) {
	data := sizeData()
	dir := t.TempDir()
	src := filepath.Join(dir, "data")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	hosttest.Run(t, "sh", "-c", "gzip -c "+src+" > "+src+".gz && zstd -q -c "+src+" > "+src+".zst && cat "+src+" | zstd -q -c > "+src+".pipe.zst && gzip -c "+src+" > "+src+".2.gz && gzip -c "+src+" >> "+src+".2.gz")
	for _, c := range []struct {
		file, kind string
		want       int64
	}{
		{"data.gz", "gzip", int64(len(data))},
		// Two members: the trailer is the last one's, a floor. (A last
		// member smaller than the file is told apart: tarSizeGzipSplit.)
		{"data.2.gz", "gzip", int64(len(data))},
		{"data.zst", "zstd", int64(len(data))},
		{"data.pipe.zst", "zstd", -1}, // written from a pipe: no content size
		{"data", "tar", int64(len(data))},
	} {
		head, size, tail := fileTail(t, filepath.Join(dir, c.file))
		if got := tarSize(c.kind, head[:min(len(head), maxZstdHeader)], size, tail); got != c.want {
			t.Errorf("%s: %d, want %d", c.file, got, c.want)
		}
	}
	// A last member smaller than the file: several members, not read.
	split := append(bytes.Clone(head0(t, filepath.Join(dir, "data.gz"))), gzipOf(t, []byte("end"))...)
	if got := tarSize("gzip", split, int64(len(split)), func(n int64) ([]byte, error) { return split[int64(len(split))-n:], nil }); got != -1 {
		t.Errorf("a small last member: %d, want -1", got)
	}
	// The encoder ociboot's tests use writes the content size too.
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	z := enc.EncodeAll(data, nil)
	if got := tarSize("zstd", z[:maxZstdHeader], -1, nil); got != int64(len(data)) {
		t.Errorf("klauspost zstd with no file size: %d, want %d", got, len(data))
	}
}

func head0(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gzipOf(t *testing.T, data []byte) []byte {
	t.Helper()
	cmd := exec.Command("gzip", "-c")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzXZIndex feeds the index reader arbitrary file ends: an error or a
// size, never a panic.
func FuzzXZIndex(f *testing.F) {
	cmd := exec.Command("xz", "-c", "-T2", "--block-size=4KiB")
	cmd.Stdin = bytes.NewReader(sizeData()[:64<<10])
	out, err := cmd.Output()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(out[max(0, len(out)-256):], int64(len(out)))
	// A footer whose CRC holds, saying the index is 4 bytes.
	footer := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 'Y', 'Z'}
	binary.LittleEndian.PutUint32(footer, crc32.ChecksumIEEE(footer[4:10]))
	f.Add(append(make([]byte, 8), footer...), int64(20))
	f.Fuzz(func(t *testing.T, tail []byte, size int64) {
		_, _ = xzUncompressedSize(tail, size)
	})
}
