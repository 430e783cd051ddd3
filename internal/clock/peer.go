package clock

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// PeerKind says how a Peer chooses its NTP servers.
type PeerKind uint8

const (
	// PeerNone leaves the clock alone. It is the zero value and
	// boot2container's default; the caller warns that the clock is not set.
	PeerNone PeerKind = iota
	// PeerAuto uses the NTP servers offered by DHCP (option 42) when
	// there are any, else DefaultPool.
	PeerAuto
	// PeerHost uses the one server in Peer.Host.
	PeerHost
)

// String returns "none", "auto" or "host".
func (k PeerKind) String() string {
	switch k {
	case PeerNone:
		return "none"
	case PeerAuto:
		return "auto"
	case PeerHost:
		return "host"
	}
	return "PeerKind(" + strconv.Itoa(int(k)) + ")"
}

// Peer is the parsed value of the ntp_peer= kernel command line
// parameter. The zero Peer is "none".
type Peer struct {
	// Kind says which servers are used.
	Kind PeerKind
	// Host is the server's host name or IP address, without brackets; an
	// IP address is in its canonical form. Only set for PeerHost.
	Host string
	// Port is the server's UDP port; 0 means Options.Port, else
	// DefaultPort. Only set for PeerHost.
	Port uint16
}

// String returns p as ParsePeer accepts it: "none", "auto", "host",
// "host:port", an IPv6 address, or "[IPv6]:port".
func (p Peer) String() string {
	switch p.Kind {
	case PeerNone:
		return "none"
	case PeerAuto:
		return "auto"
	case PeerHost:
		if p.Port == 0 {
			return p.Host
		}
		return net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port)))
	}
	return p.Kind.String()
}

// expected describes the values ParsePeer accepts, for error messages.
const expected = `expected "none", "auto", or a host name or IP address with an optional :port`

// ParsePeer parses the value of ntp_peer=:
//
//   - "none" (any case): do not set the clock;
//   - "auto" (any case): the servers offered by DHCP, else DefaultPool;
//   - a host name, an IPv4 address or an IPv6 address (with an optional
//     %zone), optionally followed by ":PORT"; an IPv6 address with a port
//     is written "[ADDRESS]:PORT".
//
// A host actually named "none" or "auto" is written with a trailing dot
// ("auto."). The error says what was expected.
func ParsePeer(s string) (Peer, error) {
	switch strings.ToLower(s) {
	case "none":
		return Peer{Kind: PeerNone}, nil
	case "auto":
		return Peer{Kind: PeerAuto}, nil
	case "":
		return Peer{}, fmt.Errorf("empty NTP peer: %s", expected)
	}
	bad := func(format string, args ...any) (Peer, error) {
		return Peer{}, fmt.Errorf("NTP peer %q: %s", s, fmt.Sprintf(format, args...))
	}

	host, port, hasPort := s, "", false
	ipv6 := false
	switch {
	case s[0] == '[':
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return bad("missing ']': expected [IPv6] or [IPv6]:port")
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" {
			if rest[0] != ':' {
				return bad("unexpected %q after ']': expected [IPv6]:port", rest)
			}
			port, hasPort = rest[1:], true
		}
		ipv6 = true
	case strings.Count(s, ":") >= 2:
		// A bare IPv6 address: it cannot carry a port.
		ipv6 = true
	case strings.Contains(s, ":"):
		i := strings.IndexByte(s, ':')
		host, port, hasPort = s[:i], s[i+1:], true
	}

	p := Peer{Kind: PeerHost}
	if hasPort {
		n, err := parsePort(port)
		if err != nil {
			return bad("%v", err)
		}
		p.Port = n
	}

	if ipv6 {
		addr, err := parseIPv6(host)
		if err != nil {
			if s[0] != '[' {
				return bad("%v (write [IPv6]:port to give a port)", err)
			}
			return bad("%v", err)
		}
		p.Host = addr.String()
		return p, nil
	}
	if host == "" {
		return bad("empty host before ':': %s", expected)
	}
	if addr, err := netip.ParseAddr(host); err == nil && addr.Is4() {
		if addr.IsUnspecified() {
			return bad("%s is not a server address: expected a unicast IPv4 address", host)
		}
		p.Host = addr.String()
		return p, nil
	}
	if err := checkHostName(host); err != nil {
		return bad("%v", err)
	}
	p.Host = host
	return p, nil
}

// parsePort parses a decimal UDP port, 1 to 65535.
func parsePort(s string) (uint16, error) {
	if s == "" {
		return 0, fmt.Errorf("empty port after ':': expected a port number from 1 to 65535")
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("port %q is not a number: expected a port number from 1 to 65535", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %s out of range: expected a port number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// parseIPv6 parses an IPv6 address with an optional zone made of
// interface-name characters.
func parseIPv6(s string) (netip.Addr, error) {
	addr, err := netip.ParseAddr(s)
	if err != nil || !addr.Is6() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv6 address: expected an IPv6 address such as 2001:db8::1", s)
	}
	for _, c := range []byte(addr.Zone()) {
		if !isNameByte(c) && c != '.' {
			return netip.Addr{}, fmt.Errorf("zone %q of %q is not an interface name: expected letters, digits, '-', '_' and '.'", addr.Zone(), s)
		}
	}
	if addr.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("%s is not a server address: expected a unicast IPv6 address", s)
	}
	return addr, nil
}

// checkHostName checks that s is a DNS host name: dot-separated labels of
// 1 to 63 letters, digits, '-' and '_', not starting or ending with '-',
// at most 253 characters, with an optional trailing dot. A name whose last
// label is all digits is taken for a malformed IPv4 address.
func checkHostName(s string) error {
	name := strings.TrimSuffix(s, ".")
	if name == "" {
		return fmt.Errorf("%q is not a host name: %s", s, expected)
	}
	if len(name) > 253 {
		return fmt.Errorf("host name is %d characters long: expected at most 253", len(name))
	}
	labels := strings.Split(name, ".")
	if last := labels[len(labels)-1]; last != "" && strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("%q is not a valid IPv4 address: expected four numbers from 0 to 255 such as 192.0.2.1", s)
	}
	for _, l := range labels {
		switch {
		case l == "":
			return fmt.Errorf("host name %q has an empty label: expected labels separated by single dots", s)
		case len(l) > 63:
			return fmt.Errorf("host name %q has a label of %d characters: expected at most 63", s, len(l))
		case l[0] == '-' || l[len(l)-1] == '-':
			return fmt.Errorf("host name %q has a label starting or ending with '-'", s)
		}
		for i := 0; i < len(l); i++ {
			if !isNameByte(l[i]) {
				return fmt.Errorf("host name %q contains %s: expected letters, digits, '-', '_' and '.'", s, describe(l[i:]))
			}
		}
	}
	return nil
}

// describe names the first character of s for an error message.
func describe(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n <= 1 {
		return fmt.Sprintf("byte 0x%02x", s[0])
	}
	return strconv.QuoteRune(r)
}

// isNameByte reports whether c may appear in a host name label.
func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}
