package image

import (
	"errors"
	"fmt"
	"strings"
)

// Mirror names places that serve a registry's images, tried in order
// before the registry itself, as containers' registries.conf mirrors do.
type Mirror struct {
	// Registry is the HOST[:PORT] the mirrors stand for, optionally
	// followed by a namespace (docker.io/library) to mirror only the
	// repositories under it. Normalized: lower-case host, Docker Hub as
	// docker.io.
	Registry string
	// Mirrors are HOST[:PORT][/PATH] locations. The part of an image's
	// name that Registry matched is replaced by the location: with
	// docker.io=mirror.lan/hub, docker.io/library/alpine is pulled from
	// mirror.lan as hub/library/alpine.
	Mirrors []string
}

// ParseMirror reads `REGISTRY=MIRROR[|MIRROR…]` (the value of
// ociboot.registry_mirror= and of `ociboot build --registry-mirror`),
// such as docker.io=10.0.2.100:5000|mirror.lan/dockerhub.
func ParseMirror(s string) (Mirror, error) {
	const want = "expected REGISTRY=MIRROR[|MIRROR…] with HOST[:PORT][/PATH] locations, such as docker.io=mirror.lan:5000|mirror2.lan/hub"
	reg, list, ok := strings.Cut(s, "=")
	if !ok {
		return Mirror{}, errors.New("no '=' between the registry and its mirrors: " + want)
	}
	key, err := normalizeLocation(reg)
	if err != nil {
		return Mirror{}, fmt.Errorf("registry %w: %s", err, want)
	}
	m := Mirror{Registry: key}
	for _, loc := range strings.Split(list, "|") {
		norm, err := normalizeLocation(loc)
		if err != nil {
			return Mirror{}, fmt.Errorf("mirror of %s: %w: %s", key, err, want)
		}
		m.Mirrors = append(m.Mirrors, norm)
	}
	return m, nil
}

// String writes m as ParseMirror reads it.
func (m Mirror) String() string {
	return m.Registry + "=" + strings.Join(m.Mirrors, "|")
}

// normalizeLocation checks HOST[:PORT][/PATH] and returns it with the
// host normalized.
func normalizeLocation(s string) (string, error) {
	if strings.Contains(s, "://") {
		return "", fmt.Errorf("%q has a scheme: write HOST[:PORT][/PATH]; plain HTTP is for the hosts listed as insecure registries", s)
	}
	host, path, hasPath := strings.Cut(s, "/")
	if err := CheckRegistryHost(host); err != nil {
		return "", err
	}
	host = NormalizeRegistry(host)
	if !hasPath {
		return host, nil
	}
	for _, elem := range strings.Split(path, "/") {
		if !isPathElement(elem) {
			return "", fmt.Errorf("%q: path element %q is not made of lower-case letters, digits, '.', '_' and '-'", s, elem)
		}
	}
	return host + "/" + path, nil
}

func isPathElement(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// endpoint is one place to pull an image from.
type endpoint struct {
	host       string // HOST[:PORT], normalized
	repository string // the image's repository there
	mirror     bool
}

func (e endpoint) String() string { return e.host + "/" + e.repository }

// endpoints lists where to pull r from: the mirrors of the longest
// matching Mirror.Registry (all entries with that key, in order), then r's
// own registry.
func endpoints(r Reference, mirrors []Mirror) []endpoint {
	full := r.Registry + "/" + r.Repository
	var key string
	var locations []string
	for _, m := range mirrors {
		k, err := normalizeLocation(m.Registry)
		if err != nil || !strings.HasPrefix(full+"/", k+"/") {
			continue
		}
		switch {
		case len(k) > len(key):
			key, locations = k, append([]string(nil), m.Mirrors...)
		case k == key:
			locations = append(locations, m.Mirrors...)
		}
	}
	var eps []endpoint
	seen := map[string]bool{}
	rest := strings.TrimPrefix(strings.TrimPrefix(full, key), "/")
	for _, loc := range locations {
		norm, err := normalizeLocation(loc)
		if err != nil || seen[norm] {
			continue
		}
		seen[norm] = true
		host, path, _ := strings.Cut(norm, "/")
		repo := strings.Trim(path+"/"+rest, "/")
		eps = append(eps, endpoint{host: host, repository: repo, mirror: true})
	}
	return append(eps, endpoint{host: r.Registry, repository: r.Repository})
}
