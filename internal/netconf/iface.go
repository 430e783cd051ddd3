package netconf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Iface is the configuration of one link, as boot2container's
// b2c.iface=NAME,opt,… parameter or the kernel's ip= parameter give it: static
// addresses and routes, DHCPv4, or both.
type Iface struct {
	// Name is the link's name. Empty, which only ParseKernelIP produces
	// (ip= with an empty device), means the first ethernet link.
	Name string
	// Addresses are the static addresses with their prefix lengths, IPv4
	// (4-byte IPs and masks) or IPv6.
	Addresses []net.IPNet
	// Gateway, when set, is the router of a default route for its address
	// family.
	Gateway net.IP
	// Nameservers are DNS servers written to resolv.conf before the ones
	// DHCP offers.
	Nameservers []net.IP
	// Routes are routes added besides the default route.
	Routes []Route
	// Forward enables IPv4 forwarding: net.ipv4.ip_forward and
	// net.ipv4.conf.NAME.forwarding.
	Forward bool
	// DHCP runs DHCPv4 on the link (after applying the static settings, if
	// any).
	DHCP bool
}

// Route is a static route through a gateway.
type Route struct {
	// Dst is the destination network; its IP is the network address.
	Dst net.IPNet
	// Gateway is the next hop, of Dst's address family.
	Gateway net.IP
}

// String is the route as ParseIface reads it: NET/LEN:GATEWAY.
func (r Route) String() string {
	return r.Dst.String() + ":" + r.Gateway.String()
}

// static reports whether i has anything to apply besides DHCP.
func (i Iface) static() bool {
	return len(i.Addresses) > 0 || i.Gateway != nil || len(i.Routes) > 0 || i.Forward
}

// String is i in the form ParseIface reads, e.g.
// "eth1,address=192.168.7.2/24,gateway=192.168.7.1,nameserver=192.168.7.1".
func (i Iface) String() string {
	parts := []string{i.Name}
	for _, a := range i.Addresses {
		parts = append(parts, "address="+a.String())
	}
	if i.Gateway != nil {
		parts = append(parts, "gateway="+i.Gateway.String())
	}
	for _, ns := range i.Nameservers {
		parts = append(parts, "nameserver="+ns.String())
	}
	for _, r := range i.Routes {
		parts = append(parts, "route="+r.String())
	}
	if i.Forward {
		parts = append(parts, "forward")
	}
	if i.DHCP {
		parts = append(parts, "dhcp")
	}
	return strings.Join(parts, ",")
}

// summary is the console line for i applied on its link, in the style of
// Lease.String, e.g. "eth1: 192.168.7.2/24 via 192.168.7.1, dns 192.168.7.1 (static)".
func (i Iface) summary(carrier bool) string {
	var b strings.Builder
	b.WriteString(i.Name + ":")
	for _, a := range i.Addresses {
		b.WriteString(" " + a.String())
	}
	if i.Gateway != nil {
		fmt.Fprintf(&b, " via %s", i.Gateway)
	}
	if len(i.Nameservers) > 0 {
		fmt.Fprintf(&b, ", dns %s", joinIPs(i.Nameservers))
	}
	for _, r := range i.Routes {
		fmt.Fprintf(&b, ", route %s via %s", r.Dst.String(), r.Gateway)
	}
	if i.Forward {
		b.WriteString(", forwarding")
	}
	if !carrier {
		b.WriteString(", no carrier yet")
	}
	b.WriteString(" (static)")
	return b.String()
}

// ParseIface reads boot2container's b2c.iface value: a link name, then
// comma-separated options:
//
//   - address=CIDR: a static address with its prefix length, IPv4 or IPv6
//     (repeatable);
//   - gateway=IP: the router of the default route (once);
//   - nameserver=IP: a DNS server (repeatable);
//   - route=NET/LEN:GW: a route to NET/LEN through GW (repeatable). The
//     gateway starts after the first ':' that follows the prefix length,
//     which holds no ':', so IPv6 works unchanged:
//     route=2001:db8:1::/48:2001:db8::1;
//   - forward: enable IPv4 forwarding;
//   - auto or dhcp: run DHCPv4 on the link.
//
// The configuration needs addresses, DHCP or both.
func ParseIface(s string) (Iface, error) {
	name, opts, _ := strings.Cut(s, ",")
	var i Iface
	if err := checkLinkName(name); err != nil {
		return Iface{}, err
	}
	i.Name = name
	if opts == "" {
		return Iface{}, fmt.Errorf("%s: no options (expected address=CIDR or dhcp, such as %s,dhcp)", name, name)
	}
	for opt := range strings.SplitSeq(opts, ",") {
		key, val, hasVal := strings.Cut(opt, "=")
		switch key {
		case "address":
			a, err := parseAddress(val)
			if err != nil {
				return Iface{}, fmt.Errorf("%s: address %q: %w", name, val, err)
			}
			i.Addresses = append(i.Addresses, a)
		case "gateway":
			if i.Gateway != nil {
				return Iface{}, fmt.Errorf("%s: gateway %q: a gateway is already given (expected one; add route=0.0.0.0/0:GW or route=::/0:GW for the other family)", name, val)
			}
			ip, err := parseIP(val)
			if err != nil {
				return Iface{}, fmt.Errorf("%s: gateway %q: %w", name, val, err)
			}
			i.Gateway = ip
		case "nameserver":
			ip, err := parseIP(val)
			if err != nil {
				return Iface{}, fmt.Errorf("%s: nameserver %q: %w", name, val, err)
			}
			i.Nameservers = append(i.Nameservers, ip)
		case "route":
			r, err := parseRoute(val)
			if err != nil {
				return Iface{}, fmt.Errorf("%s: route %q: %w", name, val, err)
			}
			i.Routes = append(i.Routes, r)
		case "forward", "auto", "dhcp":
			if hasVal {
				return Iface{}, fmt.Errorf("%s: option %q: %s takes no value", name, opt, key)
			}
			if key == "forward" {
				i.Forward = true
			} else {
				i.DHCP = true
			}
		case "":
			return Iface{}, fmt.Errorf("%s: empty option in %q (expected options separated by single commas)", name, s)
		default:
			return Iface{}, fmt.Errorf("%s: unknown option %q (expected address=, gateway=, nameserver=, route=, forward, auto or dhcp)", name, opt)
		}
	}
	if err := i.validate(); err != nil {
		return Iface{}, err
	}
	return i, nil
}

// validate checks what ParseIface cannot check option by option; Up runs
// it on the caller's Ifaces too.
func (i Iface) validate() error {
	if i.Name != "" {
		if err := checkLinkName(i.Name); err != nil {
			return err
		}
	}
	name := i.Name
	if name == "" {
		name = "first ethernet link"
	}
	if len(i.Addresses) == 0 && !i.DHCP {
		return fmt.Errorf("%s: no address and no dhcp (expected address=CIDR or dhcp)", name)
	}
	for _, a := range i.Addresses {
		if _, err := parseAddress(a.String()); err != nil {
			return fmt.Errorf("%s: address %s: %w", name, a.String(), err)
		}
	}
	if i.Gateway != nil {
		if _, err := parseIP(i.Gateway.String()); err != nil {
			return fmt.Errorf("%s: gateway %s: %w", name, i.Gateway, err)
		}
	}
	for _, r := range i.Routes {
		if _, err := parseRoute(r.String()); err != nil {
			return fmt.Errorf("%s: route %s: %w", name, r, err)
		}
	}
	return nil
}

// checkLinkName checks a link name as the kernel's dev_valid_name does.
func checkLinkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty link name (expected a name such as eth0)")
	case len(name) > unix.IFNAMSIZ-1:
		return fmt.Errorf("link name %q is %d bytes long (expected at most %d)", name, len(name), unix.IFNAMSIZ-1)
	case name == "." || name == "..":
		return fmt.Errorf("link name %q is not valid (expected a name such as eth0)", name)
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c == 0x7f || c == '/' || c == ':' || c == ',' {
			return fmt.Errorf("link name %q holds %q (expected no whitespace, control character, '/', ':' or ',')", name, c)
		}
	}
	return nil
}

// parseAddress reads a host address with its prefix length, IPv4 or IPv6.
func parseAddress(s string) (net.IPNet, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Zone() != "" || p.Addr().Is4In6() {
		return net.IPNet{}, errors.New("expected an address with its prefix length, such as 10.0.0.2/24 or fd00::2/64")
	}
	if a := p.Addr(); a.IsUnspecified() || a.IsMulticast() {
		return net.IPNet{}, fmt.Errorf("%s cannot be a link's address (expected a unicast address)", a)
	}
	return prefixNet(p, false), nil
}

// parseIP reads a unicast IP address.
func parseIP(s string) (net.IP, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return nil, errors.New("expected an IP address, such as 10.0.0.1 or fd00::1")
	}
	if a.IsUnspecified() || a.IsMulticast() {
		return nil, fmt.Errorf("%s is not a unicast address (expected an IP address such as 10.0.0.1)", a)
	}
	return net.IP(a.AsSlice()), nil
}

// parseRoute reads NET/LEN:GW. NET/LEN ends at the first ':' after its
// '/', since a prefix length holds no ':'.
func parseRoute(s string) (Route, error) {
	const want = "expected NET/LEN:GATEWAY, such as 10.20.0.0/16:192.168.7.254 or 2001:db8:1::/48:fd00::1"
	slash := strings.IndexByte(s, '/')
	if slash < 0 {
		return Route{}, errors.New(want)
	}
	colon := strings.IndexByte(s[slash:], ':')
	if colon < 0 {
		return Route{}, errors.New(want)
	}
	dst, gw := s[:slash+colon], s[slash+colon+1:]
	p, err := netip.ParsePrefix(dst)
	if err != nil || p.Addr().Zone() != "" || p.Addr().Is4In6() {
		return Route{}, fmt.Errorf("destination %q: %s", dst, want)
	}
	if p.Masked() != p {
		return Route{}, fmt.Errorf("destination %q has host bits set (expected the network address %s)", dst, p.Masked())
	}
	ip, err := parseIP(gw)
	if err != nil {
		return Route{}, fmt.Errorf("gateway %q: %w", gw, err)
	}
	if (ip.To4() != nil) != p.Addr().Is4() {
		return Route{}, fmt.Errorf("gateway %s is not of destination %s's address family (expected both IPv4 or both IPv6)", ip, p)
	}
	return Route{Dst: prefixNet(p, true), Gateway: ip}, nil
}

// prefixNet converts p, masked when masked is true.
func prefixNet(p netip.Prefix, masked bool) net.IPNet {
	if masked {
		p = p.Masked()
	}
	bits := 128
	if p.Addr().Is4() {
		bits = 32
	}
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

// applyStatic sets i's addresses, routes and forwarding on link, which is
// up. Routes go through the link with metric staticMetricBase plus its
// index, below the DHCP routes' so that static settings win.
func applyStatic(link netlink.Link, i Iface) error {
	index := link.Attrs().Index
	for _, a := range i.Addresses {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: a.IP, Mask: a.Mask}}
		if a.IP.To4() == nil {
			// The address was given by hand: use it at once rather
			// than after a second of duplicate address detection.
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("adding address %s: %w", a.String(), err)
		}
	}
	for _, route := range staticRoutes(index, i) {
		if err := netlink.RouteReplace(&route); err != nil {
			return fmt.Errorf("adding the route to %s via %s: %w", route.Dst.String(), route.Gw, err)
		}
	}
	if i.Forward {
		for _, key := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/" + link.Attrs().Name + "/forwarding"} {
			if err := os.WriteFile(filepath.Join(procSys, key), []byte("1\n"), 0o644); err != nil {
				return fmt.Errorf("enabling forwarding: %w", err)
			}
		}
	}
	return nil
}

// staticRoutes are the kernel routes of i on the link index: the default
// route through i.Gateway first, then i.Routes.
func staticRoutes(index int, i Iface) []netlink.Route {
	routes := i.Routes
	if i.Gateway != nil {
		dst := net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		if i.Gateway.To4() != nil {
			dst = net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
		}
		routes = append([]Route{{Dst: dst, Gateway: i.Gateway}}, routes...)
	}
	var rs []netlink.Route
	for _, r := range routes {
		route := netlink.Route{
			LinkIndex: index,
			Dst:       &net.IPNet{IP: r.Dst.IP, Mask: r.Dst.Mask},
			Gw:        r.Gateway,
			Protocol:  unix.RTPROT_STATIC,
			Priority:  staticMetricBase + index,
		}
		if !onLink(i.Addresses, r.Gateway) {
			route.Flags = int(netlink.FLAG_ONLINK)
		}
		rs = append(rs, route)
	}
	return rs
}

// unapplyStatic removes from link the addresses and routes that
// applyStatic set for i; those already gone are no error. Forwarding is
// left as it is.
func unapplyStatic(link netlink.Link, i Iface) error {
	var errs []error
	for _, r := range staticRoutes(link.Attrs().Index, i) {
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("removing the route to %s via %s: %w", r.Dst.String(), r.Gw, err))
		}
	}
	for _, a := range i.Addresses {
		err := netlink.AddrDel(link, &netlink.Addr{IPNet: &net.IPNet{IP: a.IP, Mask: a.Mask}})
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("removing address %s: %w", a.String(), err))
		}
	}
	return errors.Join(errs...)
}

// onLink reports whether gw is in one of the prefixes of addrs, or an IPv6
// link-local address, so that the kernel finds it on the link without
// being told.
func onLink(addrs []net.IPNet, gw net.IP) bool {
	if gw.To4() == nil && gw.IsLinkLocalUnicast() {
		return true
	}
	for _, a := range addrs {
		if a.Contains(gw) {
			return true
		}
	}
	return false
}

// joinIPs is ips separated by spaces.
func joinIPs(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, " ")
}

// appendIPs appends to dst the ips not in it yet.
func appendIPs(dst []net.IP, ips ...net.IP) []net.IP {
next:
	for _, ip := range ips {
		for _, d := range dst {
			if d.Equal(ip) {
				continue next
			}
		}
		dst = append(dst, ip)
	}
	return dst
}
