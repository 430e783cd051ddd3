package registrytest

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxPath is the static busybox copied into BusyboxImage (Debian
// package busybox-static).
const BusyboxPath = "/bin/busybox"

// applets are the busybox applets BusyboxImage links in /bin.
var applets = []string{
	"sh", "ash", "echo", "cat", "ls", "test", "[", "sleep", "true", "false",
	"env", "id", "mkdir", "rm", "cp", "mv", "ln", "touch", "grep", "sed",
	"head", "tail", "wc", "stat", "uname", "mount", "umount", "hostname",
	"ps", "kill", "poweroff", "reboot", "halt",
}

// BusyboxPathEnv is the PATH set in BusyboxImage's config.
const BusyboxPathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Entry is one tar entry of a crafted layer.
type Entry struct {
	Name     string
	Typeflag byte  // tar.TypeReg if zero
	Mode     int64 // 0644 (files) or 0755 (directories) if zero
	Body     string
	Linkname string // symlink or hard link target
}

// Tar returns an uncompressed tar holding entries in order, with mtime 0
// and owner 0:0.
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.Name, Typeflag: e.Typeflag, Mode: e.Mode, Linkname: e.Linkname, ModTime: time.Unix(0, 0)}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("registrytest: tar entry %q: %v", e.Name, err)
		}
		if _, err := io.WriteString(tw, e.Body); err != nil {
			t.Fatalf("registrytest: tar entry %q: %v", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatalf("registrytest: close tar: %v", err)
	}
	return buf.Bytes()
}

// Layer returns a gzip-compressed OCI layer holding entries.
func Layer(t testing.TB, entries ...Entry) v1.Layer {
	t.Helper()
	data := Tar(t, entries...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatalf("registrytest: layer: %v", err)
	}
	return l
}

// LayerFromFiles returns a layer holding files (path → content, mode 0644,
// 0755 for a script, whose content starts with "#!"; parent directories
// 0755) and a whiteout for each deleted path; a
// deleted path ending in "/" gets an opaque marker instead.
func LayerFromFiles(t testing.TB, files map[string]string, deleted ...string) v1.Layer {
	t.Helper()
	var entries []Entry
	dirs := map[string]bool{}
	addDirs := func(p string) {
		var parents []string
		for d := path.Dir(p); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			entries = append(entries, Entry{Name: parents[i] + "/", Typeflag: tar.TypeDir})
		}
	}
	for _, d := range deleted {
		d = strings.TrimPrefix(d, "/")
		name := path.Join(path.Dir(d), ".wh."+path.Base(d))
		if strings.HasSuffix(d, "/") {
			name = path.Join(d, ".wh..wh..opq")
		}
		addDirs(name)
		entries = append(entries, Entry{Name: name})
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := strings.TrimPrefix(n, "/")
		addDirs(p)
		e := Entry{Name: p, Body: files[n]}
		if strings.HasPrefix(e.Body, "#!") {
			e.Mode = 0o755
		}
		entries = append(entries, e)
	}
	return Layer(t, entries...)
}

// BusyboxImage returns a linux image for the host's architecture whose
// base layer holds the host's static busybox as /bin/busybox, symlinks
// for common applets (sh, echo, cat, ls, test, sleep, poweroff, ...), /etc/passwd, /etc/group and /etc/os-release, followed by
// extra. Its config runs "sh" with BusyboxPathEnv.
func BusyboxImage(t testing.TB, extra ...v1.Layer) v1.Image {
	t.Helper()
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		t.Fatalf("registrytest: busybox image needs a static busybox (package busybox-static): %v", err)
	}
	entries := []Entry{
		{Name: "bin/", Typeflag: tar.TypeDir},
		{Name: "bin/busybox", Mode: 0o755, Body: string(bb)},
	}
	for _, a := range applets {
		entries = append(entries, Entry{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Mode: 0o777, Linkname: "busybox"})
	}
	entries = append(entries,
		Entry{Name: "dev/", Typeflag: tar.TypeDir},
		Entry{Name: "etc/", Typeflag: tar.TypeDir},
		Entry{Name: "etc/passwd", Body: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		Entry{Name: "etc/group", Body: "root:x:0:\nnogroup:x:65534:\n"},
		Entry{Name: "etc/os-release", Body: "NAME=\"ociboot test busybox\"\nID=busybox\nPRETTY_NAME=\"ociboot test busybox\"\n"},
		Entry{Name: "proc/", Typeflag: tar.TypeDir},
		Entry{Name: "root/", Typeflag: tar.TypeDir, Mode: 0o700},
		Entry{Name: "sys/", Typeflag: tar.TypeDir},
		Entry{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777},
	)
	return Image(t, v1.Config{Cmd: []string{"sh"}, Env: []string{BusyboxPathEnv}}, append([]v1.Layer{Layer(t, entries...)}, extra...)...)
}

// Image returns an OCI image for linux/runtime.GOARCH made of layers
// (bottom first) with config cfg.
func Image(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatalf("registrytest: append layers: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("registrytest: config: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", runtime.GOARCH, cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatalf("registrytest: set config: %v", err)
	}
	return img
}

// PlatformIndex returns an OCI image index holding, for each platform, the
// image made by imageFor with its config and descriptor set to that
// platform.
func PlatformIndex(t testing.TB, imageFor func(v1.Platform) v1.Image, platforms ...v1.Platform) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		img := imageFor(p)
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatalf("registrytest: config of the %s image: %v", p, err)
		}
		cf = cf.DeepCopy()
		cf.Architecture, cf.Variant = p.Architecture, p.Variant
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatalf("registrytest: setting the %s image's platform: %v", p, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return idx
}

// UmociBinary builds UmociImage (Debian package umoci).
const UmociBinary = "/usr/bin/umoci"

// UmociImage returns the one-layer image that umoci itself makes of the
// directory src (`umoci insert --image L:T SRC /`): its layer starts with
// an entry for "/" and names the rest relative to it, as umoci writes
// images.
func UmociImage(t testing.TB, src string) v1.Image {
	t.Helper()
	lay := filepath.Join(t.TempDir(), "layout")
	for _, args := range [][]string{{"init", "--layout", lay}, {"new", "--image", lay + ":t"}, {"insert", "--image", lay + ":t", src, "/"}} {
		if out, err := exec.Command(UmociBinary, args...).CombinedOutput(); err != nil {
			t.Fatalf("registrytest: umoci %s: %v\n%s", args[0], err, out)
		}
	}
	p, err := layout.FromPath(lay)
	if err != nil {
		t.Fatalf("registrytest: umoci's layout: %v", err)
	}
	index, err := p.ImageIndex()
	if err != nil {
		t.Fatalf("registrytest: umoci's layout: %v", err)
	}
	m, err := index.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("registrytest: umoci's layout holds %d images (%v), want 1", len(m.Manifests), err)
	}
	img, err := p.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatalf("registrytest: umoci's image: %v", err)
	}
	return img
}
