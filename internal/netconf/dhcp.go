package netconf

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	// retransmit is nclient4's first retransmission timeout; it doubles on
	// each of its retries.
	retransmit = time.Second
	// retryPause separates whole DISCOVER/REQUEST attempts, e.g. after a NAK.
	retryPause = 500 * time.Millisecond
	// routeMetricBase plus the link's index is the metric of its routes, so
	// several leases can each install a default route; the lowest-numbered
	// link wins.
	routeMetricBase = 1000
)

// requestLease runs DHCPv4 DISCOVER/REQUEST on iface until it gets an ACK
// or ctx ends.
func requestLease(ctx context.Context, iface string) (*nclient4.Lease, error) {
	client, err := nclient4.New(iface, nclient4.WithTimeout(retransmit))
	if err != nil {
		return nil, fmt.Errorf("opening a DHCPv4 client: %w", err)
	}
	defer client.Close()

	wanted := dhcpv4.WithRequestedOptions(
		dhcpv4.OptionInterfaceMTU,
		dhcpv4.OptionClasslessStaticRoute,
		dhcpv4.OptionDNSDomainSearchList,
		dhcpv4.OptionNTPServers,
	)
	for {
		lease, err := client.Request(ctx, wanted)
		if err == nil {
			return lease, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no DHCPv4 lease (expected an ACK from a DHCP server): %w", err)
		case <-time.After(retryPause):
		}
	}
}

// leaseFromACK reads the parts of ack that Up applies.
func leaseFromACK(iface string, ack *dhcpv4.DHCPv4, obtained time.Time) (*Lease, error) {
	server := ack.ServerIdentifier()
	if server == nil {
		server = ack.ServerIPAddr
	}
	ip := ack.YourIPAddr.To4()
	if ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("DHCPv4 ACK from %s has no address (yiaddr %s)", server, ack.YourIPAddr)
	}
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ip.DefaultMask()
	}
	if _, bits := mask.Size(); bits != 32 {
		return nil, fmt.Errorf("DHCPv4 ACK from %s has an invalid subnet mask %s (expected a contiguous IPv4 mask)", server, mask)
	}

	l := &Lease{
		Interface: iface,
		Address:   net.IPNet{IP: ip, Mask: mask},
		DNS:       ack.DNS(),
		Duration:  ack.IPAddressLeaseTime(0),
		Server:    server,
		Obtained:  obtained,
		ACK:       ack,
	}
	if labels := ack.DomainSearch(); labels != nil && len(labels.Labels) > 0 {
		l.Search = labels.Labels
	} else if name := ack.DomainName(); name != "" {
		l.Search = []string{name}
	}
	if mtu, err := dhcpv4.GetUint16(dhcpv4.OptionInterfaceMTU, ack.Options); err == nil && mtu >= 68 {
		l.MTU = int(mtu)
	}
	for _, r := range routes(ack) {
		if ones, _ := r.Dest.Mask.Size(); ones == 0 && !r.Router.IsUnspecified() {
			l.Gateway = r.Router
			break
		}
	}
	return l, nil
}

// routes returns the lease's routes: the classless static routes (option
// 121) when present, which replace the router option as RFC 3442 says,
// else a default route via the first router.
func routes(ack *dhcpv4.DHCPv4) []*dhcpv4.Route {
	if rs := ack.ClasslessStaticRoute(); len(rs) > 0 {
		return rs
	}
	if rs := ack.Router(); len(rs) > 0 && rs[0].To4() != nil {
		return []*dhcpv4.Route{{
			Dest:   &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			Router: rs[0].To4(),
		}}
	}
	return nil
}

// apply sets the lease's MTU, address and routes on link.
func apply(link netlink.Link, l *Lease) error {
	if l.MTU > 0 && l.MTU != link.Attrs().MTU {
		if err := netlink.LinkSetMTU(link, l.MTU); err != nil {
			return fmt.Errorf("setting MTU %d: %w", l.MTU, err)
		}
	}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: &l.Address}); err != nil {
		return fmt.Errorf("adding the address: %w", err)
	}
	for _, r := range routes(l.ACK) {
		route := &netlink.Route{
			LinkIndex: link.Attrs().Index,
			Dst:       &net.IPNet{IP: r.Dest.IP.Mask(r.Dest.Mask), Mask: r.Dest.Mask},
			Src:       l.Address.IP,
			Protocol:  unix.RTPROT_DHCP,
			Priority:  routeMetricBase + link.Attrs().Index,
		}
		switch {
		case r.Router.IsUnspecified():
			route.Scope = netlink.SCOPE_LINK
		case !l.Address.Contains(r.Router):
			route.Gw = r.Router
			route.Flags = int(netlink.FLAG_ONLINK)
		default:
			route.Gw = r.Router
		}
		if err := netlink.RouteReplace(route); err != nil {
			return fmt.Errorf("adding the route to %s via %s: %w", r.Dest, r.Router, err)
		}
	}
	return nil
}
