// Package loopdev mounts filesystem images through loop devices: an image
// file becomes a read-only block device that the kernel mounts, and the
// device is let go with the mount.
package loopdev

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Control is the loop driver's control device.
const Control = "/dev/loop-control"

// attempts bounds the search for a free device: another process may take
// the one the driver offered before it is configured.
const attempts = 16

// Mount mounts the filesystem image file, of type fstype (such as
// squashfs), read-only at dir through a free loop device, and returns the
// device's path. The device is configured to detach itself once nothing
// holds it (autoclear): when the mount goes, or at once when the mount
// fails.
func Mount(file, dir, fstype string) (string, error) {
	img, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", file, err)
	}
	defer img.Close()
	dev, err := attach(img)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", file, err)
	}
	defer dev.Close()
	if err := unix.Mount(dev.Name(), dir, fstype, unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		return "", fmt.Errorf("image %s: mounting %s (%s) on %s: %w", file, dev.Name(), fstype, dir, err)
	}
	return dev.Name(), nil
}

// attach binds img to a free loop device, read-only and autoclear, and
// returns the device open.
func attach(img *os.File) (*os.File, error) {
	ctl, err := os.OpenFile(Control, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("no loop devices (is the loop module loaded?): %w", err)
	}
	defer ctl.Close()
	for range attempts {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("asking %s for a free loop device: %w", Control, err)
		}
		name := fmt.Sprintf("/dev/loop%d", n)
		dev, err := os.OpenFile(name, os.O_RDONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", name, err)
		}
		err = configure(dev, img)
		if errors.Is(err, unix.EBUSY) {
			dev.Close() // taken meanwhile: ask again
			continue
		}
		if err != nil {
			dev.Close()
			return nil, fmt.Errorf("binding %s to it: %w", name, err)
		}
		return dev, nil
	}
	return nil, fmt.Errorf("no free loop device after %d tries: others took each one offered", attempts)
}

// configure binds img to dev with LOOP_CONFIGURE (Linux 5.8), or with
// LOOP_SET_FD and LOOP_SET_STATUS64 where that is unknown.
func configure(dev, img *os.File) error {
	info := unix.LoopInfo64{Flags: unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR}
	copy(info.File_name[:len(info.File_name)-1], img.Name())
	fd := int(dev.Fd())
	err := unix.IoctlLoopConfigure(fd, &unix.LoopConfig{Fd: uint32(img.Fd()), Info: info})
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
		return err
	}
	if err := unix.IoctlSetInt(fd, unix.LOOP_SET_FD, int(img.Fd())); err != nil {
		return err
	}
	if err := unix.IoctlLoopSetStatus64(fd, &info); err != nil {
		_ = unix.IoctlSetInt(fd, unix.LOOP_CLR_FD, 0)
		return err
	}
	return nil
}
