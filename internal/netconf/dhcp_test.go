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
		_ = resolvConf(*l)
		for _, r := range routes(m) {
			_ = r.Dest.IP.Mask(r.Dest.Mask)
			_ = l.Address.Contains(r.Router)
		}
	})
}
