package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// hostDevices lists the character and block devices under dir, the host's
// /dev, as the runtime spec's devices, which the runtime creates in the
// container's /dev (a tmpfs). This is what podman does for --privileged;
// like podman it skips the directories of other filesystems (pts, shm,
// mqueue, fd), /dev/console and symbolic links. It also skips /dev/ptmx:
// the runtime makes the container's a link to its own /dev/pts/ptmx. Devices that appear after
// the container starts are not seen in it.
func hostDevices(dir string) ([]specs.LinuxDevice, error) {
	var devices []specs.LinuxDevice
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "pts", "shm", "mqueue", "fd":
				if p != dir {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if d.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 || d.Name() == "console" || p == filepath.Join(dir, "ptmx") {
			return nil
		}
		dev, err := deviceOf(dir, p)
		if errors.Is(err, fs.ErrNotExist) { // removed meanwhile
			return nil
		}
		if err != nil {
			return err
		}
		devices = append(devices, dev)
		return nil
	})
	return devices, err
}

// deviceOf describes the device node at p (under dir) as it must appear in
// the container's /dev.
func deviceOf(dir, p string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return specs.LinuxDevice{}, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return specs.LinuxDevice{}, err
	}
	typ := "c"
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, fmt.Errorf("%s is no longer a device node", p)
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path:     filepath.Join("/dev", rel),
		Type:     typ,
		Major:    int64(unix.Major(st.Rdev)),
		Minor:    int64(unix.Minor(st.Rdev)),
		FileMode: &mode,
		UID:      &uid,
		GID:      &gid,
	}, nil
}
