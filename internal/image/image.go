// Package image pulls container images from OCI registries and unpacks
// them into a directory tree: Pull resolves a reference to an image for
// the wanted platform, Unpack streams its layers bottom-up through
// ApplyLayer, which applies one layer tar with the OCI whiteout rules and
// never touches anything outside the target directory. FromDir builds a
// one-layer image from a directory, to seed a registry.
package image

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PullOptions tune Pull. The zero value pulls over HTTPS for linux on the
// architecture ociboot was built for.
type PullOptions struct {
	// Insecure lists registries, as HOST or HOST:PORT exactly as they
	// appear in references, that are reached over plain HTTP.
	Insecure []string
	// Platform selects the image of a multi-platform index and is
	// checked against a single image's config; an empty OS means linux,
	// an empty Architecture runtime.GOARCH.
	Platform v1.Platform
	// Log receives one line per pulled image; nil discards it.
	Log io.Writer
}

// Network limits of a pull. A connection that cannot be set up or a
// registry that does not answer fails the request; transient failures
// (resets, 5xx, 429) are retried a few times with backoff.
const (
	dialTimeout           = 10 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 30 * time.Second
)

var retryBackoff = remote.Backoff{Duration: 500 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 3}

// Pull resolves ref (optionally prefixed with "docker://") to the image
// for o.Platform and returns it; an image whose config names another
// platform is an error. Only the manifest and config are fetched here; layers are fetched by Unpack, under the same ctx, so ctx must stay
// live until Unpack is done.
func Pull(ctx context.Context, ref string, o PullOptions) (v1.Image, error) {
	s := strings.TrimPrefix(ref, "docker://")
	r, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("pull %q: invalid image reference: %w", ref, err)
	}
	registry := r.Context().RegistryStr()
	if slices.Contains(o.Insecure, registry) {
		if r, err = name.ParseReference(s, name.Insecure); err != nil {
			return nil, fmt.Errorf("pull %q: invalid image reference: %w", ref, err)
		}
	}
	platform := o.Platform
	if platform.OS == "" {
		platform.OS = "linux"
	}
	if platform.Architecture == "" {
		platform.Architecture = runtime.GOARCH
	}
	img, err := remote.Image(r,
		remote.WithContext(ctx),
		remote.WithPlatform(platform),
		remote.WithTransport(newTransport()),
		remote.WithRetryBackoff(retryBackoff),
		remote.WithUserAgent("ociboot"),
	)
	if err != nil {
		return nil, fmt.Errorf("pull %s (%s) from registry %s: %w", r.Name(), platform.String(), registry, err)
	}
	// An index was resolved by platform; a plain manifest was not: check
	// its config so that a wrong image fails here, not at exec time.
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("pull %s from registry %s: image config: %w", r.Name(), registry, err)
	}
	if (cf.OS != "" && cf.OS != platform.OS) || (cf.Architecture != "" && cf.Architecture != platform.Architecture) {
		return nil, fmt.Errorf("pull %s: image is for %s/%s, want %s", r.Name(), cf.OS, cf.Architecture, platform.String())
	}
	if o.Log != nil {
		d, err := img.Digest()
		if err != nil {
			return nil, fmt.Errorf("pull %s: manifest digest: %w", r.Name(), err)
		}
		fmt.Fprintf(o.Log, "pulled %s %s (%s/%s)\n", r.Name(), d, cf.OS, cf.Architecture)
	}
	return img, nil
}

// newTransport returns an HTTP transport with bounded connection set-up
// and response-header waits (the body of a big layer may take longer).
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
}
