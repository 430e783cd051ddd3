package pid1

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// activeConsoles lists the consoles the kernel writes to: every console=
// of the command line that exists (tty0 when none is given).
const activeConsoles = "/sys/class/tty/console/active"

// OtherConsoles opens, for writing, the consoles the kernel writes its
// messages to other than the one /dev/console (fd 1, once SetupConsole
// has run) stands for: the kernel gives /dev/console to the last
// console= only, so with "console=tty0 console=ttyS0" the screen would
// show the kernel's messages and none of the boot's. The writers never
// block: a console that cannot take a line (a serial line held by flow
// control) loses it rather than stopping the boot.
func OtherConsoles() ([]io.Writer, error) {
	data, err := os.ReadFile(activeConsoles)
	if err != nil {
		return nil, fmt.Errorf("listing the consoles: %w", err)
	}
	primary, err := unix.IoctlGetUint32(1, unix.TIOCGDEV)
	if err != nil {
		return nil, fmt.Errorf("finding the device of /dev/console: %w", err)
	}
	var others []io.Writer
	for _, name := range strings.Fields(string(data)) {
		dev := filepath.Join("/dev", name)
		var st unix.Stat_t
		if unix.Stat(foreground(dev), &st) != nil || st.Rdev == uint64(primary) {
			continue
		}
		fd, err := unix.Open(dev, unix.O_WRONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return others, fmt.Errorf("opening the console %s: %w", dev, err)
		}
		others = append(others, consoleFD(fd))
	}
	return others, nil
}

// foreground is the terminal that writes to dev go to: for /dev/tty0,
// the virtual terminal in the foreground (/dev/tty1 at boot), which is
// what /dev/console stands for when tty0 is the console; dev itself for
// the others.
func foreground(dev string) string {
	if dev != "/dev/tty0" {
		return dev
	}
	fg, err := os.ReadFile("/sys/class/tty/tty0/active")
	if err != nil || strings.TrimSpace(string(fg)) == "" {
		return dev
	}
	return filepath.Join("/dev", strings.TrimSpace(string(fg)))
}

// consoleFD writes to a console's descriptor directly, without Go's
// poller, which would wait for a full console rather than give up.
type consoleFD int

func (c consoleFD) Write(p []byte) (int, error) { return unix.Write(int(c), p) }
