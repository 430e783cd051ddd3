// Package netnstest gives tests a private network namespace, to put a VM's
// second NIC and UDP services (DHCP, NTP) where nothing else can reach
// them or be reached from them: QEMU's user networking forwards only TCP,
// and must keep restrict=on.
//
// The harness: New makes a namespace with `ip netns add`; Tap creates a
// tap device inside it, with an address, and returns its open file, which
// QEMU (left in the test's own namespace, so that its guestfwd relays
// still reach 127.0.0.1) takes as the backend of a NIC (vm.Config.Taps);
// Do runs a function on a thread inside the namespace, so that sockets it
// opens (an NTP responder, say) live there; Command runs a program there
// (`ip netns exec`), such as dnsmasq. Addresses are private and exist only
// in the namespace, which has no route anywhere else. Everything is
// removed when the test ends.
package netnstest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// NS is a network namespace made for one test.
type NS struct {
	Name string
	path string // /run/netns/NAME
}

var counter atomic.Int32

// New makes a network namespace, with its loopback up, and deletes it when
// the test ends. It needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
func New(t testing.TB) *NS {
	t.Helper()
	ns := &NS{Name: fmt.Sprintf("ociboot-test-%d-%d", os.Getpid(), counter.Add(1))}
	ns.path = "/run/netns/" + ns.Name
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		t.Fatalf("netnstest: ip netns add %s: %v: %s", ns.Name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("netnstest: ip netns del %s: %v: %s", ns.Name, err, out)
		}
	})
	ns.IP(t, "link", "set", "lo", "up")
	return ns
}

// IP runs `ip -n NAME ARGS...` and fails the test if it fails.
func (ns *NS) IP(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("netnstest: ip -n %s %s: %v: %s", ns.Name, strings.Join(args, " "), err, out)
	}
}

// Command returns a command that runs name in the namespace.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Do runs f on an OS thread that has entered the namespace; sockets f
// opens belong to the namespace for their whole life.
func (ns *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is left in the namespace and never reused: a
		// goroutine that ends while locked takes its thread with it.
		runtime.LockOSThread()
		fd, err := unix.Open(ns.path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netnstest: opening %s: %w", ns.path, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("netnstest: entering %s: %w", ns.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// Tap creates a tap device called name in the namespace with address
// cidr (such as 192.168.77.1/24), sets it up, and returns its open file:
// the device lives as long as the file is open. The file is closed when
// the test ends.
func (ns *NS) Tap(t testing.TB, name, cidr string) *os.File {
	t.Helper()
	var tap *os.File
	err := ns.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening /dev/net/tun: %w", err)
		}
		var req [unix.IFNAMSIZ + 64]byte // struct ifreq
		copy(req[:unix.IFNAMSIZ-1], name)
		*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TAP | unix.IFF_NO_PI
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, errno)
		}
		tap = os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
		return nil
	})
	if err != nil {
		t.Fatalf("netnstest: tap %s in %s: %v", name, ns.Name, err)
	}
	t.Cleanup(func() { tap.Close() })
	ns.IP(t, "addr", "add", cidr, "dev", name)
	ns.IP(t, "link", "set", name, "up")
	return tap
}

// DHCPServer is dnsmasq serving DHCPv4 in a namespace.
type DHCPServer struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{} // closed when its output ends
	once sync.Once
}

// Log returns what dnsmasq logged so far.
func (d *DHCPServer) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// Stop kills dnsmasq and waits for it; the test's end does too.
func (d *DHCPServer) Stop() {
	d.once.Do(func() {
		_ = d.cmd.Process.Kill()
		<-d.done
		_ = d.cmd.Wait()
	})
}

// DHCP starts dnsmasq in the namespace, answering DHCPv4 on iface with
// addresses from first to last (such as 192.168.77.10 and
// 192.168.77.20), plus extra dnsmasq arguments (such as
// "--dhcp-option=42,192.168.77.1" to offer an NTP server).
func (ns *NS) DHCP(t testing.TB, iface, first, last string, extra ...string) *DHCPServer {
	t.Helper()
	return Dnsmasq(t, ns.Name, append([]string{"--interface=" + iface, "--dhcp-range=" + first + "," + last + ",1h"}, extra...)...)
}

// Dnsmasq runs dnsmasq in the network namespace called nsName (made with
// `ip netns add`) as a DHCP server only: no DNS, no lease file, logging
// every exchange, with args for the interfaces and ranges. It returns
// once dnsmasq listens, and stops it when the test ends (printing its
// log if the test failed).
func Dnsmasq(t testing.TB, nsName string, args ...string) *DHCPServer {
	t.Helper()
	args = append([]string{"netns", "exec", nsName, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--bind-interfaces", "--leasefile-ro", "--no-ping", "--log-dhcp", "--log-facility=-"}, args...)
	d := &DHCPServer{cmd: exec.Command("ip", args...), done: make(chan struct{})} // ip execs dnsmasq in place
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("netnstest: starting dnsmasq in %s: %v", nsName, err)
	}
	ready := make(chan struct{})
	go func() {
		started := false
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			d.mu.Lock()
			d.log.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
			if !started && strings.Contains(sc.Text(), "started, version") { // logged once its sockets are open
				started = true
				close(ready)
			}
		}
		close(d.done)
	}()
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("dnsmasq output:\n%s", d.Log())
		}
	})
	select {
	case <-ready:
	case <-d.done:
		t.Fatalf("netnstest: dnsmasq in %s ended:\n%s", nsName, d.Log())
	case <-time.After(10 * time.Second):
		t.Fatalf("netnstest: dnsmasq in %s did not start within 10s:\n%s", nsName, d.Log())
	}
	return d
}
