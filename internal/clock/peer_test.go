package clock

import (
	"strings"
	"testing"
)

func TestParsePeer(t *testing.T) {
	tests := []struct {
		in   string
		want Peer
		str  string // Peer.String; in when empty
	}{
		{"none", Peer{}, ""},
		{"NONE", Peer{}, "none"},
		{"auto", Peer{Kind: PeerAuto}, ""},
		{"Auto", Peer{Kind: PeerAuto}, "auto"},
		{"pool.ntp.org", Peer{Kind: PeerHost, Host: "pool.ntp.org"}, ""},
		{"pool.ntp.org.", Peer{Kind: PeerHost, Host: "pool.ntp.org."}, ""},
		{"auto.", Peer{Kind: PeerHost, Host: "auto."}, ""},
		{"ntp", Peer{Kind: PeerHost, Host: "ntp"}, ""},
		{"time_1.example-corp.net", Peer{Kind: PeerHost, Host: "time_1.example-corp.net"}, ""},
		{"ntp.example.com:1123", Peer{Kind: PeerHost, Host: "ntp.example.com", Port: 1123}, ""},
		{"10.0.2.100", Peer{Kind: PeerHost, Host: "10.0.2.100"}, ""},
		{"10.0.2.100:123", Peer{Kind: PeerHost, Host: "10.0.2.100", Port: 123}, ""},
		{"127.0.0.1:65535", Peer{Kind: PeerHost, Host: "127.0.0.1", Port: 65535}, ""},
		{"2001:db8::1", Peer{Kind: PeerHost, Host: "2001:db8::1"}, ""},
		{"2001:DB8:0:0::1", Peer{Kind: PeerHost, Host: "2001:db8::1"}, "2001:db8::1"},
		{"[2001:db8::1]", Peer{Kind: PeerHost, Host: "2001:db8::1"}, "2001:db8::1"},
		{"[2001:db8::1]:4123", Peer{Kind: PeerHost, Host: "2001:db8::1", Port: 4123}, ""},
		{"[fe80::1%eth0]:123", Peer{Kind: PeerHost, Host: "fe80::1%eth0", Port: 123}, ""},
		{"fe80::1%enp0s3", Peer{Kind: PeerHost, Host: "fe80::1%enp0s3"}, ""},
		{"::1", Peer{Kind: PeerHost, Host: "::1"}, ""},
		{"::ffff:192.0.2.1", Peer{Kind: PeerHost, Host: "::ffff:192.0.2.1"}, ""},
	}
	for _, tt := range tests {
		got, err := ParsePeer(tt.in)
		if err != nil {
			t.Errorf("ParsePeer(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParsePeer(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
		str := tt.str
		if str == "" {
			str = tt.in
		}
		if got.String() != str {
			t.Errorf("ParsePeer(%q).String() = %q, want %q", tt.in, got.String(), str)
		}
	}
}

func TestParsePeerErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string // substring of the error
	}{
		{"", `empty NTP peer: expected "none", "auto", or a host name or IP address with an optional :port`},
		{"host:", `NTP peer "host:": empty port after ':': expected a port number from 1 to 65535`},
		{"host:ntp", `port "ntp" is not a number: expected a port number from 1 to 65535`},
		{"host:+12", `port "+12" is not a number`},
		{"host:0", `port 0 out of range: expected a port number from 1 to 65535`},
		{"host:65536", `port 65536 out of range`},
		{"host:99999999999999999999", `out of range`},
		{":123", `empty host before ':'`},
		{"1.2.3", `"1.2.3" is not a valid IPv4 address: expected four numbers from 0 to 255`},
		{"256.1.1.1", `"256.1.1.1" is not a valid IPv4 address`},
		{"1.2.3.4.5:123", `"1.2.3.4.5" is not a valid IPv4 address`},
		{"123", `"123" is not a valid IPv4 address`},
		{"0.0.0.0", `0.0.0.0 is not a server address: expected a unicast IPv4 address`},
		{"::", `:: is not a server address: expected a unicast IPv6 address`},
		{"[::]:123", `is not a server address`},
		{"a b", `host name "a b" contains ' ': expected letters, digits, '-', '_' and '.'`},
		{"ntp.example.com/x", `contains '/'`},
		{"ntp..example.com", `host name "ntp..example.com" has an empty label`},
		{".example.com", `has an empty label`},
		{".", `"." is not a host name`},
		{"-ntp.example.com", `has a label starting or ending with '-'`},
		{"ntp-.example.com", `has a label starting or ending with '-'`},
		{strings.Repeat("a", 64) + ".com", `has a label of 64 characters: expected at most 63`},
		{strings.Repeat("abcdefg.", 32) + "com", `host name is 259 characters long: expected at most 253`},
		{"2001:db8::zz", `"2001:db8::zz" is not an IPv6 address: expected an IPv6 address such as 2001:db8::1 (write [IPv6]:port to give a port)`},
		{"2001:db8::1:123:", `is not an IPv6 address`},
		{"[2001:db8::1", `missing ']': expected [IPv6] or [IPv6]:port`},
		{"[2001:db8::1]123", `unexpected "123" after ']': expected [IPv6]:port`},
		{"[2001:db8::1]:", `empty port after ':'`},
		{"[192.0.2.1]:123", `"192.0.2.1" is not an IPv6 address`},
		{"[ntp.example.com]:123", `"ntp.example.com" is not an IPv6 address`},
		{"[]:123", `"" is not an IPv6 address`},
		{"[fe80::1%a/b]", `zone "a/b" of "fe80::1%a/b" is not an interface name`},
		{"192.0.2.1%eth0", `contains '%'`},
		{"host\x00", `contains '\x00'`},
		{"héhé.example", `contains 'é'`},
		{"ntp\xff.example", `contains byte 0xff`},
	}
	for _, tt := range tests {
		p, err := ParsePeer(tt.in)
		if err == nil {
			t.Errorf("ParsePeer(%q) = %#v, want an error containing %q", tt.in, p, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParsePeer(%q) error:\n got: %v\nwant: …%s…", tt.in, err, tt.want)
		}
		if tt.in != "" && !strings.HasPrefix(err.Error(), "NTP peer ") {
			t.Errorf("ParsePeer(%q) error %q does not name the peer", tt.in, err)
		}
	}
}

func TestPeerKindString(t *testing.T) {
	for k, want := range map[PeerKind]string{PeerNone: "none", PeerAuto: "auto", PeerHost: "host", 7: "PeerKind(7)"} {
		if got := k.String(); got != want {
			t.Errorf("PeerKind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func FuzzParsePeer(f *testing.F) {
	for _, s := range []string{
		"", "none", "auto", "AUTO", "pool.ntp.org", "pool.ntp.org.", "10.0.2.100", "10.0.2.100:123",
		"2001:db8::1", "[2001:db8::1]:123", "[fe80::1%eth0]", "host:", "[::1", "1.2.3", "::",
		"a..b", "-a", "x:0", "[1.2.3.4]:5", "::ffff:1.2.3.4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePeer(s)
		if err != nil {
			if p != (Peer{}) {
				t.Errorf("ParsePeer(%q) returned %#v with error %v", s, p, err)
			}
			if err.Error() == "" {
				t.Errorf("ParsePeer(%q): empty error", s)
			}
			return
		}
		switch p.Kind {
		case PeerNone, PeerAuto:
			if p.Host != "" || p.Port != 0 {
				t.Errorf("ParsePeer(%q) = %#v: host or port set", s, p)
			}
		case PeerHost:
			if p.Host == "" {
				t.Errorf("ParsePeer(%q) = %#v: empty host", s, p)
			}
		default:
			t.Fatalf("ParsePeer(%q) = %#v: bad kind", s, p)
		}
		again, err := ParsePeer(p.String())
		if err != nil {
			t.Fatalf("ParsePeer(%q).String() = %q does not parse: %v", s, p.String(), err)
		}
		if again != p {
			t.Errorf("ParsePeer(%q) = %#v, but ParsePeer(%q) = %#v", s, p, p.String(), again)
		}
		if p.Kind == PeerHost && len(candidates(Options{Peer: p})) != 1 {
			t.Errorf("ParsePeer(%q): not one candidate server", s)
		}
	})
}
