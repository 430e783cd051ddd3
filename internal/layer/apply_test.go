package layer_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/layer/layertest"

	"github.com/ociboot/ociboot/internal/layer"
	"golang.org/x/sys/unix"
)

func apply(t testing.TB, root string, entries ...layertest.Entry) {
	t.Helper()
	if err := layer.Apply(bytes.NewReader(layertest.Tar(t, entries...)), root); err != nil {
		t.Fatalf("ApplyLayer: %v", err)
	}
}

func TestApplyFilesModesOwnersTimes(t *testing.T) {
	root := t.TempDir()
	suid := layertest.File("usr/bin/su", "su", 0o4755)
	suid.Uid, suid.Gid = 0, 42
	sgid := layertest.File("usr/bin/wall", "wall", 0o2755)
	sgid.Uid, sgid.Gid = 1000, 5
	sgid.PAXRecords = map[string]string{"SCHILY.xattr.user.origin": "test"}
	tmp := layertest.Dir("tmp/", 0o1777)
	tmp.ModTime = time.Unix(123456789, 0)
	link := layertest.Symlink("usr/bin/sh", "busybox")
	link.Uid, link.Gid = 7, 8
	link.ModTime = time.Unix(987654321, 0)
	apply(t, root,
		layertest.Dir("usr/", 0o755), suid, sgid, tmp,
		layertest.File("tmp/later", "x", 0o600), // changes tmp's mtime after its layertest.Entry
		link,
		layertest.File("deep/no/parents/f", "f", 0o640),
	)

	cases := []struct {
		path           string
		mode, uid, gid uint32
	}{
		{"usr/bin/su", unix.S_IFREG | 0o4755, 0, 42},
		{"usr/bin/wall", unix.S_IFREG | 0o2755, 1000, 5},
		{"tmp", unix.S_IFDIR | 0o1777, 0, 0},
		{"usr/bin/sh", unix.S_IFLNK | 0o777, 7, 8},
		{"deep/no/parents", unix.S_IFDIR | 0o755, 0, 0},
		{"deep/no/parents/f", unix.S_IFREG | 0o640, 0, 0},
	}
	for _, c := range cases {
		st := layertest.Lstat(t, filepath.Join(root, c.path))
		if st.Mode != c.mode || st.Uid != c.uid || st.Gid != c.gid {
			t.Errorf("%s: mode %#o owner %d:%d, want %#o %d:%d", c.path, st.Mode, st.Uid, st.Gid, c.mode, c.uid, c.gid)
		}
	}
	if got := layertest.ReadFile(t, filepath.Join(root, "usr/bin/su")); got != "su" {
		t.Errorf("su content %q", got)
	}
	if st := layertest.Lstat(t, filepath.Join(root, "usr/bin/su")); st.Mtim.Sec != 1e9 {
		t.Errorf("file mtime %d, want 1e9", st.Mtim.Sec)
	}
	if st := layertest.Lstat(t, filepath.Join(root, "tmp")); st.Mtim.Sec != 123456789 {
		t.Errorf("directory mtime %d, want 123456789 (set after its contents)", st.Mtim.Sec)
	}
	if st := layertest.Lstat(t, filepath.Join(root, "usr/bin/sh")); st.Mtim.Sec != 987654321 {
		t.Errorf("symlink mtime %d, want 987654321 (on the link itself)", st.Mtim.Sec)
	}
	if target, _ := os.Readlink(filepath.Join(root, "usr/bin/sh")); target != "busybox" {
		t.Errorf("symlink target %q", target)
	}
	if xattrsWork(t) {
		buf := make([]byte, 64)
		n, err := unix.Getxattr(filepath.Join(root, "usr/bin/wall"), "user.origin", buf)
		if err != nil || string(buf[:n]) != "test" {
			t.Errorf("xattr user.origin = %q, %v; want \"test\"", buf[:n], err)
		}
	}
}

// xattrsWork tells whether the test directory's filesystem takes user xattrs.
func xattrsWork(t *testing.T) bool {
	p := filepath.Join(t.TempDir(), "probe")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(p, "user.probe", []byte("1"), 0); err != nil {
		t.Logf("filesystem has no user xattrs (%v): xattr check left out", err)
		return false
	}
	return true
}

func TestApplyWhiteout(t *testing.T) {
	root := t.TempDir()
	apply(t, root, layertest.File("a/x", "x", 0o644), layertest.File("a/y", "y", 0o644), layertest.File("a/d/deep/f", "f", 0o644), layertest.File("a/z", "z", 0o644))
	apply(t, root,
		layertest.Whiteout("a/.wh.x"),
		layertest.Whiteout("a/.wh.d"),
		layertest.Whiteout("a/.wh.missing"),
		layertest.Whiteout("nodir/.wh.missing"),
		layertest.File("a/new", "n", 0o644),
		layertest.Whiteout("a/.wh.new"), // hides lower layers only: new stays
		layertest.Whiteout("a/.wh.z"),
		layertest.File("a/z", "z2", 0o644), // whiteout then re-add in one layer
	)
	layertest.MustNotExist(t, filepath.Join(root, "a/x"))
	layertest.MustNotExist(t, filepath.Join(root, "a/d"))
	layertest.MustNotExist(t, filepath.Join(root, "a/.wh.x"))
	layertest.MustNotExist(t, filepath.Join(root, "nodir"))
	if got := layertest.ReadFile(t, filepath.Join(root, "a/y")); got != "y" {
		t.Errorf("a/y = %q", got)
	}
	if got := layertest.ReadFile(t, filepath.Join(root, "a/new")); got != "n" {
		t.Errorf("a/new = %q, want it kept", got)
	}
	if got := layertest.ReadFile(t, filepath.Join(root, "a/z")); got != "z2" {
		t.Errorf("a/z = %q, want z2", got)
	}
}

func TestApplyOpaque(t *testing.T) {
	lower := []layertest.Entry{
		layertest.File("d/old", "o", 0o644), layertest.File("d/sub/old2", "o", 0o644), layertest.File("d/keepname", "lower", 0o644),
		layertest.Symlink("d/link", "old"), layertest.File("other/f", "f", 0o644),
	}
	upper := []layertest.Entry{
		layertest.Dir("d/", 0o750),
		layertest.File("d/new", "n", 0o644),
		layertest.File("d/sub/new2", "n", 0o644), // no d/sub/ entry: merged into the lower d/sub
		layertest.File("d/keepname", "upper", 0o644),
	}
	marker := layertest.Whiteout("d/.wh..wh..opq")
	for _, tc := range []struct {
		name    string
		entries []layertest.Entry
	}{
		{"marker first", append([]layertest.Entry{marker}, upper...)},
		{"marker last", append(slices.Clone(upper), marker)},
		{"marker between", append(append(slices.Clone(upper[:2]), marker), upper[2:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			apply(t, root, lower...)
			apply(t, root, tc.entries...)
			layertest.MustNotExist(t, filepath.Join(root, "d/old"))
			layertest.MustNotExist(t, filepath.Join(root, "d/sub/old2"))
			layertest.MustNotExist(t, filepath.Join(root, "d/link"))
			layertest.MustNotExist(t, filepath.Join(root, "d/.wh..wh..opq"))
			for p, want := range map[string]string{"d/new": "n", "d/sub/new2": "n", "d/keepname": "upper", "other/f": "f"} {
				if got := layertest.ReadFile(t, filepath.Join(root, p)); got != want {
					t.Errorf("%s = %q, want %q", p, got, want)
				}
			}
			if st := layertest.Lstat(t, filepath.Join(root, "d")); st.Mode&0o7777 != 0o750 {
				t.Errorf("d mode %#o, want 0750", st.Mode&0o7777)
			}
		})
	}
}

func TestApplyHardlinks(t *testing.T) {
	root := t.TempDir()
	apply(t, root, layertest.File("lower/f", "lower", 0o644), layertest.Symlink("via", "/lower"))
	apply(t, root,
		layertest.File("bin/a", "A", 0o755),
		layertest.Hardlink("bin/b", "bin/a"),
		layertest.Hardlink("./bin/c", "./bin/a"), // "./" names, as GNU tar writes them
		layertest.Hardlink("fromlower", "lower/f"),
		layertest.Hardlink("throughsymlink", "via/f"), // parent symlink resolved inside root
		layertest.Hardlink("self", "self"),            // degenerate: nothing to do
	)
	a := layertest.Lstat(t, filepath.Join(root, "bin/a"))
	for _, p := range []string{"bin/b", "bin/c"} {
		if st := layertest.Lstat(t, filepath.Join(root, p)); st.Ino != a.Ino {
			t.Errorf("%s: inode %d, want %d (bin/a)", p, st.Ino, a.Ino)
		}
	}
	l := layertest.Lstat(t, filepath.Join(root, "lower/f"))
	for _, p := range []string{"fromlower", "throughsymlink"} {
		if st := layertest.Lstat(t, filepath.Join(root, p)); st.Ino != l.Ino {
			t.Errorf("%s: inode %d, want %d (lower/f)", p, st.Ino, l.Ino)
		}
	}
	if a.Nlink != 3 {
		t.Errorf("bin/a has %d links, want 3", a.Nlink)
	}

	err := layer.Apply(bytes.NewReader(layertest.Tar(t, layertest.Hardlink("dangling", "nothere"))), root)
	if err == nil || !strings.Contains(err.Error(), `"dangling"`) || !strings.Contains(err.Error(), "nothere") {
		t.Errorf("hard link to a missing target: error %v, want one naming the entry and target", err)
	}
}

func TestApplyDevicesAndFifo(t *testing.T) {
	root := t.TempDir()
	null := layertest.Entry{Header: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
	loop := layertest.Entry{Header: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loop9", Mode: 0o660, Devmajor: 7, Devminor: 9, Gid: 6}}
	fifo := layertest.Entry{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o4620}}
	apply(t, root, null, loop, fifo)
	for _, c := range []struct {
		path string
		mode uint32
		dev  uint64
		gid  uint32
	}{
		{"dev/null", unix.S_IFCHR | 0o666, unix.Mkdev(1, 3), 0},
		{"dev/loop9", unix.S_IFBLK | 0o660, unix.Mkdev(7, 9), 6},
		{"run/fifo", unix.S_IFIFO | 0o4620, 0, 0},
	} {
		st := layertest.Lstat(t, filepath.Join(root, c.path))
		if st.Mode != c.mode || st.Rdev != c.dev || st.Gid != c.gid {
			t.Errorf("%s: mode %#o rdev %#x gid %d, want %#o %#x %d", c.path, st.Mode, st.Rdev, st.Gid, c.mode, c.dev, c.gid)
		}
	}
}

func TestApplyReplacements(t *testing.T) {
	root := t.TempDir()
	apply(t, root,
		layertest.File("dir2file/inner", "i", 0o644),
		layertest.File("file2dir", "f", 0o644),
		layertest.File("file2link", "f", 0o644),
		layertest.Symlink("link2dir", "/file2dir"),
		layertest.File("merge/lower", "l", 0o644),
		layertest.File("hardlinked", "shared", 0o644),
		layertest.Hardlink("hardlinked2", "hardlinked"),
	)
	apply(t, root,
		layertest.File("dir2file", "now a file", 0o644),
		layertest.Dir("file2dir/", 0o711),
		layertest.File("file2dir/x", "x", 0o644),
		layertest.Symlink("file2link", "dir2file"),
		layertest.Dir("link2dir/", 0o755),
		layertest.Dir("merge/", 0o700),
		layertest.File("merge/upper", "u", 0o644),
		layertest.File("hardlinked", "replaced", 0o644), // must not write through the other link
	)
	if got := layertest.ReadFile(t, filepath.Join(root, "dir2file")); got != "now a file" {
		t.Errorf("dir2file = %q", got)
	}
	if st := layertest.Lstat(t, filepath.Join(root, "file2dir")); st.Mode != unix.S_IFDIR|0o711 {
		t.Errorf("file2dir mode %#o, want a 0711 directory", st.Mode)
	}
	if target, err := os.Readlink(filepath.Join(root, "file2link")); err != nil || target != "dir2file" {
		t.Errorf("file2link -> %q, %v", target, err)
	}
	if st := layertest.Lstat(t, filepath.Join(root, "link2dir")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("link2dir mode %#o, want a directory replacing the symlink", st.Mode)
	}
	if st := layertest.Lstat(t, filepath.Join(root, "merge")); st.Mode != unix.S_IFDIR|0o700 {
		t.Errorf("merge mode %#o, want 0700 from the upper layer", st.Mode)
	}
	for p, want := range map[string]string{"merge/lower": "l", "merge/upper": "u", "hardlinked": "replaced", "hardlinked2": "shared", "file2dir/x": "x"} {
		if got := layertest.ReadFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
}

func TestApplyRejects(t *testing.T) {
	// archive/tar does not write GNU.sparse records: they are renamed below.
	sparse := layertest.File("sparse", "", 0o644)
	sparse.PAXRecords = map[string]string{"XXX.sparse.size": "1000000000", "XXX.sparse.map": "0,0"}
	for _, tc := range []struct {
		name  string
		entry layertest.Entry
		want  string
	}{
		{"root as file", layertest.File(".", "", 0o644), "root directory"},
		{"unsupported type", layertest.Entry{Header: tar.Header{Typeflag: 'V', Name: "volume-label"}}, "unsupported"},
		{"file below a file", layertest.File("plain/child", "", 0o644), "plain"},
		{"bad whiteout", layertest.Whiteout("a/.wh.."), "whiteout"},
		{"sparse", sparse, "sparse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			apply(t, root, layertest.File("plain", "p", 0o644))
			data := bytes.ReplaceAll(layertest.Tar(t, tc.entry), []byte("XXX.sparse."), []byte("GNU.sparse."))
			err := layer.Apply(bytes.NewReader(data), root)
			if err == nil {
				t.Fatalf("ApplyLayer accepted %q", tc.entry.Name)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "entry") {
				t.Errorf("error %q: want it to name the entry and say %q", err, tc.want)
			}
		})
	}
	if err := layer.Apply(strings.NewReader("not a tar at all, just text that is long enough to fill a header block"+strings.Repeat(".", 600)), t.TempDir()); err == nil {
		t.Error("ApplyLayer accepted garbage")
	}
	if err := layer.Apply(bytes.NewReader(layertest.Tar(t)), filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing root: error %v, want one naming it", err)
	}
}

func TestApplyStaysInsideRoot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers [][]layertest.Entry
		// inside lists files that must exist below root afterwards.
		inside []string
		// errEntry, if set, is the entry the error must name; "" means success.
		errEntry string
	}{
		{name: "dotdot", layers: [][]layertest.Entry{{layertest.File("../x", "x", 0o644)}}, errEntry: "../x"},
		{name: "dotdot after a directory", layers: [][]layertest.Entry{{layertest.File("a/../../../y", "y", 0o644)}}, errEntry: "a/../../../y"},
		{name: "dotdot inside the root", layers: [][]layertest.Entry{{layertest.File("a/../y", "y", 0o644)}}, inside: []string{"y"}},
		{name: "dotdot into sibling name", layers: [][]layertest.Entry{{layertest.File("../sibling/keep", "evil", 0o644)}}, errEntry: "../sibling/keep"},
		{name: "absolute", layers: [][]layertest.Entry{{layertest.Dir("/", 0o755), layertest.File("/abs/f", "x", 0o644), layertest.File("//etc/g", "g", 0o644)}}, inside: []string{"abs/f", "etc/g"}},
		{name: "absolute dotdot", layers: [][]layertest.Entry{{layertest.File("/../x", "x", 0o644)}}, errEntry: "/../x"},
		{name: "absolute whiteout", layers: [][]layertest.Entry{{layertest.Whiteout("/.wh.sibling")}}},
		{name: "absolute whiteout of a lower file", layers: [][]layertest.Entry{{layertest.File("f", "x", 0o644)}, {layertest.Whiteout("/.wh.f"), layertest.File("/g", "g", 0o644)}}, inside: []string{"g"}},
		{name: "absolute hardlink target inside", layers: [][]layertest.Entry{{layertest.File("f", "x", 0o644), layertest.Hardlink("/h", "/f")}}, inside: []string{"h", "f"}},
		{name: "absolute hardlink target dotdot", layers: [][]layertest.Entry{{layertest.Hardlink("h", "/../sibling/keep")}}, errEntry: "h"},
		{name: "symlink to outside then file below", layers: [][]layertest.Entry{{layertest.Symlink("link", "../sibling"), layertest.File("link/evil", "x", 0o644)}}, errEntry: "link/evil"},
		{name: "absolute symlink to outside then file below", layers: [][]layertest.Entry{{layertest.Symlink("link", "@SIBLING@"), layertest.File("link/evil", "x", 0o644)}}, errEntry: "link/evil"},
		{name: "symlink to / then file below", layers: [][]layertest.Entry{{layertest.Symlink("link", "/"), layertest.File("link/etc/x", "x", 0o644)}}, inside: []string{"etc/x"}},
		{name: "symlink planted by a lower layer", layers: [][]layertest.Entry{{layertest.Symlink("etc", "@SIBLING@")}, {layertest.File("etc/keep", "evil", 0o644), layertest.File("etc/sub/new", "evil", 0o644)}}, errEntry: "etc/keep"},
		{name: "symlink dotdot chain from a lower layer", layers: [][]layertest.Entry{{layertest.Dir("a/", 0o755), layertest.Symlink("a/up", "../../..")}, {layertest.File("a/up/sibling/keep", "evil", 0o644)}}, inside: []string{"sibling/keep"}},
		{name: "file over symlink to outside file", layers: [][]layertest.Entry{{layertest.Symlink("f", "@SIBLING@/keep")}, {layertest.File("f", "replaced", 0o600)}}, inside: []string{"f"}},
		{name: "dir over symlink to outside dir", layers: [][]layertest.Entry{{layertest.Symlink("d", "@SIBLING@")}, {layertest.Dir("d/", 0o700)}}},
		{name: "hardlink to outside by dotdot", layers: [][]layertest.Entry{{layertest.Hardlink("h", "../sibling/keep")}}, errEntry: "h"},
		{name: "hardlink to outside by absolute path", layers: [][]layertest.Entry{{layertest.Hardlink("h", "@SIBLING@/keep")}}, errEntry: "h"},
		{name: "hardlink through symlink to outside", layers: [][]layertest.Entry{{layertest.Symlink("l", "@SIBLING@"), layertest.Hardlink("h", "l/keep")}}, errEntry: "h"},
		{name: "whiteout through symlink", layers: [][]layertest.Entry{{layertest.Symlink("l", "@SIBLING@")}, {layertest.Whiteout("l/.wh.keep")}}},
		{name: "whiteout by dotdot", layers: [][]layertest.Entry{{layertest.Whiteout("../.wh.sibling")}}, errEntry: "../.wh.sibling"},
		{name: "opaque through symlink", layers: [][]layertest.Entry{{layertest.Symlink("l", "@SIBLING@")}, {layertest.Whiteout("l/.wh..wh..opq"), layertest.Whiteout("l/sub/.wh..wh..opq")}}},
		{name: "device below outside symlink", layers: [][]layertest.Entry{{layertest.Symlink("l", "../sibling"), {Header: tar.Header{Typeflag: tar.TypeFifo, Name: "l/fifo", Mode: 0o644}}}}, errEntry: "l/fifo"},
		{name: "chmod through symlink", layers: [][]layertest.Entry{{layertest.Symlink("l", "@SIBLING@/keep")}, {layertest.Hardlink("l2", "l"), layertest.File("l", "x", 0o4777)}}, inside: []string{"l"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := layertest.Sandbox(t)
			root := filepath.Join(base, "root")
			before := layertest.OutsideSnapshot(t, base)
			var err error
			for _, entries := range tc.layers {
				for i := range entries {
					entries[i].Linkname = strings.ReplaceAll(entries[i].Linkname, "@SIBLING@", filepath.Join(base, "sibling"))
				}
				if err = layer.Apply(bytes.NewReader(layertest.Tar(t, entries...)), root); err != nil {
					break
				}
			}
			switch {
			case tc.errEntry == "" && err != nil:
				t.Errorf("ApplyLayer: %v", err)
			case tc.errEntry != "" && err == nil:
				t.Errorf("ApplyLayer succeeded, want an error naming %q", tc.errEntry)
			case tc.errEntry != "" && !strings.Contains(err.Error(), `"`+tc.errEntry+`"`):
				t.Errorf("error %q does not name entry %q", err, tc.errEntry)
			}
			if after := layertest.OutsideSnapshot(t, base); !slices.Equal(before, after) {
				t.Errorf("outside root changed:\nbefore %q\nafter  %q", before, after)
			}
			for _, p := range tc.inside {
				if st, err := os.Lstat(filepath.Join(root, p)); err != nil || !st.Mode().IsRegular() {
					t.Errorf("%s inside root: %v", p, err)
				}
			}
		})
	}
}

// TestApplyReplacedParents checks that a directory used for earlier
// entries is looked up again once the path leads elsewhere: the applier
// keeps parent directories open between entries.
func TestApplyReplacedParents(t *testing.T) {
	root := t.TempDir()
	apply(t, root, layertest.File("a/b/x", "x", 0o644), layertest.Symlink("l", "a/b"), layertest.Symlink("m", "a"), layertest.File("f", "f", 0o644))
	apply(t, root,
		layertest.File("l/y", "through the symlink", 0o644), // l/ resolves to a/b
		layertest.Dir("l/", 0o700),                          // the symlink becomes a directory
		layertest.File("l/z", "in the new directory", 0o644),
		layertest.File("m/b/w", "through the other symlink", 0o644),
		layertest.File("m", "now a file", 0o644), // replaces the symlink m
		layertest.File("m2/c/v", "v", 0o644),
		layertest.Whiteout(".wh.m2"), // added by this layer: spared
		layertest.File("m2/c/u", "u", 0o644),
	)
	for p, want := range map[string]string{
		"a/b/x": "x", "a/b/y": "through the symlink", "l/z": "in the new directory", "a/b/w": "through the other symlink",
		"m": "now a file", "m2/c/v": "v", "m2/c/u": "u",
	} {
		if got := layertest.ReadFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	layertest.MustNotExist(t, filepath.Join(root, "a/b/z"))
	if st := layertest.Lstat(t, filepath.Join(root, "l")); st.Mode != unix.S_IFDIR|0o700 {
		t.Errorf("l: mode %#o, want a 0700 directory", st.Mode)
	}
}

// TestApplyUnderADefaultACL checks modes where a default ACL, not the
// umask, limits new files: the applier must still set the layer's modes.
func TestApplyUnderADefaultACL(t *testing.T) {
	root := t.TempDir()
	// user::rwx group::r-x other::--- as the kernel stores it.
	acl := []byte{2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 4, 0, 5, 0, 0xff, 0xff, 0xff, 0xff, 0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	if err := unix.Setxattr(root, "system.posix_acl_default", acl, 0); err != nil {
		t.Fatalf("set a default ACL on %s (the filesystem must take POSIX ACLs): %v", root, err)
	}
	apply(t, root, layertest.File("f", "f", 0o644), layertest.File("sub/g", "g", 0o755))
	for p, want := range map[string]uint32{"f": 0o644, "sub/g": 0o755} {
		if st := layertest.Lstat(t, filepath.Join(root, p)); st.Mode&0o7777 != want {
			t.Errorf("%s: mode %#o, want %#o", p, st.Mode&0o7777, want)
		}
	}
}

// BenchmarkApply applies a generated 72 MB layer (64 files of 1 MiB,
// 2000 files of 4 KiB in 40 directories).
func BenchmarkApply(b *testing.B) {
	var entries []layertest.Entry
	big := strings.Repeat("x", 1<<20)
	for i := range 64 {
		entries = append(entries, layertest.File(fmt.Sprintf("big/%02d", i), big, 0o644))
	}
	small := strings.Repeat("y", 4<<10)
	for i := range 2000 {
		entries = append(entries, layertest.File(fmt.Sprintf("small/%02d/%04d", i%40, i), small, 0o644))
	}
	data := layertest.Tar(b, entries...)
	b.SetBytes(int64(len(data)))
	base := b.TempDir()
	b.ResetTimer()
	for i := range b.N {
		root := filepath.Join(base, fmt.Sprint(i))
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := layer.Apply(bytes.NewReader(data), root); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
