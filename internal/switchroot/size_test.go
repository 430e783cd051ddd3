package switchroot

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want Size
	}{
		{"3G", Size{Bytes: 3 << 30}},
		{"512M", Size{Bytes: 512 << 20}},
		{"512m", Size{Bytes: 512 << 20}},
		{"1048576", Size{Bytes: 1048576}},
		{"50%", Size{Percent: 50}},
		{"100%", Size{Percent: 100}},
		{"1%", Size{Percent: 1}},
		{"3GiB", Size{Bytes: 3 << 30}},
		{"2GB", Size{Bytes: 2 << 30}},
		{"512MiB", Size{Bytes: 512 << 20}},
		{"1k", Size{Bytes: 1 << 10}},
		{"1K", Size{Bytes: 1 << 10}},
		{"1t", Size{Bytes: 1 << 40}},
		{"1", Size{Bytes: 1}},
		{"64b", Size{Bytes: 64}},
		{"1B", Size{Bytes: 1}},
		{"2kB", Size{Bytes: 2 << 10}},
		{"0010M", Size{Bytes: 10 << 20}},
		{"8388607T", Size{Bytes: 8388607 << 40}},        // the largest whole number of T
		{"9223372036854775807", Size{Bytes: 1<<63 - 1}}, // the largest number of bytes
	}
	for _, tt := range good {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}

	const expected = "expected a size such as 3G, 512M or 50% (of RAM)"
	bad := []struct{ in, want string }{
		{"", expected},
		{"0", expected},
		{"-1G", expected},
		{"+3G", expected},
		{"+50%", expected},
		{"3X", expected},
		{"101%", expected},
		{"0%", expected},
		{"-5%", expected},
		{"%", expected},
		{"G", expected},
		{"GiB", expected},
		{"1iB", expected},
		{"B", expected},
		{"1bb", expected},
		{"1.5G", expected},
		{"1e3", expected},
		{"0x10", expected},
		{"3 G", expected},
		{" 3G", expected},
		{"3G ", expected},
		{"3GG", expected},
		{"99999999999999999999", "too large"},
		{"9999999999T", "too large"},
		{"8388608T", "too large"},
		{"9223372036854775807K", "too large"},
	}
	for _, tt := range bad {
		got, err := ParseSize(tt.in)
		if err == nil {
			t.Errorf("ParseSize(%q) = %+v, want an error", tt.in, got)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, "got "+strconv.Quote(tt.in)) || !strings.Contains(msg, tt.want) {
			t.Errorf("ParseSize(%q): %q, want a message quoting the input and containing %q", tt.in, msg, tt.want)
		}
		if got != (Size{}) {
			t.Errorf("ParseSize(%q) returned %+v with its error, want the zero Size", tt.in, got)
		}
	}
}

func TestSizeOf(t *testing.T) {
	tests := []struct {
		s    Size
		ram  int64
		want int64
	}{
		{Size{Percent: 50}, 8_000_000_000, 4_000_000_000},
		{Size{Percent: 100}, 8_000_000_000, 8_000_000_000},
		{Size{Percent: 100}, 8 << 30, 8<<30 - 92}, // a share is taken of whole hundredths of RAM
		{Size{Percent: 25}, 1000, 250},
		{Size{Percent: 1}, 100 << 20, 1 << 20},
		{Size{Bytes: 3 << 30}, 8 << 30, 3 << 30},
		{Size{Bytes: 3 << 30}, 1 << 30, 3 << 30}, // bytes do not depend on RAM
		{Size{}, 8 << 30, 0},
	}
	for _, tt := range tests {
		if got := tt.s.Of(tt.ram); got != tt.want {
			t.Errorf("%+v.Of(%d) = %d, want %d", tt.s, tt.ram, got, tt.want)
		}
	}
	if !(Size{}).IsZero() || (Size{Bytes: 1}).IsZero() || (Size{Percent: 1}).IsZero() {
		t.Error("IsZero: want true for the zero Size only")
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		s    Size
		want string
	}{
		{Size{Bytes: 3 << 30}, "3G"},
		{Size{Bytes: 1536 << 20}, "1536M"},
		{Size{Bytes: 1 << 40}, "1T"},
		{Size{Bytes: 3 << 40}, "3T"},
		{Size{Bytes: 1024}, "1K"},
		{Size{Bytes: 1000}, "1000"},
		{Size{Bytes: 1<<30 + 1}, "1073741825"},
		{Size{Bytes: 1<<63 - 1}, "9223372036854775807"},
		{Size{Percent: 50}, "50%"},
	}
	for _, tt := range tests {
		got := tt.s.String()
		if got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.s, got, tt.want)
		}
		back, err := ParseSize(got)
		if err != nil || back != tt.s {
			t.Errorf("ParseSize(%q) = %+v, %v; want %+v back", got, back, err, tt.s)
		}
	}
}

// FuzzParseSize checks that ParseSize does not panic, and that a size it
// accepts is valid and comes back the same through String.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"3G", "512m", "1048576", "50%", "100%", "3GiB", "2GB", "1k", "1t", "", "0", "-1G", "+3G", "101%", "%", "G", "1.5G", "99999999999999999999", "9999999999T", "8388607T"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseSize(in)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(in)) {
				t.Errorf("ParseSize(%q): %v: the message does not quote the input", in, err)
			}
			return
		}
		if s.IsZero() || s.Bytes < 0 || s.Percent < 0 || s.Percent > 100 || (s.Bytes != 0 && s.Percent != 0) {
			t.Fatalf("ParseSize(%q) = %+v: not a valid size", in, s)
		}
		back, err := ParseSize(s.String())
		if err != nil || back != s {
			t.Fatalf("ParseSize(%q) = %+v, String %q, which parses as %+v, %v", in, s, s.String(), back, err)
		}
	})
}
