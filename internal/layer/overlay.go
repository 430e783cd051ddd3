package layer

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// maxMountData is the most mount(2) takes of overlayfs's options: a page.
const maxMountData = 4096

// MountOverlay mounts on target the union of lowers, layer trees applied
// with Options.Overlay, bottom layer first, read-only, under the writable
// directory upper; work is overlayfs's work directory, on upper's
// filesystem. upper and work are created when missing. Too many layers
// for one mount is an error wrapping ErrNotOverlay.
func MountOverlay(lowers []string, upper, work, target string) error {
	if len(lowers) == 0 {
		return fmt.Errorf("overlay on %s: no layers", target)
	}
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("overlay on %s: %w", target, err)
		}
	}
	top := make([]string, len(lowers))
	for i, l := range lowers {
		if strings.ContainsAny(l, ":,\\") {
			return fmt.Errorf("overlay on %s: layer directory %q: ':', ',' and '\\' cannot be in overlayfs options", target, l)
		}
		top[len(lowers)-1-i] = l // overlayfs lists the top layer first
	}
	opts := "lowerdir=" + strings.Join(top, ":") + ",upperdir=" + upper + ",workdir=" + work
	if len(opts) >= maxMountData {
		return fmt.Errorf("overlay on %s: %d layers make %d bytes of options, more than the kernel takes: %w", target, len(lowers), len(opts), ErrNotOverlay)
	}
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return fmt.Errorf("overlay on %s of %d layers: %w", target, len(lowers), err)
	}
	return nil
}
