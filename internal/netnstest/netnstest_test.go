package netnstest

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestTapAndDo(t *testing.T) {
	ns := New(t)
	tap := ns.Tap(t, "tap0", "192.168.77.1/24")
	if tap == nil {
		t.Fatal("no tap file")
	}
	// A socket opened in Do lives in the namespace: it can bind the tap's
	// address, which the test's own namespace does not have.
	var conn net.PacketConn
	if err := ns.Do(func() error {
		var err error
		conn, err = net.ListenPacket("udp", "192.168.77.1:0")
		return err
	}); err != nil {
		t.Fatalf("listening on the tap's address inside the namespace: %v", err)
	}
	defer conn.Close()
	if _, err := net.ListenPacket("udp", "192.168.77.1:0"); err == nil {
		t.Error("the tap's address is bound outside the namespace too")
	}
	out, err := exec.Command("ip", "-n", ns.Name, "-o", "addr", "show", "dev", "tap0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "192.168.77.1/24") {
		t.Errorf("ip addr in the namespace: %v: %s", err, out)
	}
	d := ns.DHCP(t, "tap0", "192.168.77.10", "192.168.77.20")
	// dnsmasq logs its range just after it says it started.
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(d.Log(), "DHCP, IP range 192.168.77.10 -- 192.168.77.20") {
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq log:\n%s", d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
