package vm

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/ociboot/ociboot/internal/kmod"
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
	return slices.MaxFunc(names, kmod.CompareReleases), nil
}
