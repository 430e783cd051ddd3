package netconf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
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
	// retryPause separates whole DISCOVER/REQUEST attempts in Up, e.g.
	// after a NAK.
	retryPause = 500 * time.Millisecond
	// maxBackoff bounds the pause between whole attempts in Maintain,
	// which doubles from retryPause.
	maxBackoff = time.Minute
	// minRetransmit is RFC 2131's floor between DHCPREQUESTs while
	// renewing or rebinding (section 4.4.5).
	minRetransmit = time.Minute
	// routeMetricBase plus the link's index is the metric of its routes, so
	// several leases can each install a default route; the lowest-numbered
	// link wins.
	routeMetricBase = 1000
	// staticMetricBase plus the link's index is the metric of static
	// routes, which win over DHCP's.
	staticMetricBase = 100
	// infinite is the lease time meaning forever (RFC 2131, 3.3).
	infinite = 0xffffffff * time.Second
)

// wanted are the options asked of DHCP servers.
var wanted = dhcpv4.WithRequestedOptions(
	dhcpv4.OptionInterfaceMTU,
	dhcpv4.OptionClasslessStaticRoute,
	dhcpv4.OptionDNSDomainSearchList,
	dhcpv4.OptionNTPServers,
)

// requestLease runs DHCPv4 DISCOVER/REQUEST on iface until it gets an ACK
// or ctx ends, pausing retryPause between attempts, or doubling pauses up
// to maxBackoff when backoff is set.
func requestLease(ctx context.Context, iface string, backoff bool) (*nclient4.Lease, error) {
	client, err := nclient4.New(iface, nclient4.WithTimeout(retransmit))
	if err != nil {
		return nil, fmt.Errorf("opening a DHCPv4 client: %w", err)
	}
	defer client.Close()

	pause := retryPause
	for {
		lease, err := client.Request(ctx, wanted)
		if err == nil {
			return lease, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no DHCPv4 lease (expected an ACK from a DHCP server): %w", err)
		case <-time.After(pause):
		}
		if backoff {
			pause = min(2*pause, maxBackoff)
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
		NTP:       ack.NTPServers(),
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

// leaseRoutes are the kernel routes of lease l on the link index.
func leaseRoutes(index int, l *Lease) []netlink.Route {
	var rs []netlink.Route
	for _, r := range routes(l.ACK) {
		route := netlink.Route{
			LinkIndex: index,
			Dst:       &net.IPNet{IP: r.Dest.IP.Mask(r.Dest.Mask), Mask: r.Dest.Mask},
			Src:       l.Address.IP,
			Protocol:  unix.RTPROT_DHCP,
			Priority:  routeMetricBase + index,
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
		rs = append(rs, route)
	}
	return rs
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
	for _, r := range leaseRoutes(link.Attrs().Index, l) {
		if err := netlink.RouteReplace(&r); err != nil {
			return fmt.Errorf("adding the route to %s via %s: %w", r.Dst, r.Gw, err)
		}
	}
	return nil
}

// unapply removes from link what apply set for old and that new, when not
// nil, does not set again.
func unapply(link netlink.Link, old, new *Lease) error {
	index := link.Attrs().Index
	var keep []netlink.Route
	if new != nil {
		keep = leaseRoutes(index, new)
	}
	var errs []error
next:
	for _, r := range leaseRoutes(index, old) {
		for _, k := range keep {
			if k.Dst.String() == r.Dst.String() && k.Gw.Equal(r.Gw) && k.Src.Equal(r.Src) {
				continue next
			}
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("removing the route to %s: %w", r.Dst, err))
		}
	}
	if new == nil || new.Address.String() != old.Address.String() {
		err := netlink.AddrDel(link, &netlink.Addr{IPNet: &old.Address})
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("removing address %s: %w", old.Address.String(), err))
		}
	}
	return errors.Join(errs...)
}

// schedule returns when l is to be renewed (T1), rebound (T2) and when it
// ends; ok is false for a lease that never ends. T1 and T2 come from
// options 58 and 59 when they are sane, else are 1/2 and 7/8 of the lease
// (RFC 2131, 4.4.5).
func (l *Lease) schedule() (t1, t2, end time.Time, ok bool) {
	d := l.Duration
	if d <= 0 || d >= infinite {
		return time.Time{}, time.Time{}, time.Time{}, false
	}
	r1 := l.ACK.IPAddressRenewalTime(0)
	r2 := l.ACK.IPAddressRebindingTime(0)
	if r2 <= 0 || r2 >= d {
		r2 = d * 7 / 8
	}
	if r1 <= 0 || r1 >= r2 {
		r1 = min(d/2, r2)
	}
	return l.Obtained.Add(r1), l.Obtained.Add(r2), l.Obtained.Add(d), true
}

// errNAK is a DHCPNAK answering a renewal.
var errNAK = errors.New("the server refused the lease (DHCPNAK)")

// renew sends DHCPREQUESTs for l's address on link, from its address:
// unicast to l's server (RENEWING), or broadcast when rebind is set
// (REBINDING). It returns the ACK, errNAK, or the error that stopped it.
func renew(ctx context.Context, link netlink.Link, l *Lease, rebind bool) (*dhcpv4.DHCPv4, error) {
	conn, err := listenDHCP(link.Attrs().Name)
	if err != nil {
		return nil, err
	}
	client, err := nclient4.NewWithConn(conn, link.Attrs().HardwareAddr, nclient4.WithTimeout(retransmit))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("opening a DHCPv4 client: %w", err)
	}
	defer client.Close()
	xid, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		return nil, fmt.Errorf("making a transaction ID: %w", err)
	}
	req, err := dhcpv4.NewRenewFromAck(l.ACK, dhcpv4.WithTransactionID(xid), wanted,
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(nclient4.MaxMessageSize)))
	if err != nil {
		return nil, fmt.Errorf("making a DHCPREQUEST: %w", err)
	}
	dest := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort}
	match := nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	if !rebind {
		dest.IP = l.Server
		match = nclient4.IsAll(nclient4.IsCorrectServer(l.Server), match)
	}
	resp, err := client.SendAndRead(ctx, dest, req, match)
	if err != nil {
		return nil, fmt.Errorf("no answer to DHCPREQUEST sent to %s: %w", dest.IP, err)
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		return nil, fmt.Errorf("%w: %s", errNAK, resp.Message())
	}
	return resp, nil
}

// listenDHCP opens a UDP socket on the DHCP client port of the link name
// only, for the exchanges of a bound client, which has an address.
func listenDHCP(name string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		cerr := c.Control(func(fd uintptr) {
			err = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, name)
			if err == nil {
				err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			}
		})
		if cerr != nil {
			return cerr
		}
		return err
	}}
	conn, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf(":%d", dhcpv4.ClientPort))
	if err != nil {
		return nil, fmt.Errorf("opening the DHCP client port on %s: %w", name, err)
	}
	return conn, nil
}

// mergeACK fills in what a renewal ACK leaves out from the previous one:
// some servers send only the lease time on renewal.
func mergeACK(old, ack *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	has := func(m *dhcpv4.DHCPv4, code dhcpv4.OptionCode) bool { return m.Options.Has(code) }
	for _, code := range []dhcpv4.OptionCode{
		dhcpv4.OptionSubnetMask,
		dhcpv4.OptionDomainNameServer,
		dhcpv4.OptionDomainName,
		dhcpv4.OptionDNSDomainSearchList,
		dhcpv4.OptionInterfaceMTU,
		dhcpv4.OptionNTPServers,
	} {
		if !has(ack, code) && has(old, code) {
			ack.UpdateOption(dhcpv4.OptGeneric(code, old.Options.Get(code)))
		}
	}
	if !has(ack, dhcpv4.OptionRouter) && !has(ack, dhcpv4.OptionClasslessStaticRoute) {
		for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionRouter, dhcpv4.OptionClasslessStaticRoute} {
			if has(old, code) {
				ack.UpdateOption(dhcpv4.OptGeneric(code, old.Options.Get(code)))
			}
		}
	}
	if !has(ack, dhcpv4.OptionServerIdentifier) && has(old, dhcpv4.OptionServerIdentifier) {
		ack.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionServerIdentifier, old.Options.Get(dhcpv4.OptionServerIdentifier)))
	}
	return ack
}
