package rootfstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// gzipFormat versions the way Layer compresses; it is part of the
// cache file names.
const gzipFormat = 1

// compressTimeout bounds one compression.
const compressTimeout = 10 * time.Minute

// A compressor is a tool, the options Compress runs it with, the
// extension of its files and the version of the two, which is part of
// the cache file names.
type compressor struct {
	tool, pkg, ext string
	args           []string
	format         int
}

var compressors = map[string]compressor{
	"xz":   {tool: "xz", pkg: "xz-utils", ext: "xz", args: []string{"-T0", "-3", "--check=crc64"}, format: 1},
	"zstd": {tool: "zstd", pkg: "zstd", ext: "zst", args: []string{"-T0", "-3", "-q"}, format: 2},
	"gzip": {tool: "gzip", pkg: "gzip", ext: "gz", args: []string{"-6"}, format: 1},
}

// XZ is Compress(t, path, "xz").
func XZ(t testing.TB, path string) string {
	t.Helper()
	return Compress(t, path, "xz")
}

// Compress returns the path of a compressed copy of the tar (or any
// file) at path, made with the tool kind names ("xz": `xz -T0 -3
// --check=crc64`, "zstd": `zstd -T0 -3`, "gzip": `gzip -6`), which a
// cache miss requires. It is cached in CacheDir under the SHA-256 of
// the input, so a rerun with the same input, in the same or another
// test, reuses it.
func Compress(t testing.TB, path, kind string) string {
	t.Helper()
	c, ok := compressors[kind]
	if !ok {
		t.Fatalf("rootfstest: Compress: no compressor %q", kind)
	}
	sum, err := fileSHA256(path)
	if err != nil {
		t.Fatalf("rootfstest: Compress: %v", err)
	}
	out := filepath.Join(cacheDir(t), fmt.Sprintf("sha256-%s-%s%d.tar.%s", sum, c.ext, c.format, c.ext))
	return cached(t, out, func(ctx context.Context, tmp string) error {
		tool, err := exec.LookPath(c.tool)
		if err != nil {
			return fmt.Errorf("%s not found in $PATH: install the Debian package %s", c.tool, c.pkg)
		}
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		defer f.Close()
		ctx, cancel := context.WithTimeout(ctx, compressTimeout)
		defer cancel()
		var stderr bytes.Buffer
		// The file named, not on stdin: zstd then records the size in
		// the frame header, as `zstd root.tar` does.
		cmd := command(ctx, tool, append(slices.Clone(c.args), "-c", path)...)
		cmd.Stdout, cmd.Stderr = f, &stderr
		if err := run(cmd); err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%v)", err, context.Cause(ctx))
			}
			return fmt.Errorf("%s %s %s: %w: %s", c.tool, strings.Join(c.args, " "), path, err, strings.TrimSpace(stderr.String()))
		}
		return f.Close()
	})
}

// Layer returns a gzip-compressed OCI layer (media type
// application/vnd.oci.image.layer.v1.tar+gzip) holding the tar at path,
// for pushing as a one-layer image. The gzip blob (fastest level) is made
// once and cached in CacheDir under the SHA-256 of the tar, like XZ's
// output, so the layer's digests are file hashes and a push reads the
// blob as is instead of compressing the tar again.
func Layer(t testing.TB, path string) v1.Layer {
	t.Helper()
	sum, err := fileSHA256(path)
	if err != nil {
		t.Fatalf("rootfstest: Layer: %v", err)
	}
	out := filepath.Join(cacheDir(t), fmt.Sprintf("sha256-%s-gzip%d.tar.gz", sum, gzipFormat))
	blob := cached(t, out, func(ctx context.Context, tmp string) error {
		return gzipFile(ctx, path, tmp)
	})
	l, err := tarball.LayerFromFile(blob, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatalf("rootfstest: Layer of %s (blob %s): %v", path, blob, err)
	}
	return l
}

// gzipFile compresses the file src to dst at gzip's fastest level.
func gzipFile(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		n, rerr := in.Read(buf)
		if _, err := zw.Write(buf[:n]); err != nil {
			return fmt.Errorf("compress %s: %w", src, err)
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				break
			}
			return fmt.Errorf("read %s: %w", src, rerr)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress %s: %w", src, err)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}
