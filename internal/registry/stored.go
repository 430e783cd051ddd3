package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/store"
)

// AddStore serves the images of the ociboot store in dir (what `ociboot
// pull --store` and a boot's cache keep): each image under its
// repository and tag as it was pulled, the registry's host left out
// (registry.lan/ci/job:v1 is served as ci/job:v1), by digest too. An
// image pulled for several platforms is served as an index of them. The
// store is only read: another process may pull into it meanwhile (what
// it adds is served after a reload). It returns what it could not serve
// and why: an image whose blobs the store no longer holds all of (a
// boot's cache keeps unpacked layers, not always their blobs), and a
// name pulled from two registries, of which the latest pull is served.
func (r *Registry) AddStore(dir string) (skipped []string, err error) {
	st, err := store.OpenExisting(dir)
	if err != nil {
		return nil, err
	}
	refs, err := st.Refs()
	if err != nil {
		return nil, err
	}
	// The latest pull first, so that it wins a name.
	slices.SortFunc(refs, func(a, b store.Ref) int { return b.Pulled.Compare(a.Pulled) })
	type key struct{ repo, tag string }
	platforms := map[key][]v1.Descriptor{}
	var order []key
	for _, ref := range refs {
		ir, platform, err := image.ParseRefName(ref.Name)
		if err != nil {
			skipped = append(skipped, err.Error())
			continue
		}
		rp, err := r.repo(ir.Repository)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", ir, err))
			continue
		}
		desc, err := addStored(rp, st, ref.Digest)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s (%s): %v", ir, platform, err))
			continue
		}
		if ir.Digest != "" {
			continue // pulled by digest: served by digest only
		}
		k := key{ir.Repository, ir.Tag}
		if slices.ContainsFunc(platforms[k], func(d v1.Descriptor) bool { return d.Platform.Equals(platform) }) {
			skipped = append(skipped, fmt.Sprintf("%s (%s): a later pull from another registry has the name", ir, platform))
			continue
		}
		if platforms[k] == nil {
			order = append(order, k)
		}
		desc.Platform = &platform
		platforms[k] = append(platforms[k], desc)
	}
	for _, k := range order {
		rp := r.repos[k.repo]
		descs := platforms[k]
		d := descs[0].Digest
		if len(descs) > 1 {
			if d, err = addIndex(rp, descs); err != nil {
				return skipped, fmt.Errorf("store %s: %s:%s: %w", dir, k.repo, k.tag, err)
			}
		}
		if err := rp.tag(k.repo, k.tag, d); err != nil {
			return skipped, fmt.Errorf("store %s: %w", dir, err)
		}
	}
	return skipped, nil
}

// addStored adds the image whose manifest is the stored blob d, and its
// blobs, and returns the manifest's descriptor.
func addStored(rp *repo, st *store.Store, d v1.Hash) (v1.Descriptor, error) {
	raw, err := st.ReadBlob(d)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var m manifestFields
	if err := json.Unmarshal(raw, &m); err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest %s: %w", d, err)
	}
	if m.Config == nil {
		return v1.Descriptor{}, fmt.Errorf("manifest %s: not an image manifest", d)
	}
	for _, b := range append([]v1.Descriptor{*m.Config}, m.Layers...) {
		if !st.Has(b.Digest) {
			return v1.Descriptor{}, fmt.Errorf("the store no longer holds blob %s (only what was unpacked from it)", b.Digest)
		}
	}
	if _, err := rp.addManifest(d, "", raw); err != nil {
		return v1.Descriptor{}, err
	}
	for _, b := range append([]v1.Descriptor{*m.Config}, m.Layers...) {
		rp.blobs[b.Digest] = storeBlob(st, b.Digest)
	}
	return v1.Descriptor{MediaType: rp.manifests[d].mediaType, Digest: d, Size: int64(len(raw))}, nil
}

func storeBlob(st *store.Store, d v1.Hash) blob {
	return func() (io.ReadSeekCloser, error) {
		f, _, err := st.BlobFile(d)
		return f, err
	}
}

// addIndex adds an OCI index of the manifests descs, sorted by platform,
// and returns its digest.
func addIndex(rp *repo, descs []v1.Descriptor) (v1.Hash, error) {
	descs = slices.Clone(descs)
	slices.SortFunc(descs, func(a, b v1.Descriptor) int { return strings.Compare(a.Platform.String(), b.Platform.String()) })
	raw, err := json.Marshal(ociManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: descs})
	if err != nil {
		return v1.Hash{}, err
	}
	d := sha256Hash(raw)
	_, err = rp.addManifest(d, types.OCIImageIndex, raw)
	return d, err
}

// AddImage serves img, an image built in memory (such as one packed from
// a directory by image.FromDir), as name:tag. Its layers are compressed
// and kept in memory here: it is for small images.
func (r *Registry) AddImage(name, tag string, img v1.Image) error {
	fail := func(err error) error { return fmt.Errorf("image %s:%s: %w", name, tag, err) }
	rp, err := r.repo(name)
	if err != nil {
		return fail(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return fail(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return fail(err)
	}
	d := sha256Hash(raw)
	if _, err := rp.addManifest(d, mt, raw); err != nil {
		return fail(err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return fail(err)
	}
	rp.blobs[sha256Hash(cfg)] = memBlob(cfg)
	layers, err := img.Layers()
	if err != nil {
		return fail(err)
	}
	for i, l := range layers {
		data, ld, err := compressed(l)
		if err != nil {
			return fail(fmt.Errorf("layer %d of %d: %w", i+1, len(layers), err))
		}
		rp.blobs[ld] = memBlob(data)
	}
	return rp.tag(name, tag, d)
}

// compressed reads a layer's blob and checks it against the layer's
// digest.
func compressed(l v1.Layer) ([]byte, v1.Hash, error) {
	d, err := l.Digest()
	if err != nil {
		return nil, v1.Hash{}, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, v1.Hash{}, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rc); err != nil {
		return nil, v1.Hash{}, err
	}
	if err := checkDigest(buf.Bytes(), d); err != nil {
		return nil, v1.Hash{}, err
	}
	return buf.Bytes(), d, nil
}
