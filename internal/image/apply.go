package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	xattrPrefix    = "SCHILY.xattr."
)

// ApplyLayer applies one uncompressed layer tar, read from r, onto the
// directory root, following the OCI image layer rules: whiteouts remove
// lower entries, opaque markers empty a directory of its lower contents, a
// new non-directory replaces whatever is at its path, a directory merges
// with a directory.
//
// Every entry is confined to root: names are taken relative to root (an
// absolute name or one with ".." lands inside root), and symbolic links in
// the parent components of a name or of a hard link target are resolved
// as if root were "/" (openat2 RESOLVE_IN_ROOT), so nothing outside root is
// ever created, changed or removed. The last component is never followed.
//
// Extended attributes (PAX SCHILY.xattr.*) are set on regular files and
// directories, best effort. An entry for root itself ("./") leaves root
// as it is; sparse entries are refused. On error the tree under root is
// left part-applied.
func ApplyLayer(r io.Reader, root string) error {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("apply layer: open root directory %s: %w", root, err)
	}
	defer unix.Close(rootFD)

	a := &applier{root: rootFD, added: map[string]bool{}, buf: make([]byte, 256<<10)}
	tr := tar.NewReader(r)
	last := "(start of archive)"
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		// ErrInsecurePath comes with a usable header: names are confined below.
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return fmt.Errorf("apply layer to %s: read tar after entry %q: %w", root, last, err)
		}
		last = hdr.Name
		if err := a.entry(hdr, tr); err != nil {
			return fmt.Errorf("apply layer to %s: entry %q: %w", root, hdr.Name, err)
		}
	}
	if err := a.setDirTimes(); err != nil {
		return fmt.Errorf("apply layer to %s: %w", root, err)
	}
	return nil
}

// applier holds the state of one ApplyLayer call.
type applier struct {
	root int // O_PATH descriptor of the root directory
	// added holds every path this layer created, with all its ancestors,
	// so that opaque markers and whiteouts spare them in any tar order.
	added map[string]bool
	// dirTimes are set last: adding entries changes a directory's mtime.
	dirTimes []dirTime
	buf      []byte
}

type dirTime struct {
	rel   string
	times []unix.Timespec
}

// cleanRel turns a tar name into a clean path relative to root; "" is root.
func cleanRel(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// split returns the parent directory ("" for root) and the base of rel.
func split(rel string) (string, string) {
	dir, base := path.Split(rel)
	return strings.TrimSuffix(dir, "/"), base
}

func (a *applier) entry(hdr *tar.Header, body io.Reader) error {
	rel := cleanRel(hdr.Name)
	dir, base := split(rel)
	switch {
	case base == whiteoutOpaque:
		return a.opaque(dir)
	case strings.HasPrefix(base, whiteoutPrefix):
		return a.whiteout(dir, strings.TrimPrefix(base, whiteoutPrefix))
	case hdr.Typeflag == tar.TypeXGlobalHeader:
		return nil
	case rel == "":
		if hdr.Typeflag == tar.TypeDir {
			return nil // the root directory itself: keep it as it is
		}
		return errors.New("names the root directory but is not a directory")
	}
	if err := checkSupported(hdr); err != nil {
		return err
	}

	parent, err := a.mkdirAll(dir)
	if err != nil {
		return err
	}
	defer unix.Close(parent)
	a.markAdded(rel)

	if hdr.Typeflag == tar.TypeLink && cleanRel(hdr.Linkname) == rel {
		return nil // a hard link to itself is already in place
	}
	if err := replaceExisting(parent, base, hdr.Typeflag == tar.TypeDir); err != nil {
		return err
	}

	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeReg:
		return a.writeFile(parent, base, hdr, body, mode)
	case tar.TypeDir:
		return a.makeDir(parent, base, rel, hdr, mode)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, parent, base); err != nil {
			return fmt.Errorf("create symlink to %q: %w", hdr.Linkname, err)
		}
		return setOwnerTimes(parent, base, hdr)
	case tar.TypeLink:
		return a.hardlink(parent, base, hdr.Linkname)
	default: // char, block, fifo: checked by checkSupported
		return makeNode(parent, base, hdr, mode)
	}
}

func checkSupported(hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return fmt.Errorf("unsupported tar entry type %q (want file, directory, link, device or fifo)", hdr.Typeflag)
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return errors.New("sparse files are not supported")
		}
	}
	return nil
}

// markAdded records rel and its ancestors as created by this layer.
func (a *applier) markAdded(rel string) {
	for p := rel; p != "" && !a.added[p]; p, _ = split(p) {
		a.added[p] = true
	}
}

// openIn opens rel (relative to root, "" for root) with every symlink on
// the way resolved inside root.
func (a *applier) openIn(rel string, flags int) (int, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(a.root, rel, &how)
		// EAGAIN: a concurrent rename somewhere in the filesystem; retry.
		if (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) && i < 16 {
			continue
		}
		return fd, err
	}
}

// mkdirAll returns an O_PATH descriptor of the directory rel, creating
// missing directories (mode 0755) on the way.
func (a *applier) mkdirAll(rel string) (int, error) {
	const flags = unix.O_PATH | unix.O_DIRECTORY
	fd, err := a.openIn(rel, flags)
	if err == nil {
		return fd, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return -1, fmt.Errorf("parent directory %q: %w", rel, err)
	}
	cur, err := a.openIn("", flags)
	if err != nil {
		return -1, fmt.Errorf("open root: %w", err)
	}
	parts := strings.Split(rel, "/")
	for i, name := range parts {
		sub := strings.Join(parts[:i+1], "/")
		next, err := a.openIn(sub, flags)
		if errors.Is(err, unix.ENOENT) {
			if err := unix.Mkdirat(cur, name, 0o755); err != nil {
				unix.Close(cur)
				if errors.Is(err, unix.EEXIST) {
					return -1, fmt.Errorf("parent directory %q: exists but does not resolve to a directory inside the root (dangling symlink?)", sub)
				}
				return -1, fmt.Errorf("create parent directory %q: %w", sub, err)
			}
			next, err = a.openIn(sub, flags)
		}
		unix.Close(cur)
		if err != nil {
			return -1, fmt.Errorf("parent directory %q: %w", sub, err)
		}
		cur = next
	}
	return cur, nil
}

// replaceExisting clears the way for a new entry named base in parent: a
// directory stays when the new entry is a directory too; anything else goes.
func replaceExisting(parent int, base string, newIsDir bool) error {
	var st unix.Stat_t
	err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat existing entry: %w", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR && newIsDir {
		return nil
	}
	if err := removeAllAt(parent, base); err != nil {
		return fmt.Errorf("remove existing entry: %w", err)
	}
	return nil
}

func (a *applier) writeFile(parent int, base string, hdr *tar.Header, body io.Reader, mode uint32) error {
	fd, err := unix.Openat(parent, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create file: %w", err)
	}
	err = writeAll(fd, body, a.buf)
	if err == nil {
		err = setOwnerMode(fd, hdr, mode)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("close file: %w", cerr)
	}
	if err != nil {
		return err
	}
	return setTimes(parent, base, hdr)
}

// writeAll copies body into fd through buf.
func writeAll(fd int, body io.Reader, buf []byte) error {
	for {
		n, rerr := body.Read(buf)
		for b := buf[:n]; len(b) > 0; {
			w, err := unix.Write(fd, b)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return fmt.Errorf("write file: %w", err)
			}
			b = b[w:]
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("read file content from tar: %w", rerr)
		}
	}
}

func (a *applier) makeDir(parent int, base, rel string, hdr *tar.Header, mode uint32) error {
	err := unix.Mkdirat(parent, base, 0o700)
	if err != nil && !errors.Is(err, unix.EEXIST) { // EEXIST: merging with a lower directory
		return fmt.Errorf("create directory: %w", err)
	}
	fd, err := unix.Openat(parent, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	defer unix.Close(fd)
	if err := setOwnerMode(fd, hdr, mode); err != nil {
		return err
	}
	a.dirTimes = append(a.dirTimes, dirTime{rel: rel, times: timespecs(hdr)})
	return nil
}

func (a *applier) hardlink(parent int, base, linkname string) error {
	target := cleanRel(linkname)
	if target == "" {
		return fmt.Errorf("hard link target %q is the root directory", linkname)
	}
	tdir, tbase := split(target)
	tfd, err := a.openIn(tdir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", linkname, err)
	}
	defer unix.Close(tfd)
	if err := unix.Linkat(tfd, tbase, parent, base, 0); err != nil {
		return fmt.Errorf("hard link to %q: %w", linkname, err)
	}
	return nil
}

func makeNode(parent int, base string, hdr *tar.Header, mode uint32) error {
	kind := uint32(unix.S_IFIFO)
	switch hdr.Typeflag {
	case tar.TypeChar:
		kind = unix.S_IFCHR
	case tar.TypeBlock:
		kind = unix.S_IFBLK
	}
	if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
		return fmt.Errorf("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknodat(parent, base, kind|mode, int(dev)); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	if err := unix.Fchownat(parent, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown to %d:%d: %w", hdr.Uid, hdr.Gid, err)
	}
	// The node was just made by us, so following is moot; mknod's mode
	// was cut by the umask and chown may have cleared setuid/setgid.
	if err := unix.Fchmodat(parent, base, mode, 0); err != nil {
		return fmt.Errorf("chmod %#o: %w", mode, err)
	}
	return setTimes(parent, base, hdr)
}

// setOwnerMode sets owner, then mode (chown clears setuid/setgid), then
// extended attributes (best effort) on an open file or directory.
func setOwnerMode(fd int, hdr *tar.Header, mode uint32) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown to %d:%d: %w", hdr.Uid, hdr.Gid, err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod %#o: %w", mode, err)
	}
	for k, v := range hdr.PAXRecords {
		if attr, ok := strings.CutPrefix(k, xattrPrefix); ok {
			_ = unix.Fsetxattr(fd, attr, []byte(v), 0) // best effort: the filesystem may not support it
		}
	}
	return nil
}

func setOwnerTimes(parent int, base string, hdr *tar.Header) error {
	if err := unix.Fchownat(parent, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown to %d:%d: %w", hdr.Uid, hdr.Gid, err)
	}
	return setTimes(parent, base, hdr)
}

func setTimes(parent int, base string, hdr *tar.Header) error {
	if err := unix.UtimesNanoAt(parent, base, timespecs(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// timespecs returns access and modification times; a missing access time
// is the modification time.
func timespecs(hdr *tar.Header) []unix.Timespec {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return []unix.Timespec{toTimespec(at), toTimespec(hdr.ModTime)}
}

func toTimespec(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

func (a *applier) setDirTimes() error {
	for _, d := range a.dirTimes {
		dir, base := split(d.rel)
		fd, err := a.openIn(dir, unix.O_PATH|unix.O_DIRECTORY)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue // replaced later in the layer
		}
		if err != nil {
			return fmt.Errorf("directory %q: %w", d.rel, err)
		}
		err = unix.UtimesNanoAt(fd, base, d.times, unix.AT_SYMLINK_NOFOLLOW)
		unix.Close(fd)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("directory %q: set times: %w", d.rel, err)
		}
	}
	return nil
}

// whiteout removes the lower-layer entry name in dir, unless this layer
// itself added it.
func (a *applier) whiteout(dir, name string) error {
	if strings.HasPrefix(name, whiteoutPrefix) {
		return nil // other AUFS metadata (.wh..wh.plnk, ...): nothing to apply
	}
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("invalid whiteout name %q", whiteoutPrefix+name)
	}
	if a.added[path.Join(dir, name)] {
		return nil // whiteouts only hide lower layers
	}
	fd, err := a.openIn(dir, unix.O_PATH|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil // nothing below to hide
	}
	if err != nil {
		return fmt.Errorf("whiteout directory %q: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := removeAllAt(fd, name); err != nil {
		return fmt.Errorf("remove %q: %w", path.Join(dir, name), err)
	}
	return nil
}

// opaque removes everything in dir that this layer did not add.
func (a *applier) opaque(dir string) error {
	fd, err := a.openIn(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opaque directory %q: %w", dir, err)
	}
	defer unix.Close(fd)
	a.markAdded(dir)
	return a.clearLower(fd, dir)
}

func (a *applier) clearLower(fd int, rel string) error {
	names, err := readDirNames(fd)
	if err != nil {
		return fmt.Errorf("read directory %q: %w", rel, err)
	}
	for _, name := range names {
		child := path.Join(rel, name)
		if !a.added[child] {
			if err := removeAllAt(fd, name); err != nil {
				return fmt.Errorf("remove %q: %w", child, err)
			}
			continue
		}
		sub, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			continue // a file or symlink of this layer
		}
		if err != nil {
			return fmt.Errorf("open %q: %w", child, err)
		}
		err = a.clearLower(sub, child)
		unix.Close(sub)
		if err != nil {
			return err
		}
	}
	return nil
}

// removeAllAt removes name in the directory dirfd and, if it is a
// directory, everything below it, never following symlinks.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	err = removeChildren(fd)
	unix.Close(fd)
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

func removeChildren(fd int) error {
	names, err := readDirNames(fd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := removeAllAt(fd, n); err != nil {
			return err
		}
	}
	return nil
}

// readDirNames lists an open directory, without "." and "..".
func readDirNames(fd int) ([]string, error) {
	buf := make([]byte, 16<<10)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}
