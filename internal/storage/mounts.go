package storage

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Filesystem is a named mount, boot2container's
// filesystem=NAME,type=T,src=S,opts=a|b: usable as the cache device (and
// as the backing of volumes).
type Filesystem struct {
	Name    string
	Type    string // ext4, xfs, btrfs, vfat, nfs, nfs4, 9p, virtiofs, tmpfs...
	Source  string // a device, HOST:/PATH, a 9p or virtiofs tag
	Options string // mount options, comma-separated
}

// Mount mounts f on dir, created when missing. The kernel's NFS client
// wants the server's address in addr=, which mount.nfs would add: it is
// added here, the server's name resolved with ctx.
func (f Filesystem) Mount(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("filesystem %s: %w", f.Name, err)
	}
	opts := f.Options
	if strings.HasPrefix(f.Type, "nfs") && !hasOption(opts, "addr") {
		host, _, ok := strings.Cut(f.Source, ":")
		if !ok {
			return fmt.Errorf("filesystem %s: src=%s: expected HOST:/PATH for %s", f.Name, f.Source, f.Type)
		}
		addrs, err := net.DefaultResolver.LookupHost(ctx, strings.Trim(host, "[]"))
		if err != nil || len(addrs) == 0 {
			return fmt.Errorf("filesystem %s: resolving the server %s: %v", f.Name, host, err)
		}
		opts = strings.TrimPrefix(opts+",addr="+addrs[0], ",")
	}
	flags, data := mountFlags(opts)
	if err := unix.Mount(f.Source, dir, f.Type, flags, data); err != nil {
		return fmt.Errorf("filesystem %s: mounting %s (%s, options %q) on %s: %w", f.Name, f.Source, f.Type, opts, dir, err)
	}
	return nil
}

// flagOptions are the mount options that mount(8) turns into mount(2)
// flags rather than passing them to the filesystem: set, or cleared
// (with a leading '-').
var flagOptions = map[string]int64{
	"ro": unix.MS_RDONLY, "rw": -unix.MS_RDONLY,
	"nosuid": unix.MS_NOSUID, "suid": -unix.MS_NOSUID,
	"nodev": unix.MS_NODEV, "dev": -unix.MS_NODEV,
	"noexec": unix.MS_NOEXEC, "exec": -unix.MS_NOEXEC,
	"sync": unix.MS_SYNCHRONOUS, "async": -unix.MS_SYNCHRONOUS,
	"dirsync": unix.MS_DIRSYNC, "noatime": unix.MS_NOATIME, "atime": -unix.MS_NOATIME,
	"nodiratime": unix.MS_NODIRATIME, "diratime": -unix.MS_NODIRATIME,
	"relatime": unix.MS_RELATIME, "norelatime": -unix.MS_RELATIME,
	"strictatime": unix.MS_STRICTATIME, "lazytime": unix.MS_LAZYTIME, "nolazytime": -unix.MS_LAZYTIME,
	"mand": unix.MS_MANDLOCK, "nomand": -unix.MS_MANDLOCK, "silent": unix.MS_SILENT, "loud": -unix.MS_SILENT,
	"defaults": 0,
}

// mountFlags splits comma-separated mount options, as mount(8) takes
// them, into mount(2) flags and the filesystem's own options.
func mountFlags(opts string) (uintptr, string) {
	var flags int64
	var data []string
	for _, o := range strings.Split(opts, ",") {
		f, ok := flagOptions[o]
		switch {
		case o == "":
		case !ok:
			data = append(data, o)
		case f < 0:
			flags &^= -f
		default:
			flags |= f
		}
	}
	return uintptr(flags), strings.Join(data, ",")
}

// hasOption tells whether the comma-separated opts set name.
func hasOption(opts, name string) bool {
	for _, o := range strings.Split(opts, ",") {
		if k, _, _ := strings.Cut(o, "="); k == name {
			return true
		}
	}
	return false
}
