// Package netconf brings up PID 1's network: the loopback link, then DHCPv4
// on every ethernet link in parallel, applying each lease's address, routes
// and MTU, and writing resolv.conf from the first lease that names DNS
// servers.
package netconf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	// DefaultTimeout bounds DHCP on all links when Options.Timeout is 0
	// (boot2container's default).
	DefaultTimeout = 10 * time.Second
	// DefaultResolvConf is where DNS settings go when Options.ResolvConf
	// is empty.
	DefaultResolvConf = "/etc/resolv.conf"

	// carrierWait bounds the wait for a link's carrier after setting it up.
	carrierWait = 5 * time.Second
)

// Options says which links to configure and where results go.
type Options struct {
	// Interfaces, when not empty, names the links to configure instead of
	// every ethernet NIC.
	Interfaces []string
	// Timeout bounds carrier detection and DHCP on all links together;
	// DefaultTimeout when 0.
	Timeout time.Duration
	// ResolvConf is the file DNS settings are written to;
	// DefaultResolvConf when empty.
	ResolvConf string
	// Log receives one line per lease and per failed link; nothing is
	// written when nil.
	Log io.Writer
}

// Lease is a DHCPv4 lease that has been applied to a link.
type Lease struct {
	// Interface is the link's name.
	Interface string
	// Address is the leased address with its prefix.
	Address net.IPNet
	// Gateway is the default router; nil when the lease gives none.
	Gateway net.IP
	// DNS lists the DNS servers offered.
	DNS []net.IP
	// Search lists the DNS search domains (option 119, else option 15).
	Search []string
	// MTU is the link MTU set from option 26; 0 when not offered.
	MTU int
	// Duration is the lease time; 0 when the server sent none.
	Duration time.Duration
	// Server is the DHCP server's identifier.
	Server net.IP
	// Obtained is when the ACK arrived; renewal times count from it.
	Obtained time.Time
	// ACK is the server's ACK, kept for renewal.
	ACK *dhcpv4.DHCPv4
}

// String is the lease's console line, e.g.
// "eth0: 10.0.2.15/24 via 10.0.2.2, dns 10.0.2.3, lease 24h0m0s from 10.0.2.2".
func (l Lease) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", l.Interface, l.Address.String())
	if l.Gateway != nil {
		fmt.Fprintf(&b, " via %s", l.Gateway)
	}
	if len(l.DNS) > 0 {
		dns := make([]string, len(l.DNS))
		for i, ip := range l.DNS {
			dns[i] = ip.String()
		}
		fmt.Fprintf(&b, ", dns %s", strings.Join(dns, " "))
	}
	fmt.Fprintf(&b, ", lease %s from %s", l.Duration, l.Server)
	return b.String()
}

// Up sets the loopback link up, then runs DHCPv4 on every selected link in
// parallel and applies the leases. It succeeds when at least one link got
// a lease (failures on other links are logged) and returns the leases in
// link order. When writing resolv.conf fails, the leases, already applied,
// are returned with the error.
func Up(ctx context.Context, o Options) ([]Lease, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ResolvConf == "" {
		o.ResolvConf = DefaultResolvConf
	}
	if o.Log == nil {
		o.Log = io.Discard
	}

	if err := loopbackUp(); err != nil {
		return nil, err
	}
	links, err := selectLinks(o.Interfaces)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	leases := make([]*Lease, len(links))
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, link := range links {
		wg.Go(func() { leases[i], errs[i] = configure(ctx, link) })
	}
	wg.Wait()

	var got []Lease
	var names, failures []string
	for i, link := range links {
		names = append(names, link.Attrs().Name)
		if errs[i] != nil {
			fmt.Fprintln(o.Log, errs[i])
			failures = append(failures, errs[i].Error())
			continue
		}
		fmt.Fprintln(o.Log, leases[i])
		got = append(got, *leases[i])
	}
	if len(got) == 0 {
		return nil, fmt.Errorf("netconf: no DHCPv4 lease on %s within %s: %s",
			strings.Join(names, ", "), o.Timeout, strings.Join(failures, "; "))
	}
	if err := writeResolvConf(o.ResolvConf, got); err != nil {
		return got, err
	}
	return got, nil
}

func loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("netconf: finding the loopback link lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("netconf: setting lo up: %w", err)
	}
	return nil
}

// selectLinks returns the links named, or every ethernet NIC when names is
// empty.
func selectLinks(names []string) ([]netlink.Link, error) {
	var links []netlink.Link
	for _, name := range names {
		link, err := netlink.LinkByName(name)
		if err != nil {
			return nil, fmt.Errorf("netconf: interface %q asked for: %w", name, err)
		}
		links = append(links, link)
	}
	if len(names) > 0 {
		return links, nil
	}

	var all []netlink.Link
	var err error
	for range 3 { // a dump is interrupted when links change meanwhile
		if all, err = netlink.LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("netconf: listing links: %w", err)
	}
	var seen []string
	for _, link := range all {
		seen = append(seen, link.Attrs().Name)
		if isEthernet(link) {
			links = append(links, link)
		}
	}
	if len(links) == 0 {
		return nil, fmt.Errorf("netconf: no ethernet link found (links present: %s); expected a network device with a 6-byte hardware address",
			strings.Join(seen, ", "))
	}
	return links, nil
}

// isEthernet reports whether link is a physical ethernet NIC: not
// loopback, and not a virtual link (veth, bridge, ...), which netlink
// gives a type other than "device".
func isEthernet(link netlink.Link) bool {
	a := link.Attrs()
	return link.Type() == "device" && a.EncapType == "ether" &&
		len(a.HardwareAddr) == 6 && a.Flags&net.FlagLoopback == 0
}

// configure sets link up, waits for its carrier, gets a DHCPv4 lease and
// applies it.
func configure(ctx context.Context, link netlink.Link) (*Lease, error) {
	name := link.Attrs().Name
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("%s: setting the link up: %w", name, err)
	}
	if err := waitCarrier(ctx, link.Attrs().Index); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	dl, err := requestLease(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	lease, err := leaseFromACK(name, dl.ACK, dl.CreationTime)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := apply(link, lease); err != nil {
		return nil, fmt.Errorf("%s: applying lease %s: %w", name, lease.Address.String(), err)
	}
	return lease, nil
}

// waitCarrier polls the link until it has carrier: IFF_LOWER_UP, which the
// kernel computes from the driver's carrier when asked, or an operational
// state of up (or unknown, for drivers that do not report carrier). The
// operational state alone lags the carrier by up to a second (the kernel's
// linkwatch rate limit), which every boot would pay.
func waitCarrier(ctx context.Context, index int) error {
	ctx, cancel := context.WithTimeout(ctx, carrierWait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		link, err := netlink.LinkByIndex(index)
		if err != nil {
			return fmt.Errorf("reading link state: %w", err)
		}
		state := link.Attrs().OperState
		lowerUp := link.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
		if lowerUp || state == netlink.OperUp || state == netlink.OperUnknown {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no carrier (link state %s, expected up): %w", state, ctx.Err())
		case <-tick.C:
		}
	}
}

// writeResolvConf writes path from the first lease that has DNS servers;
// without any it leaves path alone.
func writeResolvConf(path string, leases []Lease) error {
	for _, l := range leases {
		if len(l.DNS) == 0 {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("netconf: writing DNS settings from %s: %w", l.Interface, err)
		}
		if err := os.WriteFile(path, []byte(resolvConf(l)), 0o644); err != nil {
			return fmt.Errorf("netconf: writing DNS settings from %s: %w", l.Interface, err)
		}
		return nil
	}
	return nil
}

func resolvConf(l Lease) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# from the DHCP lease on %s\n", l.Interface)
	for _, ip := range l.DNS {
		fmt.Fprintf(&b, "nameserver %s\n", ip)
	}
	if len(l.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(l.Search, " "))
	}
	return b.String()
}
