package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/store"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// PullPolicy says when a Pull asks the registry, as podman's --pull does.
type PullPolicy string

// The pull policies. Without a store, always and missing both pull, and
// never is refused.
const (
	// PullAlways asks the registry which manifest the reference stands
	// for, and fetches only the blobs the store lacks; when the registry
	// cannot be reached, the stored copy is used, with a warning. It is
	// boot2container's default, and ociboot's.
	PullAlways PullPolicy = "always"
	// PullMissing uses the stored copy without asking the registry, and
	// pulls only an image the store lacks.
	PullMissing PullPolicy = "missing"
	// PullNever uses only the stored copy.
	PullNever PullPolicy = "never"
)

// ParsePullPolicy reads --pull's value; "" is PullAlways.
func ParsePullPolicy(s string) (PullPolicy, error) {
	switch p := PullPolicy(s); p {
	case "":
		return PullAlways, nil
	case PullAlways, PullMissing, PullNever:
		return p, nil
	}
	return "", fmt.Errorf("got %q, expected always, missing or never", s)
}

// refName is the name under which the store records what r stood for
// on platform.
func refName(r Reference, platform v1.Platform) string {
	return r.String() + " " + platform.String()
}

// ParseRefName reads the name of a store ref back: the reference and the
// platform the image was pulled for.
func ParseRefName(name string) (Reference, v1.Platform, error) {
	ref, platform, ok := strings.Cut(name, " ")
	if !ok {
		return Reference{}, v1.Platform{}, fmt.Errorf("store ref %q: expected REFERENCE PLATFORM", name)
	}
	r, err := ParseReference(ref)
	if err != nil {
		return Reference{}, v1.Platform{}, fmt.Errorf("store ref %q: %w", name, err)
	}
	p, err := v1.ParsePlatform(platform)
	if err != nil {
		return Reference{}, v1.Platform{}, fmt.Errorf("store ref %q: %w", name, err)
	}
	return r, *p, nil
}

// storedImage is an image whose manifest is in the store. Its config and
// layers are read from the store when they are there; otherwise from
// remote, the same image at a registry, and stored on the way (the
// Puller's remoteLayer does that for layers). With remote nil the store
// must hold everything.
type storedImage struct {
	st       *store.Store
	name     string // the reference, for errors
	manifest []byte
	m        *v1.Manifest
	remote   v1.Image
}

// storeImage keeps the manifest of remote, an image at a registry, and
// returns it as a storedImage that fetches from remote what the store
// lacks.
func storeImage(st *store.Store, name string, remote v1.Image) (*storedImage, error) {
	raw, err := remote.RawManifest()
	if err != nil {
		return nil, err
	}
	d, err := remote.Digest()
	if err != nil {
		return nil, err
	}
	if !st.Has(d) {
		if _, err := st.Put(d, int64(len(raw)), bytes.NewReader(raw)); err != nil {
			return nil, err
		}
	}
	return newStoredImage(st, name, raw, remote)
}

// storedCopy returns the image whose manifest is the stored blob d,
// served from the store only; it must hold the config and every layer.
func storedCopy(st *store.Store, name string, d v1.Hash) (*storedImage, error) {
	raw, err := st.ReadBlob(d)
	if err != nil {
		return nil, fmt.Errorf("%s: manifest: %w", name, err)
	}
	img, err := newStoredImage(st, name, raw, nil)
	if err != nil {
		return nil, err
	}
	if missing := img.missing(); missing != "" {
		return nil, fmt.Errorf("%s: the store has its manifest but not its %s", name, missing)
	}
	return img, nil
}

// missing names the first thing the image needs that the store lacks:
// its config, or a layer, neither as a blob nor unpacked; "" when the
// store holds it all.
func (i *storedImage) missing() string {
	if !i.st.Has(i.m.Config.Digest) {
		return "config " + i.m.Config.Digest.String()
	}
	raw, err := i.st.ReadBlob(i.m.Config.Digest)
	if err != nil {
		return "config " + i.m.Config.Digest.String()
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil || len(cf.RootFS.DiffIDs) != len(i.m.Layers) {
		return "config " + i.m.Config.Digest.String() + " (unreadable)"
	}
	for n, l := range i.m.Layers {
		if i.st.Has(l.Digest) {
			continue
		}
		if _, ok := i.st.LayerDir(cf.RootFS.DiffIDs[n]); !ok {
			return fmt.Sprintf("layer %d of %d, %s", n+1, len(i.m.Layers), l.Digest)
		}
	}
	return ""
}

// pendingRef records what a reference stands for once the store holds
// everything its image needs, so that an update cut short never replaces
// a whole stored copy with one that cannot boot.
type pendingRef struct {
	img *storedImage
	ref store.Ref
	mu  sync.Mutex
	set bool
}

// record sets the ref if the store now holds the whole image; it is
// called after each layer is stored.
func (p *pendingRef) record() error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.set || p.img.missing() != "" {
		return nil
	}
	p.set = true
	return p.img.st.SetRef(p.ref)
}

func newStoredImage(st *store.Store, name string, raw []byte, remote v1.Image) (*storedImage, error) {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: manifest: %w", name, err)
	}
	return &storedImage{st: st, name: name, manifest: raw, m: m, remote: remote}, nil
}

// image is i as a v1.Image.
func (i *storedImage) image() (v1.Image, error) { return partial.CompressedToImage(i) }

func (i *storedImage) RawManifest() ([]byte, error) { return i.manifest, nil }

func (i *storedImage) MediaType() (types.MediaType, error) {
	if i.m.MediaType != "" {
		return i.m.MediaType, nil
	}
	return types.OCIManifestSchema1, nil
}

// RawConfigFile reads the config from the store, or fetches and stores
// it.
func (i *storedImage) RawConfigFile() ([]byte, error) {
	d := i.m.Config.Digest
	if i.st.Has(d) {
		raw, err := i.st.ReadBlob(d)
		if err == nil || !errors.Is(err, store.ErrCorrupt) || i.remote == nil {
			return raw, err
		}
		// A damaged config was deleted: fetch it again.
	}
	if i.remote == nil {
		return nil, fmt.Errorf("%s: config %s is not in the store", i.name, d)
	}
	raw, err := i.remote.RawConfigFile()
	if err != nil {
		return nil, err
	}
	if _, err := i.st.Put(d, int64(len(raw)), bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("%s: config: %w", i.name, err)
	}
	return raw, nil
}

// LayerByDigest returns the layer h of the manifest; its blob comes from
// remote (the Puller's remoteLayer reads the store first).
func (i *storedImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, desc := range i.m.Layers {
		if desc.Digest == h {
			return storedLayer{desc: desc, img: i}, nil
		}
	}
	return nil, fmt.Errorf("%s: no layer %s in its manifest", i.name, h)
}

type storedLayer struct {
	desc v1.Descriptor
	img  *storedImage
}

func (l storedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l storedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l storedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

func (l storedLayer) Compressed() (io.ReadCloser, error) {
	if l.img.remote == nil {
		return nil, fmt.Errorf("%s: layer %s is not in the store", l.img.name, l.desc.Digest)
	}
	rl, err := l.img.remote.LayerByDigest(l.desc.Digest)
	if err != nil {
		return nil, err
	}
	return rl.Compressed()
}

// outOfReach says whether err, from a pull, shows that the registry
// could not be reached or could not serve: network errors, DNS, timeouts,
// 5xx, as opposed to an answer (no such image, access denied) or a
// certificate that failed verification, after which a stored copy must
// not stand in.
func outOfReach(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode >= 500 || te.StatusCode == 408 || te.StatusCode == 429
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return true
	}
	_, retry := fetch.Retry{}.Retryable(nil, err)
	return retry
}

// age writes how long ago t was, to the second.
func age(now, t time.Time) string {
	return now.Sub(t).Round(time.Second).String()
}
