package image

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ociboot/ociboot/internal/inflate"
)

// MagicLen is how many first bytes MagicCompression needs.
const MagicLen = 6

// MagicCompression names the compression that a file's or blob's first
// bytes (MagicLen of them, or all there are) show: "gzip", "zstd", "xz",
// or "" for none of them.
func MagicCompression(magic []byte) string {
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return "xz"
	}
	return ""
}

// zstdMaxWindow bounds the memory a zstd layer may ask of the decoder
// (twice over: the layer being applied and the next are decompressed at
// once), to keep an unpack's memory bounded. Every standard compression
// level (1 to 19) uses at most 8 MiB; frames with a bigger window (zstd
// --ultra -20 and up, --long=25 and up) are refused with an error.
const zstdMaxWindow = 16 << 20

// compression names a layer blob's compression, told by its first bytes
// (media types are not trusted: some registries and tools get them wrong).
type compression string

const (
	compressionNone compression = "uncompressed"
	compressionGzip compression = "gzip"
	compressionZstd compression = "zstd"
)

// sniffCompression peeks at the start of br.
func sniffCompression(br *bufio.Reader) (compression, error) {
	magic, err := br.Peek(MagicLen)
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read blob: %w", err)
	}
	switch MagicCompression(magic) {
	case "gzip":
		return compressionGzip, nil
	case "zstd":
		return compressionZstd, nil
	default:
		return compressionNone, nil
	}
}

// decompressor turns a blob into its tar stream; open may be called again
// for another blob, reusing the decoder's tables and window.
type decompressor struct {
	gz *inflate.Reader
	zs *zstd.Decoder
}

// open returns the tar stream of the blob read from br, compressed as c.
// The stream ends with an error if the compressed data is corrupt or
// truncated; when it ends cleanly the rest of br has been read too, so a
// verifying reader below br has checked the whole blob.
func (d *decompressor) open(br *bufio.Reader, c compression) (io.Reader, error) {
	switch c {
	case compressionGzip:
		if d.gz == nil {
			zr, err := inflate.NewReader(br)
			if err != nil {
				return nil, fmt.Errorf("gzip: %w", err)
			}
			d.gz = zr
		} else if err := d.gz.Reset(br); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return &drainAtEOF{r: d.gz, rest: br, what: "gzip"}, nil
	case compressionZstd:
		if d.zs == nil {
			// One goroutine: the pipeline already runs decompression
			// apart from file creation, and more would cost memory
			// (lowmem: buffers grow only as the frames need).
			zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderLowmem(true))
			if err != nil {
				return nil, fmt.Errorf("zstd: %w", err)
			}
			d.zs = zr
		} else if err := d.zs.Reset(br); err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return &drainAtEOF{r: d.zs, rest: br, what: "zstd"}, nil
	default:
		return br, nil
	}
}

// close releases the decoders.
func (d *decompressor) close() {
	if d.zs != nil {
		d.zs.Close()
	}
}

// drainAtEOF reads r and, when r ends, reads what is left of rest (the
// compressed stream under r), so that the end of the stream is the end of
// the blob.
type drainAtEOF struct {
	r    io.Reader
	rest io.Reader
	what string
	done bool
}

func (d *drainAtEOF) Read(p []byte) (int, error) {
	if d.done {
		return 0, io.EOF
	}
	n, err := d.r.Read(p)
	if err == io.EOF {
		d.done = true
		if _, err := io.Copy(io.Discard, d.rest); err != nil {
			return n, err
		}
		return n, io.EOF
	}
	if err != nil {
		return n, fmt.Errorf("%s: %w", d.what, err)
	}
	return n, nil
}
