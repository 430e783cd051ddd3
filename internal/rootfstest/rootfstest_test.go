package rootfstest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ulikunitz/xz"
)

// tarIndex is a tar's entries by clean name ("etc/os-release"), with the
// bodies of the regular files of at most 64 KiB.
type tarIndex struct {
	hdrs   map[string]*tar.Header
	bodies map[string]string
	order  []string
}

func readTar(t *testing.T, name string) *tarIndex {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	idx := &tarIndex{hdrs: map[string]*tar.Header{}, bodies: map[string]string{}}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return idx
		}
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		n := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if _, dup := idx.hdrs[n]; dup {
			t.Errorf("%s: %s appears twice", name, n)
		}
		idx.hdrs[n] = hdr
		idx.order = append(idx.order, n)
		if hdr.Typeflag == tar.TypeReg && hdr.Size <= 64<<10 {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("read %s in %s: %v", n, name, err)
			}
			idx.bodies[n] = string(b)
		}
	}
}

// resolve follows symlinks in p's parent directories (and in p itself if
// follow) inside the tar, as the kernel would in the unpacked tree, and
// returns the entry's clean name.
func (idx *tarIndex) resolve(p string, follow bool) (string, error) {
	for hops := 0; hops < 40; hops++ {
		parts := strings.Split(path.Clean(strings.TrimPrefix(p, "/")), "/")
		cur := ""
		restart := false
		for i, part := range parts {
			cur = path.Join(cur, part)
			hdr, ok := idx.hdrs[cur]
			if !ok {
				return "", fmt.Errorf("%s: no entry %s", p, cur)
			}
			last := i == len(parts)-1
			if hdr.Typeflag != tar.TypeSymlink || (last && !follow) {
				continue
			}
			target := hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(cur), target)
			}
			p = path.Join(append([]string{target}, parts[i+1:]...)...)
			restart = true
			break
		}
		if !restart {
			return cur, nil
		}
	}
	return "", fmt.Errorf("%s: too many symlinks", p)
}

func sha256File(t *testing.T, name string) string {
	t.Helper()
	s, err := fileSHA256(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The exact call the switch-root VM tests make.
func TestDebian(t *testing.T) {
	start := time.Now()
	p := Debian(t, "bookworm", "systemd", "systemd-sysv", "udev", "kmod")
	firstTime := time.Since(start)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	idx := readTar(t, p)
	t.Logf("%s: %.1f MiB, %d entries, first call %v", p, float64(fi.Size())/(1<<20), len(idx.order), firstTime.Round(time.Microsecond))
	if want := fmt.Sprintf("debian-bookworm-%s-minbase+kmod,systemd,systemd-sysv,udev-f%d.tar", debianArch[runtime.GOARCH], debianFormat); filepath.Base(p) != want {
		t.Errorf("cache file %s, want %s", filepath.Base(p), want)
	}

	// The init: /sbin/init → /lib/systemd/systemd, through the merged-/usr
	// symlinks.
	initLink, err := idx.resolve("sbin/init", false)
	if err != nil {
		t.Fatal(err)
	}
	if h := idx.hdrs[initLink]; h.Typeflag != tar.TypeSymlink || h.Linkname != "/lib/systemd/systemd" {
		t.Errorf("/sbin/init is %s: type %q → %q, want a symlink to /lib/systemd/systemd", initLink, h.Typeflag, h.Linkname)
	}
	systemd, err := idx.resolve("sbin/init", true)
	if err != nil {
		t.Fatal(err)
	}
	if h := idx.hdrs[systemd]; h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 || h.Size < 10000 {
		t.Errorf("/sbin/init leads to %s: type %q, mode %o, size %d; want an executable file", systemd, h.Typeflag, h.Mode, h.Size)
	}
	if l, err := idx.resolve("lib/systemd/systemd", true); err != nil || l != systemd {
		t.Errorf("/lib/systemd/systemd is %q (%v), want %s", l, err, systemd)
	}
	osRelease, err := idx.resolve("etc/os-release", true)
	if err != nil {
		t.Fatal(err)
	}
	if b := idx.bodies[osRelease]; !strings.Contains(b, "VERSION_CODENAME=bookworm") {
		t.Errorf("/etc/os-release (%s) holds %q, want bookworm's", osRelease, b)
	}

	// Cleaned.
	for _, n := range []string{"etc/resolv.conf", "etc/hostname"} {
		if _, ok := idx.hdrs[n]; ok {
			t.Errorf("tar holds %s", n)
		}
	}
	if h, ok := idx.hdrs["etc/machine-id"]; ok && (h.Typeflag != tar.TypeReg || h.Size != 0) {
		t.Errorf("etc/machine-id: type %q, size %d; want an empty file", h.Typeflag, h.Size)
	}
	for _, dir := range []string{"var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"} {
		if h, ok := idx.hdrs[dir]; !ok || h.Typeflag != tar.TypeDir {
			t.Errorf("%s is missing or not a directory", dir)
		}
	}
	for _, n := range idx.order {
		for _, dir := range []string{"var/lib/apt/lists/", "usr/share/doc/", "usr/share/man/", "usr/share/locale/"} {
			if strings.HasPrefix(n, dir) {
				t.Errorf("tar holds %s", n)
			}
		}
		if m, _ := path.Match("var/cache/apt/*.bin", n); m {
			t.Errorf("tar holds %s", n)
		}
		if m, _ := path.Match("var/cache/apt/archives/*.deb", n); m {
			t.Errorf("tar holds %s", n)
		}
	}

	// Owners, modes and hard links are kept.
	if h := idx.hdrs["etc/shadow"]; h == nil || h.Gid == 0 || h.Mode != 0o640 || h.Uname != "" {
		t.Errorf("etc/shadow: %+v, want mode 0640, group shadow (a numeric id only)", h)
	}
	if su, err := idx.resolve("bin/su", true); err != nil || idx.hdrs[su].Mode&0o4000 == 0 {
		t.Errorf("/bin/su (%s, %v) is not setuid", su, err)
	}
	links := 0
	seen := map[string]bool{}
	for _, n := range idx.order {
		h := idx.hdrs[n]
		if h.Typeflag == tar.TypeLink {
			links++
			if target := path.Clean(h.Linkname); !seen[target] || idx.hdrs[target].Typeflag != tar.TypeReg {
				t.Errorf("hard link %s → %s: no regular file before it", n, h.Linkname)
			}
		}
		seen[n] = true
		if strings.HasPrefix(h.Name, "/") || strings.HasPrefix(h.Name, "./") || strings.Contains(h.Name, "..") {
			t.Errorf("entry name %q is not plain and relative", h.Name)
		}
	}
	if links == 0 {
		t.Errorf("no hard links in the tar (perl-base has some)")
	}

	// Cached: the same file, untouched, at once.
	start = time.Now()
	p2 := Debian(t, "bookworm", "kmod", "udev", "systemd-sysv", "systemd", "systemd")
	again := time.Since(start)
	fi2, err := os.Stat(p2)
	if err != nil {
		t.Fatal(err)
	}
	if p2 != p || !fi2.ModTime().Equal(fi.ModTime()) || fi2.Size() != fi.Size() {
		t.Errorf("second call: %s (mtime %v, %d bytes), want %s (mtime %v, %d bytes)", p2, fi2.ModTime(), fi2.Size(), p, fi.ModTime(), fi.Size())
	}
	if again > time.Second {
		t.Errorf("second call took %v, want it cached", again)
	}
	t.Logf("second call: %v", again)

	t.Run("WithFiles", func(t *testing.T) {
		unit := "[Unit]\nDescription=ociboot test\n\n[Service]\nExecStart=/usr/local/bin/hello\n\n[Install]\nWantedBy=multi-user.target\n"
		out := WithFiles(t, p,
			File{Path: "/etc/systemd/system/ociboot-test.service", Body: unit},
			File{Path: "etc/systemd/system/multi-user.target.wants/ociboot-test.service", Linkname: "/etc/systemd/system/ociboot-test.service"},
			File{Path: "usr/local/bin/hello", Body: "#!/bin/sh\necho hello\n", Mode: 0o755},
			File{Path: "etc/ociboot/test/deep.conf", Body: "x\n"},
		)
		got := readTar(t, out)
		if h := got.hdrs["etc/systemd/system/ociboot-test.service"]; h == nil || got.bodies["etc/systemd/system/ociboot-test.service"] != unit || h.Mode != 0o644 || h.Uid != 0 {
			t.Errorf("unit: %+v, body %q", h, got.bodies["etc/systemd/system/ociboot-test.service"])
		}
		if h := got.hdrs["etc/systemd/system/multi-user.target.wants/ociboot-test.service"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/etc/systemd/system/ociboot-test.service" {
			t.Errorf("enabling symlink: %+v", h)
		}
		if h := got.hdrs["usr/local/bin/hello"]; h == nil || h.Mode != 0o755 || got.bodies["usr/local/bin/hello"] != "#!/bin/sh\necho hello\n" {
			t.Errorf("hello: %+v", h)
		}
		for _, d := range []string{"etc/ociboot", "etc/ociboot/test"} {
			if h := got.hdrs[d]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o755 {
				t.Errorf("added parent %s: %+v", d, h)
			}
		}
		if got.bodies["etc/ociboot/test/deep.conf"] != "x\n" {
			t.Errorf("deep.conf: %q", got.bodies["etc/ociboot/test/deep.conf"])
		}
		// The base's entries come first, unchanged, in order.
		for i, n := range idx.order {
			if got.order[i] != n {
				t.Fatalf("entry %d is %s, want the base's %s", i, got.order[i], n)
			}
		}
		if added := len(got.order) - len(idx.order); added < 4 || added > 6 {
			t.Errorf("%d entries added, want 4 files and their missing parents", added)
		}
		// The same inputs give the same bytes (so XZ's cache works for it).
		if a, b := sha256File(t, out), sha256File(t, WithFiles(t, p, File{Path: "/etc/systemd/system/ociboot-test.service", Body: unit},
			File{Path: "etc/systemd/system/multi-user.target.wants/ociboot-test.service", Linkname: "/etc/systemd/system/ociboot-test.service"},
			File{Path: "usr/local/bin/hello", Body: "#!/bin/sh\necho hello\n", Mode: 0o755},
			File{Path: "etc/ociboot/test/deep.conf", Body: "x\n"})); a != b {
			t.Errorf("WithFiles is not deterministic: %s, then %s", a, b)
		}
	})

	sum := sha256File(t, p)
	t.Run("XZ", func(t *testing.T) {
		start := time.Now()
		x := XZ(t, p)
		t.Logf("XZ: %v", time.Since(start).Round(time.Millisecond))
		fi, err := os.Stat(x)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %.1f MiB", x, float64(fi.Size())/(1<<20))
		if x2 := XZ(t, p); x2 != x {
			t.Errorf("second XZ: %s, want %s", x2, x)
		}
		if fi2, _ := os.Stat(x); !fi2.ModTime().Equal(fi.ModTime()) {
			t.Errorf("second XZ rewrote %s", x)
		}
		f, err := os.Open(x)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := xz.NewReader(bufio.NewReaderSize(f, 1<<20)) // it reads in small pieces
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, zr); err != nil {
			t.Fatalf("decompress %s: %v", x, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sum {
			t.Errorf("%s decompresses to sha256 %s, want %s", x, got, sum)
		}
	})

	t.Run("Layer", func(t *testing.T) {
		start := time.Now()
		l := Layer(t, p)
		t.Logf("Layer: %v", time.Since(start).Round(time.Millisecond))
		if mt, err := l.MediaType(); err != nil || mt != types.OCILayer {
			t.Errorf("media type %s (%v), want %s", mt, err, types.OCILayer)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		h := sha256.New()
		if _, err := io.Copy(h, rc); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != sum {
			t.Errorf("layer's uncompressed sha256 %s, want the tar's %s", got, sum)
		}
		if d, err := l.DiffID(); err != nil || d.Hex != sum {
			t.Errorf("DiffID %v (%v), want sha256:%s", d, err, sum)
		}
		size, _ := l.Size()
		t.Logf("layer: %.1f MiB of gzip", float64(size)/(1<<20))
	})
}

// fatalTB stops a helper at its first Fatalf and records the message.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fatalOf runs fn with a fatalTB in its own goroutine and returns the
// Fatalf message, "" if none.
func fatalOf(t *testing.T, fn func(tb testing.TB)) string {
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(tb)
	}()
	<-done
	return tb.msg
}

// smallTar writes a tar of entries to a temporary file.
func smallTar(t *testing.T, entries ...*tar.Header) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		body := ""
		if h.Typeflag == tar.TypeReg {
			body = "body of " + h.Name
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "base.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWithFilesParents(t *testing.T) {
	base := smallTar(t,
		&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "./etc/motd", Typeflag: tar.TypeReg, Mode: 0o600},
		&tar.Header{Name: "./etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644},
		&tar.Header{Name: "./usr/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "./usr/lib/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "./lib", Typeflag: tar.TypeSymlink, Linkname: "usr/lib"},
	)
	out := WithFiles(t, base, File{Path: "etc/motd", Body: "new\n"}, File{Path: "/usr/lib/a/b/c", Body: "c"})
	got := readTar(t, out)
	want := []string{".", "etc", "etc/passwd", "usr", "usr/lib", "lib", "etc/motd", "usr/lib/a", "usr/lib/a/b", "usr/lib/a/b/c"}
	if strings.Join(got.order, " ") != strings.Join(want, " ") {
		t.Errorf("entries %q, want %q", got.order, want)
	}
	if got.bodies["etc/motd"] != "new\n" || got.hdrs["etc/motd"].Mode != 0o644 {
		t.Errorf("etc/motd: %+v %q, want the replacement", got.hdrs["etc/motd"], got.bodies["etc/motd"])
	}
	if n := got.hdrs["usr/lib/a"].Name; n != "./usr/lib/a/" {
		t.Errorf("added directory named %q, want the base's ./ style", n)
	}

	for _, c := range []struct {
		files []File
		want  string
	}{
		{[]File{{Path: "lib/systemd/system/x.service"}}, "parent lib of lib/systemd/system/x.service is a symlink to usr/lib"},
		{[]File{{Path: "etc/passwd/x"}}, "parent etc/passwd of etc/passwd/x is not a directory"},
		{[]File{{Path: "usr"}}, "usr is a directory in the base tar"},
		{[]File{{Path: "../x"}}, "does not name a file below the root"},
		{[]File{{Path: "a"}, {Path: "/a"}}, `"a" given twice`},
		{[]File{{Path: "a", Body: "x", Linkname: "b"}}, "both a body and a symlink target"},
	} {
		if msg := fatalOf(t, func(tb testing.TB) { WithFiles(tb, base, c.files...) }); !strings.Contains(msg, c.want) {
			t.Errorf("WithFiles(%+v): fatal %q, want it to say %q", c.files, msg, c.want)
		}
	}
}

// XZ and Layer called at once from parallel subtests: one compression,
// the same file for all, and a whole one.
func TestCompressConcurrent(t *testing.T) {
	t.Setenv(CacheEnv, t.TempDir())
	data := make([]byte, 8<<20)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(data[:4<<20]) // half incompressible, half zeros
	src := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	const n = 4
	var xzs, blobs [n]string
	t.Run("group", func(t *testing.T) {
		for i := range n {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				xzs[i] = XZ(t, src)
				l := Layer(t, src)
				d, err := l.Digest()
				if err != nil {
					t.Fatal(err)
				}
				blobs[i] = d.Hex
			})
		}
	})
	for i := 1; i < n; i++ {
		if xzs[i] != xzs[0] || blobs[i] != blobs[0] {
			t.Errorf("caller %d got %s and blob %s, caller 0 %s and %s", i, xzs[i], blobs[i], xzs[0], blobs[0])
		}
	}
	f, err := os.Open(xzs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := xz.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("decompressed %d bytes (%v), want the %d input bytes", len(got), err, len(data))
	}
	left, _ := filepath.Glob(filepath.Join(CacheDir(), "*.tmp"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

// flock on separately opened files excludes goroutines of one process.
func TestLockFileExcludesGoroutines(t *testing.T) {
	name := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := lockFile(t.Context(), name, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	waited := false
	if _, err := lockFile(t.Context(), name, 300*time.Millisecond, func() { waited = true }); err == nil || !waited {
		t.Errorf("second lock while held: err %v, waited %v; want a timeout after waiting", err, waited)
	}
	unlock()
	unlock2, err := lockFile(t.Context(), name, time.Second, nil)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	unlock2()
}

func TestMirrorFor(t *testing.T) {
	deb822 := `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`
	disabled := "Types: deb\nURIs: http://disabled.example/debian/\nSuites: trixie\nEnabled: no\n"
	oneLine := "# deb http://commented.example/debian trixie main\n" +
		"deb-src http://src.example/debian trixie main\n" +
		"deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ trixie main\n" +
		"deb cdrom:[Debian]/ sid main\n"
	for _, c := range []struct {
		suite           string
		deb822, oneLine []string
		want            string
	}{
		{"bookworm", []string{deb822}, nil, "http://deb.debian.org/debian"},
		{"bookworm-security", []string{deb822}, nil, "http://deb.debian.org/debian-security"},
		{"trixie", []string{deb822, disabled}, []string{oneLine}, "http://mirror.example/debian"},
		{"sid", []string{deb822}, []string{oneLine}, "http://deb.debian.org/debian"}, // no http source names sid
		{"sid", nil, []string{"deb http://local.example/mirror/ bookworm main\n"}, ""},
		{"bookworm", nil, nil, ""},
	} {
		if got := mirrorFor(c.suite, c.deb822, c.oneLine); got != c.want {
			t.Errorf("mirrorFor(%s, ...) = %q, want %q", c.suite, got, c.want)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/x\134y`: `/x\y`, `/p\0`: `/p\0`, "/plain": "/plain"} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// A command whose context ends takes its children with it.
func TestCommandKillsTree(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cmd := command(ctx, "sh", "-c", "sleep 60 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var child int
	if _, err := fmt.Fscan(out, &child); err != nil {
		t.Fatalf("read the child's pid: %v", err)
	}
	cancel()
	if err := cmd.Wait(); err == nil {
		t.Errorf("Wait after cancel: nil error")
	}
	deadline := time.Now().Add(time.Minute)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			break // gone
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if f[0] == "Z" || f[0] == "X" { // dead, waiting for its new parent to reap it
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d (sleep) still alive: %s", child, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCompressKinds compresses with each tool Compress knows, and
// decompresses with the same tool; an unknown kind is fatal.
func TestCompressKinds(t *testing.T) {
	t.Setenv(CacheEnv, t.TempDir())
	data := bytes.Repeat([]byte("ociboot root tree "), 1<<14)
	src := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for kind, ext := range map[string]string{"xz": ".tar.xz", "zstd": ".tar.zst", "gzip": ".tar.gz"} {
		out := Compress(t, src, kind)
		if !strings.HasSuffix(out, ext) {
			t.Errorf("Compress(%s) = %s, want a name ending in %s", kind, out, ext)
		}
		got, err := exec.Command(kind, "-dc", out).Output()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s -dc %s: %d bytes, %v; want the %d compressed", kind, out, len(got), err, len(data))
		}
	}
	if msg := fatalOf(t, func(tb testing.TB) { Compress(tb, src, "bzip2") }); !strings.Contains(msg, `no compressor "bzip2"`) {
		t.Errorf("Compress(bzip2): fatal %q", msg)
	}
}
