package kmod

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// RunningRelease is the running kernel's release (`uname -r`), the name
// of its directory in /lib/modules.
func RunningRelease() (string, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(uts.Release[:]), nil
}

// NewestRelease returns the highest release, in CompareReleases order,
// among the directories of root (usually /lib/modules).
func NewestRelease(root string) (string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", err
	}
	var releases []string
	for _, e := range entries {
		if e.IsDir() {
			releases = append(releases, e.Name())
		}
	}
	if len(releases) == 0 {
		return "", fmt.Errorf("no kernel releases in %s", root)
	}
	return slices.MaxFunc(releases, CompareReleases), nil
}

// CompareReleases orders kernel releases (and names holding them, such as
// vmlinuz-6.1.0-9-amd64) as `sort -V` does: runs of digits compare as
// numbers, everything else byte by byte, so 6.10 comes after 6.9 and
// 6.1.0-56 after 6.1.0-9.
func CompareReleases(a, b string) int {
	for a != "" && b != "" {
		var x, y string
		x, a = splitRun(a)
		y, b = splitRun(b)
		if c := compareRuns(x, y); c != 0 {
			return c
		}
	}
	return strings.Compare(a, b)
}

// splitRun splits s after its leading run of digits, or of non-digits.
func splitRun(s string) (run, rest string) {
	digit := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == digit {
		i++
	}
	return s[:i], s[i:]
}

func compareRuns(x, y string) int {
	if isDigit(x[0]) && isDigit(y[0]) {
		x, y = strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
		if len(x) != len(y) {
			return len(x) - len(y)
		}
	}
	return strings.Compare(x, y)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
