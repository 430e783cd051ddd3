package hotplug

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Event is one uevent of the kernel's: a device added, removed or changed.
type Event struct {
	Action    string // add, remove, change, bind, unbind, move, online, offline
	DevPath   string // under /sys: /devices/pci0000:00/0000:00:1d.0/usb2/2-1
	Subsystem string // usb, net, block, scsi, pci, ...
	Modalias  string // what drivers match, when the device has one
	// Env holds every KEY=value of the event, those above included.
	Env map[string]string
}

// Parse reads one uevent as the kernel sends it:
// "ACTION@DEVPATH\0KEY=value\0...". It refuses udev's own messages
// ("libudev" and a binary header), which are not the kernel's.
func Parse(msg []byte) (Event, error) {
	head, rest, _ := bytes.Cut(msg, []byte{0})
	action, devpath, ok := strings.Cut(string(head), "@")
	if !ok || action == "" || !strings.HasPrefix(devpath, "/") {
		return Event{}, fmt.Errorf("uevent: header %q: want ACTION@/DEVPATH", clip(head))
	}
	ev := Event{Action: action, DevPath: devpath, Env: map[string]string{}}
	for field := range bytes.SplitSeq(rest, []byte{0}) {
		if k, v, ok := strings.Cut(string(field), "="); ok && k != "" {
			ev.Env[k] = v
		}
	}
	if a := ev.Env["ACTION"]; a != "" && a != action {
		return Event{}, fmt.Errorf("uevent: header says %q, ACTION=%q", action, a)
	}
	ev.Subsystem, ev.Modalias = ev.Env["SUBSYSTEM"], ev.Env["MODALIAS"]
	return ev, nil
}

// clip shortens b for an error message.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// ErrOverflow is what Conn.Read returns when the kernel dropped events
// because they were not read fast enough: what they said must be found
// again in /sys.
var ErrOverflow = errors.New("uevent: events were lost (receive buffer full)")

// kernelGroup is the multicast group of the kernel's uevents (udev
// re-broadcasts on group 2).
const kernelGroup = 1

// rcvBuf is the receive buffer asked for: a coldplug of a big machine
// makes thousands of events while drivers load.
const rcvBuf = 8 << 20

// Conn is a NETLINK_KOBJECT_UEVENT socket on the kernel's uevents. Close
// ends a Read in progress.
type Conn struct {
	f      *os.File
	raw    syscall.RawConn
	buf    []byte
	closed atomic.Bool
}

// Open subscribes to the kernel's uevents, those of the network namespace
// it is called in. Events are queued from then on, until read.
func Open() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("uevent: opening a NETLINK_KOBJECT_UEVENT socket: %w", err)
	}
	// As root, past net.core.rmem_max; else as much as that allows.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: kernelGroup}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("uevent: subscribing to the kernel's uevents: %w", err)
	}
	f := os.NewFile(uintptr(fd), "uevent")
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("uevent: %w", err)
	}
	return &Conn{f: f, raw: raw, buf: make([]byte, 64<<10)}, nil
}

// Read waits for the next uevent of the kernel's and returns it. Messages
// from anyone else, and any the kernel would not send, are skipped. It
// returns ErrOverflow when events were lost, and an error wrapping
// os.ErrClosed once the Conn is closed.
func (c *Conn) Read() (Event, error) {
	for {
		var (
			n    int
			from unix.Sockaddr
			rerr error
		)
		err := c.raw.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), c.buf, 0)
			return rerr != unix.EAGAIN
		})
		switch {
		case err != nil && c.closed.Load():
			return Event{}, fmt.Errorf("uevent: %w", os.ErrClosed) // the poller says "use of closed file"
		case err != nil:
			return Event{}, fmt.Errorf("uevent: %w", err)
		case errors.Is(rerr, unix.ENOBUFS):
			return Event{}, ErrOverflow
		case errors.Is(rerr, unix.EINTR):
			continue
		case rerr != nil:
			return Event{}, fmt.Errorf("uevent: receiving: %w", rerr)
		}
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue // not the kernel
		}
		ev, err := Parse(c.buf[:n])
		if err != nil {
			continue
		}
		return ev, nil
	}
}

// Close closes the socket; a Read waiting returns.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return c.f.Close()
}
