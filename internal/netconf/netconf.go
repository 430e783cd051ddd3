// Package netconf brings up PID 1's network: the loopback link, then
// static settings and DHCPv4 on the links asked for, and keeps it up.
//
// What to configure comes from the first of these that the command line
// gives (the caller picks; Options carries the choice):
//
//  1. boot2container's b2c.iface=NAME,opt,… parameters (ParseIface), as
//     Options.Ifaces: only those links are configured, static, DHCP or both;
//  2. the kernel's ip= parameter (ParseKernelIP, then KernelIP.Apply):
//     ip=off or ip=none configures nothing but the loopback link
//     (Options.None); a device or a static address configures that link
//     (Options.Ifaces); ip=dhcp and its synonyms are the default below;
//  3. otherwise DHCPv4 on every ethernet link.
//
// Up applies that configuration and returns once a link is configured.
// Maintain then runs for the machine's lifetime: it renews DHCP leases and
// configures links that appear, or get their carrier, later; it returns
// the configuration as it stands when it ends. Release tears that
// configuration down, for a system that must find its links unconfigured.
//
// DNS servers go to resolv.conf in this order: Options.Nameservers, the
// static nameservers of the configured links, then the DNS servers of the
// leases in link order; at most three (the resolvers' limit), without
// repeats.
package netconf

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	// DefaultTimeout bounds Up when Options.Timeout is 0
	// (boot2container's default).
	DefaultTimeout = 10 * time.Second
	// DefaultLinkWait is how long the boot lets Up wait for the other
	// links once one has a lease (ociboot.link_wait=): a gigabit link
	// takes a few seconds to negotiate its carrier.
	DefaultLinkWait = 3 * time.Second
	// DefaultResolvConf is where DNS settings go when Options.ResolvConf
	// is empty.
	DefaultResolvConf = "/etc/resolv.conf"

	// carrierWait bounds the wait for a link's carrier after setting it
	// up, in Up.
	carrierWait = 5 * time.Second
	// maxNameservers is how many nameservers resolvers read (MAXNS).
	maxNameservers = 3
)

// procSys is where the kernel's sysctl files are.
var procSys = "/proc/sys"

// Options says which links to configure and where results go.
type Options struct {
	// Ifaces, when not empty, are the only links configured: static
	// settings, DHCP or both (from b2c.iface or ip=). One may have an
	// empty Name: the first ethernet link.
	Ifaces []Iface
	// None configures nothing but the loopback link (ip=off).
	None bool
	// Interfaces names links to run DHCP on, as Ifaces with DHCP set and
	// nothing else; the two lists add up.
	Interfaces []string
	// Nameservers are written to resolv.conf before any other.
	Nameservers []net.IP
	// NTP are NTP servers to report in Result.NTP before the ones DHCP
	// offers (from ip=).
	NTP []net.IP
	// Timeout bounds Up: waiting for links, carrier and DHCP on all
	// links together; DefaultTimeout when 0.
	Timeout time.Duration
	// LinkWait is how long Up, when it runs DHCP on every ethernet link,
	// still waits for the other links once one has a lease; 0 returns at
	// the first lease. Maintain carries on with the links left.
	LinkWait time.Duration
	// ResolvConf is the file DNS settings are written to;
	// DefaultResolvConf when empty.
	ResolvConf string
	// Log receives one line per configured link, per failure and, from
	// Maintain, per lease renewed or lost; nothing is written when nil.
	Log io.Writer

	// match, when set, replaces isEthernet: tests have veths only.
	match func(netlink.Link) bool
}

// Result is what Up, or Maintain when it ends, configured; Release
// takes it to undo that.
type Result struct {
	// Static are the links given static settings, in link order, with
	// their names (Iface.Name is set even when Options left it empty).
	Static []Iface
	// Leases are the DHCPv4 leases applied, in link order.
	Leases []Lease
	// NTP lists Options.NTP, then the NTP servers of the leases (option
	// 42), without repeats.
	NTP []net.IP
	// DNS lists the nameservers written to resolv.conf.
	DNS []net.IP

	// index maps the names of the configured links to their indexes, so
	// that Maintain tells a link Up configured from a new one.
	index map[string]int
	// first is the link that the Iface without a name went to.
	first string
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
	// NTP lists the NTP servers offered (option 42).
	NTP []net.IP
	// MTU is the link MTU set from option 26; 0 when not offered.
	MTU int
	// Duration is the lease time; 0 when the server sent none, which
	// makes the lease infinite.
	Duration time.Duration
	// Server is the DHCP server's identifier.
	Server net.IP
	// Obtained is when the lease was requested; renewal times count from
	// it.
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
		fmt.Fprintf(&b, ", dns %s", joinIPs(l.DNS))
	}
	if len(l.NTP) > 0 {
		fmt.Fprintf(&b, ", ntp %s", joinIPs(l.NTP))
	}
	fmt.Fprintf(&b, ", lease %s from %s", l.Duration, l.Server)
	return b.String()
}

// outcome is what configuring one link in Up did.
type outcome struct {
	name    string
	index   int
	static  *Iface // applied static settings
	carrier bool
	lease   *Lease
	err     error
}

// Up sets the loopback link up, then configures the links o asks for, in
// parallel: it sets each up, applies its static settings, waits for its
// carrier and runs DHCPv4 where asked. Links named in o that do not exist
// yet are waited for.
//
// With o.Ifaces or o.Interfaces, Up returns when every link named has
// been configured or has failed, or when o.Timeout has passed. Otherwise
// (DHCP on every ethernet link) it returns once one link has a lease and
// the others have theirs or o.LinkWait more has passed; or when o.Timeout
// has passed. Maintain carries on with the links left.
//
// Up succeeds when at least one link was configured (failures on other
// links are logged) and writes resolv.conf. When writing resolv.conf
// fails, the result, already applied, is returned with the error. With
// o.None, Up sets the loopback link up and returns an empty result.
func Up(ctx context.Context, o Options) (*Result, error) {
	e, err := newEngine(o)
	if err != nil {
		return nil, err
	}
	if err := loopbackUp(); err != nil {
		return nil, err
	}
	if e.o.None {
		e.logf("no network configuration asked for: loopback only")
		return e.result(), nil
	}

	ctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
	defer cancel()
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	updates, stop, err := subscribeLinks()
	if err != nil {
		return nil, err
	}
	defer stop()

	results := make(chan outcome)
	started := map[string]bool{} // link names
	var seen, failures []string
	running, configured := 0, 0
	var settle <-chan time.Time
	settled := false // the other links were given up on after the first lease
	finished := func() bool {
		if e.explicit {
			return running == 0 && len(started) == e.wanted()
		}
		return configured > 0 && running == 0
	}
	record := func(r outcome) {
		running--
		if r.static != nil {
			e.setStatic(context.Background(), r.name, r.index, r.static)
			e.logf("%s", r.static.summary(r.carrier))
		}
		if r.lease != nil {
			e.setLease(context.Background(), r.name, r.index, r.lease)
			e.logf("%s", r.lease)
		}
		if r.static != nil || r.lease != nil {
			configured++
		}
		switch {
		case r.err != nil && settled && errors.Is(r.err, context.Canceled):
			e.logf("%s: not configured yet: %v", r.name, r.err)
		case r.err != nil:
			e.logf("%s: %v", r.name, r.err)
			failures = append(failures, r.name+": "+r.err.Error())
		}
	}

wait:
	for !finished() {
		select {
		case u, ok := <-updates:
			if !ok {
				updates = nil // no more news of links: finish with those known
				if running == 0 {
					break wait
				}
				continue
			}
			if u.Header.Type != unix.RTM_NEWLINK {
				continue
			}
			link := u.Link
			name := link.Attrs().Name
			if !slices.Contains(seen, name) {
				seen = append(seen, name)
			}
			if started[name] {
				continue
			}
			want, ok := e.want(link)
			if !ok {
				continue
			}
			started[name] = true
			running++
			go func() { results <- e.configure(wctx, link, want) }()
		case r := <-results:
			record(r)
			if configured > 0 && settle == nil && !e.explicit {
				settle = time.After(e.o.LinkWait)
			}
		case <-settle:
			settled = true
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	wcancel()
	for running > 0 {
		record(<-results)
	}

	if configured == 0 {
		return nil, e.upError(started, seen, failures)
	}
	if e.explicit {
		for _, name := range e.missing(started) {
			e.logf("interface %q asked for: no such link within %s", name, e.o.Timeout)
		}
	}
	r := e.result()
	if err := e.writeResolvConf(); err != nil {
		return r, err
	}
	return r, nil
}

// upError says why Up configured no link.
func (e *engine) upError(started map[string]bool, seen, failures []string) error {
	var parts []string
	for _, name := range e.missing(started) {
		parts = append(parts, fmt.Sprintf("interface %q asked for: no such link", name))
	}
	parts = append(parts, failures...)
	if e.explicit {
		return fmt.Errorf("netconf: no link configured within %s: %s", e.o.Timeout, strings.Join(parts, "; "))
	}
	if len(started) == 0 {
		return fmt.Errorf("netconf: no ethernet link found within %s (links present: %s); expected a network device with a 6-byte hardware address",
			e.o.Timeout, strings.Join(seen, ", "))
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range started {
			if !yield(n) {
				return
			}
		}
	})
	return fmt.Errorf("netconf: no DHCPv4 lease on %s within %s: %s",
		strings.Join(names, ", "), e.o.Timeout, strings.Join(parts, "; "))
}

// configure sets link up, applies want's static settings, waits for the
// carrier and, when want.DHCP, gets a DHCPv4 lease and applies it; until
// ctx ends.
func (e *engine) configure(ctx context.Context, link netlink.Link, want Iface) outcome {
	name := link.Attrs().Name
	r := outcome{name: name, index: link.Attrs().Index}
	if err := netlink.LinkSetUp(link); err != nil {
		r.err = fmt.Errorf("setting the link up: %w", err)
		return r
	}
	if want.static() {
		want.Name = name
		if err := applyStatic(link, want); err != nil {
			r.err = fmt.Errorf("applying static settings: %w", err)
			return r
		}
		r.static = &want
	}
	cctx, cancel := context.WithTimeout(ctx, carrierWait)
	err := waitCarrier(cctx, r.index, nil)
	cancel()
	r.carrier = err == nil
	if !want.DHCP {
		return r
	}
	if err != nil {
		r.err = err
		return r
	}
	dl, err := requestLease(ctx, name, false)
	if err != nil {
		r.err = err
		return r
	}
	lease, err := leaseFromACK(name, dl.ACK, dl.CreationTime)
	if err != nil {
		r.err = err
		return r
	}
	if err := apply(link, lease); err != nil {
		r.err = fmt.Errorf("applying lease %s: %w", lease.Address.String(), err)
		return r
	}
	r.lease = lease
	return r
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

// subscribeLinks returns link notifications, starting with every existing
// link, and the function that ends them.
func subscribeLinks() (<-chan netlink.LinkUpdate, func(), error) {
	ch := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{ListExisting: true})
	if err != nil {
		close(done)
		return nil, nil, fmt.Errorf("netconf: watching links: %w", err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			close(done)
			for range ch { // the subscription closes ch once it sees done
			}
		})
	}
	return ch, stop, nil
}

// isEthernet reports whether link is a physical ethernet NIC: not
// loopback, and not a virtual link (veth, bridge, ...), which netlink
// gives a type other than "device".
func isEthernet(link netlink.Link) bool {
	a := link.Attrs()
	return link.Type() == "device" && a.EncapType == "ether" &&
		len(a.HardwareAddr) == 6 && a.Flags&net.FlagLoopback == 0
}

// hasCarrier reports whether the link has carrier: IFF_LOWER_UP, which
// the kernel computes from the driver's carrier when asked, or an
// operational state of up (or unknown, for drivers that do not report
// carrier). The operational state alone lags the carrier by up to a
// second (the kernel's linkwatch rate limit), which every boot would pay.
func hasCarrier(index int) (bool, netlink.LinkOperState, error) {
	link, err := netlink.LinkByIndex(index)
	if err != nil {
		return false, 0, fmt.Errorf("reading link state: %w", err)
	}
	state := link.Attrs().OperState
	lowerUp := link.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
	return lowerUp || state == netlink.OperUp || state == netlink.OperUnknown, state, nil
}

// waitCarrier waits until the link has carrier or ctx ends. It polls
// every 50 ms for carrierWait, then on each kick (a link notification)
// and every few seconds.
func waitCarrier(ctx context.Context, index int, kick <-chan struct{}) error {
	fast := time.Now().Add(carrierWait)
	for {
		ok, state, err := hasCarrier(index)
		if err != nil || ok {
			return err
		}
		pause := 50 * time.Millisecond
		if time.Now().After(fast) {
			pause = 5 * time.Second
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no carrier (link state %s, expected up): %w", state, ctx.Err())
		case <-kick:
		case <-time.After(pause):
		}
	}
}

// engine is the state Up and Maintain share: what to configure and what
// is configured.
type engine struct {
	o        Options
	explicit bool             // o.Ifaces, not every ethernet link
	named    map[string]Iface // explicit links by name
	unnamed  *Iface           // the Iface for the first ethernet link
	match    func(netlink.Link) bool

	logMu    sync.Mutex
	resolvMu sync.Mutex // serialises resolv.conf writes

	mu     sync.Mutex
	first  string               // the link unnamed went to
	links  map[string]*linkConf // configured links by name
	resolv string               // resolv.conf as last written
}

// linkConf is what is applied on one link.
type linkConf struct {
	index  int
	static *Iface
	lease  *Lease
}

// newEngine checks o and fills in its defaults.
func newEngine(o Options) (*engine, error) {
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.ResolvConf = cmp.Or(o.ResolvConf, DefaultResolvConf)
	if o.Log == nil {
		o.Log = io.Discard
	}
	e := &engine{named: map[string]Iface{}, links: map[string]*linkConf{}, match: o.match}
	if e.match == nil {
		e.match = isEthernet
	}
	ifaces := slices.Clone(o.Ifaces)
	for _, name := range o.Interfaces {
		ifaces = append(ifaces, Iface{Name: name, DHCP: true})
	}
	o.Ifaces = nil
	for _, i := range ifaces {
		if err := i.validate(); err != nil {
			return nil, fmt.Errorf("netconf: %w", err)
		}
		switch _, dup := e.named[i.Name]; {
		case i.Name == "" && e.unnamed != nil:
			return nil, errors.New("netconf: two interfaces without a name (expected at most one, for the first ethernet link)")
		case i.Name == "":
			e.unnamed = &i
		case dup:
			return nil, fmt.Errorf("netconf: interface %s given twice (expected one configuration per link)", i.Name)
		default:
			e.named[i.Name] = i
		}
		o.Ifaces = append(o.Ifaces, i)
	}
	e.explicit = len(o.Ifaces) > 0
	e.o = o
	return e, nil
}

// wanted is how many links Up waits for in the explicit case.
func (e *engine) wanted() int {
	n := len(e.named)
	if e.unnamed != nil {
		n++
	}
	return n
}

// missing lists the links named in o that are not in started.
func (e *engine) missing(started map[string]bool) []string {
	var names []string
	for _, i := range e.o.Ifaces {
		if i.Name != "" && !started[i.Name] {
			names = append(names, i.Name)
		}
	}
	if e.unnamed != nil && e.firstLink() == "" {
		names = append(names, "(first ethernet link)")
	}
	return names
}

// want returns the configuration for link, if it is one to configure.
func (e *engine) want(link netlink.Link) (Iface, bool) {
	name := link.Attrs().Name
	if !e.explicit {
		if e.match(link) {
			return Iface{Name: name, DHCP: true}, true
		}
		return Iface{}, false
	}
	if i, ok := e.named[name]; ok {
		return i, true
	}
	if e.unnamed == nil || !e.match(link) {
		return Iface{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.first != "" && e.first != name {
		return Iface{}, false
	}
	e.first = name
	i := *e.unnamed
	i.Name = name
	return i, true
}

func (e *engine) firstLink() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.first
}

// conf returns the entry for the link name at index, replacing a stale
// one; e.mu is held.
func (e *engine) conf(name string, index int) *linkConf {
	c := e.links[name]
	if c == nil || c.index != index {
		c = &linkConf{index: index}
		e.links[name] = c
	}
	return c
}

// setStatic records static settings applied on a link, unless ctx ended
// with errLinkGone (the link went away meanwhile).
func (e *engine) setStatic(ctx context.Context, name string, index int, i *Iface) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !linkGone(ctx) {
		e.conf(name, index).static = i
	}
}

// setLease records the lease applied on a link, or its loss when l is
// nil, unless ctx ended with errLinkGone.
func (e *engine) setLease(ctx context.Context, name string, index int, l *Lease) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !linkGone(ctx) {
		e.conf(name, index).lease = l
	}
}

// linkGone reports whether ctx, a worker's, ended because its link went
// away.
func linkGone(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errLinkGone)
}

// forget drops what is recorded for the link name at index.
func (e *engine) forget(name string, index int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.links[name]; c != nil && c.index == index {
		delete(e.links, name)
		if e.first == name && e.unnamed != nil {
			e.first = ""
		}
		return true
	}
	return false
}

// seed records what r says Up configured.
func (e *engine) seed(r *Result) {
	if r == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.first = r.first
	for _, i := range r.Static {
		if index, ok := r.index[i.Name]; ok {
			e.conf(i.Name, index).static = &i
		}
	}
	for _, l := range r.Leases {
		if index, ok := r.index[l.Interface]; ok {
			e.conf(l.Interface, index).lease = &l
		}
	}
}

// sorted returns the configured links in link order; e.mu is held.
func (e *engine) sorted() []string {
	names := make([]string, 0, len(e.links))
	for n := range e.links {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(e.links[a].index, e.links[b].index) })
	return names
}

// result is what is configured now.
func (e *engine) result() *Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := &Result{index: map[string]int{}, first: e.first}
	r.NTP = appendIPs(nil, e.o.NTP...)
	for _, name := range e.sorted() {
		c := e.links[name]
		r.index[name] = c.index
		if c.static != nil {
			r.Static = append(r.Static, *c.static)
		}
		if c.lease != nil {
			r.Leases = append(r.Leases, *c.lease)
			r.NTP = appendIPs(r.NTP, c.lease.NTP...)
		}
	}
	r.DNS, _ = e.dns()
	return r
}

// dns returns the nameservers and search domains for resolv.conf and
// where they come from; e.mu is held.
func (e *engine) dns() (servers []net.IP, text string) {
	var sources, search []string
	add := func(source string, ips []net.IP) {
		n := len(servers)
		servers = appendIPs(servers, ips...)
		if len(servers) > n {
			sources = append(sources, source)
		}
	}
	add("the parameters", e.o.Nameservers)
	for _, i := range e.o.Ifaces {
		name := cmp.Or(i.Name, e.first)
		if c := e.links[name]; name != "" && c != nil && (c.static != nil || c.lease != nil) {
			add("the settings of "+name, i.Nameservers)
		}
	}
	for _, name := range e.sorted() {
		if l := e.links[name].lease; l != nil {
			add("the DHCP lease on "+name, l.DNS)
			for _, s := range l.Search {
				if !slices.Contains(search, s) {
					search = append(search, s)
				}
			}
		}
	}
	if len(servers) == 0 {
		return nil, ""
	}
	servers = servers[:min(len(servers), maxNameservers)]
	var b strings.Builder
	fmt.Fprintf(&b, "# from %s\n", strings.Join(sources, ", "))
	for _, ip := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", ip)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	return servers, b.String()
}

// writeResolvConf writes o.ResolvConf when its content changed; without
// any nameserver it leaves the file alone. The file is rewritten in
// place, so that bind mounts of it see the change.
func (e *engine) writeResolvConf() error {
	e.resolvMu.Lock()
	defer e.resolvMu.Unlock()
	e.mu.Lock()
	_, text := e.dns()
	unchanged := text == "" || text == e.resolv
	e.mu.Unlock()
	if unchanged {
		return nil
	}
	path := e.o.ResolvConf
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("netconf: writing DNS settings: %w", err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("netconf: writing DNS settings: %w", err)
	}
	e.mu.Lock()
	e.resolv = text
	e.mu.Unlock()
	return nil
}

// logf writes one line to o.Log.
func (e *engine) logf(format string, args ...any) {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	fmt.Fprintf(e.o.Log, format+"\n", args...)
}
