package netconf

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// releaseTimeout bounds the sending of one DHCPRELEASE in Release,
// including the ARP exchange that lets it leave.
const releaseTimeout = 2 * time.Second

// nudValid are the neighbour states in which the kernel knows the
// neighbour's hardware address, and so sends what it held for it.
const nudValid = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
	netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// Release tears down the network configuration r describes (Up's result,
// or better Maintain's once it has returned, so that nothing configures
// the links again), for a system that must find its links unconfigured:
// the kernel parameter ociboot.keep_network=0.
//
// For each lease in r it sends a DHCPRELEASE to the lease's server, then
// removes the lease's routes and address; for each static configuration
// in r.Static it removes its routes and addresses; then it sets each of
// those links down. The loopback link stays up. MTUs set from leases,
// forwarding and resolv.conf are left as they are.
//
// Sending the DHCPRELEASEs is best effort: they go out on all links at
// once, each bounded by ctx and 2 seconds (the time for the ARP exchange
// that lets it leave), and a failure is logged, not returned: the server
// then keeps the lease until it ends. The error joins the failures to
// remove an address or a route or to set a link down, each naming its
// link; a link that no longer exists is skipped without error. Release
// writes one line per link to log (nothing when nil), such as
// "netconf: eth0: released 10.0.2.15/24 (DHCP), link down".
func Release(ctx context.Context, r *Result, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	if r == nil {
		return nil
	}
	links, errs := releaseTargets(r)

	// The DHCPRELEASEs leave first, from the leased addresses, all at once.
	sendErrs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, t := range links {
		if t.link != nil && t.lease != nil {
			wg.Go(func() { sendErrs[i] = sendRelease(ctx, t.link, t.lease) })
		}
	}
	wg.Wait()

	for i, t := range links {
		if t.link == nil {
			fmt.Fprintf(log, "netconf: %s: link gone, nothing to release\n", t.name)
			continue
		}
		if err := sendErrs[i]; err != nil {
			fmt.Fprintf(log, "netconf: %s: DHCPRELEASE for %s failed (the server keeps the lease until it ends): %v\n",
				t.name, t.lease.Address.String(), err)
		}
		done, lerrs := t.tearDown()
		if len(lerrs) > 0 && !linkExists(t.link.Attrs().Index) {
			fmt.Fprintf(log, "netconf: %s: link gone while releasing it\n", t.name)
			continue
		}
		for _, err := range lerrs {
			errs = append(errs, fmt.Errorf("netconf: %s: %w", t.name, err))
		}
		var b strings.Builder
		fmt.Fprintf(&b, "netconf: %s: ", t.name)
		if len(done) > 0 {
			fmt.Fprintf(&b, "released %s, ", strings.Join(done, ", "))
		}
		if len(lerrs) > 0 {
			fmt.Fprintf(&b, "%d failure(s): %s\n", len(lerrs), joinErrs(lerrs))
		} else if t.link.Attrs().Flags&net.FlagLoopback != 0 {
			b.WriteString("loopback left up\n")
		} else {
			b.WriteString("link down\n")
		}
		io.WriteString(log, b.String())
	}
	return errors.Join(errs...)
}

// releaseTarget is one link Release tears down.
type releaseTarget struct {
	name   string
	index  int          // from the Result; 0 when it does not say
	link   netlink.Link // nil when the link no longer exists
	lease  *Lease
	static *Iface
}

// releaseTargets lists the links r configured, in link order, with the
// links as they are now; the errors are failures to look links up.
func releaseTargets(r *Result) ([]*releaseTarget, []error) {
	byName := map[string]*releaseTarget{}
	var links []*releaseTarget
	target := func(name string) *releaseTarget {
		t := byName[name]
		if t == nil {
			t = &releaseTarget{name: name, index: r.index[name]}
			byName[name] = t
			links = append(links, t)
		}
		return t
	}
	for i := range r.Leases {
		target(r.Leases[i].Interface).lease = &r.Leases[i]
	}
	for i := range r.Static {
		target(r.Static[i].Name).static = &r.Static[i]
	}
	slices.SortStableFunc(links, func(a, b *releaseTarget) int { return cmp.Compare(a.index, b.index) })

	var errs []error
	for _, t := range links {
		link, err := findLink(t.name, t.index)
		if err != nil {
			errs = append(errs, fmt.Errorf("netconf: %s: %w", t.name, err))
			continue
		}
		t.link = link
	}
	return links, errs
}

// findLink returns the link index (the one a Result names, even if it was
// renamed since), or the link name when index is 0; nil when there is no
// such link.
func findLink(name string, index int) (netlink.Link, error) {
	var link netlink.Link
	var err error
	if index > 0 {
		link, err = netlink.LinkByIndex(index)
	} else {
		link, err = netlink.LinkByName(name)
	}
	if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("finding the link: %w", err)
	}
	return link, nil
}

// linkExists reports whether the link index is still there.
func linkExists(index int) bool {
	_, err := netlink.LinkByIndex(index)
	_, gone := errors.AsType[netlink.LinkNotFoundError](err)
	return !gone
}

// tearDown removes the lease's and the static settings' routes and
// addresses from the link and sets it down, unless it is the loopback
// link. It returns what it released and what failed.
func (t *releaseTarget) tearDown() (done []string, errs []error) {
	if t.lease != nil {
		if err := unapply(t.link, t.lease, nil); err != nil {
			errs = append(errs, splitErr(err)...)
		} else {
			done = append(done, t.lease.Address.String()+" (DHCP)")
		}
	}
	if t.static != nil {
		if err := unapplyStatic(t.link, *t.static); err != nil {
			errs = append(errs, splitErr(err)...)
		} else {
			for _, a := range t.static.Addresses {
				done = append(done, a.String()+" (static)")
			}
		}
	}
	if t.link.Attrs().Flags&net.FlagLoopback == 0 {
		if err := netlink.LinkSetDown(t.link); err != nil {
			errs = append(errs, fmt.Errorf("setting the link down: %w", err))
		}
	}
	return done, errs
}

// splitErr returns the errors that err, made by errors.Join, joins.
func splitErr(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// joinErrs is errs on one line.
func joinErrs(errs []error) string {
	s := make([]string, len(errs))
	for i, err := range errs {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

// sendRelease sends a DHCPRELEASE for l to its server, from l's address
// on link, and waits, within ctx and releaseTimeout, until it has left.
func sendRelease(ctx context.Context, link netlink.Link, l *Lease) error {
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	server := l.Server.To4()
	if server == nil || server.IsUnspecified() || l.ACK == nil {
		return fmt.Errorf("the lease names no server (server %v)", l.Server)
	}
	xid, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		return fmt.Errorf("making a transaction ID: %w", err)
	}
	msg, err := dhcpv4.NewReleaseFromACK(l.ACK, dhcpv4.WithTransactionID(xid),
		dhcpv4.WithClientIP(l.Address.IP), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server)))
	if err != nil {
		return fmt.Errorf("making a DHCPRELEASE: %w", err)
	}
	conn, err := listenDHCP(link.Attrs().Name)
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetWriteDeadline(deadline); err != nil {
			return fmt.Errorf("sending DHCPRELEASE to %s: %w", server, err)
		}
	}
	if _, err := conn.WriteTo(msg.ToBytes(), &net.UDPAddr{IP: server, Port: dhcpv4.ServerPort}); err != nil {
		return fmt.Errorf("sending DHCPRELEASE to %s: %w", server, err)
	}
	return waitSent(ctx, link, server)
}

// waitSent waits until the kernel knows the hardware address of the next
// hop to dst on link: until then it holds a datagram just sent to dst, and
// would drop it when the link's address goes or the link goes down.
func waitSent(ctx context.Context, link netlink.Link, dst net.IP) error {
	if link.Attrs().RawFlags&unix.IFF_NOARP != 0 {
		return nil
	}
	index := link.Attrs().Index
	hop, what := dst, "the DHCP server "+dst.String()
	if rs, err := netlink.RouteGetWithOptions(dst, &netlink.RouteGetOptions{OifIndex: index}); err == nil && len(rs) > 0 && rs[0].Gw != nil {
		hop, what = rs[0].Gw, fmt.Sprintf("%s, the next hop to the DHCP server %s,", rs[0].Gw, dst)
	}
	for {
		neighs, err := netlink.NeighList(index, netlink.FAMILY_V4)
		if err != nil {
			return fmt.Errorf("reading the neighbour table to see the DHCPRELEASE leave: %w", err)
		}
		for _, n := range neighs {
			switch {
			case !n.IP.Equal(hop):
			case n.State&nudValid != 0:
				return nil
			case n.State&netlink.NUD_FAILED != 0:
				return fmt.Errorf("no ARP answer from %s: the DHCPRELEASE did not leave", what)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no ARP answer from %s in time: the DHCPRELEASE did not leave: %w", what, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
