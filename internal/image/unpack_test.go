package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ociboot/ociboot/internal/layer/layertest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/registrytest"
	"golang.org/x/sys/unix"
)

// claimedDigest is a layer that announces another digest than its content's,
// as a corrupted cache or a lying source would.
type claimedDigest struct {
	v1.Layer
	digest v1.Hash
}

func (l claimedDigest) Digest() (v1.Hash, error) { return l.digest, nil }

func TestUnpackChecksDigestOfAnyLayer(t *testing.T) {
	wrong := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	good := static.NewLayer(layertest.Tar(t, layertest.File("f", "content", 0o644)), types.OCIUncompressedLayer)
	img := registrytest.Image(t, v1.Config{}, claimedDigest{good, wrong})
	err := image.Unpack(context.Background(), img, t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), wrong.String()) || !strings.Contains(err.Error(), "does not match its digest") {
		t.Errorf("error %v, want a digest mismatch naming %s", err, wrong)
	}
}

func TestUnpackCompressions(t *testing.T) {
	// gzip (LayerFromFiles) under zstd and uncompressed layers.
	tr := layertest.Tar(t, layertest.File("etc/zstd", "z", 0o644), layertest.Whiteout("etc/.wh.gz"))
	zstdLayer := zstdLayerOf(t, tr)
	img := registrytest.Image(t, v1.Config{},
		registrytest.LayerFromFiles(t, map[string]string{"etc/gz": "g", "etc/keep": "k"}),
		zstdLayer,
		static.NewLayer(layertest.Tar(t, layertest.File("etc/raw", "r", 0o644)), types.OCIUncompressedLayer),
	)
	root := t.TempDir()
	var log bytes.Buffer
	if err := image.Unpack(context.Background(), img, root, &log); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	layertest.MustNotExist(t, filepath.Join(root, "etc/gz"))
	for p, want := range map[string]string{"etc/keep": "k", "etc/zstd": "z", "etc/raw": "r"} {
		if got := layertest.ReadFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if n := strings.Count(log.String(), "\n"); n != 6 {
		t.Errorf("log has %d lines, want 6 (start and end of each layer):\n%s", n, log.String())
	}
	for _, c := range []string{"gzip", "zstd", "uncompressed"} {
		if !strings.Contains(log.String(), " "+c+", ") {
			t.Errorf("log does not name compression %s:\n%s", c, log.String())
		}
	}
}

// zstdLayerOf returns a zstd-compressed layer of the tar data, compressed
// with the given encoder options.
func zstdLayerOf(t testing.TB, data []byte, opts ...zstd.EOption) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayerZStd))
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := l.MediaType(); mt != types.OCILayerZStd {
		t.Fatalf("layer media type %s, want zstd", mt)
	}
	return l
}

func TestUnpackStopsOnCancel(t *testing.T) {
	img := registrytest.Image(t, v1.Config{}, registrytest.LayerFromFiles(t, map[string]string{"f": "x"}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := image.Unpack(ctx, img, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("Unpack with a canceled context: %v, want context canceled", err)
	}
}

// failingLayer is a layer whose download fails after some bytes.
type failingLayer struct {
	v1.Layer
	after int
}

func (l failingLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, int64(l.after)), iotest.ErrReader(errors.New("connection reset by peer"))), rc}, nil
}

// stalledLayer is a layer whose download never starts: like a remote
// layer, it gives up when the context it was pulled with is done.
type stalledLayer struct {
	v1.Layer
	ctx context.Context
}

func (l stalledLayer) Compressed() (io.ReadCloser, error) {
	<-l.ctx.Done()
	return nil, l.ctx.Err()
}

// noisyTar returns a tar of n files of size bytes each that compress
// poorly, so that layers outgrow a small memory budget.
func noisyTar(t *testing.T, prefix string, n, size int, seed int64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	var entries []layertest.Entry
	for i := range n {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		entries = append(entries, layertest.File(fmt.Sprintf("%s/%03d", prefix, i), string(b), 0o644))
	}
	return layertest.Tar(t, entries...)
}

func TestUnpackManyLayersInATinyBudget(t *testing.T) {
	// More layers than the look-ahead, bigger than the budget, in every
	// compression: the applied layer must always make progress.
	var layers []v1.Layer
	for i := range 10 {
		data := noisyTar(t, fmt.Sprintf("l%d", i), 3, 1<<20+i, int64(i))
		extra := layertest.Tar(t, layertest.File("shared", fmt.Sprintf("layer %d", i), 0o644), layertest.Whiteout(fmt.Sprintf(".wh.l%d", i-2)))
		data = append(data[:len(data)-1024], extra...) // one tar: drop the first end-of-archive blocks
		switch i % 3 {
		case 0:
			layers = append(layers, gzipLayerOf(t, data))
		case 1:
			layers = append(layers, zstdLayerOf(t, data))
		default:
			layers = append(layers, static.NewLayer(data, types.OCIUncompressedLayer))
		}
	}
	img := registrytest.Image(t, v1.Config{}, layers...)
	root := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := image.UnpackWith(ctx, img, root, image.UnpackOptions{MemoryBudget: 1}); err != nil {
		t.Fatalf("UnpackWith: %v", err)
	}
	if got := layertest.ReadFile(t, filepath.Join(root, "shared")); got != "layer 9" {
		t.Errorf("shared = %q, want the top layer's", got)
	}
	for i := range 10 {
		p := filepath.Join(root, fmt.Sprintf("l%d/002", i))
		if i < 8 {
			layertest.MustNotExist(t, p)
		} else if st := layertest.Lstat(t, p); st.Size != 1<<20+int64(i) {
			t.Errorf("%s: size %d", p, st.Size)
		}
	}
}

// gzipLayerOf returns a gzip-compressed layer of the tar data.
func gzipLayerOf(t testing.TB, data []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestUnpackStopsAtACorruptLayer(t *testing.T) {
	good := static.NewLayer(layertest.Tar(t, layertest.File("one", "1", 0o644)), types.OCIUncompressedLayer)
	wrong := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)}
	bad := claimedDigest{static.NewLayer(layertest.Tar(t, layertest.File("two", "2", 0o644)), types.OCIUncompressedLayer), wrong}
	after := static.NewLayer(layertest.Tar(t, layertest.File("three", "3", 0o644)), types.OCIUncompressedLayer)
	img := registrytest.Image(t, v1.Config{}, good, bad, after)
	root := t.TempDir()
	err := image.UnpackWith(context.Background(), img, root, image.UnpackOptions{})
	if err == nil || !strings.Contains(err.Error(), "layer 2/3 "+wrong.String()) || !strings.Contains(err.Error(), "does not match its digest") {
		t.Fatalf("error %v, want a digest mismatch naming layer 2/3 %s", err, wrong)
	}
	if got := layertest.ReadFile(t, filepath.Join(root, "one")); got != "1" {
		t.Errorf("layer 1 not applied: one = %q", got)
	}
	layertest.MustNotExist(t, filepath.Join(root, "three")) // nothing of a layer above an unverified one
}

func TestUnpackFetchErrorNamesTheLayer(t *testing.T) {
	big := gzipLayerOf(t, noisyTar(t, "big", 2, 1<<20, 7))
	img := registrytest.Image(t, v1.Config{},
		static.NewLayer(layertest.Tar(t, layertest.File("one", "1", 0o644)), types.OCIUncompressedLayer),
		failingLayer{big, 100 << 10},
	)
	d, err := big.Digest()
	if err != nil {
		t.Fatal(err)
	}
	err = image.UnpackWith(context.Background(), img, t.TempDir(), image.UnpackOptions{})
	if err == nil || !strings.Contains(err.Error(), "layer 2/2 "+d.String()) || !strings.Contains(err.Error(), "fetch: connection reset by peer") {
		t.Errorf("error %v, want the fetch error naming layer 2/2 %s", err, d)
	}
}

func TestUnpackCancelWhileFetching(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	img := registrytest.Image(t, v1.Config{},
		static.NewLayer(layertest.Tar(t, layertest.File("one", "1", 0o644)), types.OCIUncompressedLayer),
		stalledLayer{gzipLayerOf(t, noisyTar(t, "big", 4, 1<<20, 8)), ctx},
	)
	time.AfterFunc(200*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() { done <- image.UnpackWith(ctx, img, t.TempDir(), image.UnpackOptions{}) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "layer 2/2") || !strings.Contains(err.Error(), "context canceled") {
			t.Errorf("error %v, want context canceled naming layer 2/2", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("UnpackWith did not return after its context was canceled")
	}
}

func TestUnpackRefusesDevicesUnlessAllowed(t *testing.T) {
	null := layertest.Entry{Header: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
	disk := layertest.Entry{Header: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Mode: 0o660, Devmajor: 8, Devminor: 0}}
	fifo := layertest.Entry{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o600}}
	base := gzipLayerOf(t, layertest.Tar(t, layertest.File("etc/os-release", "ID=test\n", 0o644), fifo))
	for _, tc := range []struct {
		dev   layertest.Entry
		words string
	}{{null, "character device node 1:3"}, {disk, "block device node 8:0"}} {
		devices := gzipLayerOf(t, layertest.Tar(t, tc.dev))
		d, err := devices.Digest()
		if err != nil {
			t.Fatal(err)
		}
		img := registrytest.Image(t, v1.Config{}, base, devices)
		root := t.TempDir()
		err = image.UnpackWith(context.Background(), img, root, image.UnpackOptions{})
		if err == nil {
			t.Fatalf("UnpackWith made device %s without AllowDevices", tc.dev.Name)
		}
		for _, want := range []string{"layer 2/2 " + d.String(), `entry "` + tc.dev.Name + `"`, tc.words, "not allowed"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		layertest.MustNotExist(t, filepath.Join(root, tc.dev.Name))
		if st := layertest.Lstat(t, filepath.Join(root, "run/fifo")); st.Mode&unix.S_IFMT != unix.S_IFIFO {
			t.Errorf("run/fifo mode %#o: FIFOs are allowed", st.Mode)
		}

		root = t.TempDir()
		if err := image.UnpackWith(context.Background(), img, root, image.UnpackOptions{AllowDevices: true}); err != nil {
			t.Fatalf("UnpackWith with AllowDevices: %v", err)
		}
		if st := layertest.Lstat(t, filepath.Join(root, tc.dev.Name)); st.Rdev != unix.Mkdev(uint32(tc.dev.Devmajor), uint32(tc.dev.Devminor)) {
			t.Errorf("%s: rdev %#x", tc.dev.Name, st.Rdev)
		}
		if err := image.Unpack(context.Background(), img, t.TempDir(), nil); err != nil {
			t.Errorf("Unpack (devices allowed): %v", err)
		}
	}
}

func TestUnpackHostileLayerNamesLayerAndEntry(t *testing.T) {
	base := layertest.Sandbox(t)
	root := filepath.Join(base, "root")
	before := layertest.OutsideSnapshot(t, base)
	hostile := gzipLayerOf(t, layertest.Tar(t, layertest.Symlink("link", filepath.Join(base, "sibling")), layertest.File("link/evil", "x", 0o644)))
	d, err := hostile.Digest()
	if err != nil {
		t.Fatal(err)
	}
	img := registrytest.Image(t, v1.Config{}, static.NewLayer(layertest.Tar(t, layertest.File("ok", "1", 0o644)), types.OCIUncompressedLayer), hostile)
	err = image.UnpackWith(context.Background(), img, root, image.UnpackOptions{})
	if err == nil || !strings.Contains(err.Error(), "layer 2/2 "+d.String()) || !strings.Contains(err.Error(), `entry "link/evil"`) {
		t.Errorf("error %v, want one naming layer 2/2 %s and entry link/evil", err, d)
	}
	if after := layertest.OutsideSnapshot(t, base); !slices.Equal(before, after) {
		t.Errorf("outside root changed:\nbefore %q\nafter  %q", before, after)
	}
}

func TestUnpackProgress(t *testing.T) {
	layers := []v1.Layer{
		gzipLayerOf(t, noisyTar(t, "a", 3, 1<<20, 1)),
		zstdLayerOf(t, layertest.Tar(t, layertest.File("b", "b", 0o644))),
		static.NewLayer(noisyTar(t, "c", 1, 300<<10, 3), types.OCIUncompressedLayer),
	}
	img := registrytest.Image(t, v1.Config{}, layers...)
	var events []image.LayerProgress
	err := image.UnpackWith(context.Background(), img, t.TempDir(), image.UnpackOptions{
		MemoryBudget: 4 << 20,
		Progress:     func(p image.LayerProgress) { events = append(events, p) }, // calls are serialized
	})
	if err != nil {
		t.Fatalf("UnpackWith: %v", err)
	}
	last := make([]image.LayerProgress, len(layers))
	for _, e := range events {
		if e.Count != len(layers) || e.Index < 1 || e.Index > len(layers) {
			t.Fatalf("event for layer %d/%d", e.Index, e.Count)
		}
		prev := last[e.Index-1]
		if e.State < prev.State || e.Fetched < prev.Fetched || e.Decompressed < prev.Decompressed || e.Decompressed > e.Fetched {
			t.Errorf("layer %d went from %+v to %+v", e.Index, prev, e)
		}
		last[e.Index-1] = e
	}
	for i, l := range layers {
		size, _ := l.Size()
		d, _ := l.Digest()
		p := last[i]
		if p.State != image.LayerDone || p.Digest != d || p.Size != size || p.Fetched != size || p.Decompressed != size || p.Unpacked < size/2 || p.Start.IsZero() {
			t.Errorf("layer %d ended as %+v, want done with %d bytes fetched and decompressed", i+1, p, size)
		}
	}
	if len(events) < 3*len(layers) {
		t.Errorf("%d progress events for %d layers, want at least fetching, applying and done for each", len(events), len(layers))
	}
}

func TestUnpackRefusesHugeZstdWindows(t *testing.T) {
	l := zstdLayerOf(t, layertest.Tar(t, layertest.File("f", strings.Repeat("x", 1<<20), 0o644)), zstd.WithWindowSize(64<<20))
	err := image.UnpackWith(context.Background(), registrytest.Image(t, v1.Config{}, l), t.TempDir(), image.UnpackOptions{})
	t.Logf("error: %v", err)
	if err == nil || !strings.Contains(err.Error(), "layer 1/1") || !strings.Contains(err.Error(), "zstd") || !strings.Contains(err.Error(), "window") {
		t.Errorf("error %v, want a zstd window error naming the layer", err)
	}
}

// BenchmarkUnpack unpacks a generated image of one 24 MB layer (600
// files, half text, half noise) per compression, from memory into a
// temporary directory: the decompression and apply pipeline without the
// network. bench/pull.sh measures the whole pull against other tools.
func BenchmarkUnpack(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var entries []layertest.Entry
	for i := range 600 {
		body := make([]byte, 40<<10)
		for j := range body {
			if i%2 == 0 {
				body[j] = "the quick brown fox jumps over the lazy dog\n"[j%44]
			} else {
				body[j] = byte(rng.IntN(256))
			}
		}
		entries = append(entries, layertest.File(fmt.Sprintf("d%02d/f%03d", i%20, i), string(body), 0o644))
	}
	data := layertest.Tar(b, entries...)
	for _, c := range []struct {
		name  string
		layer func() v1.Layer
	}{
		{"gzip", func() v1.Layer { return gzipLayerOf(b, data) }},
		{"zstd", func() v1.Layer { return zstdLayerOf(b, data) }},
		{"none", func() v1.Layer { return static.NewLayer(data, types.OCIUncompressedLayer) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := c.layer()
			blob, err := l.Compressed()
			if err != nil {
				b.Fatal(err)
			}
			raw, err := io.ReadAll(blob)
			if err != nil {
				b.Fatal(err)
			}
			// A layer that serves the blob from memory: no compression in the loop.
			img := registrytest.Image(b, v1.Config{}, memLayer{l, raw})
			base := b.TempDir()
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for i := range b.N {
				root := filepath.Join(base, fmt.Sprint(i))
				if err := os.Mkdir(root, 0o755); err != nil {
					b.Fatal(err)
				}
				if err := image.UnpackWith(context.Background(), img, root, image.UnpackOptions{}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := os.RemoveAll(root); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// memLayer serves a layer's blob from memory.
type memLayer struct {
	v1.Layer
	blob []byte
}

func (l memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}
