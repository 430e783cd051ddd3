// Package clock sets the system clock from NTP before anything uses TLS.
//
// Machines often boot with a wrong real-time clock (no battery, a fresh
// VM, a board without RTC), and certificate checks fail against a clock
// in 1970. Sync queries the NTP servers chosen by ntp_peer= (see
// ParsePeer), or those offered by DHCP, with github.com/beevik/ntp and
// steps CLOCK_REALTIME by the measured offset.
package clock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/ntp"
	"github.com/ociboot/ociboot/internal/fetch"
	"golang.org/x/sys/unix"
)

const (
	// DefaultPool is the server used by PeerAuto when DHCP offered none.
	DefaultPool = "pool.ntp.org"
	// DefaultPort is the NTP UDP port.
	DefaultPort = 123
	// DefaultTries is the number of rounds over the servers.
	DefaultTries = 3
	// DefaultTimeout bounds one query, name resolution included.
	DefaultTimeout = 2 * time.Second
	// DefaultRetryDelay is the pause between two rounds over the servers.
	DefaultRetryDelay = 500 * time.Millisecond
)

// Options configures Sync.
type Options struct {
	// Peer chooses the servers; the zero Peer does nothing.
	Peer Peer
	// DHCPServers are the NTP servers offered by DHCP option 42, in the
	// order offered; used by PeerAuto.
	DHCPServers []net.IP
	// Log receives one line per failed query and one line when the clock
	// is set; nothing is written when nil.
	Log io.Writer
	// SetClock sets the system clock to the given time; nil sets
	// CLOCK_REALTIME with clock_settime(2).
	SetClock func(time.Time) error
	// Tries is the number of rounds over the servers; DefaultTries when 0
	// or less. A server that sends a kiss of death is not asked again.
	Tries int
	// Timeout bounds each query, name resolution included; DefaultTimeout
	// when 0 or less.
	Timeout time.Duration
	// RetryDelay is the pause between two rounds; DefaultRetryDelay when
	// 0, none when negative.
	RetryDelay time.Duration
	// Sleep makes the pause between rounds, returning early when ctx is
	// done; nil waits on the wall clock. Tests give a fetch.Clock's, which
	// records.
	Sleep func(ctx context.Context, d time.Duration) error
	// Port is the UDP port of servers given without one (DHCP servers,
	// DefaultPool, a Peer without Port); DefaultPort when 0.
	Port int
}

// Result says what Sync did.
type Result struct {
	// Skipped is true when the peer is "none" and nothing was done.
	Skipped bool
	// Server is the server that answered: its host, followed by ":port"
	// when the port is not DefaultPort.
	Server string
	// Offset is the measured offset of the server's clock from the local
	// clock, that is the step applied to the local clock.
	Offset time.Duration
	// RTT is the measured round-trip time to the server.
	RTT time.Duration
	// Stratum is the server's stratum.
	Stratum uint8
	// Time is the time the clock was set to.
	Time time.Time
	// Set is true when the clock was set.
	Set bool
}

// String returns the console line for r, for example
// "clock: 10.0.2.100 stratum 2: offset +1h0m0.003s, rtt 1ms: clock set",
// or, for a skipped sync, the warning that the clock is not set.
func (r Result) String() string {
	if r.Skipped {
		return "clock: warning: no NTP peer (ntp_peer=none), the clock is not set; " +
			"TLS certificate checks will fail if it is wrong"
	}
	if r.Server == "" {
		return "clock: not set"
	}
	s := fmt.Sprintf("clock: %s stratum %d: offset %s, rtt %s", r.Server, r.Stratum,
		signed(r.Offset.Round(time.Millisecond)), r.RTT.Round(time.Microsecond))
	if r.Set {
		s += ": clock set"
	} else {
		s += ": clock not set"
	}
	return s
}

// signed formats d with an explicit sign.
func signed(d time.Duration) string {
	if d >= 0 {
		return "+" + d.String()
	}
	return d.String()
}

// server is one candidate NTP server.
type server struct {
	name string // for messages: host, or host:port when not DefaultPort
	addr string // host:port, for the query
}

// candidates lists the servers Sync asks, in order.
func candidates(o Options) []server {
	port := o.Port
	if port <= 0 || port > 65535 {
		port = DefaultPort
	}
	mk := func(host string, port int) server {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		name := host
		if port != DefaultPort {
			name = addr
		}
		return server{name: name, addr: addr}
	}
	switch o.Peer.Kind {
	case PeerHost:
		if o.Peer.Port != 0 {
			return []server{mk(o.Peer.Host, int(o.Peer.Port))}
		}
		return []server{mk(o.Peer.Host, port)}
	case PeerAuto:
		var list []server
		seen := make(map[string]bool)
		for _, ip := range o.DHCPServers {
			if ip == nil || ip.IsUnspecified() || len(ip) != net.IPv4len && len(ip) != net.IPv6len {
				continue
			}
			s := mk(ip.String(), port)
			if !seen[s.addr] {
				seen[s.addr] = true
				list = append(list, s)
			}
		}
		if len(list) == 0 {
			list = append(list, mk(DefaultPool, port))
		}
		return list
	}
	return nil
}

// Sync sets the system clock from the NTP servers chosen by o.Peer. It
// asks them in order, in up to o.Tries rounds, until one gives a valid
// answer, then steps the clock by the measured offset and logs one line
// (Result.String). For PeerNone it does nothing and returns a Result
// with Skipped set; the caller prints its String as a warning.
//
// Every query is bounded by o.Timeout and everything by ctx. When no
// server answers, the error lists each server with its last failure.
func Sync(ctx context.Context, o Options) (Result, error) {
	switch o.Peer.Kind {
	case PeerNone:
		return Result{Skipped: true}, nil
	case PeerAuto:
	case PeerHost:
		if o.Peer.Host == "" {
			return Result{}, errors.New("clock: NTP peer has no host")
		}
	default:
		return Result{}, fmt.Errorf("clock: unknown NTP peer kind %d", o.Peer.Kind)
	}
	tries := o.Tries
	if tries <= 0 {
		tries = DefaultTries
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	delay := o.RetryDelay
	if delay == 0 {
		delay = DefaultRetryDelay
	}
	setClock := o.SetClock
	if setClock == nil {
		setClock = setRealtime
	}
	sleep := o.Sleep
	if sleep == nil {
		sleep = fetch.RealClock{}.Sleep
	}
	return syncServers(ctx, candidates(o), tries, timeout, delay, sleep, setClock, o.Log)
}

// syncServers is Sync once the servers are chosen and the defaults
// applied.
func syncServers(ctx context.Context, servers []server, tries int, timeout, delay time.Duration,
	sleep func(context.Context, time.Duration) error, setClock func(time.Time) error, log io.Writer) (Result, error) {
	logf := func(format string, args ...any) {
		if log != nil {
			fmt.Fprintf(log, format+"\n", args...)
		}
	}
	last := make([]error, len(servers))
	done := make([]bool, len(servers)) // kissed off: do not ask again
	for round := 1; round <= tries && slices.Contains(done, false); round++ {
		if round > 1 && delay > 0 {
			if err := sleep(ctx, delay); err != nil {
				return Result{}, fmt.Errorf("clock: %w", ctx.Err())
			}
		}
		for i, s := range servers {
			if done[i] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return Result{}, fmt.Errorf("clock: %w", err)
			}
			resp, err := query(ctx, s.addr, timeout)
			if err != nil && ctx.Err() != nil {
				return Result{}, fmt.Errorf("clock: %s: %w", s.name, ctx.Err())
			}
			if err == nil {
				if err = resp.Validate(); errors.Is(err, ntp.ErrKissOfDeath) {
					done[i] = true
					if resp.KissCode != "" {
						err = fmt.Errorf("%w (%s)", err, resp.KissCode)
					}
				}
			}
			if err != nil {
				last[i] = err
				logf("clock: %s: try %d/%d: %v", s.name, round, tries, err)
				continue
			}

			r := Result{
				Server:  s.name,
				Offset:  resp.ClockOffset,
				RTT:     resp.RTT,
				Stratum: resp.Stratum,
			}
			r.Time = time.Now().Add(r.Offset).Round(0)
			if err := setClock(r.Time); err != nil {
				logf("%s: setting the clock: %v", r, err)
				return r, fmt.Errorf("clock: setting the clock to %s (from %s): %w",
					r.Time.UTC().Format(time.RFC3339), s.name, err)
			}
			r.Set = true
			logf("%s", r)
			return r, nil
		}
	}

	var b strings.Builder
	b.WriteString("clock: no NTP server answered")
	var errs []error
	for i, s := range servers {
		if last[i] == nil {
			continue
		}
		err := fmt.Errorf("%s: %w", s.name, last[i])
		errs = append(errs, err)
		sep := ": "
		if len(errs) > 1 {
			sep = "; "
		}
		b.WriteString(sep + err.Error())
	}
	return Result{}, &syncError{msg: b.String(), errs: errs}
}

// syncError is the error of a Sync where every server failed. It wraps
// each server's last error.
type syncError struct {
	msg  string
	errs []error
}

func (e *syncError) Error() string   { return e.msg }
func (e *syncError) Unwrap() []error { return e.errs }

// query asks the server at addr ("host:port") once, within timeout and
// ctx. Name resolution and the socket are bound to ctx: cancelling it
// closes the socket, which ends the query at once.
func query(ctx context.Context, addr string, timeout time.Duration) (*ntp.Response, error) {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stop func() bool
	opt := ntp.QueryOptions{
		Timeout: timeout,
		Dialer: func(_, remote string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(qctx, "udp", remote)
			if err != nil {
				return nil, err
			}
			stop = context.AfterFunc(qctx, func() { c.Close() })
			return c, nil
		},
	}
	resp, err := ntp.QueryWithOptions(addr, opt)
	if stop != nil {
		stop()
	}
	if err != nil && ctx.Err() == nil && (qctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)) {
		err = fmt.Errorf("no answer within %s: %w", timeout, os.ErrDeadlineExceeded)
	}
	return resp, err
}

// setRealtime sets CLOCK_REALTIME to t.
func setRealtime(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("clock_settime: %w", err)
	}
	return nil
}
