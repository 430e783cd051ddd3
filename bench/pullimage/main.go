// Command pullimage builds the image of the pull benchmark (bench/pull.sh)
// from a Debian root filesystem tarball and pushes it to a registry on
// 127.0.0.1. The image has three gzip layers, like a real one:
//
//  1. the root filesystem as it is;
//  2. an "installed application": a copy of usr/lib/x86_64-linux-gnu
//     under opt/app/lib, usr/share/doc and usr/share/man deleted
//     (whiteouts), usr/share/locale emptied (opaque) but for locale.alias,
//     etc/motd changed;
//  3. opt/app/bin: copies of usr/bin's regular files, each with a hard
//     link alias in the same layer, hard links to lower-layer files, and
//     whiteouts of a lower file and of one file of layer 2.
//
// It writes the layer blobs as DIR/layer-N.tar.gz too, for the tar floor.
//
//	pullimage -rootfs ROOTFS.tar.gz -out DIR -push 127.0.0.1:PORT/bench/debian:1
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	rootfs := flag.String("rootfs", "", "root filesystem tarball (gzip)")
	out := flag.String("out", "", "directory for layer-N.tar.gz")
	push := flag.String("push", "", "reference to push to (plain HTTP, 127.0.0.1 only)")
	flag.Parse()
	if *rootfs == "" || *out == "" || *push == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*rootfs, *out, *push); err != nil {
		fmt.Fprintln(os.Stderr, "pullimage:", err)
		os.Exit(1)
	}
}

// file is a regular file of the base layer.
type file struct {
	hdr  tar.Header
	body []byte
}

func run(rootfs, out, push string) error {
	ref, err := name.ParseReference(push, name.Insecure)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(ref.Context().RegistryStr(), "127.0.0.1:") {
		return fmt.Errorf("%s: only a registry on 127.0.0.1 is allowed", push)
	}
	base, err := os.ReadFile(rootfs)
	if err != nil {
		return err
	}
	files, err := regularFiles(base)
	if err != nil {
		return fmt.Errorf("%s: %w", rootfs, err)
	}
	l2, err := layer2(files)
	if err != nil {
		return err
	}
	l3, err := layer3(files)
	if err != nil {
		return err
	}
	blobs := [][]byte{base, l2, l3}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i, b := range blobs {
		p := filepath.Join(out, fmt.Sprintf("layer-%d.tar.gz", i+1))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		l, err := tarball.LayerFromFile(p, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Cmd = []string{"/bin/bash"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push %s: %w", push, err)
	}
	d, _ := img.Digest()
	fmt.Printf("pushed %s@%s\n", ref, d)
	return nil
}

// regularFiles lists the regular files of the base layer by clean name.
func regularFiles(gz []byte) (map[string]file, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	files := map[string]file{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		files[name] = file{hdr: *hdr, body: body}
	}
}

// under returns the names of files directly or indirectly below dir, sorted.
func under(files map[string]file, dir string) []string {
	var names []string
	for n := range files {
		if strings.HasPrefix(n, dir+"/") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// layerWriter writes a gzip-compressed tar.
type layerWriter struct {
	buf  bytes.Buffer
	zw   *gzip.Writer
	tw   *tar.Writer
	dirs map[string]bool
	err  error
}

func newLayer() *layerWriter {
	w := &layerWriter{dirs: map[string]bool{}}
	w.zw = gzip.NewWriter(&w.buf)
	w.tw = tar.NewWriter(w.zw)
	return w
}

var mtime = time.Unix(1700000000, 0)

func (w *layerWriter) header(h *tar.Header, body []byte) {
	if w.err != nil {
		return
	}
	for _, d := range parents(h.Name) {
		if !w.dirs[d] {
			w.dirs[d] = true
			w.header(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime}, nil)
		}
	}
	h.Format = tar.FormatPAX
	if w.err = w.tw.WriteHeader(h); w.err == nil && body != nil {
		_, w.err = w.tw.Write(body)
	}
}

// parents returns the ancestors of name, outermost first.
func parents(name string) []string {
	var ps []string
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		ps = append([]string{d}, ps...)
	}
	return ps
}

func (w *layerWriter) file(name string, body []byte, mode int64) {
	w.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(body)), Mode: mode, ModTime: mtime}, body)
}

// hardlink writes a hard link entry with its target's metadata, as tar
// writers do (some appliers set it on the shared inode).
func (w *layerWriter) hardlink(name, target string, like tar.Header) {
	w.header(&tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: like.Mode, Uid: like.Uid, Gid: like.Gid, ModTime: like.ModTime}, nil)
}

func (w *layerWriter) whiteout(name string) {
	w.file(path.Join(path.Dir(name), ".wh."+path.Base(name)), nil, 0o644)
}

func (w *layerWriter) close() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	if err := w.tw.Close(); err != nil {
		return nil, err
	}
	if err := w.zw.Close(); err != nil {
		return nil, err
	}
	return w.buf.Bytes(), nil
}

func layer2(files map[string]file) ([]byte, error) {
	w := newLayer()
	libs := under(files, "usr/lib/x86_64-linux-gnu")
	if len(libs) == 0 {
		return nil, fmt.Errorf("no usr/lib/x86_64-linux-gnu in the root filesystem")
	}
	for _, n := range libs {
		f := files[n]
		w.file("opt/app/lib/"+strings.TrimPrefix(n, "usr/lib/x86_64-linux-gnu/"), f.body, f.hdr.Mode)
	}
	w.whiteout("usr/share/doc")
	w.whiteout("usr/share/man")
	w.file("usr/share/locale/.wh..wh..opq", nil, 0o644)
	if f, ok := files["usr/share/locale/locale.alias"]; ok {
		w.file("usr/share/locale/locale.alias", f.body, f.hdr.Mode)
	}
	w.file("etc/motd", []byte("benchmark image, layer 2\n"), 0o644)
	return w.close()
}

func layer3(files map[string]file) ([]byte, error) {
	w := newLayer()
	bins := under(files, "usr/bin")
	for _, n := range bins {
		f := files[n]
		name := "opt/app/bin/" + path.Base(n)
		w.file(name, f.body, f.hdr.Mode)
		w.hardlink(name+".alias", name, tar.Header{Mode: f.hdr.Mode, ModTime: mtime})
	}
	// Hard links to files of the lower layers.
	for _, n := range bins[:min(len(bins), 50)] {
		w.hardlink("usr/local/bin/"+path.Base(n), n, files[n].hdr)
	}
	w.whiteout("usr/bin/perl")
	if libs := under(files, "usr/lib/x86_64-linux-gnu"); len(libs) > 0 {
		w.whiteout("opt/app/lib/" + strings.TrimPrefix(libs[0], "usr/lib/x86_64-linux-gnu/"))
	}
	return w.close()
}
