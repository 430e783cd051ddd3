package rootfstest

import (
	"archive/tar"
	"bufio"
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
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// debianFormat is the version of the way Debian makes its tar (the
// debootstrap options, the cleaning, the tar writer). Bump it on any
// change to those: it is part of the cache file's name.
const debianFormat = 1

// DefaultMirror is the Debian archive used when apt's sources name none
// for the suite.
const DefaultMirror = "http://deb.debian.org/debian"

// debootstrapTimeout bounds one debootstrap run.
const debootstrapTimeout = 10 * time.Minute

// debianArch maps GOARCH to Debian's architecture names.
var debianArch = map[string]string{
	"amd64": "amd64", "arm64": "arm64", "386": "i386", "arm": "armhf",
	"ppc64le": "ppc64el", "riscv64": "riscv64", "s390x": "s390x",
	"mips64le": "mips64el", "loong64": "loong64",
}

var (
	suiteRE   = regexp.MustCompile(`^[a-z][a-z0-9.-]*$`)
	packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`) // Debian Policy 5.6.1
)

// Debian returns the path of an uncompressed tar of a Debian root
// filesystem for the test binary's architecture:
//
//	debootstrap --variant=minbase --include=PACKAGES SUITE DIR MIRROR
//
// MIRROR is the Debian archive this machine's apt uses for SUITE (read
// from /etc/apt/sources.list.d/*.sources, *.list and
// /etc/apt/sources.list), else DefaultMirror; debootstrap reaches nothing
// else. Packages are downloaded into a .deb cache in CacheDir, so a
// rebuild fetches only the archive's indexes.
//
// The tree is then cleaned as Debian's container images are: no
// /var/lib/apt/lists/* (the package indexes), /var/cache/apt/*.bin or
// /var/cache/apt/archives/*.deb; no /etc/resolv.conf or /etc/hostname
// (debootstrap copies the host's); an empty /etc/machine-id (mode 0444)
// and no /var/lib/dbus/machine-id file, so that each boot gets a fresh
// machine ID: systemd generates one when the file is empty and writes it
// there if /etc is writable, without the "first boot" machinery (presets,
// systemd-firstboot) that a missing file or "uninitialized" triggers. To
// keep it small, the contents of /usr/share/doc, /usr/share/man and
// /usr/share/locale are removed too (the directories stay): there are no
// copyright files, manual pages or message translations.
//
// The tar is written with Go's archive/tar walking the tree in lexical
// order, not with tar(1): that needs no other tool and gives exact control
// of what is recorded. Each entry keeps its numeric owner and group (no
// user or group names), its permission bits including setuid, setgid and
// sticky, and its modification time in whole seconds; symlinks stay
// symlinks, hard links stay hard links (the first name found carries the
// data, later ones are link entries to it), device nodes and FIFOs are
// kept; sockets (there are none) are left out, and so are extended
// attributes (file capabilities, say). Names are plain relative paths:
// "etc/os-release", directories with a trailing slash ("etc/"), and no
// entry for the top directory. bookworm's tree is merged-/usr: bin, sbin,
// lib and lib64 are symlinks into usr, so /sbin/init is the entry
// "usr/sbin/init", a symlink to /lib/systemd/systemd.
//
// The tar is cached in CacheDir under a name made of the suite, the
// architecture, the sorted, de-duplicated packages and a format version
// (see the package documentation), and is never refreshed: delete it to
// get the archive's current packages. A build needs root (debootstrap
// chroots and installs packages as their owners) and debootstrap (Debian
// package debootstrap), and fails the test if either is missing; a cached
// tar is returned to anyone. debootstrap's output goes to a log file next
// to the tar, whose end is shown if it fails; it is given 10 minutes. It
// runs in its own PID and mount namespaces, so that it and everything it
// started die with the test, even one killed or timed out by go test, and
// the /proc and /sys it mounts never outlive it.
func Debian(t testing.TB, suite string, packages ...string) string {
	t.Helper()
	if !suiteRE.MatchString(suite) {
		t.Fatalf("rootfstest: Debian suite %q: want a codename or suite name such as bookworm", suite)
	}
	pkgs := slices.Clone(packages)
	slices.Sort(pkgs)
	pkgs = slices.Compact(pkgs)
	for _, p := range pkgs {
		if !packageRE.MatchString(p) {
			t.Fatalf("rootfstest: Debian package name %q is not valid (lower case letters, digits, + - .)", p)
		}
	}
	arch, ok := debianArch[runtime.GOARCH]
	if !ok {
		t.Fatalf("rootfstest: no Debian architecture known for GOARCH %s", runtime.GOARCH)
	}
	dir := cacheDir(t)
	out := filepath.Join(dir, debianName(suite, arch, pkgs))
	return cached(t, out, func(ctx context.Context, tmp string) error {
		if os.Geteuid() != 0 {
			return errors.New("building it needs root: debootstrap chroots and installs packages as their owners, and the tar keeps those owners (run the tests as root)")
		}
		debootstrap, err := findDebootstrap()
		if err != nil {
			return err
		}
		mirror := debianMirror(suite)
		t.Logf("rootfstest: building %s with debootstrap from %s (%s)", filepath.Base(out), mirror, strings.Join(pkgs, ", "))
		start := time.Now()
		b := debianBuild{
			debootstrap: debootstrap, suite: suite, arch: arch, packages: pkgs, mirror: mirror,
			out: out, debs: filepath.Join(dir, "debs-"+arch), log: out + ".log",
			logf: t.Logf,
		}
		n, err := b.run(ctx, tmp)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(tmp); err == nil {
			t.Logf("rootfstest: built %s in %v: %d entries, %.1f MiB", filepath.Base(out), time.Since(start).Round(100*time.Millisecond), n, float64(fi.Size())/(1<<20))
		}
		return nil
	})
}

// debianName is the cache file name of a Debian tar.
func debianName(suite, arch string, pkgs []string) string {
	list := ""
	if len(pkgs) > 0 {
		list = "+" + strings.Join(pkgs, ",")
		if len(list) > 150 { // keep the name well below NAME_MAX
			sum := sha256.Sum256([]byte(strings.Join(pkgs, ",")))
			list = "+pkgs-" + hex.EncodeToString(sum[:8])
		}
	}
	return fmt.Sprintf("debian-%s-%s-minbase%s-f%d.tar", suite, arch, list, debianFormat)
}

// findDebootstrap returns debootstrap's path: from $PATH, else /usr/sbin
// or /sbin, which a non-login shell's PATH may lack.
func findDebootstrap() (string, error) {
	if p, err := exec.LookPath("debootstrap"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/debootstrap", "/sbin/debootstrap"} {
		if isFile(p) {
			return p, nil
		}
	}
	return "", errors.New("debootstrap not found in $PATH, /usr/sbin or /sbin: install the Debian package debootstrap")
}

// debianBuild is one debootstrap build.
type debianBuild struct {
	debootstrap string
	suite, arch string
	packages    []string
	mirror      string
	out         string // the cache file; work directories are named after it
	debs        string // debootstrap's --cache-dir
	log         string // debootstrap's output
	logf        func(format string, args ...any)
}

// run builds the tree in a work directory next to the cache file,
// cleans it and writes the tar to tmp, returning the number of entries.
func (b *debianBuild) run(ctx context.Context, tmp string) (int, error) {
	// Work directories of killed runs: only a holder of this entry's lock
	// uses them, and we hold it.
	stale, _ := filepath.Glob(b.out + ".build-*")
	for _, d := range stale {
		if err := removeTree(d); err != nil {
			b.logf("rootfstest: leftover work directory %s: %v", d, err)
		}
	}
	work, err := os.MkdirTemp(filepath.Dir(b.out), filepath.Base(b.out)+".build-")
	if err != nil {
		return 0, fmt.Errorf("create a work directory: %w", err)
	}
	defer func() {
		if err := removeTree(work); err != nil {
			b.logf("rootfstest: remove the work directory: %v", err)
		}
	}()
	root := filepath.Join(work, "rootfs")
	if err := b.debootstrapRun(ctx, root); err != nil {
		return 0, err
	}
	if err := cleanDebian(root); err != nil {
		return 0, fmt.Errorf("clean the tree: %w", err)
	}
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	n, skipped, err := writeTree(root, w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("write the tar: %w", err)
	}
	for _, s := range skipped {
		b.logf("rootfstest: left out of the tar: %s", s)
	}
	return n, nil
}

// debootstrapRun runs debootstrap into root, its output going to b.log.
// The .deb cache is shared by every build of the architecture, so the run
// holds its lock (after the entry's own lock: always in that order).
func (b *debianBuild) debootstrapRun(ctx context.Context, root string) error {
	if err := os.MkdirAll(filepath.Join(b.debs, "partial"), 0o755); err != nil {
		return fmt.Errorf("create the .deb cache: %w", err)
	}
	unlock, err := lockFile(ctx, b.debs+".lock", lockWait, func() {
		b.logf("rootfstest: waiting for another debootstrap using %s", b.debs)
	})
	if err != nil {
		return err
	}
	defer unlock()

	log, err := os.Create(b.log)
	if err != nil {
		return fmt.Errorf("create the debootstrap log: %w", err)
	}
	defer log.Close()
	args := []string{"--variant=minbase", "--arch=" + b.arch, "--cache-dir=" + b.debs}
	if len(b.packages) > 0 {
		args = append(args, "--include="+strings.Join(b.packages, ","))
	}
	args = append(args, b.suite, root, b.mirror)
	fmt.Fprintf(log, "# %s %s\n", b.debootstrap, strings.Join(args, " "))

	ctx, cancel := context.WithTimeout(ctx, debootstrapTimeout)
	defer cancel()
	cmd := command(ctx, b.debootstrap, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = debootstrapEnv()
	// Its own PID namespace, so that when debootstrap (the namespace's
	// init) dies, the kernel kills all it started; debootstrap dies with
	// the test (Pdeathsig, see command), and with it every dpkg and
	// maintainer script. Its own mount namespace, so that the /proc and
	// /sys it mounts in the target go away with it.
	cmd.SysProcAttr.Cloneflags = unix.CLONE_NEWPID
	cmd.SysProcAttr.Unshareflags = unix.CLONE_NEWNS
	runErr := run(cmd)
	// debootstrap's mounts in the target (/proc, /sys) live in its mount
	// namespace; this is a fallback should any have reached ours.
	if err := unmountUnder(root); err != nil && runErr == nil {
		runErr = err
	}
	if runErr == nil {
		return nil
	}
	if ctx.Err() != nil {
		runErr = fmt.Errorf("%w (%v)", runErr, context.Cause(ctx))
	}
	// debootstrap's own detailed log, where dpkg's errors are.
	if detail, err := os.ReadFile(filepath.Join(root, "debootstrap", "debootstrap.log")); err == nil {
		fmt.Fprintf(log, "\n# %s/debootstrap/debootstrap.log:\n%s", root, detail)
	}
	log.Close()
	return fmt.Errorf("debootstrap %s: %w; the end of its log %s:\n%s", strings.Join(args, " "), runErr, b.log, tail(b.log, 100))
}

// debootstrapEnv is the environment debootstrap runs in: the test's, with
// the sbin directories on PATH (for chroot, mount and the like), no
// translated messages and no questions.
func debootstrapEnv() []string {
	env := []string{"LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH":
			if v != "" {
				path = v + ":/usr/local/sbin:/usr/sbin:/sbin"
			}
		case "LC_ALL", "LANG", "LANGUAGE", "DEBIAN_FRONTEND":
		default:
			env = append(env, kv)
		}
	}
	return append(env, "PATH="+path)
}

// tail returns the last n lines of the file name.
func tail(name string, n int) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// removeTree removes the directory dir after unmounting anything mounted
// under it; it refuses if an unmount fails, rather than delete through a
// mount.
func removeTree(dir string) error {
	if err := unmountUnder(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("list mounts: %w", err)
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := unescapeMountinfo(f[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of a
// /proc/self/mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			ok := true
			for _, d := range s[i+1 : i+4] {
				if d < '0' || d > '7' {
					ok = false
					break
				}
				c = c*8 + byte(d-'0')
			}
			if ok {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cleanDebian removes from the tree at root what Debian's container
// images leave out (see Debian).
func cleanDebian(root string) error {
	for _, d := range []string{"var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"} {
		if err := removeContents(root, d, "*"); err != nil {
			return err
		}
	}
	if err := removeContents(root, "var/cache/apt", "*.bin"); err != nil {
		return err
	}
	if err := removeContents(root, "var/cache/apt/archives", "*.deb"); err != nil {
		return err
	}
	for _, f := range []string{"etc/resolv.conf", "etc/hostname"} {
		if err := removeEntry(root, f); err != nil {
			return err
		}
	}
	// Debian links /var/lib/dbus/machine-id to /etc/machine-id; a copy of
	// an ID would outlive the emptied /etc/machine-id.
	if p, err := inRoot(root, "var/lib/dbus/machine-id"); err != nil {
		return err
	} else if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	p, err := inRoot(root, "etc/machine-id")
	if err != nil {
		return err
	}
	if err := removeEntry(root, "etc/machine-id"); err != nil {
		return err
	}
	if err := os.WriteFile(p, nil, 0o444); err != nil {
		return fmt.Errorf("empty /etc/machine-id: %w", err)
	}
	return os.Chmod(p, 0o444) // whatever the umask
}

// inRoot returns root/rel after checking that none of rel's parent
// directories is a symlink (which could lead out of the tree); rel itself
// may be anything, or nothing.
func inRoot(root, rel string) (string, error) {
	p := root
	parts := strings.Split(rel, "/")
	for _, part := range parts[:len(parts)-1] {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return "", err
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("/%s: /%s is not a directory (%v)", rel, strings.TrimPrefix(p, root+"/"), fi.Mode().Type())
		}
	}
	return filepath.Join(root, rel), nil
}

// removeEntry removes root/rel, which need not exist; a symlink is
// removed, not followed.
func removeEntry(root, rel string) error {
	p, err := inRoot(root, rel)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// removeContents removes the entries of the directory root/rel whose names
// match pattern (filepath.Match), with whatever they hold. A missing
// directory is left alone; a symlink in its place is an error.
func removeContents(root, rel, pattern string) error {
	p, err := inRoot(root, rel+"/x")
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if ok, _ := filepath.Match(pattern, e.Name()); ok {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeTree writes the tree at root to w as a tar (see Debian for what
// it records) and returns the number of entries and what it left out.
func writeTree(root string, w io.Writer) (int, []string, error) {
	type fileID struct{ dev, ino uint64 }
	first := map[fileID]string{} // hard-linked files: the name that carries the data
	tw := tar.NewWriter(w)
	n := 0
	var skipped []string
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		name := filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", p, err)
		}
		hdr := &tar.Header{
			Name:    name,
			Mode:    int64(st.Mode & 0o7777),
			Uid:     int(st.Uid),
			Gid:     int(st.Gid),
			ModTime: time.Unix(int64(st.Mtim.Sec), 0),
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case unix.S_IFREG:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = st.Size
			if st.Nlink > 1 {
				id := fileID{uint64(st.Dev), uint64(st.Ino)}
				if f, ok := first[id]; ok {
					hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, f, 0
				} else {
					first[id] = name
				}
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case unix.S_IFCHR, unix.S_IFBLK:
			hdr.Typeflag = tar.TypeChar
			if st.Mode&unix.S_IFMT == unix.S_IFBLK {
				hdr.Typeflag = tar.TypeBlock
			}
			hdr.Devmajor = int64(unix.Major(uint64(st.Rdev)))
			hdr.Devminor = int64(unix.Minor(uint64(st.Rdev)))
		case unix.S_IFIFO:
			hdr.Typeflag = tar.TypeFifo
		default:
			skipped = append(skipped, fmt.Sprintf("/%s (a socket)", name))
			return nil
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("/%s: %w", name, err)
		}
		n++
		if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
			return nil
		}
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
			return fmt.Errorf("/%s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	if err := tw.Close(); err != nil {
		return 0, nil, err
	}
	return n, skipped, nil
}
