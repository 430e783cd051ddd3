package netconf

import (
	"net"
	"reflect"
	"strings"
	"testing"
)

func cidr(t testing.TB, s string) net.IPNet {
	t.Helper()
	a, err := parseAddress(s)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return a
}

func ip(t testing.TB, s string) net.IP {
	t.Helper()
	v, err := parseIP(s)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return v
}

func route(t testing.TB, dst, gw string) Route {
	t.Helper()
	r, err := parseRoute(dst + ":" + gw)
	if err != nil {
		t.Fatalf("%s:%s: %v", dst, gw, err)
	}
	return r
}

func TestParseIface(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Iface
	}{
		{"eth0,dhcp", Iface{Name: "eth0", DHCP: true}},
		{"eth0,auto", Iface{Name: "eth0", DHCP: true}},
		{"eth1,address=192.168.7.2/24,gateway=192.168.7.1,nameserver=192.168.7.1", Iface{
			Name:        "eth1",
			Addresses:   []net.IPNet{cidr(t, "192.168.7.2/24")},
			Gateway:     ip(t, "192.168.7.1"),
			Nameservers: []net.IP{ip(t, "192.168.7.1")},
		}},
		{"enp0s31f6,address=10.0.0.2/24,address=fd00::2/64,nameserver=10.0.0.53,nameserver=fd00::53," +
			"route=10.20.0.0/16:10.0.0.254,route=2001:db8:1::/48:fd00::1,route=::/0:fe80::1,forward", Iface{
			Name:        "enp0s31f6",
			Addresses:   []net.IPNet{cidr(t, "10.0.0.2/24"), cidr(t, "fd00::2/64")},
			Nameservers: []net.IP{ip(t, "10.0.0.53"), ip(t, "fd00::53")},
			Routes: []Route{
				route(t, "10.20.0.0/16", "10.0.0.254"),
				route(t, "2001:db8:1::/48", "fd00::1"),
				route(t, "::/0", "fe80::1"),
			},
			Forward: true,
		}},
		{"eth0,dhcp,address=10.0.0.5/32,gateway=fd00::1", Iface{
			Name: "eth0", Addresses: []net.IPNet{cidr(t, "10.0.0.5/32")}, Gateway: ip(t, "fd00::1"), DHCP: true,
		}},
	} {
		got, err := ParseIface(c.in)
		if err != nil {
			t.Errorf("ParseIface(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseIface(%q) = %+v, want %+v", c.in, got, c.want)
		}
		if again, err := ParseIface(got.String()); err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseIface(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
	if a := cidr(t, "10.0.0.2/24"); a.String() != "10.0.0.2/24" || len(a.IP) != 4 || len(a.Mask) != 4 {
		t.Errorf("IPv4 address stored as %#v, want 4-byte IP and mask", a)
	}

	for _, c := range []struct{ in, want string }{
		{"eth0,address=10.0.0.1", `eth0: address "10.0.0.1": expected an address with its prefix length, such as 10.0.0.2/24`},
		{"eth0,address=10.0.0.2/33", `eth0: address "10.0.0.2/33": expected an address with its prefix length`},
		{"eth0,address=0.0.0.0/0", `eth0: address "0.0.0.0/0": 0.0.0.0 cannot be a link's address (expected a unicast address)`},
		{"eth0,address=fe80::1%eth0/64", `eth0: address "fe80::1%eth0/64": expected an address with its prefix length`},
		{"eth0", `eth0: no options (expected address=CIDR or dhcp, such as eth0,dhcp)`},
		{"eth0,gateway=10.0.0.1", `eth0: no address and no dhcp (expected address=CIDR or dhcp)`},
		{"eth0,forward", `eth0: no address and no dhcp`},
		{"eth0,gateway=10.0.0.1,gateway=10.0.0.2,dhcp", `eth0: gateway "10.0.0.2": a gateway is already given (expected one; add route=0.0.0.0/0:GW or route=::/0:GW for the other family)`},
		{"eth0,gateway=224.0.0.1,dhcp", `eth0: gateway "224.0.0.1": 224.0.0.1 is not a unicast address`},
		{"eth0,nameserver=dns.example,dhcp", `eth0: nameserver "dns.example": expected an IP address, such as 10.0.0.1 or fd00::1`},
		{"eth0,route=10.20.0.0/16,dhcp", `eth0: route "10.20.0.0/16": expected NET/LEN:GATEWAY, such as 10.20.0.0/16:192.168.7.254`},
		{"eth0,route=10.20.0.0:10.0.0.1,dhcp", `eth0: route "10.20.0.0:10.0.0.1": expected NET/LEN:GATEWAY`},
		{"eth0,route=10.20.0.1/16:10.0.0.1,dhcp", `eth0: route "10.20.0.1/16:10.0.0.1": destination "10.20.0.1/16" has host bits set (expected the network address 10.20.0.0/16)`},
		{"eth0,route=10.20.0.0/16:fd00::1,dhcp", `eth0: route "10.20.0.0/16:fd00::1": gateway fd00::1 is not of destination 10.20.0.0/16's address family (expected both IPv4 or both IPv6)`},
		{"eth0,route=10.20.0.0/16:10.0.0.1:5,dhcp", `eth0: route "10.20.0.0/16:10.0.0.1:5": gateway "10.0.0.1:5": expected an IP address`},
		{"eth0,route=fd00::/ab:fd00::1,dhcp", `eth0: route "fd00::/ab:fd00::1": destination "fd00::/ab": expected NET/LEN:GATEWAY`},
		{"eth0,dhcp=yes", `eth0: option "dhcp=yes": dhcp takes no value`},
		{"eth0,mtu=1500,dhcp", `eth0: unknown option "mtu=1500" (expected address=, gateway=, nameserver=, route=, forward, auto or dhcp)`},
		{"eth0,,dhcp", `eth0: empty option in "eth0,,dhcp" (expected options separated by single commas)`},
		{"eth0,dhcp,", `eth0: empty option`},
		{",dhcp", `empty link name (expected a name such as eth0)`},
		{"", `empty link name`},
		{"averyveryverylong,dhcp", `link name "averyveryverylong" is 17 bytes long (expected at most 15)`},
		{"eth/0,dhcp", `link name "eth/0" holds '/' (expected no whitespace, control character, '/', ':' or ',')`},
		{"eth 0,dhcp", `link name "eth 0" holds ' '`},
		{"eth0:1,dhcp", `link name "eth0:1" holds ':'`},
		{"..,dhcp", `link name ".." is not valid`},
	} {
		got, err := ParseIface(c.in)
		if err == nil {
			t.Errorf("ParseIface(%q) = %+v, want error %q", c.in, got, c.want)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseIface(%q) error %q, want %q", c.in, err, c.want)
		}
	}
}

func TestParseKernelIP(t *testing.T) {
	static := func(name, addr, gw string, dns ...string) Iface {
		i := Iface{Name: name, Addresses: []net.IPNet{cidr(t, addr)}}
		if gw != "" {
			i.Gateway = ip(t, gw)
		}
		for _, s := range dns {
			i.Nameservers = append(i.Nameservers, ip(t, s))
		}
		return i
	}
	withDHCP := func(i Iface) Iface { i.DHCP = true; return i }
	for _, c := range []struct {
		in   string
		want KernelIP
	}{
		{"dhcp", KernelIP{}},
		{"on", KernelIP{}},
		{"any", KernelIP{}},
		{"both", KernelIP{}},
		{"bootp", KernelIP{}},
		{"off", KernelIP{Off: true}},
		{"none", KernelIP{Off: true}},
		{"eth0:dhcp", KernelIP{Ifaces: []Iface{{Name: "eth0", DHCP: true}}}},
		{"eth0:on", KernelIP{Ifaces: []Iface{{Name: "eth0", DHCP: true}}}},
		{"10.0.0.2::10.0.0.1:255.255.255.0:box-1:eth0:off", KernelIP{
			Ifaces: []Iface{static("eth0", "10.0.0.2/24", "10.0.0.1")}, Hostname: "box-1",
		}},
		{"10.0.0.2::10.0.0.1:24::eth0:none:10.0.0.53:10.0.0.54:10.0.0.123", KernelIP{
			Ifaces: []Iface{static("eth0", "10.0.0.2/24", "10.0.0.1", "10.0.0.53", "10.0.0.54")},
			NTP:    []net.IP{ip(t, "10.0.0.123")},
		}},
		{"10.0.0.2:10.0.0.9:10.0.0.1:255.255.0.0::::", KernelIP{
			Ifaces: []Iface{static("", "10.0.0.2/16", "10.0.0.1")}, Server: ip(t, "10.0.0.9"),
		}},
		{"172.16.0.5", KernelIP{Ifaces: []Iface{static("", "172.16.0.5/16", "")}}},
		{"192.168.1.5:::::", KernelIP{Ifaces: []Iface{static("", "192.168.1.5/24", "")}}},
		{"10.0.0.2::10.0.0.1:255.255.255.0::eth0:dhcp", KernelIP{
			Ifaces: []Iface{withDHCP(static("eth0", "10.0.0.2/24", "10.0.0.1"))},
		}},
		{":::::eth1:dhcp", KernelIP{Ifaces: []Iface{{Name: "eth1", DHCP: true}}}},
		{":::::eth1::10.0.0.53", KernelIP{Ifaces: []Iface{{Name: "eth1", DHCP: true, Nameservers: []net.IP{ip(t, "10.0.0.53")}}}}},
		{"::::myhost::dhcp:10.0.0.53", KernelIP{Hostname: "myhost", Nameservers: []net.IP{ip(t, "10.0.0.53")}}},
		{"::::::any:::10.0.0.123", KernelIP{NTP: []net.IP{ip(t, "10.0.0.123")}}},
		{"::::::off", KernelIP{Off: true}},
		{"::::h::off", KernelIP{Off: true, Hostname: "h"}},
		{"[fd00::2]::[fd00::1]:64::eth0:off:[fd00::53]", KernelIP{
			Ifaces: []Iface{static("eth0", "fd00::2/64", "fd00::1", "fd00::53")},
		}},
		{"[fd00::2]", KernelIP{Ifaces: []Iface{static("", "fd00::2/64", "")}}},
	} {
		got, err := ParseKernelIP(c.in)
		if err != nil {
			t.Errorf("ParseKernelIP(%q): %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseKernelIP(%q) = %+v, want %+v", c.in, got, c.want)
		}
		if again, err := ParseKernelIP(got.String()); err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseKernelIP(%q) (from %q) = %+v, %v; want %+v", got.String(), c.in, again, err, got)
		}
	}

	for _, c := range []struct{ in, want string }{
		{"", "empty value (expected off, none, dhcp, on, any, both, bootp, DEVICE:dhcp or CLIENT:SERVER:GATEWAY:NETMASK:HOSTNAME:DEVICE:AUTOCONF[:DNS0[:DNS1[:NTP0]]])"},
		{"rarp", "autoconf rarp is not supported"},
		{"foo", `"foo": expected off, none, dhcp, on, any, both, bootp, DEVICE:dhcp or CLIENT:`},
		{"eth0:off", `"eth0:off": autoconf "off" after a device needs a client address (expected eth0:dhcp, or CLIENT:::NETMASK::eth0:off)`},
		{"eth0:dhcp6", `autoconf "dhcp6" is not supported (expected off, none, on, any, dhcp, both or bootp)`},
		{"eth/0:dhcp", `device: link name "eth/0" holds '/'`},
		{"10.0.0.2:::255.0.255.0", `netmask "255.0.255.0" is not contiguous (expected ones then zeros, such as 255.255.255.0)`},
		{"10.0.0.2:::33", `netmask "33": expected a prefix length from 0 to 32, or a dotted IPv4 netmask such as 255.255.255.0`},
		{"[fd00::2]:::255.255.255.0", `netmask "255.255.255.0": expected a dotted IPv4 netmask`},
		{"10.0.0.300:::", `client address "10.0.0.300": expected an IPv4 address such as 10.0.0.1, or an IPv6 address in brackets such as [fd00::1]`},
		{"240.0.0.1", `client address 240.0.0.1 has no class netmask (expected a netmask field, such as 255.255.255.0 or 24)`},
		{"224.0.0.5", `client address "224.0.0.5": 224.0.0.5 is not a unicast address`},
		{":::::eth0:dhcp:dns", `dns0 "dns": expected an IPv4 address`},
		{":::::eth0:dhcp::10.0.0.1:ntp", `ntp0 "ntp": expected an IPv4 address`},
		{"1:2:3:4:5:6:7:8:9:10:11", `11 fields (expected off, none`},
		{":::255.255.255.0::eth0:dhcp", `netmask "255.255.255.0" without a client address`},
		{"::10.0.0.1::::dhcp", `gateway 10.0.0.1 without a client address or a device`},
		{":::::eth0:off", `autoconf "off" without a client address configures nothing (expected a client address, or autoconf dhcp)`},
		{"[fd00::2", `'[' without ']'`},
		{"fd00::2]", `']' without '['`},
		{"[[fd00::2]]", `'[' inside brackets`},
		{"[10.0.0.1]::::", `client address "[10.0.0.1]": expected an IPv6 address in brackets`},
		{"10.0.0.2::::bad host::off", `hostname "bad host" holds ' ' (expected letters, digits, '-', '_' and '.')`},
		{"10.0.0.2::::" + strings.Repeat("h", 65) + "::off", `is 65 bytes long (expected at most 64)`},
		{"10.0.0.2::[fd00::1]:24::eth0:off", `gateway fd00::1 is not of client address 10.0.0.2's family (expected both IPv4 or both IPv6)`},
		{"10.0.0.2::::::bogus", `autoconf "bogus" is not supported`},
	} {
		got, err := ParseKernelIP(c.in)
		if err == nil {
			t.Errorf("ParseKernelIP(%q) = %+v, want error %q", c.in, got, c.want)
		} else if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseKernelIP(%q) error %q, want %q", c.in, err, c.want)
		}
	}
}

func TestKernelIPApply(t *testing.T) {
	k, err := ParseKernelIP("10.0.0.2::10.0.0.1:24:box:eth0:off:10.0.0.53::10.0.0.123")
	if err != nil {
		t.Fatal(err)
	}
	o := k.Apply(Options{Nameservers: []net.IP{ip(t, "10.9.9.9")}, Timeout: 3})
	if o.None || len(o.Ifaces) != 1 || o.Ifaces[0].Name != "eth0" || o.Timeout != 3 ||
		joinIPs(o.Nameservers) != "10.9.9.9" || joinIPs(o.NTP) != "10.0.0.123" || joinIPs(o.Ifaces[0].Nameservers) != "10.0.0.53" {
		t.Errorf("Apply = %+v", o)
	}
	off, _ := ParseKernelIP("off")
	if o := off.Apply(Options{Ifaces: []Iface{{Name: "x", DHCP: true}}}); !o.None || len(o.Ifaces) != 0 {
		t.Errorf("ip=off applied = %+v, want None and no Ifaces", o)
	}
}

// FuzzParseIface checks that ParseIface does not panic and that what it
// accepts comes back the same through String.
func FuzzParseIface(f *testing.F) {
	for _, s := range []string{
		"eth0,dhcp",
		"eth1,address=192.168.7.2/24,gateway=192.168.7.1,nameserver=192.168.7.1",
		"enp0s1,address=fd00::2/64,route=2001:db8:1::/48:fd00::1,route=10.20.0.0/16:10.0.0.254,forward,auto",
		"eth0,address=10.0.0.1",
		"eth0,route=10.20.0.1/16:10.0.0.1:5",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		i, err := ParseIface(s)
		if err != nil {
			return
		}
		if i.Name == "" || (len(i.Addresses) == 0 && !i.DHCP) {
			t.Fatalf("ParseIface(%q) = %+v: no name, or nothing to do", s, i)
		}
		again, err := ParseIface(i.String())
		if err != nil {
			t.Fatalf("ParseIface(%q) = %+v, whose String %q does not parse: %v", s, i, i.String(), err)
		}
		if !reflect.DeepEqual(again, i) {
			t.Fatalf("ParseIface(%q) = %+v; through String %q: %+v", s, i, i.String(), again)
		}
		_ = i.summary(false)
	})
}

// FuzzParseKernelIP checks that ParseKernelIP does not panic and that what
// it accepts comes back the same through String.
func FuzzParseKernelIP(f *testing.F) {
	for _, s := range []string{
		"dhcp", "off", "eth0:dhcp", "10.0.0.2", "[fd00::2]",
		"10.0.0.2:10.0.0.9:10.0.0.1:255.255.255.0:box:eth0:off:10.0.0.53:10.0.0.54:10.0.0.123",
		"[fd00::2]::[fd00::1]:64::eth0:dhcp:[fd00::53]",
		"::::host::dhcp:10.0.0.53",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKernelIP(s)
		if err != nil {
			return
		}
		for _, i := range k.Ifaces {
			if err := i.validate(); err != nil {
				t.Fatalf("ParseKernelIP(%q) = %+v, with an invalid Iface: %v", s, k, err)
			}
		}
		again, err := ParseKernelIP(k.String())
		if err != nil {
			t.Fatalf("ParseKernelIP(%q) = %+v, whose String %q does not parse: %v", s, k, k.String(), err)
		}
		if !reflect.DeepEqual(again, k) {
			t.Fatalf("ParseKernelIP(%q) = %+v; through String %q: %+v", s, k, k.String(), again)
		}
		_ = k.Apply(Options{})
	})
}
