package uki

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// KernelRelease reads the release (uname -r) of an x86 bzImage from its
// setup header: the kernel_version string the header points to (boot
// protocol 2.00 and later).
func KernelRelease(kernel []byte) (string, error) {
	const (
		magicAt   = 0x202 // "HdrS"
		versionAt = 0x206 // boot protocol version
		pointerAt = 0x20e // kernel_version, 0x200 before the string
	)
	if len(kernel) < pointerAt+2 || !bytes.Equal(kernel[magicAt:magicAt+4], []byte("HdrS")) {
		return "", fmt.Errorf("not an x86 bzImage: no setup header (HdrS at %#x)", magicAt)
	}
	if v := binary.LittleEndian.Uint16(kernel[versionAt:]); v < 0x200 {
		return "", fmt.Errorf("boot protocol %#x is too old to name its release", v)
	}
	at := int(binary.LittleEndian.Uint16(kernel[pointerAt:])) + 0x200
	if at >= len(kernel) {
		return "", fmt.Errorf("the setup header's kernel_version points past the image (%#x)", at)
	}
	s := kernel[at:min(len(kernel), at+256)]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	release, _, _ := strings.Cut(string(s), " ")
	if release == "" {
		return "", fmt.Errorf("the setup header's kernel_version string is empty")
	}
	return release, nil
}
