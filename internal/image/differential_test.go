package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/layer"
	"github.com/ociboot/ociboot/internal/layer/layertest"
	"github.com/ociboot/ociboot/internal/store"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/registrytest"
	"golang.org/x/sys/unix"
)

// umociBinary is the reference applier of the differential test.
const umociBinary = registrytest.UmociBinary

// capNetRaw is a security.capability value (VFS_CAP_REVISION_2,
// effective) granting cap_net_raw, as setcap cap_net_raw+ep writes it.
var capNetRaw = string([]byte{0x01, 0, 0, 0x02, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

func withOwner(e layertest.Entry, uid, gid int) layertest.Entry { e.Uid, e.Gid = uid, gid; return e }

func withTime(e layertest.Entry, sec, nsec int64) layertest.Entry {
	e.ModTime = time.Unix(sec, nsec)
	e.Format = tar.FormatPAX // sub-second times need PAX
	return e
}

func withXattr(e layertest.Entry, k, v string) layertest.Entry {
	if e.PAXRecords == nil {
		e.PAXRecords = map[string]string{}
	}
	e.PAXRecords["SCHILY.xattr."+k] = v
	return e
}

func device(name string, kind byte, major, minor int64, mode int64) layertest.Entry {
	return layertest.Entry{Header: tar.Header{Typeflag: kind, Name: name, Mode: mode, Devmajor: major, Devminor: minor, ModTime: time.Unix(1e9, 0)}}
}

// differentialCases are images, bottom layer first, that exercise every
// layer semantic ociboot implements.
var differentialCases = []struct {
	name   string
	layers [][]layertest.Entry
	// umociDiffers lists, by path, the intentional differences with umoci.
	umociDiffers map[string]string
	// want holds, by path, text that ociboot's description of the layertest.Entry
	// must contain, so that a semantic both tools lost would not pass.
	want map[string]string
}{
	{"modes owners times", [][]layertest.Entry{{
		layertest.Dir("usr/", 0o755), layertest.Dir("usr/bin/", 0o755),
		withOwner(layertest.File("usr/bin/su", "su", 0o4755), 0, 42),
		withOwner(layertest.File("usr/bin/wall", "wall", 0o2755), 1000, 5),
		withTime(layertest.Dir("tmp/", 0o1777), 123456789, 0),
		layertest.File("tmp/later", "x", 0o600), // changes tmp's mtime after its layertest.Entry
		withOwner(withTime(layertest.File("home/u/nanos", "n", 0o640), 1600000000, 123456789), 1000, 1000),
		withOwner(withTime(layertest.Symlink("usr/bin/sh", "busybox"), 987654321, 0), 7, 8),
		layertest.File("deep/no/parents/f", "no directory entries above", 0o444),
		layertest.Dir("ro/", 0o555), layertest.File("ro/f", "inside a read-only directory", 0o644),
	}}, nil, map[string]string{
		"usr/bin/su": "file 4755 0:42", "usr/bin/wall": "file 2755 1000:5", "tmp": "dir 1777 0:0 mtime=1973-11-29T21:33:09Z",
		"home/u/nanos": "mtime=2020-09-13T12:26:40.123456789Z", "usr/bin/sh": `symlink 0777 7:8 -> "busybox" mtime=2001-04-19T04:25:21Z`,
		"ro": "dir 0555", "ro/f": "size=28",
	}},
	{"setgid directories", [][]layertest.Entry{{
		withOwner(layertest.Dir("shared/", 0o2775), 0, 50),
		withOwner(layertest.File("shared/root-owned", "r", 0o644), 0, 0), // not the directory's group
		withOwner(layertest.File("shared/group-owned", "g", 0o664), 0, 50),
		layertest.File("shared/implicit/f", "in a directory made for it", 0o644),
		withOwner(layertest.File("plain/f", "f", 0o644), 0, 50),
	}}, map[string]string{
		// umoci leaves a directory in which it made a missing directory
		// (shared/implicit) with the time of the unpack; ociboot sets the
		// time of its layertest.Entry, as for every directory.
		"shared": "mtime",
	}, map[string]string{"shared/implicit": "dir 2755 0:50", "shared/root-owned": "file 0644 0:0", "shared/group-owned": "file 0664 0:50", "plain/f": "file 0644 0:50"}},
	{"directory entry after its content", [][]layertest.Entry{{
		layertest.File("a/b/c", "c", 0o644),
		layertest.File("a/f", "f", 0o644),
		withOwner(withTime(layertest.Dir("a/b/", 0o700), 222222222, 0), 3, 4),
		withTime(layertest.Dir("a/", 0o750), 111111111, 0),
	}}, nil, map[string]string{"a": "dir 0750 0:0 mtime=1973-07-10T00:11:51Z", "a/b": "dir 0700 3:4 mtime=1977-01-16T00:23:42Z"}},
	{"whiteouts", [][]layertest.Entry{
		{layertest.File("a/x", "x", 0o644), layertest.File("a/y", "y", 0o644), layertest.File("a/d/deep/f", "f", 0o644), layertest.File("a/z", "z", 0o644), layertest.Symlink("a/l", "x")},
		{
			layertest.Whiteout("a/.wh.x"), layertest.Whiteout("a/.wh.d"), layertest.Whiteout("a/.wh.missing"), layertest.Whiteout("a/.wh.l"),
			layertest.Whiteout("a/.wh.z"), layertest.File("a/z", "z2", 0o600), // whiteout then re-add in one layer
			layertest.File("b/new", "n", 0o644),
		},
		{layertest.Whiteout(".wh.b"), layertest.File("a/y", "y3", 0o644)},
	}, nil, map[string]string{"a/z": "file 0600", "a/y": "size=2"}},
	{"opaque directories", [][]layertest.Entry{
		{layertest.File("d/old", "o", 0o644), layertest.File("d/sub/old2", "o", 0o644), layertest.File("d/keep", "lower", 0o644), layertest.Symlink("d/link", "old"), layertest.File("e/old", "o", 0o644), layertest.File("other/f", "f", 0o644)},
		{
			layertest.Whiteout("d/.wh..wh..opq"), layertest.Dir("d/", 0o750), layertest.File("d/new", "n", 0o644), layertest.File("d/sub/new2", "n", 0o644), layertest.File("d/keep", "upper", 0o644),
			layertest.File("e/new", "n", 0o644), layertest.Whiteout("e/.wh..wh..opq"), // marker last
		},
	}, map[string]string{
		// umoci leaves a directory that an opaque marker emptied with the
		// time of the unpack; ociboot gives it the time of its entry in
		// the layer, as it does for every directory (and as Docker does).
		"d": "mtime",
	}, map[string]string{"d": "dir 0750", "d/keep": "size=5", "e/new": "file"}},
	{"hard links", [][]layertest.Entry{
		{layertest.File("lower/f", "lower", 0o644), layertest.File("lower/g", "g", 0o755), layertest.Hardlink("lower/g2", "lower/g"), layertest.File("lower/h", "h", 0o644), layertest.Hardlink("lower/h2", "lower/h")},
		{
			layertest.File("bin/a", "A", 0o755), layertest.Hardlink("bin/b", "bin/a"), layertest.Hardlink("./bin/c", "./bin/a"),
			layertest.Hardlink("fromlower", "lower/f"),   // to a lower layer's file
			layertest.Whiteout("lower/.wh.g"),            // g2 survives the whiteout of its other name
			layertest.File("lower/h", "replaced", 0o600), // h2 keeps the old content
		},
		{layertest.Hardlink("late", "lower/g2"), layertest.Whiteout("lower/.wh.f")}, // fromlower survives f's whiteout
	}, nil, map[string]string{
		"bin/a": "links=bin/b,bin/c", "lower/g2": "links=late", "fromlower": "size=5", "lower/h2": "size=1", "lower/h": "size=8",
	}},
	{"hard links within layers", [][]layertest.Entry{
		{layertest.File("lower/g", "g", 0o755), layertest.Hardlink("lower/g2", "lower/g")},
		{layertest.File("bin/a", "A", 0o755), layertest.Hardlink("bin/b", "bin/a"), layertest.Whiteout("lower/.wh.g")},
	}, nil, map[string]string{"bin/a": "links=bin/b", "lower/g2": "size=1"}},
	{"symlinks", [][]layertest.Entry{
		{layertest.File("etc/real", "r", 0o644), layertest.Dir("dir/", 0o755), layertest.File("dir/in", "i", 0o644)},
		{
			layertest.Symlink("abs", "/etc/real"), layertest.Symlink("rel", "../etc/real"), layertest.Symlink("dangling", "nowhere/at/all"),
			layertest.Symlink("dirlink", "dir"), layertest.Symlink("loop", "loop"), layertest.Symlink("long", strings.Repeat("x/", 60)+"end"),
		},
	}, nil, map[string]string{"abs": `-> "/etc/real"`, "dangling": `-> "nowhere/at/all"`, "loop": `-> "loop"`}},
	{"devices and fifos", [][]layertest.Entry{{
		device("dev/null", tar.TypeChar, 1, 3, 0o666),
		withOwner(device("dev/loop9", tar.TypeBlock, 7, 9, 0o660), 0, 6),
		device("run/fifo", tar.TypeFifo, 0, 0, 0o620),
		device("dev/tty", tar.TypeChar, 5, 0, 0o2666),
	}}, nil, map[string]string{"dev/null": "char 0666 0:0 dev=1:3", "dev/loop9": "block 0660 0:6 dev=7:9", "run/fifo": "fifo 0620", "dev/tty": "char 2666"}},
	{"extended attributes", [][]layertest.Entry{{
		withXattr(layertest.File("usr/bin/ping", "ping", 0o755), "security.capability", capNetRaw),
		withXattr(withXattr(layertest.File("f", "f", 0o644), "user.origin", "test"), "user.empty", ""),
		withXattr(layertest.Dir("d/", 0o755), "user.dir", "yes"),
	}, {
		// A later layer replaces the file: the attributes of the old one go.
		layertest.File("f", "f2", 0o644),
		withOwner(withXattr(layertest.File("usr/bin/ping2", "ping2", 0o755), "security.capability", capNetRaw), 0, 0),
	}}, nil, map[string]string{
		"usr/bin/ping": "xattrs=security.capability=0100000200200000", "f": "file 0644 0:0 size=2 sha256=", "d": "xattrs=user.dir=796573",
		"usr/bin/ping2": "xattrs=security.capability=",
	}},
	{"replacements", [][]layertest.Entry{
		{
			layertest.File("dir2file/inner", "i", 0o644), layertest.File("file2dir", "f", 0o644), layertest.File("file2link", "f", 0o644),
			layertest.Symlink("link2dir", "/file2dir"), layertest.File("merge/lower", "l", 0o644), layertest.Dir("dir2link/", 0o755), layertest.File("dir2link/x", "x", 0o644),
			layertest.File("fifo2file", "", 0o644),
		},
		{
			layertest.File("dir2file", "now a file", 0o644),
			layertest.Dir("file2dir/", 0o711), layertest.File("file2dir/x", "x", 0o644),
			layertest.Symlink("file2link", "dir2file"),
			layertest.Dir("link2dir/", 0o755), layertest.File("link2dir/y", "y", 0o644),
			layertest.Dir("merge/", 0o700), layertest.File("merge/upper", "u", 0o644),
			layertest.Symlink("dir2link", "file2dir"),
			device("fifo2file", tar.TypeFifo, 0, 0, 0o644),
		},
	}, nil, map[string]string{"dir2file": "file", "file2dir": "dir 0711", "file2link": "symlink", "link2dir": "dir", "merge": "dir 0700", "dir2link": "symlink", "fifo2file": "fifo"}},
}

// notOverlay says, by case, why overlayfs cannot show the image as the
// plain unpack does: the image store refuses it, naming that.
var notOverlay = map[string]string{
	"hard links": `hard link to "lower/f", which is not in this layer`,
}

// TestDifferentialUmoci unpacks every case with ociboot and with umoci
// (from the same OCI layout, as root) and compares the trees entry by
// entry: type, mode, owner, size, content, link target, device number,
// hard link groups, extended attributes and modification times.
//
// Directories made for an entry below them, without an entry of their
// own, get the time of the unpack: any time after the test started
// compares equal. Intentional differences: the root directory itself is
// not compared (ociboot leaves the directory it is given as it is; umoci
// makes its own rootfs directory), and those listed in umociDiffers,
// which must show up (a fixed difference is a failure too, so that the
// list stays true).
func TestDifferentialUmoci(t *testing.T) {
	if _, err := os.Stat(umociBinary); err != nil {
		t.Fatalf("the differential test needs umoci (Debian package umoci): %v", err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the differential test runs as root: both appliers must keep owners and make device nodes")
	}
	t.Run("busybox image", func(t *testing.T) {
		top := registrytest.LayerFromFiles(t, map[string]string{"etc/added": "new\n", "bin/sh": "not a link any more"}, "etc/group", "tmp/")
		img := registrytest.BusyboxImage(t, top)
		start := time.Now()
		ours, theirs := unpackBoth(t, img)
		if diffs := compareTrees(t, ours, theirs, start, nil); len(diffs) > 0 {
			t.Errorf("ociboot (-) and umoci (+) differ:\n%s", strings.Join(diffs, "\n"))
		}
		if n := len(snapshot(t, ours, start)); n < 40 {
			t.Errorf("ociboot unpacked %d entries, want the whole busybox tree", n)
		}
		if diffs := compareTrees(t, overlayView(t, img), theirs, start, nil); len(diffs) > 0 {
			t.Errorf("ociboot's overlay view (-) and umoci (+) differ:\n%s", strings.Join(diffs, "\n"))
		}
	})
	// umoci's own images start with an entry for "/" and name the rest
	// relative to it; a leading "/" is dropped, as umoci does.
	t.Run("image made by umoci insert", func(t *testing.T) {
		src := t.TempDir()
		for p, content := range map[string]string{"etc/os-release": "ID=umoci\n", "bin/tool": "#!/bin/sh\n"} {
			if err := os.MkdirAll(filepath.Dir(filepath.Join(src, p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, p), []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("os-release", filepath.Join(src, "etc/release")); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(src, "bin/tool"), filepath.Join(src, "bin/tool2")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		img := registrytest.UmociImage(t, src)
		ours, theirs := unpackBoth(t, img)
		if diffs := compareTrees(t, ours, theirs, start, nil); len(diffs) > 0 {
			t.Errorf("ociboot (-) and umoci (+) differ:\n%s", strings.Join(diffs, "\n"))
		}
		if diffs := compareTrees(t, overlayView(t, img), theirs, start, nil); len(diffs) > 0 {
			t.Errorf("ociboot's overlay view (-) and umoci (+) differ:\n%s", strings.Join(diffs, "\n"))
		}
		got := snapshot(t, ours, start)
		for p, want := range map[string]string{"etc/os-release": "file 0755 0:0 size=9", "etc/release": `-> "os-release"`, "bin/tool": "links=bin/tool2"} {
			if n, ok := got[p]; !ok || !strings.Contains(n.String(), want) {
				t.Errorf("ociboot's %s: %v, want it to contain %q", p, n, want)
			}
		}
	})
	for _, tc := range differentialCases {
		t.Run(tc.name, func(t *testing.T) {
			var layers []v1.Layer
			for _, l := range tc.layers {
				layers = append(layers, gzipLayer(t, l))
			}
			img := registrytest.Image(t, v1.Config{}, layers...)
			start := time.Now()
			ours, theirs := unpackBoth(t, img)
			if diffs := compareTrees(t, ours, theirs, start, tc.umociDiffers); len(diffs) > 0 {
				t.Errorf("ociboot (-) and umoci (+) differ:\n%s", strings.Join(diffs, "\n"))
			}
			got := snapshot(t, ours, start)
			for p, want := range tc.want {
				if n, ok := got[p]; !ok || !strings.Contains(n.String(), want) {
					t.Errorf("ociboot's %s: %v, want it to contain %q", p, n, want)
				}
			}
			// The same image as the image store keeps it, one directory
			// per layer under overlayfs, must show the same tree; what
			// overlayfs cannot show must be refused.
			if why := notOverlay[tc.name]; why != "" {
				_, err := image.UnpackLayers(context.Background(), img, openStore(t), image.UnpackOptions{AllowDevices: true})
				if !errors.Is(err, layer.ErrNotOverlay) || !strings.Contains(err.Error(), why) {
					t.Errorf("UnpackLayers: %v; want layer.ErrNotOverlay for %s", err, why)
				}
				return
			}
			if diffs := compareTrees(t, overlayView(t, img), theirs, start, tc.umociDiffers); len(diffs) > 0 {
				t.Errorf("ociboot's overlay view (-) and umoci (+) differ:\n%s", strings.Join(diffs, "\n"))
			}
		})
	}
}

// openStore opens an image store in a temporary directory.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// overlayView unpacks img into an image store, a directory per layer,
// mounts them with overlayfs and returns the mount point.
func overlayView(t *testing.T, img v1.Image) string {
	t.Helper()
	dirs, err := image.UnpackLayers(context.Background(), img, openStore(t), image.UnpackOptions{AllowDevices: true})
	if err != nil {
		t.Fatalf("UnpackLayers: %v", err)
	}
	base := t.TempDir()
	mnt := filepath.Join(base, "rootfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := layer.MountOverlay(dirs, filepath.Join(base, "upper"), filepath.Join(base, "work"), mnt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmounting %s: %v", mnt, err)
		}
	})
	return mnt
}

// gzipLayer returns a gzip-compressed OCI layer holding entries, full
// headers kept (owners, times, devices, PAX records).
func gzipLayer(t *testing.T, entries []layertest.Entry) v1.Layer {
	t.Helper()
	data := layertest.Tar(t, entries...)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// unpackBoth writes img as an OCI layout, unpacks it with umoci and with
// ociboot (reading the layout's blobs) and returns both root directories.
func unpackBoth(t *testing.T, img v1.Image) (ours, theirs string) {
	t.Helper()
	base := t.TempDir()
	lp, err := layout.Write(filepath.Join(base, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "test"})); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(base, "bundle")
	if out, err := exec.Command(umociBinary, "unpack", "--image", filepath.Join(base, "layout")+":test", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	fromLayout, err := lp.Image(d)
	if err != nil {
		t.Fatal(err)
	}
	ours = filepath.Join(base, "ours")
	if err := os.Mkdir(ours, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := image.UnpackWith(context.Background(), fromLayout, ours, image.UnpackOptions{AllowDevices: true}); err != nil {
		t.Fatalf("UnpackWith: %v", err)
	}
	return ours, filepath.Join(bundle, "rootfs")
}

// node is what the differential test compares of one entry.
type node struct {
	kind     string
	perm     uint32
	uid, gid uint32
	size     int64
	content  string // sha256 of a regular file
	target   string // symlink target
	rdev     uint64
	links    string // the other names of a hard-linked file
	xattrs   string
	mtime    int64 // nanoseconds
}

func (n node) String() string {
	s := fmt.Sprintf("%s %04o %d:%d", n.kind, n.perm, n.uid, n.gid)
	switch n.kind {
	case "file":
		s += fmt.Sprintf(" size=%d sha256=%.12s", n.size, n.content)
	case "symlink":
		s += fmt.Sprintf(" -> %q", n.target)
	case "char", "block":
		s += fmt.Sprintf(" dev=%d:%d", unix.Major(n.rdev), unix.Minor(n.rdev))
	}
	if n.links != "" {
		s += " links=" + n.links
	}
	if n.xattrs != "" {
		s += " xattrs=" + n.xattrs
	}
	if n.mtime == unpackTime {
		return s + " mtime=(unpack time)"
	}
	return s + fmt.Sprintf(" mtime=%s", time.Unix(0, n.mtime).UTC().Format(time.RFC3339Nano))
}

// unpackTime stands for any modification time set during the test.
const unpackTime = -1

// snapshot describes every entry below root (root itself left out);
// modification times after start are all the same "unpack time".
func snapshot(t *testing.T, root string, start time.Time) map[string]node {
	t.Helper()
	nodes := map[string]node{}
	byInode := map[uint64][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := node{perm: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid, mtime: st.Mtim.Nano()}
		if n.mtime >= start.UnixNano() {
			n.mtime = unpackTime
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			n.kind, n.size = "file", st.Size
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			n.content = hex.EncodeToString(sum[:])
			if st.Nlink > 1 {
				byInode[st.Ino] = append(byInode[st.Ino], rel)
			}
		case unix.S_IFDIR:
			n.kind = "dir"
		case unix.S_IFLNK:
			n.kind = "symlink"
			if n.target, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFCHR:
			n.kind, n.rdev = "char", st.Rdev
		case unix.S_IFBLK:
			n.kind, n.rdev = "block", st.Rdev
		case unix.S_IFIFO:
			n.kind = "fifo"
		default:
			n.kind = fmt.Sprintf("mode %#o", st.Mode)
		}
		n.xattrs = listXattrs(t, p)
		nodes[rel] = n
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	for _, names := range byInode {
		sort.Strings(names)
		for _, name := range names {
			n := nodes[name]
			n.links = strings.Join(slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == name }), ",")
			nodes[name] = n
		}
	}
	return nodes
}

// listXattrs returns "name=value" pairs of p's extended attributes, sorted,
// without following a symlink.
func listXattrs(t *testing.T, p string) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("llistxattr %s: %v", p, err)
	}
	var pairs []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		val := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, name, val)
		if err != nil {
			t.Fatalf("lgetxattr %s %s: %v", p, name, err)
		}
		pairs = append(pairs, fmt.Sprintf("%s=%x", name, val[:m]))
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ";")
}

// compareTrees lists the differences between the trees at a and b, with
// times after start shown as "unpack time", but for the fields that
// allowed names by path: those must differ.
func compareTrees(t *testing.T, a, b string, start time.Time, allowed map[string]string) []string {
	t.Helper()
	na, nb := snapshot(t, a, start), snapshot(t, b, start)
	if len(na) == 0 {
		return []string{"ociboot's tree is empty"}
	}
	var names []string
	for k := range na {
		names = append(names, k)
	}
	for k := range nb {
		if _, ok := na[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var diffs []string
	for _, name := range names {
		x, okx := na[name]
		y, oky := nb[name]
		switch {
		case !okx:
			diffs = append(diffs, fmt.Sprintf("+ %s: %s", name, y))
		case !oky:
			diffs = append(diffs, fmt.Sprintf("- %s: %s", name, x))
		case allowed[name] == "mtime":
			if x.mtime == y.mtime {
				diffs = append(diffs, fmt.Sprintf("  %s: same mtime, but listed as an intentional difference", name))
			}
			x.mtime, y.mtime = 0, 0
			fallthrough
		default:
			if x.String() != y.String() {
				diffs = append(diffs, fmt.Sprintf("- %s: %s\n+ %s: %s", name, x, name, y))
			}
		}
	}
	return diffs
}
