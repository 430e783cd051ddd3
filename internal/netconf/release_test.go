package netconf

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// upFlag matches the UP flag in `ip link show` output.
var upFlag = regexp.MustCompile(`[<,]UP[,>]`)

// wantTornDown checks that link name in ns has no global address, no
// route in the main table and is down, and that lo is still up.
func wantTornDown(t *testing.T, ns, name string) {
	t.Helper()
	if addrs := run(t, "ip", "-n", ns, "addr", "show", "dev", name); strings.Contains(addrs, "inet ") || strings.Contains(addrs, "scope global") {
		t.Errorf("%s still has addresses:\n%s", name, addrs)
	}
	for _, family := range []string{"-4", "-6"} {
		if routes := run(t, "ip", "-n", ns, family, "route", "show", "dev", name); strings.TrimSpace(routes) != "" {
			t.Errorf("%s still has %s routes:\n%s", name, family, routes)
		}
	}
	if link := run(t, "ip", "-n", ns, "link", "show", "dev", name); upFlag.MatchString(link) {
		t.Errorf("%s is still up:\n%s", name, link)
	}
	if lo := run(t, "ip", "-n", ns, "link", "show", "dev", "lo"); !upFlag.MatchString(lo) {
		t.Errorf("lo is not up:\n%s", lo)
	}
}

// waitServerLog waits, a minute at most (dnsmasq's log lags), for a line
// holding want in what log returns, and returns that line.
func waitServerLog(t *testing.T, log func() string, want string) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		for line := range strings.Lines(log()) {
			if strings.Contains(line, want) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("dnsmasq logged no line with %q:\n%s", want, log())
			return ""
		}
	}
}

func TestReleaseDHCP(t *testing.T) {
	t.Parallel()
	cns, sns := newNetns(t, "dc"), newNetns(t, "ds")
	vethPair(t, cns, "c0", sns, "s0", "10.213.19.1/24")
	vethPair(t, cns, "c1", sns, "s1", "10.213.23.1/24")
	d := startDnsmasq(t, sns, "--interface=s0", "--interface=s1",
		"--dhcp-range=set:a,10.213.19.100,10.213.19.150,255.255.255.0,1h",
		"--dhcp-option=tag:a,option:classless-static-route,0.0.0.0/0,10.213.19.1,10.99.0.0/16,10.213.19.254",
		"--dhcp-range=10.213.23.100,10.213.23.150,255.255.255.0,1h")
	linkUp(t, cns, "c0", sns, "s0")
	linkUp(t, cns, "c1", sns, "s1")

	h := startHelper(t, cns, helperRequest{Interfaces: []string{"c0", "c1"}, Timeout: 5 * time.Second,
		ResolvConf: filepath.Join(t.TempDir(), "resolv.conf"), Release: true})
	res := h.result(2 * time.Minute)
	if res.Err != "" || len(res.Leases) != 2 {
		t.Fatalf("Up = %+v, want leases on c0 and c1", res)
	}
	addr0, addr1 := res.Leases[0].Address, res.Leases[1].Address
	ip0, ip1 := strings.Split(addr0, "/")[0], strings.Split(addr1, "/")[0]
	wantLines(t, "c0 before Release", run(t, "ip", "-n", cns, "addr", "show", "dev", "c0"), "inet "+addr0)
	wantLines(t, "routes before Release", run(t, "ip", "-n", cns, "-4", "route", "show"),
		"default via 10.213.19.1 dev c0 proto dhcp", "10.99.0.0/16 via 10.213.19.254 dev c0 proto dhcp",
		"default via 10.213.23.1 dev c1 proto dhcp")

	// The DHCPRELEASE waits in the kernel for the server's hardware
	// address: Release must not remove the address, which drops it, before
	// the ARP answer. s0 answers only the probe after a few ignored ones;
	// s1 never does: its release is lost, which is logged, not an error.
	run(t, "ip", "-n", cns, "neigh", "flush", "dev", "c0")
	run(t, "ip", "-n", cns, "neigh", "flush", "dev", "c1")
	run(t, "ip", "netns", "exec", cns, "sysctl", "-q", "-w", "net.ipv4.neigh.c0.retrans_time_ms=100", "net.ipv4.neigh.c0.mcast_solicit=15")
	run(t, "ip", "netns", "exec", sns, "sysctl", "-q", "-w", "net.ipv4.conf.s0.arp_ignore=8", "net.ipv4.conf.s1.arp_ignore=8")
	h.stdin.Close()
	time.Sleep(300 * time.Millisecond)
	run(t, "ip", "netns", "exec", sns, "sysctl", "-q", "-w", "net.ipv4.conf.s0.arp_ignore=0")
	// c1's release ends at its bound (releaseTimeout): the log says so
	// with the deadline below.
	rel := h.release()
	if rel.Err != "" {
		t.Errorf("Release: %s", rel.Err)
	}
	wantLines(t, "Release log", rel.Log,
		"netconf: c0: released "+addr0+" (DHCP), link down\n",
		"netconf: c1: DHCPRELEASE for "+addr1+" failed (the server keeps the lease until it ends): "+
			"no ARP answer from the DHCP server 10.213.23.1 in time: the DHCPRELEASE did not leave: context deadline exceeded\n",
		"netconf: c1: released "+addr1+" (DHCP), link down\n")
	if strings.Contains(rel.Log, "c0: DHCPRELEASE") {
		t.Errorf("Release log reports c0's DHCPRELEASE lost:\n%s", rel.Log)
	}
	wantTornDown(t, cns, "c0")
	wantTornDown(t, cns, "c1")
	// The server heard the release, for the lease it gave.
	if line := waitServerLog(t, d.Log, "DHCPRELEASE(s0) "+ip0+" "); strings.Contains(line, "unknown lease") {
		t.Errorf("dnsmasq did not know the lease released: %s", line)
	}
	if strings.Contains(d.Log(), "DHCPRELEASE(s1) "+ip1) {
		t.Errorf("dnsmasq heard c1's release, which had no ARP answer:\n%s", d.Log())
	}
}

func TestReleaseStatic(t *testing.T) {
	t.Parallel()
	cns, sns := newNetns(t, "tc"), newNetns(t, "ts")
	vethPair(t, cns, "c0", sns, "s0", "10.213.20.1/24")
	vethPair(t, cns, "c1", sns, "s1", "10.213.21.1/24")

	h := startHelper(t, cns, helperRequest{
		Ifaces: []string{
			"c0,address=10.213.20.2/24,address=fd00:213:20::2/64,gateway=10.213.20.1," +
				"route=10.213.50.0/24:10.213.99.1,route=fd00:213:50::/48:fd00:213:20::fe",
			"c1,address=10.213.21.2/24",
		},
		Timeout:    3 * time.Second,
		ResolvConf: filepath.Join(t.TempDir(), "resolv.conf"),
		Release:    true,
	})
	res := h.result(2 * time.Minute)
	if res.Err != "" || len(res.Static) != 2 {
		t.Fatalf("Up = %+v, want c0 and c1 static", res)
	}
	wantLines(t, "c0 before Release", run(t, "ip", "-n", cns, "addr", "show", "dev", "c0"),
		"inet 10.213.20.2/24", "inet6 fd00:213:20::2/64")
	wantLines(t, "IPv4 routes before Release", run(t, "ip", "-n", cns, "-4", "route", "show"),
		"default via 10.213.20.1 dev c0 proto static", "10.213.50.0/24 via 10.213.99.1 dev c0 proto static")
	wantLines(t, "IPv6 routes before Release", run(t, "ip", "-n", cns, "-6", "route", "show"),
		"fd00:213:50::/48 via fd00:213:20::fe dev c0 proto static")

	// A link gone before Release is no error.
	run(t, "ip", "-n", cns, "link", "del", "c1")
	rel := h.release()
	if rel.Err != "" {
		t.Errorf("Release: %s", rel.Err)
	}
	if want := "netconf: c0: released 10.213.20.2/24 (static), fd00:213:20::2/64 (static), link down\n" +
		"netconf: c1: link gone, nothing to release\n"; rel.Log != want {
		t.Errorf("Release log = %q, want %q", rel.Log, want)
	}
	wantTornDown(t, cns, "c0")
	if routes := run(t, "ip", "-n", cns, "-6", "route", "show"); strings.Contains(routes, "fd00:213:") {
		t.Errorf("IPv6 routes left:\n%s", routes)
	}
}

// TestMaintainReturnsRenewedLease checks that Maintain returns the lease
// as renewed, and that Release releases that one.
func TestMaintainReturnsRenewedLease(t *testing.T) {
	t.Parallel()
	cns, sns := newNetns(t, "wc"), newNetns(t, "ws")
	vethPair(t, cns, "c0", sns, "s0", "10.213.22.1/24")
	// dnsmasq's shortest lease is 2 minutes: T1 makes it renew after 2s.
	d := startDnsmasq(t, sns, "--interface=s0", "--dhcp-range=10.213.22.100,10.213.22.150,255.255.255.0,2m",
		"--dhcp-option=option:router,10.213.22.1", "--dhcp-option=option:dns-server,10.213.22.53",
		"--dhcp-option=option:T1,2", "--dhcp-option=option:T2,4")
	linkUp(t, cns, "c0", sns, "s0")

	h := startHelper(t, cns, helperRequest{Interfaces: []string{"c0"}, Timeout: 5 * time.Second,
		ResolvConf: filepath.Join(t.TempDir(), "resolv.conf"), Maintain: true, Release: true})
	up := h.result(2 * time.Minute)
	if up.Err != "" || len(up.Leases) != 1 {
		t.Fatalf("Up = %+v, want a lease on c0", up)
	}
	addr := up.Leases[0].Address
	h.waitLog("c0: renewed "+addr+", lease 2m0s from 10.213.22.1", 2*time.Minute)

	m := h.stop()
	if m.Err != "" {
		t.Errorf("Maintain: %s", m.Err)
	}
	if len(m.Leases) != 1 {
		t.Fatalf("Maintain's leases = %+v, want one on c0", m.Leases)
	}
	l, u := m.Leases[0], up.Leases[0]
	if l.Interface != "c0" || l.Address != addr || l.Gateway != "10.213.22.1" || l.Server != "10.213.22.1" ||
		l.Duration != 2*time.Minute || strings.Join(l.DNS, " ") != "10.213.22.53" {
		t.Errorf("Maintain's lease = %+v, want Up's %+v, renewed", l, u)
	}
	// Renewed at T1, 2s after Up's lease.
	if l.AfterStart < u.AfterStart+2*time.Second {
		t.Errorf("Maintain's lease obtained %s after the start, Up's %s: want the renewal's, at least 2s later",
			l.AfterStart, u.AfterStart)
	}
	if strings.Join(m.DNS, " ") != strings.Join(up.DNS, " ") || strings.Join(m.NTP, " ") != strings.Join(up.NTP, " ") {
		t.Errorf("Maintain's DNS %v, NTP %v; want Up's %v, %v", m.DNS, m.NTP, up.DNS, up.NTP)
	}

	rel := h.release()
	if rel.Err != "" || rel.Log != "netconf: c0: released "+addr+" (DHCP), link down\n" {
		t.Errorf("Release = %+v, want c0's lease released", rel)
	}
	wantTornDown(t, cns, "c0")
	ip := strings.Split(addr, "/")[0]
	if line := waitServerLog(t, d.Log, "DHCPRELEASE(s0) "+ip+" "); strings.Contains(line, "unknown lease") {
		t.Errorf("dnsmasq did not know the lease released: %s", line)
	}
}
