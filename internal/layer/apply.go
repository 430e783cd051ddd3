// Package layer applies OCI image layers, uncompressed tars, onto a
// directory tree: whiteouts, opaque directories, owners, modes, times and
// extended attributes, every entry confined to the tree with openat2's
// RESOLVE_IN_ROOT. Its confinement helpers (OpenInRoot, MkdirAllInRoot)
// are the one way ociboot reaches into an image's tree: the applier,
// switch-root and the runtime use them.
package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	xattrPrefix    = "SCHILY.xattr."
)

// Options tune ApplyWith. The zero value is the strict one: device nodes
// are refused.
type Options struct {
	// AllowDevices lets character and block device entries be created;
	// without it such an entry fails the layer. FIFOs are always allowed.
	AllowDevices bool
	// Overlay applies the layer alone, into an empty directory, as a
	// lower layer of overlayfs (an image store's unpacked layer; see
	// MountOverlay): a whiteout becomes overlayfs's whiteout, a character
	// device 0:0, and an opaque marker the trusted.overlay.opaque
	// attribute of its directory, instead of removing what lower layers
	// hold. The entries' own trusted.overlay.* attributes are dropped.
	// What overlayfs cannot show as the plain unpack would (a hard link
	// to a file of a lower layer, an opaque root) fails with an error
	// wrapping ErrNotOverlay: unpack such an image the plain way.
	Overlay bool
}

// ErrNotOverlay marks a layer that Options.Overlay cannot represent.
var ErrNotOverlay = errors.New("the layer cannot be an overlayfs lower layer")

// overlayXattrPrefix is overlayfs's namespace of attributes.
const overlayXattrPrefix = xattrPrefix + "trusted.overlay."

// Apply applies one uncompressed layer tar, read from r, onto the
// directory root, device nodes included: it is ApplyWith with
// AllowDevices set.
func Apply(r io.Reader, root string) error {
	return ApplyWith(r, root, Options{AllowDevices: true})
}

// ApplyWith applies one uncompressed layer tar, read from r, onto the
// directory root, following the OCI image layer rules: whiteouts remove
// lower entries, opaque markers empty a directory of its lower contents, a
// new non-directory replaces whatever is at its path, a directory merges
// with a directory (taking the new entry's mode, owner and times, which
// are set after the directory's content whatever the tar order).
//
// Every entry is confined to root: names are relative to root (a leading
// "/" is dropped, as GNU tar, umoci, containerd and moby do; a name or
// hard link target that climbs out with ".." is refused), and symbolic
// links in the parent
// components of a name or of a hard link target are resolved as if root
// were "/" (openat2 RESOLVE_IN_ROOT), so nothing outside root is ever
// created, changed or removed. The last component is never followed.
//
// Owners, modes (setuid, setgid and sticky included) and modification
// times are kept for every entry type, symlinks included. Extended
// attributes (PAX SCHILY.xattr.*, security.capability included) are set
// after the owner, since chown clears capabilities; a filesystem that
// does not take one (ENOTSUP, EPERM) is not an error. An entry for root
// itself ("./" or "/") leaves root as it is; sparse entries are refused. It
// reads r only up to the tar's end-of-archive marker. On error the tree
// under root is left part-applied, and the error names the entry.
func ApplyWith(r io.Reader, root string, o Options) error {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("apply layer: open root directory %s: %w", root, err)
	}
	defer unix.Close(rootFD)

	a := &applier{
		root: rootFD, opts: o, added: map[string]bool{}, buf: make([]byte, 256<<10),
		parents: map[string]parentDir{}, euid: unix.Geteuid(), egid: unix.Getegid(), umask: processUmask(),
	}
	defer func() {
		a.dropParents()
		a.closeStale()
	}()
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

// applier holds the state of one ApplyWith call.
type applier struct {
	root int // O_PATH descriptor of the root directory
	opts Options
	// parents caches open parent directories by path: a path resolves to
	// the same directory until something is removed (then the cache is
	// emptied) or the directory's own entry changes it.
	parents map[string]parentDir
	stale   []int // dropped from the cache, closed at the next entry
	// Who creates files, and the umask they are created under (-1 if
	// unknown), to skip chown and chmod calls that would change nothing.
	euid, egid int
	umask      int
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

// escapes says why a tar name (or hard link target) is refused: it
// leaves root through "..", once a leading "/" is dropped. Image tools do
// not write such names, so they are refused rather than confined. ""
// means the name is fine.
func escapes(name string) string {
	if c := path.Clean(strings.TrimLeft(name, "/")); c == ".." || strings.HasPrefix(c, "../") {
		return "leaves the root through \"..\""
	}
	return ""
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
	a.closeStale()
	if why := escapes(hdr.Name); why != "" {
		return fmt.Errorf("the name %s", why)
	}
	if why := escapes(hdr.Linkname); hdr.Typeflag == tar.TypeLink && why != "" {
		return fmt.Errorf("hard link target %q %s", hdr.Linkname, why)
	}
	rel := cleanRel(hdr.Name)
	dir, base := split(rel)
	if a.opts.Overlay {
		for k := range hdr.PAXRecords {
			if strings.HasPrefix(k, overlayXattrPrefix) {
				delete(hdr.PAXRecords, k)
			}
		}
	}
	switch {
	case base == whiteoutOpaque && a.opts.Overlay:
		return a.overlayOpaque(dir)
	case base == whiteoutOpaque:
		return a.opaque(dir)
	case strings.HasPrefix(base, whiteoutPrefix) && a.opts.Overlay:
		return a.overlayWhiteout(dir, strings.TrimPrefix(base, whiteoutPrefix))
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
	if err := checkSupported(hdr, a.opts); err != nil {
		return err
	}

	pd, err := a.parent(dir)
	if err != nil {
		return err
	}
	parent := pd.fd
	a.markAdded(rel)

	if hdr.Typeflag == tar.TypeLink && cleanRel(hdr.Linkname) == rel {
		return nil // a hard link to itself is already in place
	}
	mode := uint32(hdr.Mode) & 0o7777
	if hdr.Typeflag == tar.TypeDir {
		return a.makeDir(parent, base, rel, hdr, mode)
	}
	// Create first; only when the name is taken (rare in a fresh tree)
	// remove what is there, whatever it is, and create again.
	err = a.create(pd, base, hdr, body, mode)
	if errors.Is(err, unix.EEXIST) {
		a.dropParents() // base may be on the way to cached directories
		if rerr := removeAllAt(pd.fd, base); rerr != nil {
			return fmt.Errorf("remove existing entry: %w", rerr)
		}
		err = a.create(pd, base, hdr, body, mode)
	}
	return err
}

// create makes the non-directory entry hdr as base in parent; an error
// wrapping EEXIST means the name was taken and nothing was done.
func (a *applier) create(pd parentDir, base string, hdr *tar.Header, body io.Reader, mode uint32) error {
	parent := pd.fd
	switch hdr.Typeflag {
	case tar.TypeReg:
		return a.writeFile(pd, base, hdr, body, mode)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, parent, base); err != nil {
			return fmt.Errorf("create symlink to %q: %w", hdr.Linkname, err)
		}
		if err := unix.Fchownat(parent, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown to %d:%d: %w", hdr.Uid, hdr.Gid, err)
		}
		if err := setXattrsAt(parent, base, hdr); err != nil {
			return err
		}
		return setTimes(parent, base, hdr)
	case tar.TypeLink:
		return a.hardlink(parent, base, hdr.Linkname)
	default: // char, block, fifo: checked by checkSupported
		return makeNode(parent, base, hdr, mode)
	}
}

func checkSupported(hdr *tar.Header, o Options) error {
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock:
		if !o.AllowDevices {
			kind := "character"
			if hdr.Typeflag == tar.TypeBlock {
				kind = "block"
			}
			return fmt.Errorf("%s device node %d:%d: device nodes are not allowed", kind, hdr.Devmajor, hdr.Devminor)
		}
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
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
	return OpenInRoot(a.root, rel, flags)
}

// mkdirAll returns an O_PATH descriptor of the directory rel, creating
// missing directories (mode 0755) on the way.
func (a *applier) mkdirAll(rel string) (int, error) {
	fd, err := MkdirAllInRoot(a.root, rel, 0o755)
	if err != nil {
		return -1, fmt.Errorf("parent directory: %w", err)
	}
	return fd, nil
}

func (a *applier) writeFile(pd parentDir, base string, hdr *tar.Header, body io.Reader, mode uint32) error {
	fd, err := unix.Openat(pd.fd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode&0o777)
	if err != nil {
		return fmt.Errorf("create file: %w", err)
	}
	err = writeAll(fd, body, a.buf)
	if err == nil {
		if a.ownedAsCreated(pd, hdr) && a.modeAsCreated(pd, mode) && !hasXattrs(hdr) {
			// Owner and mode are already right: nothing to set.
		} else {
			err = setOwnerMode(fd, hdr, mode)
		}
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("close file: %w", cerr)
	}
	if err != nil {
		return err
	}
	return setTimes(pd.fd, base, hdr)
}

// ownedAsCreated tells whether a file made in pd by this process gets
// hdr's owner by itself: the creator's user, and its group or, in a
// setgid directory, the directory's.
func (a *applier) ownedAsCreated(pd parentDir, hdr *tar.Header) bool {
	gid := a.egid
	if pd.setgid {
		gid = int(pd.gid)
	}
	return hdr.Uid == a.euid && hdr.Gid == gid
}

// modeAsCreated tells whether a file created in pd with mode keeps it
// all: no special bits (only chmod sets them), none cut by the umask,
// and no default ACL in pd to stand in for the umask.
func (a *applier) modeAsCreated(pd parentDir, mode uint32) bool {
	return pd.noDefaultACL && a.umask >= 0 && mode&0o7000 == 0 && mode&uint32(a.umask) == 0
}

// hasXattrs tells whether hdr carries extended attributes.
func hasXattrs(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, xattrPrefix) {
			return true
		}
	}
	return false
}

// processUmask reads the process's umask from /proc/self/status (reading
// it with umask(2) would change it for a moment, for every thread); -1
// if it cannot be read.
func processUmask() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				return -1
			}
			return int(m)
		}
	}
	return -1
}

// parentDir is an open directory entries are created in.
type parentDir struct {
	fd     int
	setgid bool   // new files get the directory's group
	gid    uint32 // the directory's group
	// noDefaultACL is set when the directory surely has no default ACL,
	// which would decide new files' modes instead of the umask.
	noDefaultACL bool
}

// maxParents bounds the open directories the cache holds.
const maxParents = 64

// parent returns the directory rel (created if missing, see mkdirAll),
// from the cache when it is there. The descriptor belongs to the cache.
func (a *applier) parent(rel string) (parentDir, error) {
	if pd, ok := a.parents[rel]; ok {
		return pd, nil
	}
	fd, err := a.mkdirAll(rel)
	if err != nil {
		return parentDir{}, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return parentDir{}, fmt.Errorf("parent directory %q: %w", rel, err)
	}
	if len(a.parents) >= maxParents {
		a.dropParents()
	}
	// An O_PATH descriptor takes no fgetxattr; its /proc link does.
	_, aclErr := unix.Getxattr("/proc/self/fd/"+strconv.Itoa(fd), "system.posix_acl_default", nil)
	pd := parentDir{fd: fd, setgid: st.Mode&unix.S_ISGID != 0, gid: st.Gid,
		noDefaultACL: errors.Is(aclErr, unix.ENODATA) || errors.Is(aclErr, unix.ENOTSUP)}
	a.parents[rel] = pd
	return pd, nil
}

// dropParent forgets the cached directory rel. Its descriptor stays open
// until the next entry, since the current one may be using it.
func (a *applier) dropParent(rel string) {
	if pd, ok := a.parents[rel]; ok {
		a.stale = append(a.stale, pd.fd)
		delete(a.parents, rel)
	}
}

// dropParents empties the cache: after a removal a path may resolve
// elsewhere (a removed symlink or directory on the way).
func (a *applier) dropParents() {
	for rel := range a.parents {
		a.dropParent(rel)
	}
}

// closeStale closes the descriptors dropped from the cache.
func (a *applier) closeStale() {
	for _, fd := range a.stale {
		unix.Close(fd)
	}
	a.stale = a.stale[:0]
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
	if errors.Is(err, unix.EEXIST) {
		// A lower directory merges with this one; anything else goes.
		var st unix.Stat_t
		if err := unix.Fstatat(parent, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat existing entry: %w", err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			a.dropParents() // base may be on the way to cached directories
			if err := removeAllAt(parent, base); err != nil {
				return fmt.Errorf("remove existing entry: %w", err)
			}
			err = unix.Mkdirat(parent, base, 0o700)
		} else {
			a.dropParent(rel) // its owner and mode change below
			err = nil
		}
	}
	if err != nil {
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
	if err == nil {
		defer unix.Close(tfd)
		err = unix.Linkat(tfd, tbase, parent, base, 0)
	}
	if errors.Is(err, unix.ENOENT) && a.opts.Overlay {
		return fmt.Errorf("hard link to %q, which is not in this layer: %w", linkname, ErrNotOverlay)
	}
	if err != nil {
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
	if err := setXattrsAt(parent, base, hdr); err != nil {
		return err
	}
	return setTimes(parent, base, hdr)
}

// setOwnerMode sets owner, then mode (chown clears setuid/setgid), then
// extended attributes (chown clears security.capability) on an open file
// or directory.
func setOwnerMode(fd int, hdr *tar.Header, mode uint32) error {
	if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown to %d:%d: %w", hdr.Uid, hdr.Gid, err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod %#o: %w", mode, err)
	}
	for k, v := range hdr.PAXRecords {
		if attr, ok := strings.CutPrefix(k, xattrPrefix); ok {
			if err := xattrErr(attr, unix.Fsetxattr(fd, attr, []byte(v), 0)); err != nil {
				return err
			}
		}
	}
	return nil
}

// setXattrsAt sets the extended attributes of hdr on base in the
// directory parent without following a symlink at base. There is no
// lsetxattr relative to a descriptor before Linux 6.13, so the name goes
// through /proc/self/fd; without /proc the attributes are left out.
func setXattrsAt(parent int, base string, hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		if attr, ok := strings.CutPrefix(k, xattrPrefix); ok {
			p := "/proc/self/fd/" + strconv.Itoa(parent) + "/" + base
			if err := xattrErr(attr, unix.Lsetxattr(p, attr, []byte(v), 0)); err != nil && !errors.Is(err, unix.ENOENT) {
				return err
			}
		}
	}
	return nil
}

// xattrErr is nil when err is nil or says that the filesystem (or the
// entry type, or our privilege) does not take the attribute: layers are
// applied best effort there, like Docker does.
func xattrErr(attr string, err error) error {
	if err == nil || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
		return nil
	}
	return fmt.Errorf("set extended attribute %q: %w", attr, err)
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
	a.dropParents()
	if err := removeAllAt(fd, name); err != nil {
		return fmt.Errorf("remove %q: %w", path.Join(dir, name), err)
	}
	return nil
}

// overlayWhiteout hides name of dir in the layers below, with
// overlayfs's whiteout: a character device 0:0. An entry of this layer of
// the same name wins, in any tar order.
func (a *applier) overlayWhiteout(dir, name string) error {
	if strings.HasPrefix(name, whiteoutPrefix) {
		return nil // other AUFS metadata (.wh..wh.plnk, ...): nothing to apply
	}
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return fmt.Errorf("invalid whiteout name %q", whiteoutPrefix+name)
	}
	if a.added[path.Join(dir, name)] {
		return nil
	}
	pd, err := a.parent(dir)
	if err != nil {
		return err
	}
	if err := unix.Mknodat(pd.fd, name, unix.S_IFCHR, 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("whiteout %q: %w", path.Join(dir, name), err)
	}
	return nil
}

// overlayOpaque hides what the layers below hold in dir, with
// overlayfs's opaque attribute.
func (a *applier) overlayOpaque(dir string) error {
	if dir == "" {
		return fmt.Errorf("an opaque root directory: %w", ErrNotOverlay)
	}
	if _, err := a.parent(dir); err != nil {
		return err
	}
	fd, err := a.openIn(dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("opaque directory %q: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		return fmt.Errorf("opaque directory %q: %w", dir, err)
	}
	a.markAdded(dir)
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
	a.dropParents()
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
