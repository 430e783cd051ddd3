// Package ntptest runs a minimal SNTP server for tests.
//
// The server answers NTP client requests (modes 3, versions 1 to 4) as a
// synchronised stratum-2 server whose clock is the host's clock plus a
// fixed offset, filling in the origin, receive and transmit timestamps
// so that a client such as github.com/beevik/ntp measures that offset and
// accepts the response. It uses only the standard library, so it can be
// reused by end-to-end tests running inside a network namespace.
package ntptest

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Stratum is the stratum the server reports.
const Stratum = 2

const (
	// packetSize is the size of an NTP header without extensions.
	packetSize = 48
	// ntpEpochOffset is the number of seconds from 1900-01-01 (the NTP
	// epoch) to 1970-01-01 (the Unix epoch).
	ntpEpochOffset = 2208988800
	// modeClient and modeServer are the NTP association modes used.
	modeClient = 3
	modeServer = 4
	// refAge is how long before "now" the server claims it last
	// synchronised with its own upstream.
	refAge = 16 * time.Second
	// refID is the reference identifier of the pretended upstream server
	// (192.0.2.1, TEST-NET-1).
	refID = 0xC0000201
)

// Server is a running SNTP server. Its methods are safe for concurrent
// use.
type Server struct {
	conn     net.PacketConn
	offset   time.Duration
	requests atomic.Int64
	done     chan struct{}
	once     sync.Once
}

// Start listens on the UDP address addr (for example "127.0.0.1:0" for a
// free port, or "10.0.2.100:123" inside a network namespace) and serves
// until the test ends. The server's clock is the host's clock plus offset.
// Start fails the test when it cannot listen.
func Start(t testing.TB, addr string, offset time.Duration) *Server {
	t.Helper()
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("ntptest: listen on %s: %v", addr, err)
	}
	s := &Server{conn: conn, offset: offset, done: make(chan struct{})}
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// Addr returns the address the server listens on, as "host:port".
func (s *Server) Addr() string { return s.conn.LocalAddr().String() }

// Port returns the UDP port the server listens on.
func (s *Server) Port() int {
	if a, ok := s.conn.LocalAddr().(*net.UDPAddr); ok {
		return a.Port
	}
	return 0
}

// Requests returns the number of client requests answered so far.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// Close stops the server and waits for it to finish. It is called at test
// cleanup; calling it again does nothing.
func (s *Server) Close() {
	s.once.Do(func() {
		s.conn.Close()
		<-s.done
	})
}

// serve answers requests until the connection is closed.
func (s *Server) serve() {
	defer close(s.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient error, such as an ICMP error reported on the
			// socket: keep serving.
			continue
		}
		received := time.Now().Add(s.offset)
		out, ok := reply(buf[:n], received, time.Now().Add(s.offset))
		if !ok {
			continue
		}
		s.requests.Add(1)
		_, _ = s.conn.WriteTo(out, from)
	}
}

// reply builds the server's answer to the NTP request req, as a server
// that received it at the time received and sends the answer at the time
// transmit. It reports false, with no answer, when req is not an NTP
// client request of version 1 to 4.
func reply(req []byte, received, transmit time.Time) ([]byte, bool) {
	if len(req) < packetSize {
		return nil, false
	}
	version := req[0] >> 3 & 0x7
	mode := req[0] & 0x7
	if mode != modeClient || version < 1 || version > 4 {
		return nil, false
	}
	r := make([]byte, packetSize)
	r[0] = 0<<6 | version<<3 | modeServer // leap indicator: no warning
	r[1] = Stratum
	r[2] = req[2] // poll: echo the client's
	r[3] = 0xEC   // precision: 2^-20 s, about 1 µs
	be := binary.BigEndian
	be.PutUint32(r[4:], 0x0000_0100) // root delay: 1/256 s
	be.PutUint32(r[8:], 0x0000_0100) // root dispersion: 1/256 s
	be.PutUint32(r[12:], refID)
	be.PutUint64(r[16:], timestamp(received.Add(-refAge)))
	copy(r[24:32], req[40:48]) // origin: the client's transmit timestamp
	be.PutUint64(r[32:], timestamp(received))
	be.PutUint64(r[40:], timestamp(transmit))
	return r, true
}

// timestamp converts t to a 64-bit NTP timestamp: seconds since
// 1900-01-01 UTC modulo 2^32 in the high half and the fraction of a second
// in the low half.
func timestamp(t time.Time) uint64 {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := (uint64(t.Nanosecond()) << 32) / uint64(time.Second)
	return secs<<32 | frac
}
