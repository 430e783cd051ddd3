package pid1

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ReleaseDisks makes the disks safe to lose power: it stops swapping,
// then unmounts the filesystems of block devices (the cache), the
// deepest first, remounting read-only any that stays busy, so that what
// was written is on the disk and the filesystems are clean. What fails
// is said on log.
func ReleaseDisks(log io.Writer) {
	if data, err := os.ReadFile("/proc/swaps"); err == nil {
		for _, name := range parseSwaps(string(data)) {
			if err := swapoff(name); err != nil {
				fmt.Fprintf(log, "ociboot: swapoff %s: %v\n", name, err)
			}
		}
	}
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	mounts := diskMounts(string(data))
	for i := len(mounts) - 1; i >= 0; i-- {
		dir := mounts[i]
		if err := unix.Unmount(dir, 0); err != nil {
			if rerr := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); rerr != nil {
				fmt.Fprintf(log, "ociboot: unmounting %s: %v; remounting it read-only: %v\n", dir, err, rerr)
			}
		}
	}
	unix.Sync()
}

// parseSwaps returns the swap areas /proc/swaps lists.
func parseSwaps(data string) []string {
	var names []string
	lines := strings.Split(data, "\n")
	for _, l := range lines[1:] { // a header first
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, unescapeMount(f[0]))
		}
	}
	return names
}

// diskMounts returns the mount points of block devices in /proc/mounts,
// in mount order, but those mounted read-only: they hold nothing
// unwritten, and the images of modules and firmware, on loop devices,
// stay mounted for the OS.
func diskMounts(data string) []string {
	var dirs []string
	for _, l := range strings.Split(data, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || !strings.HasPrefix(f[0], "/dev/") || f[2] == "devtmpfs" || slices.Contains(strings.Split(f[3], ","), "ro") {
			continue
		}
		dirs = append(dirs, unescapeMount(f[1]))
	}
	return dirs
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space) in
// /proc/mounts and /proc/swaps.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func swapoff(path string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	if _, _, errno := unix.Syscall(unix.SYS_SWAPOFF, uintptr(unsafe.Pointer(p)), 0, 0); errno != 0 {
		return errno
	}
	return nil
}
