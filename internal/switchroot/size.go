package switchroot

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is the size of the root's tmpfs (ociboot.root_size=,
// rd.tmpfs.size=): a number of bytes, or a share of the machine's RAM.
// The zero value means "not given".
type Size struct {
	// Bytes is the size in bytes, when Percent is 0.
	Bytes int64
	// Percent is a share of RAM, 1 to 100, as tmpfs's size=N% reads it.
	Percent int
}

// sizeWant is what ParseSize takes, for messages.
const sizeWant = "a size such as 3G, 512M or 50% (of RAM): a whole number with an optional k, m, g or t suffix (powers of 1024), or a percentage from 1 to 100"

// bytesWant is what ParseBytes takes, for messages.
const bytesWant = "a size such as 64m, 1g or 1048576: a whole number with an optional b, k, m, g or t suffix (powers of 1024)"

// errTooLarge is parseBytes's error for a size beyond int64.
var errTooLarge = errors.New("too large")

// ParseSize reads a size as tmpfs's size= option does: a whole number of
// bytes (see ParseBytes), or N% of RAM.
func ParseSize(s string) (Size, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 100 || p[0] == '+' {
			return Size{}, fmt.Errorf("got %q, expected %s", s, sizeWant)
		}
		return Size{Percent: n}, nil
	}
	n, err := parseBytes(s)
	switch {
	case errors.Is(err, errTooLarge):
		return Size{}, fmt.Errorf("got %q: too large", s)
	case err != nil:
		return Size{}, fmt.Errorf("got %q, expected %s", s, sizeWant)
	}
	return Size{Bytes: n}, nil
}

// ParseBytes reads a size in bytes, the grammar of every tmpfs size:
// ociboot.root_size=, and podman's --shm-size and --tmpfs size=. It is a
// whole number with an optional b, k, m, g or t suffix (either case,
// powers of 1024; "3G", "512m", "64b"; "GiB" and "MB" spellings are
// accepted too).
func ParseBytes(s string) (int64, error) {
	n, err := parseBytes(s)
	switch {
	case errors.Is(err, errTooLarge):
		return 0, fmt.Errorf("got %q: too large", s)
	case err != nil:
		return 0, fmt.Errorf("got %q, expected %s", s, bytesWant)
	}
	return n, nil
}

func parseBytes(s string) (int64, error) {
	digits := strings.TrimLeft(s, "0123456789")
	num := s[:len(s)-len(digits)]
	shift := 0
	switch strings.ToLower(digits) {
	case "", "b":
	case "k", "ki", "kb", "kib":
		shift = 10
	case "m", "mi", "mb", "mib":
		shift = 20
	case "g", "gi", "gb", "gib":
		shift = 30
	case "t", "ti", "tb", "tib":
		shift = 40
	default:
		return 0, errors.New("not a size")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		if errors.Is(err, strconv.ErrRange) {
			return 0, errTooLarge
		}
		return 0, errors.New("not a size")
	}
	if n > math.MaxInt64>>shift {
		return 0, errTooLarge
	}
	return n << shift, nil
}

// IsZero reports whether no size was given.
func (s Size) IsZero() bool { return s.Bytes == 0 && s.Percent == 0 }

// Of returns the size in bytes on a machine with ram bytes of RAM.
func (s Size) Of(ram int64) int64 {
	if s.Percent > 0 {
		return ram / 100 * int64(s.Percent)
	}
	return s.Bytes
}

// String gives the size as it would be written on the command line.
func (s Size) String() string {
	if s.Percent > 0 {
		return fmt.Sprintf("%d%%", s.Percent)
	}
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}} {
		if s.Bytes >= 1<<u.shift && s.Bytes%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", s.Bytes>>u.shift, u.suffix)
		}
	}
	return strconv.FormatInt(s.Bytes, 10)
}
