package xz

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/hosttest"
	ulikunitz "github.com/ulikunitz/xz"
)

// sample is data with the kinds of content roots hold: x86 code (this
// test binary), text (this package's sources) and incompressible bytes,
// which LZMA2 stores as they are.
func sample(t testing.TB, size int) []byte {
	t.Helper()
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	var text []byte
	for _, f := range []string{"xz.go", "lzma.go", "lzma2.go", "window.go", "bcj.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text = append(text, b...)
	}
	random := make([]byte, size/8)
	rand.Read(random)
	out := append(append(append([]byte{}, exe[len(exe)/4:][:min(size/2, len(exe)*3/4)]...), text...), random...)
	// More programs, when more is asked for.
	progs, _ := filepath.Glob("/usr/bin/*")
	for _, p := range progs {
		if len(out) >= size {
			break
		}
		if b, err := os.ReadFile(p); err == nil {
			out = append(out, b...)
		}
	}
	if len(out) < size {
		t.Fatalf("only %d bytes of sample data", len(out))
	}
	return out[:size]
}

// xzFile compresses data with xz(1) and args.
func xzFile(t testing.TB, data []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(hosttest.Path(t, "xz"), append([]string{"-c"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func decode(compressed []byte) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// decodeParallel decodes with NewParallelReader, and says how many
// blocks it decoded in parallel.
func decodeParallel(compressed []byte, workers int, memory int64) ([]byte, int, error) {
	r, err := NewParallelReader(bytes.NewReader(compressed), workers, memory)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	out, err := io.ReadAll(r)
	return out, r.ParallelBlocks(), err
}

// TestCorpus decodes what xz(1) makes with every preset and option a
// root's tarball may have been made with.
func TestCorpus(t *testing.T) {
	data := sample(t, 1<<20)
	cases := [][]string{
		{"-0"}, {"-1"}, {"-2"}, {"-3"}, {"-4"}, {"-5"}, {"-6"}, {"-7"}, {"-8"}, {"-9"},
		{"-0e"}, {"-6e"}, {"-9e"},
		{"--x86", "--lzma2=preset=6"},
		{"--x86=start=4096", "--lzma2=preset=1"},
		{"--check=none"}, {"--check=crc32"}, {"--check=crc64"}, {"--check=sha256"},
		{"-T2", "--block-size=100KiB"},
		{"--block-size=300KiB", "--check=sha256"},
		{"--lzma2=preset=6,lc=0,lp=4,pb=0"},
		{"--lzma2=preset=6,lc=4,lp=0,pb=4"},
		{"--lzma2=dict=4KiB"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			compressed := xzFile(t, data, args...)
			got, err := decode(compressed)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("decoded %d bytes, not the %d compressed", len(got), len(data))
			}
			got, _, err = decodeParallel(compressed, 2, 64<<20)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("in parallel: %d bytes, %v", len(got), err)
			}
		})
	}
	t.Run("reads of no bytes", func(t *testing.T) {
		r, err := NewReader(bytes.NewReader(xzFile(t, data[:5000])))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := r.Read(nil); n != 0 || err != nil {
			t.Fatalf("Read(nil) = %d, %v; want 0, nil", n, err)
		}
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data[:5000]) {
			t.Fatalf("then %d bytes, %v", len(got), err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if got, err := decode(xzFile(t, nil)); err != nil || len(got) != 0 {
			t.Fatalf("%q, %v", got, err)
		}
	})
	t.Run("concatenated streams with padding", func(t *testing.T) {
		a, b := xzFile(t, data[:1000], "--check=crc32"), xzFile(t, data[1000:], "--check=sha256")
		joined := append(append(append([]byte{}, a...), make([]byte, 8)...), b...)
		if got, err := decode(joined); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes, %v", len(got), err)
		}
	})
}

// TestParallel decodes multi-block files, as xz -T writes them, with
// NewParallelReader: in parallel when the blocks give their sizes and
// fit in the memory given, else alone, and the same either way.
func TestParallel(t *testing.T) {
	data := sample(t, 1<<20)
	multi := xzFile(t, data, "-6", "-T2", "--block-size=64KiB")
	blocks := (len(data) + 64<<10 - 1) / (64 << 10)
	single := xzFile(t, data[:100<<10], "-1")
	x86 := xzFile(t, data, "--x86", "--lzma2=preset=2", "-T2", "--block-size=200KiB", "--check=sha256")
	for _, tc := range []struct {
		name     string
		in       []byte
		want     []byte
		workers  int
		memory   int64
		parallel int // blocks decoded in parallel
	}{
		{"two workers", multi, data, 2, 64 << 20, blocks},
		{"one worker: alone", multi, data, 1, 64 << 20, 0},
		{"memory for one block only", multi, data, 2, 100 << 10, 0},
		{"BCJ x86 and SHA-256", x86, data, 4, 64 << 20, 6},
		{"a block without sizes", single, data[:100<<10], 2, 64 << 20, 0},
		{"streams of both kinds", append(append(bytes.Clone(multi), single...), multi...),
			append(append(bytes.Clone(data), data[:100<<10]...), data...), 2, 64 << 20, 2 * blocks},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, n, err := decodeParallel(tc.in, tc.workers, tc.memory)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("%d bytes, %v; want %d bytes", len(got), err, len(tc.want))
			}
			if n != tc.parallel {
				t.Errorf("%d blocks decoded in parallel, want %d", n, tc.parallel)
			}
		})
	}
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
		want string
	}{
		{"flipped data byte", func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }, "xz: "},
		{"truncated in a block", func(b []byte) []byte { return b[:len(b)/2] }, "unexpected EOF"},
		{"flipped block header", func(b []byte) []byte { b[12+4] ^= 1; return b }, "block header (CRC32) at byte 12"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := decodeParallel(tc.edit(bytes.Clone(multi)), 2, 64<<20)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%d bytes, error %v; want one saying %q", len(got), err, tc.want)
			}
			if !bytes.HasPrefix(data, got) {
				t.Errorf("the %d bytes given out before the error are not the data's first", len(got))
			}
		})
	}
	t.Run("read after Close", func(t *testing.T) {
		r, err := NewParallelReader(bytes.NewReader(multi), 2, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		r.Close()
		if _, err := io.ReadAll(r); !errors.Is(err, errClosed) {
			t.Fatalf("ReadAll after Close: %v, want %v", err, errClosed)
		}
	})
}

// TestCorrupt checks that damage is an error, never wrong data.
func TestCorrupt(t *testing.T) {
	data := sample(t, 256<<10)
	good := xzFile(t, data, "-6", "--check=crc32")
	for _, tc := range []struct {
		name string
		edit func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"no footer", func(b []byte) []byte { return b[:len(b)-12] }},
		{"flipped data byte", func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }},
		{"flipped check", func(b []byte) []byte { b[len(b)-12-12-1] ^= 1; return b }},
		{"bad magic", func(b []byte) []byte { b[0] = 0; return b }},
		{"trailing garbage", func(b []byte) []byte { return append(b, 1, 2, 3, 4) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode(tc.edit(bytes.Clone(good)))
			if err == nil {
				t.Fatalf("no error; %d bytes decoded", len(got))
			}
			if !strings.HasPrefix(err.Error(), "xz: ") {
				t.Errorf("error %q does not say it is xz's", err)
			}
		})
	}
}

// FuzzDecode holds the decoder to ulikunitz/xz and xz(1): the same
// output as ulikunitz, or both fail; where the two differ (ulikunitz
// takes a lone stream header, and knows no BCJ filter), the same as
// xz(1), the reference.
func FuzzDecode(f *testing.F) {
	xz := hosttest.Path(f, "xz")
	data := sample(f, 64<<10)
	for _, args := range [][]string{{"-0"}, {"-6", "--check=crc32"}, {"--x86", "--lzma2=preset=0", "--check=none"}, {"--block-size=16KiB", "--check=sha256"}, {"-T2", "--block-size=8KiB", "--check=crc32"}} {
		f.Add(xzFile(f, data, args...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := decode(in)
		// Decoded in parallel, the same, or an error too.
		if pgot, _, perr := decodeParallel(in, 2, 4<<20); (perr == nil) != (err == nil) || (err == nil && !bytes.Equal(pgot, got)) {
			t.Fatalf("alone: %d bytes, %v; in parallel: %d bytes, %v", len(got), err, len(pgot), perr)
		}
		var want []byte
		r, werr := ulikunitz.NewReader(bytes.NewReader(in))
		if werr == nil {
			want, werr = io.ReadAll(r)
		}
		if (err == nil) == (werr == nil) && bytes.Equal(got, want) {
			return
		}
		cmd := exec.Command(xz, "-dc")
		cmd.Stdin = bytes.NewReader(in)
		ref, xerr := cmd.Output()
		if (err == nil) != (xerr == nil) || (err == nil && !bytes.Equal(got, ref)) {
			t.Fatalf("ours: %d bytes, %v; xz(1): %d bytes, %v; ulikunitz: %d bytes, %v", len(got), err, len(ref), xerr, len(want), werr)
		}
	})
}

// BenchmarkDecode decodes the same file with this package, ulikunitz/xz
// and xz(1) (one thread), side by side, in MB/s of output: the file
// $XZ_BENCH_FILE, else a 16 MiB sample compressed with xz -6. The same
// data, compressed again with xz -T0 in blocks, is then decoded with
// NewParallelReader (a worker per CPU), and by xz -T0. Run it with
// `go test -run '^$' -bench Decode ./internal/xz`.
func BenchmarkDecode(b *testing.B) {
	file := os.Getenv("XZ_BENCH_FILE")
	if file == "" {
		file = b.TempDir() + "/sample.xz"
		if err := os.WriteFile(file, xzFile(b, sample(b, 16<<20), "-6"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	compressed, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	plain, err := decode(compressed)
	if err != nil {
		b.Fatal(err)
	}
	multiFile := b.TempDir() + "/multi.xz"
	multi := xzFile(b, plain, "-6", "-T0", "--block-size=8MiB")
	if err := os.WriteFile(multiFile, multi, 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: %d bytes, %d unpacked; in 8 MiB blocks, %d bytes", file, len(compressed), len(plain), len(multi))
	workers := runtime.GOMAXPROCS(0)
	for _, d := range []struct {
		name string
		run  func() (int64, error)
	}{
		{"ociboot", func() (int64, error) {
			r, err := NewReader(bytes.NewReader(compressed))
			if err != nil {
				return 0, err
			}
			return io.Copy(io.Discard, r)
		}},
		{"ulikunitz", func() (int64, error) {
			r, err := ulikunitz.NewReader(bytes.NewReader(compressed))
			if err != nil {
				return 0, err
			}
			return io.Copy(io.Discard, r)
		}},
		{"xz(1)", func() (int64, error) {
			cmd := exec.Command(hosttest.Path(b, "xz"), "-dc", "-T1", file)
			cmd.Stdout = io.Discard
			return int64(len(plain)), cmd.Run()
		}},
		{"blocks/ociboot-alone", func() (int64, error) {
			r, err := NewReader(bytes.NewReader(multi))
			if err != nil {
				return 0, err
			}
			return io.Copy(io.Discard, r)
		}},
		{fmt.Sprintf("blocks/ociboot-%dworkers", workers), func() (int64, error) {
			r, err := NewParallelReader(bytes.NewReader(multi), workers, 64<<20)
			if err != nil {
				return 0, err
			}
			defer r.Close()
			return io.Copy(io.Discard, r)
		}},
		{"blocks/xz(1)-T0", func() (int64, error) {
			cmd := exec.Command(hosttest.Path(b, "xz"), "-dc", "-T0", multiFile)
			cmd.Stdout = io.Discard
			return int64(len(plain)), cmd.Run()
		}},
	} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			for b.Loop() {
				n, err := d.run()
				if err != nil || n != int64(len(plain)) {
					b.Fatalf("%d bytes, %v", n, err)
				}
			}
		})
	}
}

// rawXZ wraps LZMA2 data in an xz stream with no check: one block whose
// header names a 1 MiB dictionary, its index and the footer.
func rawXZ(lzma2 []byte, uncompressed int64) []byte {
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	flags := []byte{0, checkNone}
	out := append(append(append([]byte{}, headerMagic...), flags...), le32(crc32.ChecksumIEEE(flags))...)
	hdr := []byte{2, 0, filterLZMA2, 1, 16, 0, 0, 0} // size 12, one filter, dictionary 2^20
	hdr[0] = byte((len(hdr)+4)/4 - 1)
	hdr = append(hdr, le32(crc32.ChecksumIEEE(hdr))...)
	out = append(append(out, hdr...), lzma2...)
	for (len(out)-12)%4 != 0 {
		out = append(out, 0)
	}
	vliBytes := func(v int64) []byte {
		var b []byte
		for v >= 0x80 {
			b = append(b, byte(v)|0x80)
			v >>= 7
		}
		return append(b, byte(v))
	}
	index := append([]byte{0, 1}, vliBytes(int64(len(hdr)+len(lzma2)))...)
	index = append(index, vliBytes(uncompressed)...)
	for len(index)%4 != 0 {
		index = append(index, 0)
	}
	index = append(index, le32(crc32.ChecksumIEEE(index))...)
	out = append(out, index...)
	back := append(le32(uint32(len(index)/4-1)), flags...)
	return append(append(append(out, le32(crc32.ChecksumIEEE(back))...), back...), footerMagic...)
}

// TestLZMA2Chunks checks chunk sequences xz(1) does not write but a file
// may hold.
func TestLZMA2Chunks(t *testing.T) {
	stored := append([]byte{1, 0, 4}, "hello"...) // a stored chunk resetting the dictionary
	if got, err := decode(rawXZ(append(bytes.Clone(stored), 0), 5)); err != nil || string(got) != "hello" {
		t.Fatalf("a stored chunk: %q, %v", got, err)
	}
	// A second stored chunk keeps the dictionary.
	two := append(append(bytes.Clone(stored), 2, 0, 1, '!', '!'), 0)
	if got, err := decode(rawXZ(two, 7)); err != nil || string(got) != "hello!!" {
		t.Fatalf("two stored chunks: %q, %v", got, err)
	}
	for name, data := range map[string][]byte{
		// After a dictionary reset, an LZMA chunk must set properties:
		// the state it would keep points into the dictionary that went.
		"LZMA chunk without properties after a reset": append(bytes.Clone(stored), 0x80, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0),
		"no dictionary reset first":                   {2, 0, 0, 'x', 0},
		"bad control byte":                            {0x05, 0},
		"properties out of range":                     {0xE0, 0, 0, 0, 4, 225, 0, 0, 0, 0, 0, 0},
		"no end":                                      bytes.Clone(stored),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := decode(rawXZ(data, 1))
			if err == nil || !strings.Contains(err.Error(), "corrupt block") {
				t.Fatalf("decoded %q, %v; want the block said corrupt", got, err)
			}
		})
	}
}
