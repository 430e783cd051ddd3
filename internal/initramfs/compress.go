package initramfs

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression is how the archive is compressed.
type Compression string

// The compressions the kernel's initramfs unpacker takes.
const (
	Zstd Compression = "zstd"
	Gzip Compression = "gzip"
	XZ   Compression = "xz"
	None Compression = "none"
)

// ParseCompression checks a compression name; "" means Zstd.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case "":
		return Zstd, nil
	case Zstd, Gzip, XZ, None:
		return c, nil
	}
	return "", fmt.Errorf("compression %q is not supported; want zstd, gzip, xz or none", s)
}

// compressor wraps w in c's encoder. All encoders are single-threaded with
// fixed settings, so the same input gives the same bytes. Close flushes the
// encoder but does not close w.
func compressor(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Zstd:
		return zstd.NewWriter(w,
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
	case Gzip:
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	case XZ:
		// The kernel's xz decoder takes CRC32 or no check, not the
		// CRC64 default.
		return xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(w)
	case None:
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("compression %q is not supported; want zstd, gzip, xz or none", c)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
