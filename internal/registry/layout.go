package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxManifest bounds the size of a manifest read from disk, as registries
// bound what they accept (the distribution registry: 4 MiB).
const maxManifest = 4 << 20

// refNameAnnotation names an image in an OCI layout's index.json.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// AddLayout serves the OCI image layout in dir (what `skopeo copy
// oci:DIR:TAG` and `crane push --format oci` write) as repository name:
// every manifest and index its index.json leads to, each image manifest's
// config and layers, and the tags index.json names in its
// org.opencontainers.image.ref.name annotations. With tag set, the
// layout's only image is tagged tag too (a layout of several images is
// then an error). The children of an index the layout does not hold are
// not served (a layout of one platform's image); a blob an image manifest
// needs and the layout lacks is an error, unless its descriptor gives
// URLs (a non-distributable layer).
func (r *Registry) AddLayout(name, tag, dir string) error {
	fail := func(err error) error { return fmt.Errorf("OCI layout %s: %w", dir, err) }
	var marker struct {
		Version string `json:"imageLayoutVersion"`
	}
	if data, err := os.ReadFile(filepath.Join(dir, "oci-layout")); err != nil {
		return fail(fmt.Errorf("not an OCI image layout: %w", err))
	} else if err := json.Unmarshal(data, &marker); err != nil || marker.Version != "1.0.0" {
		return fail(fmt.Errorf("oci-layout: expected imageLayoutVersion 1.0.0"))
	}
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return fail(err)
	}
	var index manifestFields
	if err := json.Unmarshal(data, &index); err != nil {
		return fail(fmt.Errorf("index.json: %w", err))
	}
	rp, err := r.repo(name)
	if err != nil {
		return fail(err)
	}
	l := layout{dir: dir, rp: rp}
	var tops []v1.Hash
	for _, desc := range index.Manifests {
		if err := l.add(desc, true); err != nil {
			return fail(err)
		}
		tops = appendNew(tops, desc.Digest)
		if ref := desc.Annotations[refNameAnnotation]; ref != "" {
			if err := rp.tag(name, tagOfRefName(ref), desc.Digest); err != nil {
				return fail(fmt.Errorf("index.json: %s %q: %w", refNameAnnotation, ref, err))
			}
		}
	}
	if err := rp.tagOnly(name, tag, tops); err != nil {
		return fail(err)
	}
	return nil
}

// tagOfRefName is the tag in an org.opencontainers.image.ref.name: the
// annotation holds a tag ("v1.0") or, as some tools write it, a whole
// reference ("registry.lan/app:v1.0").
func tagOfRefName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndexByte(ref, ':'); i >= 0 && !strings.Contains(ref[i:], "/") {
		return ref[i+1:]
	}
	return ref
}

// tagOnly tags the only image of a source tag, when tag is set; a source
// of no tags and one image gets "latest", as docker names an image given
// without a tag.
func (rp *repo) tagOnly(name, tag string, tops []v1.Hash) error {
	if tag == "" {
		if len(tops) == 1 && len(rp.tags) == 0 {
			return rp.tag(name, "latest", tops[0])
		}
		return nil
	}
	if len(tops) != 1 {
		return fmt.Errorf("tag %q: the source holds %d images, so it cannot name one: leave the tag out and use the source's own", tag, len(tops))
	}
	return rp.tag(name, tag, tops[0])
}

func appendNew(hs []v1.Hash, h v1.Hash) []v1.Hash {
	for _, x := range hs {
		if x == h {
			return hs
		}
	}
	return append(hs, h)
}

type layout struct {
	dir string
	rp  *repo
}

func (l layout) path(d v1.Hash) string {
	return filepath.Join(l.dir, "blobs", d.Algorithm, d.Hex)
}

// add adds the manifest desc names and what it leads to. required says
// that the layout must hold it (index.json names it).
func (l layout) add(desc v1.Descriptor, required bool) error {
	if desc.Digest.Algorithm == "" {
		return errors.New("a manifest descriptor without a digest")
	}
	raw, err := readVerified(l.path(desc.Digest), desc.Digest)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return err
	}
	m, err := l.rp.addManifest(desc.Digest, desc.MediaType, raw)
	if err != nil {
		return err
	}
	for _, child := range m.Manifests {
		if err := l.add(child, false); err != nil {
			return fmt.Errorf("index %s: %w", desc.Digest, err)
		}
	}
	if m.Config != nil {
		if err := l.addBlob(*m.Config); err != nil {
			return fmt.Errorf("manifest %s: config: %w", desc.Digest, err)
		}
	}
	for i, layer := range m.Layers {
		if err := l.addBlob(layer); err != nil {
			return fmt.Errorf("manifest %s: layer %d of %d: %w", desc.Digest, i+1, len(m.Layers), err)
		}
	}
	return nil
}

func (l layout) addBlob(desc v1.Descriptor) error {
	if desc.Digest.Algorithm == "" {
		return errors.New("a blob descriptor without a digest")
	}
	p := l.path(desc.Digest)
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) && len(desc.URLs) > 0 {
		return nil // non-distributable: fetched from its URLs
	}
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if st.Size() != desc.Size {
		return fmt.Errorf("blob %s: %s holds %d bytes, the descriptor says %d", desc.Digest, p, st.Size(), desc.Size)
	}
	l.rp.blobs[desc.Digest] = fileBlob(p)
	return nil
}

// readVerified reads a manifest from path and checks it against d.
func readVerified(path string, d v1.Hash) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	if len(raw) > maxManifest {
		return nil, fmt.Errorf("manifest %s: %s is larger than %d bytes", d, path, maxManifest)
	}
	if err := checkDigest(raw, d); err != nil {
		return nil, fmt.Errorf("manifest %s: %s: %w", d, path, err)
	}
	return raw, nil
}
