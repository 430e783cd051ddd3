package inflate

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
)

// benchInput is a gzip (level 6, as docker and pigz write layers) of a
// tar of Go's own source tree, up to 64 MB of tar: text and binary
// files as image layers have them.
func benchInput(b *testing.B) []byte {
	b.Helper()
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, 6)
	tw := tar.NewWriter(zw)
	size := 0
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Fatalf("go env GOROOT: %v", err)
	}
	root := filepath.Join(strings.TrimSpace(string(goroot)), "src")
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || size > 64<<20 {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		size += len(data)
		if err := tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		b.Fatalf("make the input from %s: %v", root, err)
	}
	return gz.Bytes()
}

// BenchmarkGunzip decompresses the same stream with this package,
// klauspost/compress/gzip and compress/gzip, side by side; MB/s are of
// decompressed bytes.
func BenchmarkGunzip(b *testing.B) {
	in := benchInput(b)
	z, err := NewReader(bytes.NewReader(in))
	if err != nil {
		b.Fatal(err)
	}
	plain, err := io.Copy(io.Discard, z)
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range []struct {
		name string
		open func(io.Reader) (io.Reader, error)
	}{
		{"inflate", func(r io.Reader) (io.Reader, error) { return NewReader(r) }},
		{"klauspost", func(r io.Reader) (io.Reader, error) { return kgzip.NewReader(bufio.NewReader(r)) }},
		{"stdlib", func(r io.Reader) (io.Reader, error) { return gzip.NewReader(bufio.NewReader(r)) }},
	} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(plain)
			for b.Loop() {
				r, err := d.open(bytes.NewReader(in))
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, r); err != nil || n != plain {
					b.Fatalf("%d bytes, %v", n, err)
				}
			}
		})
	}
}
