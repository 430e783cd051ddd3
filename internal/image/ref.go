package image

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// repoComponent is one path component of a repository, as the
// distribution spec defines it.
var repoComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// DockerHub is the registry of references that name none, written the
// way docker and podman print it.
const DockerHub = "docker.io"

// dockerHubAliases are the other names Docker Hub goes by.
var dockerHubAliases = []string{"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

// Reference is an image reference normalized the way docker and podman
// read one: `alpine` is docker.io/library/alpine:latest.
type Reference struct {
	// Registry is HOST or HOST:PORT, lower case; Docker Hub is "docker.io".
	Registry string
	// Repository is the path in the registry, such as "library/alpine".
	Repository string
	// Tag is the tag as written; "latest" when neither a tag nor a digest
	// was given. With a digest it is informational only.
	Tag string
	// Digest, such as "sha256:…", pins the manifest: it is what is pulled,
	// and the manifest's bytes must hash to it.
	Digest string
}

// ParseReference reads an image reference as people write them:
// `alpine`, `alpine:3.20`, `docker.io/library/alpine:3.20`,
// `registry.lan:5000/ci/job@sha256:…`, `job:v1@sha256:…` (tag and digest
// pinned together), each optionally prefixed with `docker://`.
func ParseReference(s string) (Reference, error) {
	const want = "expected [REGISTRY[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST], such as alpine:3.20 or registry.lan:5000/ci/job@sha256:…"
	rest := strings.TrimPrefix(s, "docker://")
	if transport, _, ok := strings.Cut(rest, "://"); ok {
		return Reference{}, fmt.Errorf("invalid image reference %q: transport %q is not supported (only docker:// registries): %s", s, transport, want)
	}
	var r Reference
	if before, digest, ok := strings.Cut(rest, "@"); ok {
		if _, err := v1.NewHash(digest); err != nil {
			return Reference{}, fmt.Errorf("invalid image reference %q: digest %q: %v: %s", s, digest, err, want)
		}
		r.Digest, rest = digest, before
	}
	// The first path element is a registry when it looks like a host name
	// (a dot or a port, or localhost), as docker decides.
	if first, path, ok := strings.Cut(rest, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		r.Registry, rest = first, path
	} else {
		r.Registry = DockerHub
	}
	if err := CheckRegistryHost(r.Registry); err != nil {
		return Reference{}, fmt.Errorf("invalid image reference %q: registry %w: %s", s, err, want)
	}
	r.Registry = NormalizeRegistry(r.Registry)
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		r.Tag, rest = rest[i+1:], rest[:i]
		if r.Tag == "" {
			return Reference{}, fmt.Errorf("invalid image reference %q: empty tag after ':': %s", s, want)
		}
	}
	r.Repository = rest
	for _, c := range strings.Split(r.Repository, "/") {
		if !repoComponent.MatchString(c) {
			return Reference{}, fmt.Errorf("invalid image reference %q: repository %q: path component %q is not lower-case letters and digits separated by '.', '_', '__' or '-': %s", s, r.Repository, c, want)
		}
	}
	if r.Registry == DockerHub && !strings.Contains(r.Repository, "/") {
		r.Repository = "library/" + r.Repository
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	// go-containerregistry has the authoritative repository and tag rules.
	if _, err := r.nameAt(r.Registry, false); err != nil {
		return Reference{}, fmt.Errorf("invalid image reference %q: %w: %s", s, err, want)
	}
	return r, nil
}

// String writes the reference in full: docker.io/library/alpine:3.20,
// with "@digest" when pinned.
func (r Reference) String() string {
	s := r.Registry + "/" + r.Repository
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// nameAt returns the go-containerregistry reference to r's repository at
// location, a registry HOST[:PORT] optionally followed by a path that
// replaces the registry (mirrors); by digest when r has one, else by tag.
func (r Reference) nameAt(location string, insecure bool) (name.Reference, error) {
	return r.nameAtPath(location, r.Repository, insecure)
}

func (r Reference) nameAtPath(location, repository string, insecure bool) (name.Reference, error) {
	opts := []name.Option{name.StrictValidation}
	if insecure {
		opts = append(opts, name.Insecure)
	}
	base := location + "/" + repository
	if r.Digest != "" {
		return name.NewDigest(base+"@"+r.Digest, opts...)
	}
	return name.NewTag(base+":"+r.Tag, opts...)
}

// NormalizeRegistry returns the canonical spelling of a registry host:
// lower case, Docker Hub's aliases as "docker.io".
func NormalizeRegistry(host string) string {
	host = strings.ToLower(host)
	for _, alias := range dockerHubAliases {
		if host == alias {
			return DockerHub
		}
	}
	return host
}

// CheckRegistryHost checks HOST[:PORT] where HOST is a DNS name (or
// localhost), an IPv4 address or a bracketed IPv6 address.
func CheckRegistryHost(s string) error {
	if s == "" {
		return fmt.Errorf("%q is empty", s)
	}
	if strings.Contains(s, "/") {
		return fmt.Errorf("%q has a scheme or a path, expected HOST[:PORT]", s)
	}
	host, port, hasPort := s, "", false
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return fmt.Errorf("%q has no closing ']'", s)
		}
		addr, err := netip.ParseAddr(s[1:end])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return fmt.Errorf("%q: %q is not an IPv6 address", s, s[1:end])
		}
		if rest := s[end+1:]; rest != "" {
			if rest[0] != ':' {
				return fmt.Errorf("%q: unexpected %q after ']'", s, rest)
			}
			port, hasPort = rest[1:], true
		}
	} else {
		host, port, hasPort = strings.Cut(s, ":")
		if addr, err := netip.ParseAddr(host); (err != nil || !addr.Is4()) && !isHostName(host) {
			if !hasPort {
				return fmt.Errorf("%q is neither a host name nor an IP address", s)
			}
			return fmt.Errorf("%q: %q is neither a host name nor an IP address", s, host)
		}
	}
	if hasPort {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '0' {
			return fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
		}
	}
	return nil
}

// isHostName reports whether s is a DNS host name: dot-separated labels
// of 1 to 63 letters, digits and hyphens, not starting or ending with a
// hyphen.
func isHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
