package pid1

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"time"

	"github.com/ociboot/ociboot/internal/console"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Action is what the machine does at the end.
type Action int

// The end actions.
const (
	PowerOff Action = iota
	Reboot
)

func (a Action) String() string {
	if a == Reboot {
		return "reboot"
	}
	return "poweroff"
}

// Requests turns SIGTERM into a power-off request and SIGINT, which the
// kernel sends on ctrl-alt-del once CAD is handed to init, into a reboot
// request.
func Requests() <-chan Action {
	// With CAD off, the kernel sends SIGINT to init instead of rebooting
	// on the spot; it fails harmlessly when not PID 1.
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT)
	out := make(chan Action, 2)
	go func() {
		for s := range sigs {
			if s == unix.SIGINT {
				out <- Reboot
			} else {
				out <- PowerOff
			}
		}
	}()
	return out
}

// Shutdown stops every process, syncs and releases the disks (see
// ReleaseDisks), prints console.SafeLine to log and powers off or
// reboots. It does not return.
func Shutdown(a Action, r *Reaper, log io.Writer) {
	ShutdownWith(a, r, log, nil)
}

// ShutdownWith is Shutdown that runs command (argv; ociboot.shutdown_cmd or
// reboot_cmd) to power off or reboot, when it is not empty. If the command
// cannot run or returns, ociboot powers off or reboots itself. It does not
// return.
func ShutdownWith(a Action, r *Reaper, log io.Writer, command []string) {
	killAll(r, 5*time.Second)
	unix.Sync()
	ReleaseDisks(log)
	fmt.Fprintln(log, console.SafeLine)
	if len(command) > 0 {
		c := exec.Command(command[0], command[1:]...)
		c.Stdout, c.Stderr = log, log
		code, err := r.Run(c)
		if err == nil {
			err = fmt.Errorf("it exited with status %d", code)
		}
		fmt.Fprintf(log, "ociboot: %s command %q did not %s: %v; doing it myself\n", a, strings.Join(command, " "), a, err)
		unix.Sync()
	}
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if a == Reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	downLinks()
	err := unix.Reboot(cmd)
	// Only reached when the kernel refused; PID 1 must not exit.
	fmt.Fprintf(log, "ociboot: %s failed: %v; halting here\n", a, err)
	for {
		time.Sleep(time.Hour)
	}
}

// downLinks sets every network link but the loopback down, so that
// nothing transmits while the kernel shuts the devices down: a packet
// sent then (a TCP retransmission, a socket closed late) can make a virtio
// NIC's transmit path spin forever on the queue the shutdown broke, and
// the machine never powers off. Best effort: a link that stays up is
// what there was before.
func downLinks() {
	links, err := netlink.LinkList()
	if err != nil {
		return
	}
	for _, l := range links {
		if l.Attrs().Flags&net.FlagLoopback == 0 && l.Attrs().Flags&net.FlagUp != 0 {
			_ = netlink.LinkSetDown(l)
		}
	}
}

// killAll sends SIGTERM to every other process, gives them grace to exit,
// then SIGKILL.
func killAll(r *Reaper, grace time.Duration) {
	if unix.Kill(-1, unix.SIGTERM) != nil {
		return // nothing else runs
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		r.Reap()
		if !hasChildren() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = unix.Kill(-1, unix.SIGKILL)
	time.Sleep(100 * time.Millisecond)
	r.Reap()
}

// hasChildren reports whether any child process is left, exited or not.
func hasChildren() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err != unix.ECHILD
}
