package ntptest

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/beevik/ntp"
)

func query(t *testing.T, addr string, version int) *ntp.Response {
	t.Helper()
	resp, err := ntp.QueryWithOptions(addr, ntp.QueryOptions{Timeout: 2 * time.Second, Version: version})
	if err != nil {
		t.Fatalf("query %s: %v", addr, err)
	}
	if err := resp.Validate(); err != nil {
		t.Fatalf("response from %s does not validate: %v", addr, err)
	}
	return resp
}

func TestServerOffset(t *testing.T) {
	for _, offset := range []time.Duration{0, time.Hour, -36 * time.Hour, 20 * 365 * 24 * time.Hour} {
		s := Start(t, "127.0.0.1:0", offset)
		for _, v := range []int{3, 4} {
			resp := query(t, s.Addr(), v)
			// SNTP's offset is exact up to half the round trip.
			if d, bound := (resp.ClockOffset - offset).Abs(), resp.RTT/2+time.Millisecond; d > bound {
				t.Errorf("offset %v, NTPv%d: measured %v, off by more than half the round trip (%v)", offset, v, resp.ClockOffset, resp.RTT)
			}
			if resp.Stratum != Stratum || resp.Version != v || resp.Leap != ntp.LeapNoWarning {
				t.Errorf("offset %v, NTPv%d: stratum %d, version %d, leap %d", offset, v, resp.Stratum, resp.Version, resp.Leap)
			}
		}
		if n := s.Requests(); n != 2 {
			t.Errorf("Requests() = %d, want 2", n)
		}
	}
}

func TestServerIgnoresNonClients(t *testing.T) {
	s := Start(t, "127.0.0.1:0", 0)
	c, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	serverMode := make([]byte, packetSize)
	serverMode[0] = 4<<3 | modeServer
	v5 := make([]byte, packetSize)
	v5[0] = 5<<3 | modeClient
	for _, p := range [][]byte{{0x23}, serverMode, v5, make([]byte, packetSize)} {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	// A real query after the junk is answered; the junk was not.
	query(t, s.Addr(), 4)
	if n := s.Requests(); n != 1 {
		t.Errorf("Requests() = %d, want 1", n)
	}
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 100)); err == nil {
		t.Errorf("got a %d-byte answer to junk", n)
	}
}

func TestServerAddr(t *testing.T) {
	s := Start(t, "127.0.0.1:0", 0)
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Errorf("Addr() = %q", s.Addr())
	}
	if s.Port() == 0 || net.JoinHostPort(host, port) != s.Addr() {
		t.Errorf("Port() = %d, Addr() = %q", s.Port(), s.Addr())
	}
}

func TestServerClose(t *testing.T) {
	s := Start(t, "127.0.0.1:0", 0)
	addr := s.Addr()
	s.Close()
	s.Close() // again, and once more at cleanup
	_, err := ntp.QueryWithOptions(addr, ntp.QueryOptions{Timeout: 500 * time.Millisecond})
	if err == nil {
		t.Errorf("query after Close succeeded")
	}
}

func TestReply(t *testing.T) {
	req := make([]byte, packetSize)
	req[0] = 4<<3 | modeClient
	req[2] = 6
	binary.BigEndian.PutUint64(req[40:], 0x0123456789abcdef)
	recv := time.Date(2026, 5, 1, 12, 0, 0, 500_000_000, time.UTC)
	xmit := recv.Add(time.Millisecond)
	r, ok := reply(req, recv, xmit)
	if !ok || len(r) != packetSize {
		t.Fatalf("reply = %x, %v", r, ok)
	}
	be := binary.BigEndian
	if r[0] != 4<<3|modeServer || r[1] != Stratum || r[2] != 6 {
		t.Errorf("header %x", r[:4])
	}
	if got := be.Uint64(r[24:]); got != 0x0123456789abcdef {
		t.Errorf("origin = %x, want the client's transmit timestamp", got)
	}
	if be.Uint64(r[32:]) != timestamp(recv) || be.Uint64(r[40:]) != timestamp(xmit) {
		t.Errorf("receive/transmit timestamps wrong")
	}
	if be.Uint64(r[16:]) >= be.Uint64(r[32:]) {
		t.Errorf("reference time not before receive time")
	}
	if _, ok := reply(req[:47], recv, xmit); ok {
		t.Errorf("answered a short request")
	}
}

func TestTimestamp(t *testing.T) {
	if got, want := timestamp(time.Unix(0, 0)), uint64(2208988800)<<32; got != want {
		t.Errorf("timestamp(Unix epoch) = %x, want %x", got, want)
	}
	if got, want := timestamp(time.Unix(1, 500_000_000)), (uint64(2208988801)<<32)|1<<31; got != want {
		t.Errorf("timestamp(1.5s) = %x, want %x", got, want)
	}
	// Era 1 starts on 2036-02-07T06:28:16Z: seconds wrap to 0.
	if got := timestamp(time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC)); got != 0 {
		t.Errorf("timestamp(era 1 start) = %x, want 0", got)
	}
}
