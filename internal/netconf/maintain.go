package netconf

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// attemptWindow bounds one run of DHCP attempts in Maintain before it
// checks the carrier again.
const attemptWindow = 30 * time.Second

// Maintain keeps the network that o describes configured until ctx ends,
// then returns what is configured at that moment; the caller runs it in a
// goroutine for as long as the machine runs, with the Options given to Up
// and Up's result (nil when Up failed: Maintain then configures the links
// when they come).
//
// It watches the links: a link to configure (any ethernet link when o asks
// for DHCP on every ethernet link, else the links o names) that appears,
// or that Up left unconfigured, is configured as Up would, once it has
// carrier; a link that disappears is forgotten, and configured again if
// it comes back. It renews every DHCP lease: at T1 with the server that
// gave it (unicast), at T2 with any server (broadcast); it applies what a
// renewal changes, and when the lease is refused or ends it removes the
// address and starts over. resolv.conf follows the changes.
//
// When ctx ends, Maintain stops its workers, waits for them, and returns
// the configuration as they left it, in the shape Up returns: the leases
// as last renewed, the static settings, the DNS and NTP servers; the error
// is nil. That Result is what Release takes to tear the network down.
// With o.None, Maintain returns at once, with r (or, when r is nil, the
// empty Result Up gives for o.None).
//
// It returns an error only when o is invalid (with a nil Result) or link
// notifications cannot be had (with the configuration as it stands then).
func Maintain(ctx context.Context, o Options, r *Result) (*Result, error) {
	e, err := newEngine(o)
	if err != nil {
		return nil, err
	}
	if e.o.None {
		if r == nil {
			r = e.result()
		}
		return r, nil
	}
	e.seed(r)

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// stop ends the workers and waits for them, so that nothing changes
	// the configuration that result then reads.
	stop := func() {
		cancel()
		wg.Wait()
	}
	workers := map[int]*worker{}
	for {
		updates, unsubscribe, err := subscribeLinks()
		if err != nil {
			stop()
			return e.result(), err
		}
		e.watch(ctx, updates, workers, &wg)
		unsubscribe()
		if ctx.Err() != nil {
			break
		}
		// The kernel dropped notifications (its socket buffer was full):
		// listing the links again catches up.
		e.logf("netconf: link notifications lost; listing links again")
		if !sleepUntil(ctx, time.Now().Add(time.Second)) {
			break
		}
	}
	stop()
	return e.result(), nil
}

// errLinkGone is the cause that ends a worker whose link went away or was
// renamed: what it applies after that is not recorded. A worker ended
// because Maintain returns still records what it applied, so that
// Maintain's result matches the links.
var errLinkGone = errors.New("netconf: link removed")

// worker is the goroutine that keeps one link configured.
type worker struct {
	name   string
	cancel context.CancelCauseFunc
	kick   chan struct{} // a notification about the link
}

// watch starts, kicks and stops workers as link notifications come, until
// ctx ends or updates closes.
func (e *engine) watch(ctx context.Context, updates <-chan netlink.LinkUpdate, workers map[int]*worker, wg *sync.WaitGroup) {
	for {
		var u netlink.LinkUpdate
		select {
		case <-ctx.Done():
			return
		case v, ok := <-updates:
			if !ok {
				return
			}
			u = v
		}
		link := u.Link
		index, name := link.Attrs().Index, link.Attrs().Name
		w := workers[index]
		switch {
		case u.Header.Type == unix.RTM_DELLINK:
			if w != nil {
				w.cancel(errLinkGone)
				delete(workers, index)
				e.gone(w.name, index)
			}
			continue
		case u.Header.Type != unix.RTM_NEWLINK:
			continue
		case w != nil && w.name == name:
			select {
			case w.kick <- struct{}{}:
			default:
			}
			continue
		case w != nil: // renamed: a new link as far as configuration goes
			w.cancel(errLinkGone)
			delete(workers, index)
			e.gone(w.name, index)
		}
		want, ok := e.want(link)
		if !ok {
			continue
		}
		wctx, wcancel := context.WithCancelCause(ctx)
		w = &worker{name: name, cancel: wcancel, kick: make(chan struct{}, 1)}
		workers[index] = w
		wg.Go(func() { e.maintainLink(wctx, link, want, w.kick) })
	}
}

// gone forgets the link name at index, which went away.
func (e *engine) gone(name string, index int) {
	if !e.forget(name, index) {
		return
	}
	e.logf("%s: link removed", name)
	if err := e.writeResolvConf(); err != nil {
		e.logf("%v", err)
	}
}

// maintainLink applies want's static settings on link unless Up did, then,
// when want.DHCP, gets and renews leases until ctx ends.
func (e *engine) maintainLink(ctx context.Context, link netlink.Link, want Iface, kick <-chan struct{}) {
	name, index := link.Attrs().Name, link.Attrs().Index
	var static *Iface
	var lease *Lease
	e.mu.Lock()
	if c := e.links[name]; c != nil && c.index == index {
		static, lease = c.static, c.lease
	}
	e.mu.Unlock()

	if want.static() && static == nil {
		want.Name = name
		if err := netlink.LinkSetUp(link); err != nil {
			e.logf("%s: setting the link up: %v", name, err)
		} else if err := applyStatic(link, want); err != nil {
			e.logf("%s: applying static settings: %v", name, err)
		} else {
			carrier, _, _ := hasCarrier(index)
			e.setStatic(ctx, name, index, &want)
			e.logf("%s", want.summary(carrier))
			if err := e.writeResolvConf(); err != nil {
				e.logf("%v", err)
			}
		}
	}
	if !want.DHCP {
		return
	}
	for ctx.Err() == nil {
		if lease == nil {
			if lease = e.acquire(ctx, link, kick); lease == nil {
				return
			}
		}
		lease = e.keep(ctx, link, lease)
	}
}

// acquire gets a lease on link and applies it, waiting for the carrier
// and retrying with growing pauses; nil when ctx ends first.
func (e *engine) acquire(ctx context.Context, link netlink.Link, kick <-chan struct{}) *Lease {
	name, index := link.Attrs().Name, link.Attrs().Index
	pause, logged := retryPause, false
	for {
		err := netlink.LinkSetUp(link)
		if err == nil {
			err = waitCarrier(ctx, index, kick)
		}
		if err == nil {
			actx, cancel := context.WithTimeout(ctx, attemptWindow)
			var dl *Lease
			dl, err = e.request(actx, link)
			cancel()
			if err == nil {
				e.setLease(ctx, name, index, dl)
				e.logf("%s", dl)
				if err := e.writeResolvConf(); err != nil {
					e.logf("%v", err)
				}
				return dl
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if !logged {
			e.logf("%s: %v; still trying", name, err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pause):
		}
		pause = min(2*pause, maxBackoff)
	}
}

// request gets a lease on link and applies it.
func (e *engine) request(ctx context.Context, link netlink.Link) (*Lease, error) {
	name := link.Attrs().Name
	dl, err := requestLease(ctx, name, true)
	if err != nil {
		return nil, err
	}
	l, err := leaseFromACK(name, dl.ACK, dl.CreationTime)
	if err != nil {
		return nil, err
	}
	if err := apply(link, l); err != nil {
		return nil, fmt.Errorf("applying lease %s: %w", l.Address.String(), err)
	}
	return l, nil
}

// keep renews l on link at T1 (with its server), then at T2 (with any
// server), applying what changes, until ctx ends (it returns the current
// lease) or the lease is refused or ends (it removes it and returns nil).
func (e *engine) keep(ctx context.Context, link netlink.Link, l *Lease) *Lease {
	name, index := link.Attrs().Name, link.Attrs().Index
	for {
		t1, t2, end, finite := l.schedule()
		if !finite {
			<-ctx.Done()
			return l
		}
		if !sleepUntil(ctx, t1) {
			return l
		}
		var ack *dhcpv4.DHCPv4
		var sent time.Time
		lost, rebinding := "it expired", false
		for ack == nil {
			now := time.Now()
			if !now.Before(end) {
				break
			}
			rebind := !now.Before(t2) || l.Server == nil || l.Server.IsUnspecified()
			if rebind && !rebinding && now.After(t1) && l.Server != nil {
				e.logf("%s: %s did not renew the lease on %s; asking any server", name, l.Server, l.Address.String())
			}
			rebinding = rebind
			deadline := t2
			if rebind {
				deadline = end
			}
			actx, cancel := context.WithDeadline(ctx, deadline)
			sent = now
			a, err := renew(actx, link, l, rebind)
			cancel()
			if ctx.Err() != nil {
				return l
			}
			if errors.Is(err, errNAK) {
				lost = err.Error()
				break
			}
			if err == nil {
				ack = a
				break
			}
			next := time.Now().Add(max(time.Until(deadline)/2, minRetransmit))
			if next.After(deadline) {
				next = deadline
			}
			if !sleepUntil(ctx, next) {
				return l
			}
		}
		var nl *Lease
		var err error
		if ack != nil {
			nl, err = leaseFromACK(name, mergeACK(l.ACK, ack), sent)
			if err != nil {
				lost = err.Error()
			}
		}
		if nl == nil {
			e.lose(ctx, link, l, lost)
			return nil
		}
		if same(index, l, nl) {
			e.logf("%s: renewed %s, lease %s from %s", name, nl.Address.String(), nl.Duration, nl.Server)
		} else {
			if err := unapply(link, l, nl); err != nil {
				e.logf("%s: %v", name, err)
			}
			if err := apply(link, nl); err != nil {
				e.logf("%s: applying renewed lease %s: %v", name, nl.Address.String(), err)
			}
			e.logf("%s (renewed, changed)", nl)
		}
		e.setLease(ctx, name, index, nl)
		if err := e.writeResolvConf(); err != nil {
			e.logf("%v", err)
		}
		l = nl
	}
}

// lose removes lease l from link and records its loss.
func (e *engine) lose(ctx context.Context, link netlink.Link, l *Lease, why string) {
	name, index := link.Attrs().Name, link.Attrs().Index
	if err := unapply(link, l, nil); err != nil {
		e.logf("%s: %v", name, err)
	}
	e.setLease(ctx, name, index, nil)
	e.logf("%s: lost the lease on %s (%s); asking again", name, l.Address.String(), why)
	if err := e.writeResolvConf(); err != nil {
		e.logf("%v", err)
	}
}

// same reports whether leases a and b configure link index alike.
func same(index int, a, b *Lease) bool {
	if a.Address.String() != b.Address.String() || a.MTU != b.MTU ||
		joinIPs(a.DNS) != joinIPs(b.DNS) || joinIPs(a.NTP) != joinIPs(b.NTP) ||
		!slices.Equal(a.Search, b.Search) || !a.Gateway.Equal(b.Gateway) {
		return false
	}
	ra, rb := leaseRoutes(index, a), leaseRoutes(index, b)
	return slices.EqualFunc(ra, rb, func(x, y netlink.Route) bool {
		return x.Dst.String() == y.Dst.String() && x.Gw.Equal(y.Gw)
	})
}

// sleepUntil waits until t; false when ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
