package image

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Unpack applies the layers of img onto dir, bottom layer first. Each
// layer is streamed: fetched, decompressed (gzip, zstd or none) and
// applied in one pass, never held whole on disk or in memory; then the
// rest of its blob is read and the whole is checked against the layer
// digest before the next layer starts. One short line per layer goes to
// log (nil: none). On error dir holds a partly applied image: discard it.
func Unpack(ctx context.Context, img v1.Image, dir string, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("unpack into %s: list layers: %w", dir, err)
	}
	for i, l := range layers {
		start := time.Now()
		d, err := l.Digest()
		if err != nil {
			return fmt.Errorf("unpack into %s: layer %d/%d: digest: %w", dir, i+1, len(layers), err)
		}
		n, err := unpackLayer(ctx, l, d, dir)
		if err != nil {
			return fmt.Errorf("unpack layer %d/%d %s into %s: %w", i+1, len(layers), d, dir, err)
		}
		fmt.Fprintf(log, "layer %d/%d %.19s %s %.1fs\n", i+1, len(layers), d, formatSize(n), time.Since(start).Seconds())
	}
	return nil
}

// unpackLayer applies one layer and verifies its blob against digest d,
// returning the blob's size.
func unpackLayer(ctx context.Context, l v1.Layer, d v1.Hash, dir string) (int64, error) {
	h, err := v1.Hasher(d.Algorithm)
	if err != nil {
		return 0, fmt.Errorf("unsupported digest algorithm: %w", err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return 0, fmt.Errorf("fetch: %w", err)
	}
	defer rc.Close()

	blob := &countingReader{ctx: ctx, r: io.TeeReader(rc, h)}
	br := bufio.NewReaderSize(blob, 64<<10)
	tarStream, closeTar, err := decompress(br)
	if err != nil {
		return blob.n, err
	}
	err = ApplyLayer(tarStream, dir)
	closeTar()
	if err != nil {
		return blob.n, err
	}
	// Read what follows the tar's end so the digest covers the whole blob
	// (and a verifying reader from the source, like remote layers', checks too).
	if _, err := io.Copy(io.Discard, br); err != nil {
		return blob.n, fmt.Errorf("read rest of blob: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		return blob.n, fmt.Errorf("content does not match its digest: got %s:%s after %d bytes", d.Algorithm, got, blob.n)
	}
	return blob.n, nil
}

// decompress sniffs the blob's compression and returns the tar stream and
// a function that releases the decompressor.
func decompress(br *bufio.Reader) (io.Reader, func(), error) {
	magic, err := br.Peek(len(zstdMagic))
	if err != nil && err != io.EOF {
		return nil, nil, fmt.Errorf("read blob: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	default:
		return br, func() {}, nil
	}
}

// countingReader counts bytes and stops when ctx is done.
type countingReader struct {
	ctx context.Context
	r   io.Reader
	n   int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func formatSize(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
}
