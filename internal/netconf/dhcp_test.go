package netconf

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func ack(t testing.TB, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithHwAddr(mac),
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithServerIP(net.IPv4(10, 1, 0, 1)),
	}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLeaseFromACK(t *testing.T) {
	yiaddr := dhcpv4.WithYourIP(net.IPv4(10, 1, 2, 3))

	// No subnet mask option: the address's class default; no router, no
	// gateway; no server identifier: the siaddr field.
	l, err := leaseFromACK("eth0", ack(t, yiaddr), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Address.String() != "10.1.2.3/8" || l.Gateway != nil || !l.Server.Equal(net.IPv4(10, 1, 0, 1)) {
		t.Errorf("lease = %+v, want 10.1.2.3/8, no gateway, server 10.1.0.1", l)
	}
	if got, want := l.String(), "eth0: 10.1.2.3/8, lease 0s from 10.1.0.1"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}

	// Option 121 wins over the router option; its default route gives the
	// gateway; domain name is the search list without option 119.
	l, err = leaseFromACK("eth0", ack(t, yiaddr,
		dhcpv4.WithNetmask(net.CIDRMask(16, 32)),
		dhcpv4.WithRouter(net.IPv4(10, 1, 0, 9)),
		dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(
			&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4(10, 50, 0, 0).To4(), Mask: net.CIDRMask(16, 32)}, Router: net.IPv4zero.To4()},
			&dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Router: net.IPv4(10, 1, 0, 1).To4()},
		)),
		dhcpv4.WithOption(dhcpv4.OptDomainName("example.test")),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionInterfaceMTU, []byte{0x05, 0xdc})),
	), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Address.String() != "10.1.2.3/16" || !l.Gateway.Equal(net.IPv4(10, 1, 0, 1)) ||
		strings.Join(l.Search, " ") != "example.test" || l.MTU != 1500 {
		t.Errorf("lease = %+v, want 10.1.2.3/16 via 10.1.0.1, search example.test, MTU 1500", l)
	}

	for name, m := range map[string]*dhcpv4.DHCPv4{
		"no address":          ack(t),
		"non-contiguous mask": ack(t, yiaddr, dhcpv4.WithNetmask(net.IPv4Mask(255, 0, 255, 0))),
	} {
		if _, err := leaseFromACK("eth0", m, time.Time{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// FuzzLeaseFromACK checks that no DHCP message a server sends makes the
// lease code panic.
func FuzzLeaseFromACK(f *testing.F) {
	f.Add(ack(f, dhcpv4.WithYourIP(net.IPv4(10, 1, 2, 3)), dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(net.IPv4(10, 1, 2, 1)), dhcpv4.WithDNS(net.IPv4(10, 1, 2, 53))).ToBytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		l, err := leaseFromACK("eth0", m, time.Time{})
		if err != nil {
			return
		}
		_ = l.String()
		_, _, _, _ = l.schedule()
		_ = leaseRoutes(1, l)
		_ = same(1, l, l)
		for _, r := range routes(m) {
			_ = r.Dest.IP.Mask(r.Dest.Mask)
			_ = l.Address.Contains(r.Router)
		}
	})
}

func TestSchedule(t *testing.T) {
	now := time.Now()
	yiaddr := dhcpv4.WithYourIP(net.IPv4(10, 1, 2, 3))
	lease := func(mods ...dhcpv4.Modifier) *Lease {
		l, err := leaseFromACK("eth0", ack(t, append([]dhcpv4.Modifier{yiaddr}, mods...)...), now)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	leaseTime := func(d time.Duration) dhcpv4.Modifier { return dhcpv4.WithLeaseTime(uint32(d / time.Second)) }
	t1 := func(d time.Duration) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(d)) }
	t2 := func(d time.Duration) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(d)) }
	for _, c := range []struct {
		name       string
		l          *Lease
		t1, t2, to time.Duration
		finite     bool
	}{
		{"no lease time", lease(), 0, 0, 0, false},
		{"infinite", lease(dhcpv4.WithLeaseTime(0xffffffff)), 0, 0, 0, false},
		{"defaults", lease(leaseTime(time.Hour)), 30 * time.Minute, 52*time.Minute + 30*time.Second, time.Hour, true},
		{"T1 and T2", lease(leaseTime(2*time.Minute), t1(5*time.Second), t2(8*time.Second)), 5 * time.Second, 8 * time.Second, 2 * time.Minute, true},
		{"T2 past the end", lease(leaseTime(time.Hour), t1(10*time.Minute), t2(2*time.Hour)), 10 * time.Minute, 52*time.Minute + 30*time.Second, time.Hour, true},
		{"T1 past T2", lease(leaseTime(time.Hour), t1(50*time.Minute), t2(40*time.Minute)), 30 * time.Minute, 40 * time.Minute, time.Hour, true},
	} {
		a, b, end, ok := c.l.schedule()
		if ok != c.finite || (ok && (a.Sub(now) != c.t1 || b.Sub(now) != c.t2 || end.Sub(now) != c.to)) {
			t.Errorf("%s: schedule = %s, %s, %s, %v; want %s, %s, %s, %v",
				c.name, a.Sub(now), b.Sub(now), end.Sub(now), ok, c.t1, c.t2, c.to, c.finite)
		}
	}
}

func TestMergeACK(t *testing.T) {
	yiaddr := dhcpv4.WithYourIP(net.IPv4(10, 1, 2, 3))
	old := ack(t, yiaddr, dhcpv4.WithNetmask(net.CIDRMask(24, 32)), dhcpv4.WithRouter(net.IPv4(10, 1, 2, 1)),
		dhcpv4.WithDNS(net.IPv4(10, 1, 2, 53)), dhcpv4.WithServerIP(net.IPv4(10, 1, 2, 1)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 1, 2, 1))))
	// A terse renewal ACK: only the lease time.
	l, err := leaseFromACK("eth0", mergeACK(old, ack(t, yiaddr, dhcpv4.WithLeaseTime(600))), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Address.String() != "10.1.2.3/24" || !l.Gateway.Equal(net.IPv4(10, 1, 2, 1)) || joinIPs(l.DNS) != "10.1.2.53" ||
		!l.Server.Equal(net.IPv4(10, 1, 2, 1)) || l.Duration != 10*time.Minute {
		t.Errorf("lease from a terse renewal = %v, want the old settings kept", l)
	}
	// What the renewal gives wins; option 121 replaces the router.
	l, err = leaseFromACK("eth0", mergeACK(old, ack(t, yiaddr, dhcpv4.WithNetmask(net.CIDRMask(16, 32)),
		dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(&dhcpv4.Route{
			Dest: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Router: net.IPv4(10, 1, 0, 9).To4(),
		})))), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Address.String() != "10.1.2.3/16" || !l.Gateway.Equal(net.IPv4(10, 1, 0, 9)) || len(routes(l.ACK)) != 1 {
		t.Errorf("lease from a changed renewal = %v, want /16 via 10.1.0.9", l)
	}
}

func TestUpRejectsBadOptions(t *testing.T) {
	// These fail before anything is touched, so they run here, outside
	// any test namespace.
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Ifaces: []Iface{{Name: "eth0", DHCP: true}, {Name: "eth0", DHCP: true}}}, "interface eth0 given twice"},
		{Options{Ifaces: []Iface{{Name: "eth0", DHCP: true}}, Interfaces: []string{"eth0"}}, "interface eth0 given twice"},
		{Options{Ifaces: []Iface{{DHCP: true}, {DHCP: true}}}, "two interfaces without a name"},
		{Options{Ifaces: []Iface{{Name: "eth0"}}}, "eth0: no address and no dhcp"},
		{Options{Ifaces: []Iface{{Name: "eth0", Addresses: []net.IPNet{{IP: net.IPv4(10, 0, 0, 1)}}}}}, "eth0: address"},
		{Options{Interfaces: []string{"bad/name"}}, `link name "bad/name" holds '/'`},
	} {
		if _, err := Up(t.Context(), c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Up(%+v) = %v, want an error with %q", c.o, err, c.want)
		}
		if r, err := Maintain(t.Context(), c.o, nil); r != nil || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Maintain(%+v) = %+v, %v; want no result and an error with %q", c.o, r, err, c.want)
		}
	}
}
