package vm

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultKernel returns the newest /boot/vmlinuz-* by version order (as
// `sort -V` sorts), the kernel Run uses when Config.Kernel is empty.
func DefaultKernel() (string, error) {
	return newestKernel("/boot")
}

func newestKernel(dir string) (string, error) {
	pattern := filepath.Join(dir, "vmlinuz-*")
	names, err := filepath.Glob(pattern)
	if err != nil {
		return "", fmt.Errorf("vm: looking for kernels %s: %w", pattern, err)
	}
	if len(names) == 0 {
		return "", fmt.Errorf("vm: no kernel given and none found as %s (install linux-image-amd64 or pass a kernel)", pattern)
	}
	return slices.MaxFunc(names, compareVersions), nil
}

// compareVersions orders strings as version numbers: runs of digits compare
// as numbers, everything else byte by byte, so 6.10 comes after 6.9 and
// 6.1.0-56 after 6.1.0-9.
func compareVersions(a, b string) int {
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
