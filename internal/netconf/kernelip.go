package netconf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// KernelIP is what the kernel's ip= parameter asks for.
type KernelIP struct {
	// Off is set by ip=off and ip=none: no network configuration at all,
	// only the loopback link.
	Off bool
	// Ifaces are the links to configure. Empty, without Off, means DHCP
	// on every ethernet link.
	Ifaces []Iface
	// Server is the <server-ip> field (the NFS root server); nil when
	// empty. Up does not use it.
	Server net.IP
	// Hostname is the <hostname> field, for the caller to set; empty when
	// not given.
	Hostname string
	// Nameservers are the <dns0> and <dns1> fields when no link is named
	// or addressed (DHCP on every link); otherwise they are in
	// Ifaces[0].Nameservers.
	Nameservers []net.IP
	// NTP is the <ntp0-ip> field, as a list; nil when empty.
	NTP []net.IP
}

// Apply returns o set to do what k asks: o.None from k.Off, o.Ifaces
// from k.Ifaces, and k's nameservers and NTP servers added to o's.
func (k KernelIP) Apply(o Options) Options {
	o.None = k.Off
	o.Ifaces = append([]Iface(nil), k.Ifaces...)
	o.Nameservers = appendIPs(append([]net.IP(nil), o.Nameservers...), k.Nameservers...)
	o.NTP = appendIPs(append([]net.IP(nil), o.NTP...), k.NTP...)
	return o
}

// autoconf is the meaning of the <autoconf> field.
type autoconf int

const (
	autoDefault autoconf = iota // empty: static with a client address, else DHCP
	autoOff                     // off, none
	autoDHCP                    // on, any, dhcp, both, bootp
)

const kernelIPUsage = "expected off, none, dhcp, on, any, both, bootp, DEVICE:dhcp or " +
	"CLIENT:SERVER:GATEWAY:NETMASK:HOSTNAME:DEVICE:AUTOCONF[:DNS0[:DNS1[:NTP0]]]"

// parseAutoconf reads the <autoconf> field or a whole one-word ip=.
func parseAutoconf(s string) (autoconf, error) {
	switch s {
	case "":
		return autoDefault, nil
	case "off", "none":
		return autoOff, nil
	case "on", "any", "dhcp", "both", "bootp":
		return autoDHCP, nil
	case "rarp":
		return 0, errors.New("autoconf rarp is not supported (expected off, none, on, any, dhcp, both or bootp; DHCP is used for all but off and none)")
	}
	return 0, fmt.Errorf("autoconf %q is not supported (expected off, none, on, any, dhcp, both or bootp)", s)
}

// ParseKernelIP reads the value of the kernel's ip= parameter
// (Documentation/admin-guide/nfs/nfsroot.rst) and dracut's DEVICE:dhcp:
//
//   - dhcp, on, any, both, bootp: DHCPv4 on every ethernet link;
//   - off, none: no network configuration, only the loopback link;
//   - DEVICE:dhcp (or on, any, both, bootp): DHCPv4 on that link only;
//   - CLIENT:SERVER:GATEWAY:NETMASK:HOSTNAME:DEVICE:AUTOCONF[:DNS0[:DNS1[:NTP0]]],
//     where every field may be empty. CLIENT is a static address;
//     NETMASK is dotted (255.255.255.0) or a prefix length (24) and
//     defaults to the address's class mask (/64 for IPv6); an empty
//     DEVICE is the first ethernet link. AUTOCONF off or none with CLIENT
//     is a static configuration; dhcp, on, any, both or bootp runs DHCPv4
//     on the device, or on every ethernet link when DEVICE is empty, also
//     applying CLIENT when given; empty AUTOCONF is static with CLIENT
//     and DHCP without. off without CLIENT is the same as ip=off. IPv6
//     addresses go in brackets, as dracut writes them: [fd00::2].
//
// HOSTNAME, SERVER and NTP0 are returned for the caller. As the kernel
// does, the caller should use the last ip= of the command line.
func ParseKernelIP(s string) (KernelIP, error) {
	fields, err := splitKernelIP(s)
	if err != nil {
		return KernelIP{}, err
	}
	if len(fields) == 1 {
		switch mode, err := parseAutoconf(s); {
		case s == "":
			return KernelIP{}, errors.New("empty value (" + kernelIPUsage + ")")
		case err == nil && mode == autoOff:
			return KernelIP{Off: true}, nil
		case err == nil:
			return KernelIP{}, nil
		case s == "rarp":
			return KernelIP{}, err
		case !looksLikeIP(s):
			return KernelIP{}, fmt.Errorf("%q: %s", s, kernelIPUsage)
		}
		// A lone client address: the static form.
	}
	if len(fields) == 2 && fields[0] != "" && fields[1] != "" && !looksLikeIP(fields[0]) {
		// dracut's DEVICE:AUTOCONF.
		if err := checkLinkName(fields[0]); err != nil {
			return KernelIP{}, fmt.Errorf("device: %w", err)
		}
		mode, err := parseAutoconf(fields[1])
		if err != nil {
			return KernelIP{}, err
		}
		if mode != autoDHCP {
			return KernelIP{}, fmt.Errorf("%q: autoconf %q after a device needs a client address (expected %s:dhcp, or CLIENT:::NETMASK::%s:off)",
				s, fields[1], fields[0], fields[0])
		}
		return KernelIP{Ifaces: []Iface{{Name: fields[0], DHCP: true}}}, nil
	}
	if len(fields) > 10 {
		return KernelIP{}, fmt.Errorf("%d fields (%s)", len(fields), kernelIPUsage)
	}
	fields = append(fields, make([]string, 10-len(fields))...)

	var k KernelIP
	ip := func(i int, what string) (net.IP, error) {
		if fields[i] == "" {
			return nil, nil
		}
		v, err := parseBracketedIP(fields[i])
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", what, fields[i], err)
		}
		return v, nil
	}
	client, err := ip(0, "client address")
	if err != nil {
		return KernelIP{}, err
	}
	if k.Server, err = ip(1, "server address"); err != nil {
		return KernelIP{}, err
	}
	gw, err := ip(2, "gateway")
	if err != nil {
		return KernelIP{}, err
	}
	var dns []net.IP
	for i := 7; i <= 8; i++ {
		v, err := ip(i, "dns"+strconv.Itoa(i-7))
		if err != nil {
			return KernelIP{}, err
		}
		if v != nil {
			dns = appendIPs(dns, v)
		}
	}
	ntp, err := ip(9, "ntp0")
	if err != nil {
		return KernelIP{}, err
	}
	if ntp != nil {
		k.NTP = []net.IP{ntp}
	}
	if h := fields[4]; h != "" {
		if err := checkHostname(h); err != nil {
			return KernelIP{}, err
		}
		k.Hostname = h
	}
	dev := fields[5]
	if dev != "" {
		if err := checkLinkName(dev); err != nil {
			return KernelIP{}, fmt.Errorf("device: %w", err)
		}
	}
	mode, err := parseAutoconf(fields[6])
	if err != nil {
		return KernelIP{}, err
	}

	if client == nil {
		switch {
		case fields[3] != "":
			return KernelIP{}, fmt.Errorf("netmask %q without a client address (expected CLIENT:SERVER:GATEWAY:NETMASK:…, or no netmask with DHCP)", fields[3])
		case mode == autoOff && (dev != "" || gw != nil):
			return KernelIP{}, fmt.Errorf("autoconf %q without a client address configures nothing (expected a client address, or autoconf dhcp)", fields[6])
		case mode == autoOff:
			k.Off = true
			k.Nameservers = dns
		case dev != "":
			k.Ifaces = []Iface{{Name: dev, DHCP: true, Gateway: gw, Nameservers: dns}}
		case gw != nil:
			return KernelIP{}, fmt.Errorf("gateway %s without a client address or a device (expected CLIENT:…:%s:…, or a device to use it on)", gw, gw)
		default:
			k.Nameservers = dns
		}
		return k, nil
	}

	addr, err := clientPrefix(client, fields[3])
	if err != nil {
		return KernelIP{}, err
	}
	if gw != nil && (gw.To4() != nil) != (client.To4() != nil) {
		return KernelIP{}, fmt.Errorf("gateway %s is not of client address %s's family (expected both IPv4 or both IPv6)", gw, client)
	}
	k.Ifaces = []Iface{{Name: dev, Addresses: []net.IPNet{addr}, Gateway: gw, Nameservers: dns, DHCP: mode == autoDHCP}}
	return k, nil
}

// splitKernelIP splits s at the colons outside brackets.
func splitKernelIP(s string) ([]string, error) {
	var fields []string
	start, open := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			if open {
				return nil, fmt.Errorf("%q: '[' inside brackets (expected an IPv6 address in one pair of brackets, such as [fd00::2])", s)
			}
			open = true
		case ']':
			if !open {
				return nil, fmt.Errorf("%q: ']' without '[' (expected an IPv6 address in brackets, such as [fd00::2])", s)
			}
			open = false
		case ':':
			if !open {
				fields = append(fields, s[start:i])
				start = i + 1
			}
		}
	}
	if open {
		return nil, fmt.Errorf("%q: '[' without ']' (expected an IPv6 address in brackets, such as [fd00::2])", s)
	}
	return append(fields, s[start:]), nil
}

// looksLikeIP reports whether field is meant as an address rather than a
// device name.
func looksLikeIP(field string) bool {
	if strings.HasPrefix(field, "[") {
		return true
	}
	_, err := netip.ParseAddr(field)
	return err == nil
}

// parseBracketedIP reads an IPv4 address, or an IPv6 one in brackets.
func parseBracketedIP(s string) (net.IP, error) {
	if inner, ok := strings.CutPrefix(s, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		if !ok || !strings.Contains(inner, ":") {
			return nil, errors.New("expected an IPv6 address in brackets, such as [fd00::1]")
		}
		return parseIP(inner)
	}
	if strings.ContainsAny(s, "[]") || strings.Contains(s, ":") {
		return nil, errors.New("expected an IPv4 address, or an IPv6 address in brackets")
	}
	if _, err := netip.ParseAddr(s); err != nil {
		return nil, errors.New("expected an IPv4 address such as 10.0.0.1, or an IPv6 address in brackets such as [fd00::1]")
	}
	return parseIP(s)
}

// clientPrefix gives client its prefix from the netmask field: dotted, a
// prefix length, or empty for the class mask (IPv4) or /64 (IPv6).
func clientPrefix(client net.IP, mask string) (net.IPNet, error) {
	v4 := client.To4() != nil
	bits := 128
	if v4 {
		bits = 32
	}
	ones := -1
	switch {
	case mask == "" && !v4:
		ones = 64
	case mask == "":
		switch b := client.To4()[0]; {
		case b < 128:
			ones = 8
		case b < 192:
			ones = 16
		case b < 224:
			ones = 24
		default:
			return net.IPNet{}, fmt.Errorf("client address %s has no class netmask (expected a netmask field, such as 255.255.255.0 or 24)", client)
		}
	case strings.Contains(mask, "."):
		m, err := netip.ParseAddr(mask)
		if err != nil || !m.Is4() || !v4 {
			return net.IPNet{}, fmt.Errorf("netmask %q: expected a dotted IPv4 netmask such as 255.255.255.0, or a prefix length such as 24", mask)
		}
		ms := m.As4()
		n, b := net.IPMask(ms[:]).Size()
		if b == 0 {
			return net.IPNet{}, fmt.Errorf("netmask %q is not contiguous (expected ones then zeros, such as 255.255.255.0)", mask)
		}
		ones = n
	default:
		n, err := strconv.Atoi(mask)
		if err != nil || n < 0 || n > bits || strings.TrimLeft(mask, "0123456789") != "" || (len(mask) > 1 && mask[0] == '0') {
			return net.IPNet{}, fmt.Errorf("netmask %q: expected a prefix length from 0 to %d, or a dotted IPv4 netmask such as 255.255.255.0", mask, bits)
		}
		ones = n
	}
	a, err := parseAddress(fmt.Sprintf("%s/%d", client, ones))
	if err != nil {
		return net.IPNet{}, fmt.Errorf("client address %s: %w", client, err)
	}
	return a, nil
}

// checkHostname accepts 1 to 64 letters, digits, '-', '_' and '.'.
func checkHostname(h string) error {
	if len(h) > 64 {
		return fmt.Errorf("hostname %q is %d bytes long (expected at most 64)", h, len(h))
	}
	for _, c := range []byte(h) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("hostname %q holds %q (expected letters, digits, '-', '_' and '.')", h, c)
		}
	}
	return nil
}

// String is k as an ip= value, for the KernelIP values ParseKernelIP
// returns (others lose what ip= cannot say: more links, addresses or
// nameservers, routes, forwarding).
func (k KernelIP) String() string {
	extras := k.Server != nil || k.Hostname != "" || len(k.Nameservers) > 0 || len(k.NTP) > 0
	f := make([]string, 10)
	f[1], f[4] = bracket(k.Server), k.Hostname
	if len(k.NTP) > 0 {
		f[9] = bracket(k.NTP[0])
	}
	dns := k.Nameservers
	switch {
	case k.Off && !extras:
		return "off"
	case k.Off:
		f[6] = "off"
	case len(k.Ifaces) == 0 && !extras:
		return "dhcp"
	case len(k.Ifaces) == 0:
		f[6] = "dhcp"
	default:
		i := k.Ifaces[0]
		if len(i.Addresses) == 0 && i.Name != "" && !looksLikeIP(i.Name) && i.DHCP && i.Gateway == nil && len(i.Nameservers) == 0 && !extras {
			return i.Name + ":dhcp"
		}
		dns = i.Nameservers
		f[2], f[5] = bracket(i.Gateway), i.Name
		f[6] = "dhcp"
		if len(i.Addresses) > 0 {
			a := i.Addresses[0]
			f[0] = bracket(a.IP)
			ones, _ := a.Mask.Size()
			f[3] = strconv.Itoa(ones)
			if a.IP.To4() != nil {
				f[3] = net.IP(a.Mask).String()
			}
			if !i.DHCP {
				f[6] = "off"
			}
		}
	}
	for n, ip := range dns {
		if n < 2 {
			f[7+n] = bracket(ip)
		}
	}
	end := len(f)
	for end > 7 && f[end-1] == "" {
		end--
	}
	return strings.Join(f[:end], ":")
}

// bracket writes ip for the ip= parameter: IPv6 in brackets, nil empty.
func bracket(ip net.IP) string {
	switch {
	case ip == nil:
		return ""
	case ip.To4() == nil:
		return "[" + ip.String() + "]"
	}
	return ip.String()
}
