package clock

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/beevik/ntp"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/fetch/fetchtest"
	"github.com/ociboot/ociboot/internal/ntptest"
)

// clockRecorder is an Options.SetClock that records what it is given
// instead of setting the host's clock.
type clockRecorder struct {
	mu    sync.Mutex
	calls []time.Time
	err   error
}

func (c *clockRecorder) set(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, t)
	return c.err
}

func (c *clockRecorder) times() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.calls...)
}

// syncLog is a concurrency-safe log buffer.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// deadPort returns a UDP port on 127.0.0.1 with nothing listening: a
// query to it is refused at once.
func deadPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return port
}

// blackHole returns the port of a UDP socket on 127.0.0.1 that receives
// queries and never answers.
func blackHole(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().(*net.UDPAddr).Port
}

// local is the candidate server 127.0.0.1:port.
func local(port int) server {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return server{name: addr, addr: addr}
}

func near(d, want, tolerance time.Duration) bool {
	return d >= want-tolerance && d <= want+tolerance
}

func TestSyncOffset(t *testing.T) {
	srv := ntptest.Start(t, "127.0.0.1:0", time.Hour)
	var rec clockRecorder
	var log syncLog
	peer, err := ParsePeer(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Sync(context.Background(), Options{Peer: peer, Log: &log, SetClock: rec.set})
	if err != nil {
		t.Fatalf("Sync: %v\nlog:\n%s", err, log.String())
	}
	want := time.Now().Add(time.Hour)
	calls := rec.times()
	if len(calls) != 1 {
		t.Fatalf("SetClock called %d times, want once", len(calls))
	}
	if d := calls[0].Sub(want); d < -time.Second || d > time.Second {
		t.Errorf("SetClock(%v): %v away from now+1h", calls[0], d)
	}
	if !near(res.Offset, time.Hour, 100*time.Millisecond) {
		t.Errorf("Offset = %v, want 1h ± 100ms", res.Offset)
	}
	if res.Server != srv.Addr() || res.Stratum != ntptest.Stratum || !res.Set || res.Skipped || !res.Time.Equal(calls[0]) {
		t.Errorf("Result = %+v", res)
	}
	if res.RTT < 0 || res.RTT > time.Second {
		t.Errorf("RTT = %v", res.RTT)
	}
	line := regexp.MustCompile(`^clock: 127\.0\.0\.1:\d+ stratum 2: offset \+(1h0m0\.\d+s|59m59\.\d+s|1h0m0s), rtt \S+: clock set\n$`)
	if !line.MatchString(log.String()) {
		t.Errorf("log = %q, want one line matching %s", log.String(), line)
	}
	if log.String() != res.String()+"\n" {
		t.Errorf("log = %q, Result.String() = %q", log.String(), res.String())
	}
	if n := srv.Requests(); n != 1 {
		t.Errorf("server got %d requests, want 1", n)
	}
}

func TestSyncNegativeOffsetDefaultPort(t *testing.T) {
	srv := ntptest.Start(t, "127.0.0.1:0", -90*time.Minute)
	var rec clockRecorder
	res, err := Sync(context.Background(), Options{
		Peer:     Peer{Kind: PeerHost, Host: "127.0.0.1"},
		Port:     srv.Port(),
		SetClock: rec.set,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !near(res.Offset, -90*time.Minute, 100*time.Millisecond) {
		t.Errorf("Offset = %v, want -1h30m ± 100ms", res.Offset)
	}
	if !strings.Contains(res.String(), "offset -1h29m59.") && !strings.Contains(res.String(), "offset -1h30m0") {
		t.Errorf("Result.String() = %q", res.String())
	}
}

func TestSyncDeadThenLive(t *testing.T) {
	dead := deadPort(t)
	srv := ntptest.Start(t, "127.0.0.1:0", time.Hour)
	var rec clockRecorder
	var log syncLog
	clock := fetchtest.NewClock()
	res, err := syncServers(context.Background(), []server{local(dead), local(srv.Port())},
		3, time.Second, 10*time.Millisecond, clock.Sleep, rec.set, &log)
	if err != nil {
		t.Fatalf("syncServers: %v\nlog:\n%s", err, log.String())
	}
	if pauses := clock.Sleeps(); len(pauses) != 0 {
		t.Errorf("paused %v with a refused first server: want the next server asked at once", pauses)
	}
	if res.Server != srv.Addr() || !res.Set {
		t.Errorf("Result = %+v, want the clock set from %s", res, srv.Addr())
	}
	lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("log has %d lines, want 2:\n%s", len(lines), log.String())
	}
	deadName := local(dead).name
	if !strings.HasPrefix(lines[0], "clock: "+deadName+": try 1/3: ") || !strings.Contains(lines[0], "connection refused") {
		t.Errorf("log line 1 = %q, want the refused %s", lines[0], deadName)
	}
	if !strings.HasPrefix(lines[1], "clock: "+srv.Addr()+" stratum 2: ") {
		t.Errorf("log line 2 = %q", lines[1])
	}
	if n := len(rec.times()); n != 1 {
		t.Errorf("SetClock called %d times", n)
	}
}

func TestSyncAutoDHCP(t *testing.T) {
	srv := ntptest.Start(t, "127.0.0.1:0", time.Hour)
	var rec clockRecorder
	var log syncLog
	res, err := Sync(context.Background(), Options{
		Peer:        Peer{Kind: PeerAuto},
		DHCPServers: []net.IP{nil, net.IPv4zero, net.ParseIP("127.0.0.1"), net.IPv4(127, 0, 0, 1)},
		Port:        srv.Port(),
		Log:         &log,
		SetClock:    rec.set,
	})
	if err != nil {
		t.Fatalf("Sync: %v\nlog:\n%s", err, log.String())
	}
	if res.Server != srv.Addr() {
		t.Errorf("Server = %q, want %q", res.Server, srv.Addr())
	}
	if !near(res.Offset, time.Hour, 100*time.Millisecond) {
		t.Errorf("Offset = %v", res.Offset)
	}
	if n := srv.Requests(); n != 1 {
		t.Errorf("server got %d requests, want 1", n)
	}
}

func TestSyncAllDead(t *testing.T) {
	a, b := deadPort(t), blackHole(t)
	var rec clockRecorder
	var log syncLog
	clock := fetchtest.NewClock()
	_, err := syncServers(context.Background(), []server{local(a), local(b)},
		2, 200*time.Millisecond, 10*time.Millisecond, clock.Sleep, rec.set, &log)
	if err == nil {
		t.Fatal("syncServers succeeded with no live server")
	}
	// Two rounds: two refusals at once, two 200 ms timeouts, one pause.
	if pauses := clock.Sleeps(); !slices.Equal(pauses, []time.Duration{10 * time.Millisecond}) {
		t.Errorf("pauses %v, want one of 10ms between the two rounds", pauses)
	}
	msg := err.Error()
	for _, want := range []string{
		"clock: no NTP server answered: ",
		local(a).name + ": ", "connection refused",
		"; " + local(b).name + ": no answer within 200ms",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("error %v does not wrap ECONNREFUSED", err)
	}
	if n := strings.Count(log.String(), "\n"); n != 4 {
		t.Errorf("log has %d lines, want 4:\n%s", n, log.String())
	}
	for _, want := range []string{local(a).name + ": try 1/2", local(b).name + ": try 1/2", local(a).name + ": try 2/2", local(b).name + ": try 2/2"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log does not contain %q:\n%s", want, log.String())
		}
	}
	if n := len(rec.times()); n != 0 {
		t.Errorf("SetClock called %d times", n)
	}
}

func TestSyncAllDeadDefaults(t *testing.T) {
	// The same through Sync, with the default retry pause.
	dead := deadPort(t)
	var log syncLog
	clock := fetchtest.NewClock()
	_, err := Sync(context.Background(), Options{
		Peer: Peer{Kind: PeerHost, Host: "127.0.0.1", Port: uint16(dead)},
		Log:  &log, SetClock: (&clockRecorder{}).set, Sleep: clock.Sleep,
	})
	if err == nil || !strings.Contains(err.Error(), local(dead).name+": ") {
		t.Fatalf("Sync error = %v, want one naming %s", err, local(dead).name)
	}
	if pauses := clock.Sleeps(); len(pauses) != DefaultTries-1 || slices.Max(pauses) != DefaultRetryDelay || slices.Min(pauses) != DefaultRetryDelay {
		t.Errorf("pauses %v, want %d of %v", pauses, DefaultTries-1, DefaultRetryDelay)
	}
	if n := strings.Count(log.String(), "\n"); n != DefaultTries {
		t.Errorf("log has %d lines, want %d:\n%s", n, DefaultTries, log.String())
	}
}

func TestSyncCancel(t *testing.T) {
	hole := blackHole(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	// The query would wait for an hour: only the cancellation ends it.
	err := untilDone(t, func() error {
		_, err := Sync(ctx, Options{
			Peer:     Peer{Kind: PeerHost, Host: "127.0.0.1", Port: uint16(hole)},
			Timeout:  time.Hour,
			Tries:    5,
			SetClock: (&clockRecorder{}).set,
		})
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Sync error = %v, want context.Canceled", err)
	}
}

func TestSyncDeadlineDuringRetryPause(t *testing.T) {
	dead := deadPort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// The pause would last an hour: only the deadline ends it.
	err := untilDone(t, func() error {
		_, err := Sync(ctx, Options{
			Peer:       Peer{Kind: PeerHost, Host: "127.0.0.1", Port: uint16(dead)},
			RetryDelay: time.Hour,
			SetClock:   (&clockRecorder{}).set,
		})
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Sync error = %v, want context.DeadlineExceeded", err)
	}
}

func TestSyncCancelledBefore(t *testing.T) {
	srv := ntptest.Start(t, "127.0.0.1:0", time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var rec clockRecorder
	_, err := Sync(ctx, Options{Peer: Peer{Kind: PeerHost, Host: "127.0.0.1", Port: uint16(srv.Port())}, SetClock: rec.set})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Sync error = %v, want context.Canceled", err)
	}
	if srv.Requests() != 0 || len(rec.times()) != 0 {
		t.Errorf("%d requests, %d clock sets after a cancelled context", srv.Requests(), len(rec.times()))
	}
}

func TestSyncNone(t *testing.T) {
	var rec clockRecorder
	var log syncLog
	res, err := Sync(context.Background(), Options{Log: &log, SetClock: rec.set})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Skipped || res.Set || res.Server != "" {
		t.Errorf("Result = %+v, want Skipped", res)
	}
	if log.String() != "" || len(rec.times()) != 0 {
		t.Errorf("none logged %q and set the clock %d times", log.String(), len(rec.times()))
	}
	if s := res.String(); !strings.HasPrefix(s, "clock: warning: ") || !strings.Contains(s, "not set") {
		t.Errorf("Result.String() = %q, want a warning", s)
	}
}

func TestSyncSetClockFails(t *testing.T) {
	srv := ntptest.Start(t, "127.0.0.1:0", time.Hour)
	rec := clockRecorder{err: syscall.EPERM}
	var log syncLog
	res, err := Sync(context.Background(), Options{
		Peer: Peer{Kind: PeerHost, Host: "127.0.0.1", Port: uint16(srv.Port())}, Log: &log, SetClock: rec.set,
	})
	if !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), srv.Addr()) {
		t.Errorf("Sync error = %v, want EPERM naming %s", err, srv.Addr())
	}
	if res.Set || res.Server != srv.Addr() {
		t.Errorf("Result = %+v", res)
	}
	if n := len(rec.times()); n != 1 {
		t.Errorf("SetClock called %d times, want once (no retry)", n)
	}
	if !strings.Contains(log.String(), ": clock not set: setting the clock: operation not permitted") {
		t.Errorf("log = %q", log.String())
	}
}

func TestSyncBadPeer(t *testing.T) {
	for _, p := range []Peer{{Kind: PeerHost}, {Kind: 9}} {
		if _, err := Sync(context.Background(), Options{Peer: p, SetClock: (&clockRecorder{}).set}); err == nil {
			t.Errorf("Sync(%#v) succeeded", p)
		}
	}
}

func TestCandidates(t *testing.T) {
	tests := []struct {
		o    Options
		want []server
	}{
		{Options{}, nil},
		{Options{Peer: Peer{Kind: PeerAuto}}, []server{{"pool.ntp.org", "pool.ntp.org:123"}}},
		{Options{Peer: Peer{Kind: PeerAuto}, Port: 1123}, []server{{"pool.ntp.org:1123", "pool.ntp.org:1123"}}},
		{Options{Peer: Peer{Kind: PeerAuto}, DHCPServers: []net.IP{{1, 2, 3}, net.IPv6unspecified}},
			[]server{{"pool.ntp.org", "pool.ntp.org:123"}}},
		{Options{Peer: Peer{Kind: PeerAuto}, DHCPServers: []net.IP{
			net.ParseIP("10.0.2.100"), net.ParseIP("2001:db8::1"), net.IPv4(10, 0, 2, 100).To4(), net.ParseIP("10.0.2.101"),
		}}, []server{
			{"10.0.2.100", "10.0.2.100:123"}, {"2001:db8::1", "[2001:db8::1]:123"}, {"10.0.2.101", "10.0.2.101:123"},
		}},
		{Options{Peer: Peer{Kind: PeerHost, Host: "ntp.example.com"}, DHCPServers: []net.IP{net.ParseIP("10.0.2.100")}},
			[]server{{"ntp.example.com", "ntp.example.com:123"}}},
		{Options{Peer: Peer{Kind: PeerHost, Host: "fe80::1%eth0", Port: 4123}, Port: 99},
			[]server{{"[fe80::1%eth0]:4123", "[fe80::1%eth0]:4123"}}},
		{Options{Peer: Peer{Kind: PeerHost, Host: "10.0.2.100"}, Port: 99},
			[]server{{"10.0.2.100:99", "10.0.2.100:99"}}},
		{Options{Peer: Peer{Kind: PeerHost, Host: "10.0.2.100"}, Port: 70000},
			[]server{{"10.0.2.100", "10.0.2.100:123"}}},
	}
	for _, tt := range tests {
		got := candidates(tt.o)
		if len(got) != len(tt.want) {
			t.Errorf("candidates(%+v) = %v, want %v", tt.o, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("candidates(%+v) = %v, want %v", tt.o, got, tt.want)
				break
			}
		}
	}
}

func TestResultString(t *testing.T) {
	tests := []struct {
		r    Result
		want string
	}{
		{Result{Server: "10.0.2.100", Stratum: 2, Offset: time.Hour + 3*time.Millisecond + 400*time.Microsecond, RTT: 1042 * time.Microsecond, Set: true},
			"clock: 10.0.2.100 stratum 2: offset +1h0m0.003s, rtt 1.042ms: clock set"},
		{Result{Server: "ntp:1123", Stratum: 3, Offset: -1500 * time.Millisecond, RTT: 20 * time.Millisecond},
			"clock: ntp:1123 stratum 3: offset -1.5s, rtt 20ms: clock not set"},
		{Result{Server: "ntp", Stratum: 1, Set: true}, "clock: ntp stratum 1: offset +0s, rtt 0s: clock set"},
		{Result{}, "clock: not set"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%+v.String() =\n%q, want\n%q", tt.r, got, tt.want)
		}
	}
}

// kissOfDeath starts a server on 127.0.0.1 that answers every request
// with a DENY kiss of death and returns its port and request counter.
func kissOfDeath(t *testing.T) (int, *atomic.Int64) {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			m, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			if m < 48 {
				continue
			}
			n.Add(1)
			r := make([]byte, 48)
			r[0] = 4<<3 | 4 // NTPv4, server mode; stratum 0
			copy(r[12:16], "DENY")
			copy(r[24:32], buf[40:48])
			binary.BigEndian.PutUint64(r[32:], 1<<32)
			binary.BigEndian.PutUint64(r[40:], 1<<32)
			_, _ = c.WriteTo(r, from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).Port, &n
}

func TestSyncKissOfDeath(t *testing.T) {
	kod, requests := kissOfDeath(t)
	srv := ntptest.Start(t, "127.0.0.1:0", time.Hour)
	var log syncLog
	res, err := syncServers(context.Background(), []server{local(kod), local(srv.Port())},
		3, time.Second, 10*time.Millisecond, fetch.RealClock{}.Sleep, (&clockRecorder{}).set, &log)
	if err != nil || res.Server != srv.Addr() {
		t.Fatalf("syncServers = %+v, %v", res, err)
	}
	if !strings.Contains(log.String(), local(kod).name+": try 1/3: kiss of death received (DENY)") {
		t.Errorf("log = %q", log.String())
	}

	// Alone, the kissing server is asked once, not in every round.
	clock := fetchtest.NewClock()
	_, err = syncServers(context.Background(), []server{local(kod)},
		3, time.Second, time.Second, clock.Sleep, (&clockRecorder{}).set, &log)
	if !errors.Is(err, ntp.ErrKissOfDeath) {
		t.Errorf("error = %v, want a kiss of death", err)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("kissing server asked %d times, want 2 (once per sync)", n)
	}
	if pauses := clock.Sleeps(); len(pauses) != 0 {
		t.Errorf("paused %v: waited for rounds with no server left", pauses)
	}
}

// untilDone runs f and returns its error. f must end because of its
// context: a watchdog far beyond any load fails the test if it hangs.
func untilDone(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Minute):
		t.Fatal("still running 5 minutes after its context ended")
		return nil
	}
}
