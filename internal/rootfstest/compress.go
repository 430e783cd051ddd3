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
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// xzFormat and gzipFormat version the way XZ and Layer compress (tool,
// options); they are part of the cache file names.
const (
	xzFormat   = 1
	gzipFormat = 1
)

// compressTimeout bounds one compression.
const compressTimeout = 10 * time.Minute

// XZ returns the path of an xz-compressed copy of the tar (or any file) at
// path, made with `xz -T0 -3 --check=crc64` (xz, Debian package
// xz-utils, which a cache miss requires). It is cached in CacheDir under
// the SHA-256 of the input, so a rerun with the same input, in the same or
// another test, reuses it.
func XZ(t testing.TB, path string) string {
	t.Helper()
	sum, err := fileSHA256(path)
	if err != nil {
		t.Fatalf("rootfstest: XZ: %v", err)
	}
	out := filepath.Join(cacheDir(t), fmt.Sprintf("sha256-%s-xz%d.tar.xz", sum, xzFormat))
	return cached(t, out, func(ctx context.Context, tmp string) error {
		xz, err := exec.LookPath("xz")
		if err != nil {
			return errors.New("xz not found in $PATH: install the Debian package xz-utils")
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		defer f.Close()
		ctx, cancel := context.WithTimeout(ctx, compressTimeout)
		defer cancel()
		var stderr bytes.Buffer
		cmd := command(ctx, xz, "-T0", "-3", "--check=crc64", "-c")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = in, f, &stderr
		if err := run(cmd); err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%v)", err, context.Cause(ctx))
			}
			return fmt.Errorf("xz -T0 -3 < %s: %w: %s", path, err, strings.TrimSpace(stderr.String()))
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
