package image_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/registrytest"
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
	good := static.NewLayer(tarOf(t, file("f", "content", 0o644)), types.OCIUncompressedLayer)
	img := registrytest.Image(t, v1.Config{}, claimedDigest{good, wrong})
	err := image.Unpack(context.Background(), img, t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), wrong.String()) || !strings.Contains(err.Error(), "does not match its digest") {
		t.Errorf("error %v, want a digest mismatch naming %s", err, wrong)
	}
}

func TestUnpackCompressions(t *testing.T) {
	// gzip (LayerFromFiles) under zstd and uncompressed layers.
	tr := tarOf(t, file("etc/zstd", "z", 0o644), whiteout("etc/.wh.gz"))
	zstdLayer := zstdLayerOf(t, tr)
	img := registrytest.Image(t, v1.Config{},
		registrytest.LayerFromFiles(t, map[string]string{"etc/gz": "g", "etc/keep": "k"}),
		zstdLayer,
		static.NewLayer(tarOf(t, file("etc/raw", "r", 0o644)), types.OCIUncompressedLayer),
	)
	root := t.TempDir()
	var log bytes.Buffer
	if err := image.Unpack(context.Background(), img, root, &log); err != nil {
		t.Fatalf("Unpack: %v", err)
	}
	mustNotExist(t, filepath.Join(root, "etc/gz"))
	for p, want := range map[string]string{"etc/keep": "k", "etc/zstd": "z", "etc/raw": "r"} {
		if got := readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if n := strings.Count(log.String(), "\n"); n != 3 {
		t.Errorf("log has %d lines, want 3:\n%s", n, log.String())
	}
}

// zstdLayerOf returns a zstd-compressed layer of the tar data.
func zstdLayerOf(t *testing.T, data []byte) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
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

// BenchmarkApplyLayer applies a generated 72 MB layer (64 files of 1 MiB,
// 2000 files of 4 KiB in 40 directories).
func BenchmarkApplyLayer(b *testing.B) {
	var entries []entry
	big := strings.Repeat("x", 1<<20)
	for i := range 64 {
		entries = append(entries, file(fmt.Sprintf("big/%02d", i), big, 0o644))
	}
	small := strings.Repeat("y", 4<<10)
	for i := range 2000 {
		entries = append(entries, file(fmt.Sprintf("small/%02d/%04d", i%40, i), small, 0o644))
	}
	data := tarOf(b, entries...)
	b.SetBytes(int64(len(data)))
	base := b.TempDir()
	b.ResetTimer()
	for i := range b.N {
		root := filepath.Join(base, fmt.Sprint(i))
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := image.ApplyLayer(bytes.NewReader(data), root); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
