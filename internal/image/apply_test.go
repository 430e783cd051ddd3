package image_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/image"
	"golang.org/x/sys/unix"
)

// entry is a tar header plus the body of a regular file.
type entry struct {
	tar.Header
	body string
}

func file(name, body string, mode int64) entry {
	return entry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: time.Unix(1e9, 0)}, body}
}

func dir(name string, mode int64) entry {
	return entry{Header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: time.Unix(1e9, 0)}}
}

func symlink(name, target string) entry {
	return entry{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: time.Unix(1e9, 0)}}
}

func hardlink(name, target string) entry {
	return entry{Header: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target}}
}

func whiteout(name string) entry { return file(name, "", 0) }

func tarOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Header
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", e.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("tar body %q: %v", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func apply(t testing.TB, root string, entries ...entry) {
	t.Helper()
	if err := image.ApplyLayer(bytes.NewReader(tarOf(t, entries...)), root); err != nil {
		t.Fatalf("ApplyLayer: %v", err)
	}
}

func lstat(t testing.TB, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return &st
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustNotExist(t testing.TB, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s: want it gone, lstat says %v", p, err)
	}
}

func TestApplyFilesModesOwnersTimes(t *testing.T) {
	root := t.TempDir()
	suid := file("usr/bin/su", "su", 0o4755)
	suid.Uid, suid.Gid = 0, 42
	sgid := file("usr/bin/wall", "wall", 0o2755)
	sgid.Uid, sgid.Gid = 1000, 5
	sgid.PAXRecords = map[string]string{"SCHILY.xattr.user.origin": "test"}
	tmp := dir("tmp/", 0o1777)
	tmp.ModTime = time.Unix(123456789, 0)
	link := symlink("usr/bin/sh", "busybox")
	link.Uid, link.Gid = 7, 8
	link.ModTime = time.Unix(987654321, 0)
	apply(t, root,
		dir("usr/", 0o755), suid, sgid, tmp,
		file("tmp/later", "x", 0o600), // changes tmp's mtime after its entry
		link,
		file("deep/no/parents/f", "f", 0o640),
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
		st := lstat(t, filepath.Join(root, c.path))
		if st.Mode != c.mode || st.Uid != c.uid || st.Gid != c.gid {
			t.Errorf("%s: mode %#o owner %d:%d, want %#o %d:%d", c.path, st.Mode, st.Uid, st.Gid, c.mode, c.uid, c.gid)
		}
	}
	if got := readFile(t, filepath.Join(root, "usr/bin/su")); got != "su" {
		t.Errorf("su content %q", got)
	}
	if st := lstat(t, filepath.Join(root, "usr/bin/su")); st.Mtim.Sec != 1e9 {
		t.Errorf("file mtime %d, want 1e9", st.Mtim.Sec)
	}
	if st := lstat(t, filepath.Join(root, "tmp")); st.Mtim.Sec != 123456789 {
		t.Errorf("directory mtime %d, want 123456789 (set after its contents)", st.Mtim.Sec)
	}
	if st := lstat(t, filepath.Join(root, "usr/bin/sh")); st.Mtim.Sec != 987654321 {
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
	apply(t, root, file("a/x", "x", 0o644), file("a/y", "y", 0o644), file("a/d/deep/f", "f", 0o644), file("a/z", "z", 0o644))
	apply(t, root,
		whiteout("a/.wh.x"),
		whiteout("a/.wh.d"),
		whiteout("a/.wh.missing"),
		whiteout("nodir/.wh.missing"),
		file("a/new", "n", 0o644),
		whiteout("a/.wh.new"), // hides lower layers only: new stays
		whiteout("a/.wh.z"),
		file("a/z", "z2", 0o644), // whiteout then re-add in one layer
	)
	mustNotExist(t, filepath.Join(root, "a/x"))
	mustNotExist(t, filepath.Join(root, "a/d"))
	mustNotExist(t, filepath.Join(root, "a/.wh.x"))
	mustNotExist(t, filepath.Join(root, "nodir"))
	if got := readFile(t, filepath.Join(root, "a/y")); got != "y" {
		t.Errorf("a/y = %q", got)
	}
	if got := readFile(t, filepath.Join(root, "a/new")); got != "n" {
		t.Errorf("a/new = %q, want it kept", got)
	}
	if got := readFile(t, filepath.Join(root, "a/z")); got != "z2" {
		t.Errorf("a/z = %q, want z2", got)
	}
}

func TestApplyOpaque(t *testing.T) {
	lower := []entry{
		file("d/old", "o", 0o644), file("d/sub/old2", "o", 0o644), file("d/keepname", "lower", 0o644),
		symlink("d/link", "old"), file("other/f", "f", 0o644),
	}
	upper := []entry{
		dir("d/", 0o750),
		file("d/new", "n", 0o644),
		file("d/sub/new2", "n", 0o644), // no d/sub/ entry: merged into the lower d/sub
		file("d/keepname", "upper", 0o644),
	}
	marker := whiteout("d/.wh..wh..opq")
	for _, tc := range []struct {
		name    string
		entries []entry
	}{
		{"marker first", append([]entry{marker}, upper...)},
		{"marker last", append(slices.Clone(upper), marker)},
		{"marker between", append(append(slices.Clone(upper[:2]), marker), upper[2:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			apply(t, root, lower...)
			apply(t, root, tc.entries...)
			mustNotExist(t, filepath.Join(root, "d/old"))
			mustNotExist(t, filepath.Join(root, "d/sub/old2"))
			mustNotExist(t, filepath.Join(root, "d/link"))
			mustNotExist(t, filepath.Join(root, "d/.wh..wh..opq"))
			for p, want := range map[string]string{"d/new": "n", "d/sub/new2": "n", "d/keepname": "upper", "other/f": "f"} {
				if got := readFile(t, filepath.Join(root, p)); got != want {
					t.Errorf("%s = %q, want %q", p, got, want)
				}
			}
			if st := lstat(t, filepath.Join(root, "d")); st.Mode&0o7777 != 0o750 {
				t.Errorf("d mode %#o, want 0750", st.Mode&0o7777)
			}
		})
	}
}

func TestApplyHardlinks(t *testing.T) {
	root := t.TempDir()
	apply(t, root, file("lower/f", "lower", 0o644), symlink("via", "/lower"))
	apply(t, root,
		file("bin/a", "A", 0o755),
		hardlink("bin/b", "bin/a"),
		hardlink("./bin/c", "./bin/a"), // "./" names, as GNU tar writes them
		hardlink("fromlower", "lower/f"),
		hardlink("throughsymlink", "via/f"), // parent symlink resolved inside root
		hardlink("self", "self"),            // degenerate: nothing to do
	)
	a := lstat(t, filepath.Join(root, "bin/a"))
	for _, p := range []string{"bin/b", "bin/c"} {
		if st := lstat(t, filepath.Join(root, p)); st.Ino != a.Ino {
			t.Errorf("%s: inode %d, want %d (bin/a)", p, st.Ino, a.Ino)
		}
	}
	l := lstat(t, filepath.Join(root, "lower/f"))
	for _, p := range []string{"fromlower", "throughsymlink"} {
		if st := lstat(t, filepath.Join(root, p)); st.Ino != l.Ino {
			t.Errorf("%s: inode %d, want %d (lower/f)", p, st.Ino, l.Ino)
		}
	}
	if a.Nlink != 3 {
		t.Errorf("bin/a has %d links, want 3", a.Nlink)
	}

	err := image.ApplyLayer(bytes.NewReader(tarOf(t, hardlink("dangling", "nothere"))), root)
	if err == nil || !strings.Contains(err.Error(), `"dangling"`) || !strings.Contains(err.Error(), "nothere") {
		t.Errorf("hard link to a missing target: error %v, want one naming the entry and target", err)
	}
}

func TestApplyDevicesAndFifo(t *testing.T) {
	root := t.TempDir()
	null := entry{Header: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
	loop := entry{Header: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/loop9", Mode: 0o660, Devmajor: 7, Devminor: 9, Gid: 6}}
	fifo := entry{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o4620}}
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
		st := lstat(t, filepath.Join(root, c.path))
		if st.Mode != c.mode || st.Rdev != c.dev || st.Gid != c.gid {
			t.Errorf("%s: mode %#o rdev %#x gid %d, want %#o %#x %d", c.path, st.Mode, st.Rdev, st.Gid, c.mode, c.dev, c.gid)
		}
	}
}

func TestApplyReplacements(t *testing.T) {
	root := t.TempDir()
	apply(t, root,
		file("dir2file/inner", "i", 0o644),
		file("file2dir", "f", 0o644),
		file("file2link", "f", 0o644),
		symlink("link2dir", "/file2dir"),
		file("merge/lower", "l", 0o644),
		file("hardlinked", "shared", 0o644),
		hardlink("hardlinked2", "hardlinked"),
	)
	apply(t, root,
		file("dir2file", "now a file", 0o644),
		dir("file2dir/", 0o711),
		file("file2dir/x", "x", 0o644),
		symlink("file2link", "dir2file"),
		dir("link2dir/", 0o755),
		dir("merge/", 0o700),
		file("merge/upper", "u", 0o644),
		file("hardlinked", "replaced", 0o644), // must not write through the other link
	)
	if got := readFile(t, filepath.Join(root, "dir2file")); got != "now a file" {
		t.Errorf("dir2file = %q", got)
	}
	if st := lstat(t, filepath.Join(root, "file2dir")); st.Mode != unix.S_IFDIR|0o711 {
		t.Errorf("file2dir mode %#o, want a 0711 directory", st.Mode)
	}
	if target, err := os.Readlink(filepath.Join(root, "file2link")); err != nil || target != "dir2file" {
		t.Errorf("file2link -> %q, %v", target, err)
	}
	if st := lstat(t, filepath.Join(root, "link2dir")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("link2dir mode %#o, want a directory replacing the symlink", st.Mode)
	}
	if st := lstat(t, filepath.Join(root, "merge")); st.Mode != unix.S_IFDIR|0o700 {
		t.Errorf("merge mode %#o, want 0700 from the upper layer", st.Mode)
	}
	for p, want := range map[string]string{"merge/lower": "l", "merge/upper": "u", "hardlinked": "replaced", "hardlinked2": "shared", "file2dir/x": "x"} {
		if got := readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
}

func TestApplyRejects(t *testing.T) {
	// archive/tar does not write GNU.sparse records: they are renamed below.
	sparse := file("sparse", "", 0o644)
	sparse.PAXRecords = map[string]string{"XXX.sparse.size": "1000000000", "XXX.sparse.map": "0,0"}
	for _, tc := range []struct {
		name  string
		entry entry
		want  string
	}{
		{"root as file", file(".", "", 0o644), "root directory"},
		{"unsupported type", entry{Header: tar.Header{Typeflag: 'V', Name: "volume-label"}}, "unsupported"},
		{"file below a file", file("plain/child", "", 0o644), "plain"},
		{"bad whiteout", whiteout("a/.wh.."), "whiteout"},
		{"sparse", sparse, "sparse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			apply(t, root, file("plain", "p", 0o644))
			data := bytes.ReplaceAll(tarOf(t, tc.entry), []byte("XXX.sparse."), []byte("GNU.sparse."))
			err := image.ApplyLayer(bytes.NewReader(data), root)
			if err == nil {
				t.Fatalf("ApplyLayer accepted %q", tc.entry.Name)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "entry") {
				t.Errorf("error %q: want it to name the entry and say %q", err, tc.want)
			}
		})
	}
	if err := image.ApplyLayer(strings.NewReader("not a tar at all, just text that is long enough to fill a header block"+strings.Repeat(".", 600)), t.TempDir()); err == nil {
		t.Error("ApplyLayer accepted garbage")
	}
	if err := image.ApplyLayer(bytes.NewReader(tarOf(t)), filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing root: error %v, want one naming it", err)
	}
}

// sandbox makes base/root (to apply into) and base/sibling (which must
// stay untouched) and returns base.
func sandbox(t testing.TB) string {
	t.Helper()
	base := t.TempDir()
	for _, d := range []string{"root", "sibling/sub"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "sibling/keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	return base
}

// outsideSnapshot lists everything in base except below root, with sizes,
// modes, owners and mtimes.
func outsideSnapshot(t testing.TB, base string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == filepath.Join(base, "root") {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		line := fmt.Sprintf("%s %o %d:%d size=%d mtime=%d nlink=%d", rel, st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Nano(), st.Nlink)
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			b, _ := os.ReadFile(p)
			line += " " + string(b)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", base, err)
	}
	return out
}

func TestApplyStaysInsideRoot(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layers [][]entry
		// inside lists files that must exist below root afterwards.
		inside []string
		// errEntry, if set, is the entry the error must name; "" means success.
		errEntry string
	}{
		{name: "dotdot", layers: [][]entry{{file("../x", "x", 0o644)}}, errEntry: "../x"},
		{name: "dotdot after a directory", layers: [][]entry{{file("a/../../../y", "y", 0o644)}}, errEntry: "a/../../../y"},
		{name: "dotdot inside the root", layers: [][]entry{{file("a/../y", "y", 0o644)}}, inside: []string{"y"}},
		{name: "dotdot into sibling name", layers: [][]entry{{file("../sibling/keep", "evil", 0o644)}}, errEntry: "../sibling/keep"},
		{name: "absolute", layers: [][]entry{{dir("/", 0o755), file("/abs/f", "x", 0o644), file("//etc/g", "g", 0o644)}}, inside: []string{"abs/f", "etc/g"}},
		{name: "absolute dotdot", layers: [][]entry{{file("/../x", "x", 0o644)}}, errEntry: "/../x"},
		{name: "absolute whiteout", layers: [][]entry{{whiteout("/.wh.sibling")}}},
		{name: "absolute whiteout of a lower file", layers: [][]entry{{file("f", "x", 0o644)}, {whiteout("/.wh.f"), file("/g", "g", 0o644)}}, inside: []string{"g"}},
		{name: "absolute hardlink target inside", layers: [][]entry{{file("f", "x", 0o644), hardlink("/h", "/f")}}, inside: []string{"h", "f"}},
		{name: "absolute hardlink target dotdot", layers: [][]entry{{hardlink("h", "/../sibling/keep")}}, errEntry: "h"},
		{name: "symlink to outside then file below", layers: [][]entry{{symlink("link", "../sibling"), file("link/evil", "x", 0o644)}}, errEntry: "link/evil"},
		{name: "absolute symlink to outside then file below", layers: [][]entry{{symlink("link", "@SIBLING@"), file("link/evil", "x", 0o644)}}, errEntry: "link/evil"},
		{name: "symlink to / then file below", layers: [][]entry{{symlink("link", "/"), file("link/etc/x", "x", 0o644)}}, inside: []string{"etc/x"}},
		{name: "symlink planted by a lower layer", layers: [][]entry{{symlink("etc", "@SIBLING@")}, {file("etc/keep", "evil", 0o644), file("etc/sub/new", "evil", 0o644)}}, errEntry: "etc/keep"},
		{name: "symlink dotdot chain from a lower layer", layers: [][]entry{{dir("a/", 0o755), symlink("a/up", "../../..")}, {file("a/up/sibling/keep", "evil", 0o644)}}, inside: []string{"sibling/keep"}},
		{name: "file over symlink to outside file", layers: [][]entry{{symlink("f", "@SIBLING@/keep")}, {file("f", "replaced", 0o600)}}, inside: []string{"f"}},
		{name: "dir over symlink to outside dir", layers: [][]entry{{symlink("d", "@SIBLING@")}, {dir("d/", 0o700)}}},
		{name: "hardlink to outside by dotdot", layers: [][]entry{{hardlink("h", "../sibling/keep")}}, errEntry: "h"},
		{name: "hardlink to outside by absolute path", layers: [][]entry{{hardlink("h", "@SIBLING@/keep")}}, errEntry: "h"},
		{name: "hardlink through symlink to outside", layers: [][]entry{{symlink("l", "@SIBLING@"), hardlink("h", "l/keep")}}, errEntry: "h"},
		{name: "whiteout through symlink", layers: [][]entry{{symlink("l", "@SIBLING@")}, {whiteout("l/.wh.keep")}}},
		{name: "whiteout by dotdot", layers: [][]entry{{whiteout("../.wh.sibling")}}, errEntry: "../.wh.sibling"},
		{name: "opaque through symlink", layers: [][]entry{{symlink("l", "@SIBLING@")}, {whiteout("l/.wh..wh..opq"), whiteout("l/sub/.wh..wh..opq")}}},
		{name: "device below outside symlink", layers: [][]entry{{symlink("l", "../sibling"), {Header: tar.Header{Typeflag: tar.TypeFifo, Name: "l/fifo", Mode: 0o644}}}}, errEntry: "l/fifo"},
		{name: "chmod through symlink", layers: [][]entry{{symlink("l", "@SIBLING@/keep")}, {hardlink("l2", "l"), file("l", "x", 0o4777)}}, inside: []string{"l"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := sandbox(t)
			root := filepath.Join(base, "root")
			before := outsideSnapshot(t, base)
			var err error
			for _, layer := range tc.layers {
				for i := range layer {
					layer[i].Linkname = strings.ReplaceAll(layer[i].Linkname, "@SIBLING@", filepath.Join(base, "sibling"))
				}
				if err = image.ApplyLayer(bytes.NewReader(tarOf(t, layer...)), root); err != nil {
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
			if after := outsideSnapshot(t, base); !slices.Equal(before, after) {
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
	apply(t, root, file("a/b/x", "x", 0o644), symlink("l", "a/b"), symlink("m", "a"), file("f", "f", 0o644))
	apply(t, root,
		file("l/y", "through the symlink", 0o644), // l/ resolves to a/b
		dir("l/", 0o700), // the symlink becomes a directory
		file("l/z", "in the new directory", 0o644),
		file("m/b/w", "through the other symlink", 0o644),
		file("m", "now a file", 0o644), // replaces the symlink m
		file("m2/c/v", "v", 0o644),
		whiteout(".wh.m2"), // added by this layer: spared
		file("m2/c/u", "u", 0o644),
	)
	for p, want := range map[string]string{
		"a/b/x": "x", "a/b/y": "through the symlink", "l/z": "in the new directory", "a/b/w": "through the other symlink",
		"m": "now a file", "m2/c/v": "v", "m2/c/u": "u",
	} {
		if got := readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	mustNotExist(t, filepath.Join(root, "a/b/z"))
	if st := lstat(t, filepath.Join(root, "l")); st.Mode != unix.S_IFDIR|0o700 {
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
	apply(t, root, file("f", "f", 0o644), file("sub/g", "g", 0o755))
	for p, want := range map[string]uint32{"f": 0o644, "sub/g": 0o755} {
		if st := lstat(t, filepath.Join(root, p)); st.Mode&0o7777 != want {
			t.Errorf("%s: mode %#o, want %#o", p, st.Mode&0o7777, want)
		}
	}
}
