package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
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

// mirrorImage is an image resolved at a mirror. Its layers come from the
// mirror when it serves them; a layer blob the mirror cannot open (it
// lacks the blob, refuses or fails) is fetched from the next sources in
// order, by digest: content-addressed, it is the same blob wherever it
// comes from, and it is verified as any other. A blob cut off after it
// started is resumed at the mirror by the transport, not moved elsewhere.
type mirrorImage struct {
	v1.Image
	ctx    context.Context
	mirror string // "mirror HOST/REPO"
	next   []blobSource
	log    io.Writer
}

// blobSource opens a layer blob by digest at one source.
type blobSource struct {
	where string // "mirror HOST/REPO" or "registry HOST"
	open  func(v1.Hash) (io.ReadCloser, error)
}

// Layers returns the image's layers, each with the fallback.
func (m *mirrorImage) Layers() ([]v1.Layer, error) {
	ls, err := m.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = &mirrorLayer{Layer: l, img: m}
	}
	return out, nil
}

// mirrorLayer is a layer of a mirrorImage.
type mirrorLayer struct {
	v1.Layer
	img *mirrorImage
}

// Compressed opens the blob at the mirror, or else at the next sources.
func (l *mirrorLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err == nil {
		return rc, nil
	}
	d, derr := l.Digest()
	if derr != nil {
		return nil, err
	}
	failed := l.img.mirror
	errs := []error{fmt.Errorf("%s: %w", failed, err)}
	for _, s := range l.img.next {
		if l.img.ctx.Err() != nil {
			break
		}
		if l.img.log != nil {
			fmt.Fprintf(l.img.log, "layer %s: %s could not serve it (%v); fetching it from %s\n", d, failed, err, s.where)
		}
		var rc io.ReadCloser
		if rc, err = s.open(d); err == nil {
			return rc, nil
		}
		failed = s.where
		errs = append(errs, fmt.Errorf("%s: %w", s.where, err))
	}
	return nil, fmt.Errorf("no source serves blob %s: %w", d, errors.Join(errs...))
}
