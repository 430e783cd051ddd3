package hotplug

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/kmod"
	"github.com/ociboot/ociboot/internal/netnstest"
)

// A uevent as the kernel sent it when QEMU's usb-net appeared behind
// qemu-xhci.
const usbNet = "add@/devices/pci0000:00/0000:00:03.0/usb1/1-1/1-1:1.0\x00ACTION=add\x00" +
	"DEVPATH=/devices/pci0000:00/0000:00:03.0/usb1/1-1/1-1:1.0\x00SUBSYSTEM=usb\x00DEVTYPE=usb_interface\x00" +
	"PRODUCT=525/a4a2/0\x00TYPE=2/0/0\x00INTERFACE=2/6/0\x00MODALIAS=usb:v0525pA4A2d0000dc02dsc00dp00ic02isc06ip00in00\x00SEQNUM=1703\x00"

func TestParse(t *testing.T) {
	ev, err := Parse([]byte(usbNet))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Action != "add" || ev.DevPath != "/devices/pci0000:00/0000:00:03.0/usb1/1-1/1-1:1.0" || ev.Subsystem != "usb" ||
		ev.Modalias != "usb:v0525pA4A2d0000dc02dsc00dp00ic02isc06ip00in00" || ev.Env["SEQNUM"] != "1703" || ev.Env["DEVTYPE"] != "usb_interface" {
		t.Errorf("Parse = %+v", ev)
	}
	for _, bad := range []string{
		"",
		"libudev\x00\xfe\xed\xca\xfe",     // udev's own messages
		"add@devices/x\x00ACTION=add\x00", // a path not under /
		"@/devices/x\x00",
		"add@/devices/x\x00ACTION=remove\x00",
	} {
		if _, err := Parse([]byte(bad)); err == nil || !strings.HasPrefix(err.Error(), "uevent: ") {
			t.Errorf("Parse(%q) error = %v, want one saying what is wrong", bad, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(usbNet))
	f.Add([]byte("remove@/devices/virtual/net/v0\x00ACTION=remove\x00=x\x00noequals\x00"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		ev, err := Parse(msg)
		if err != nil {
			return
		}
		if ev.Action == "" || !strings.HasPrefix(ev.DevPath, "/") || ev.Subsystem != ev.Env["SUBSYSTEM"] || ev.Modalias != ev.Env["MODALIAS"] {
			t.Errorf("Parse(%q) = %+v", msg, ev)
		}
	})
}

// TestConnHearsTheKernel opens a real uevent socket in a network namespace
// of its own, where the kernel sends the events of that namespace's
// links: a veth pair made there is heard as two "add" events of the net
// subsystem, and Close ends a Read waiting.
func TestConnHearsTheKernel(t *testing.T) {
	ns := netnstest.New(t)
	var c *Conn
	if err := ns.Do(func() (err error) { c, err = Open(); return err }); err != nil {
		t.Fatal(err)
	}
	ns.IP(t, "link", "add", "hp0", "type", "veth", "peer", "name", "hp1")
	var got []string
	for len(got) < 2 {
		ev, err := c.Read()
		if err != nil {
			t.Fatal(err)
		}
		if ev.Action == "add" && ev.Subsystem == "net" {
			got = append(got, ev.Env["INTERFACE"])
		}
	}
	if slices.Sort(got); !slices.Equal(got, []string{"hp0", "hp1"}) {
		t.Errorf("net devices added: %v, want hp0 and hp1", got)
	}
	read := make(chan error)
	go func() {
		_, err := c.Read()
		read <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-read; !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close: %v, want os.ErrClosed", err)
	}
}

// events is a source fed by the test.
type events chan any // Event or error

func (e events) Read() (Event, error) {
	v, ok := <-e
	if !ok {
		return Event{}, fmt.Errorf("uevent: %w", os.ErrClosed)
	}
	if err, ok := v.(error); ok {
		return Event{}, err
	}
	return v.(Event), nil
}

func (e events) Close() error { close(e); return nil }

// loader records what it is asked to load, and blocks on gate if set.
type loader struct {
	mu    sync.Mutex
	asked []string
	gate  chan struct{}
}

func (l *loader) Load(aliases []string) ([]kmod.Module, error) {
	if l.gate != nil {
		<-l.gate
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked = append(l.asked, aliases...)
	if aliases[0] == "pci:bad" {
		return nil, errors.New("kmod: loading module bad: init_module: invalid argument")
	}
	return []kmod.Module{{Name: "for-" + aliases[0]}}, nil
}

// TestListener checks what the Listener does with each event: drivers
// loaded for devices added with a modalias, and reported; nothing for
// other actions; waiters woken by every device added; a rescan when
// events were lost; and Stop waiting for the drivers being loaded.
func TestListener(t *testing.T) {
	src := make(events)
	ld := &loader{gate: make(chan struct{})}
	var (
		mu       sync.Mutex
		reported []string
	)
	lost := make(chan struct{}, 1)
	l := listen(src, Options{
		Drivers: ld,
		Report: func(ev Event, mods []kmod.Module, _ time.Duration, err error) {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, fmt.Sprintf("%s %v %v", ev.DevPath, mods, err))
		},
		Lost: func() { lost <- struct{}{} },
	})

	added := l.Added()
	src <- Event{Action: "remove", DevPath: "/devices/a", Modalias: "usb:gone"}
	src <- Event{Action: "bind", DevPath: "/devices/a", Modalias: "usb:bound"}
	select {
	case <-added:
		t.Fatal("Added closed by a remove or bind")
	default:
	}
	src <- Event{Action: "add", DevPath: "/devices/usb1/1-1", Modalias: "usb:v0525"}
	<-added // closed, though the driver is still loading
	next := l.Added()
	src <- Event{Action: "add", DevPath: "/devices/virtual/block/loop0", Subsystem: "block"}
	<-next
	src <- Event{Action: "add", DevPath: "/devices/pci/bad", Modalias: "pci:bad"}
	src <- ErrOverflow
	<-lost
	close(ld.gate)
	l.Stop()

	if slices.Sort(ld.asked); !slices.Equal(ld.asked, []string{"pci:bad", "usb:v0525"}) {
		t.Errorf("drivers asked for %v, want those of the two devices added with a modalias", ld.asked)
	}
	slices.Sort(reported)
	want := []string{
		"/devices/pci/bad [] kmod: loading module bad: init_module: invalid argument",
		"/devices/usb1/1-1 [{for-usb:v0525  false false}] <nil>",
	}
	if !slices.Equal(reported, want) {
		t.Errorf("reported:\n%q\nwant\n%q", reported, want)
	}
}
