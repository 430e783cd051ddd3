package image

import (
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// knownOS are the operating systems a platform string may start with; a
// first element that is not one of them is an architecture.
var knownOS = []string{
	"aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js",
	"linux", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows",
}

// RunningPlatform is the platform ociboot runs on: linux and the
// architecture it was built for.
func RunningPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// ParsePlatform reads a platform as podman's --platform takes it:
// OS/ARCH[/VARIANT] or ARCH[/VARIANT] (the OS is then linux), such as
// linux/arm64, linux/arm/v7, arm64 or amd64. Common aliases are
// normalized as containerd does: x86_64 is amd64, aarch64 is arm64,
// armhf is arm/v7, armel is arm/v6, i386 is 386; a variant written as a
// bare number gets its "v"; arm64's default variant v8 is dropped so that
// it matches index entries with or without it.
func ParsePlatform(s string) (v1.Platform, error) {
	const want = "expected OS/ARCH[/VARIANT] or ARCH[/VARIANT], such as linux/arm64, linux/arm/v7 or amd64"
	parts := strings.Split(strings.ToLower(s), "/")
	if len(parts) > 3 {
		return v1.Platform{}, fmt.Errorf("platform %q has too many parts: %s", s, want)
	}
	for _, p := range parts {
		if !isPlatformWord(p) {
			return v1.Platform{}, fmt.Errorf("platform %q: %q is not a name made of letters, digits, '_', '-' and '.': %s", s, p, want)
		}
	}
	var p v1.Platform
	switch {
	case len(parts) == 3:
		p = v1.Platform{OS: parts[0], Architecture: parts[1], Variant: parts[2]}
	case len(parts) == 2 && isKnownOS(parts[0]):
		p = v1.Platform{OS: parts[0], Architecture: parts[1]}
	case len(parts) == 2:
		p = v1.Platform{OS: "linux", Architecture: parts[0], Variant: parts[1]}
	default:
		p = v1.Platform{OS: "linux", Architecture: parts[0]}
	}
	if !isKnownOS(p.OS) {
		return v1.Platform{}, fmt.Errorf("platform %q: unknown operating system %q: %s", s, p.OS, want)
	}
	if isKnownOS(p.Architecture) || isKnownOS(p.Variant) {
		return v1.Platform{}, fmt.Errorf("platform %q: an operating system is only allowed first: %s", s, want)
	}
	return normalizePlatform(p), nil
}

// normalizePlatform maps architecture and variant aliases to the names
// images use.
func normalizePlatform(p v1.Platform) v1.Platform {
	if p.Variant != "" && p.Variant[0] >= '0' && p.Variant[0] <= '9' {
		p.Variant = "v" + p.Variant
	}
	switch p.Architecture {
	case "x86_64", "x86-64", "amd64":
		p.Architecture = "amd64"
	case "i386", "i486", "i586", "i686", "386":
		p.Architecture = "386"
	case "aarch64", "arm64":
		p.Architecture = "arm64"
		if p.Variant == "v8" || p.Variant == "v8.0" {
			p.Variant = ""
		}
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	}
	return p
}

func isKnownOS(s string) bool {
	for _, os := range knownOS {
		if s == os {
			return true
		}
	}
	return false
}

func isPlatformWord(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
