package cosigntest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ociboot/ociboot/internal/signature"
)

// The helpers below forge what a registry holds of signatures, the ways
// they go wrong: they take references pushed to a test registry on
// 127.0.0.1 (HOST:PORT/REPO:TAG).

// Repo is the repository of ref (HOST:PORT/REPO[:TAG]).
func Repo(ref string) string {
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i]
	}
	return ref
}

// ByDigest is the reference of the manifest d in ref's repository.
func ByDigest(ref string, d v1.Hash) string { return Repo(ref) + "@" + d.String() }

// sigTag is the .sig tag of manifest d in ref's repository.
func sigTag(ref string, d v1.Hash) string {
	return Repo(ref) + ":" + strings.Replace(d.String(), ":", "-", 1) + ".sig"
}

// CopySignature puts the .sig tag of the manifest from (in fromRef's
// repository) under the .sig tag of the manifest to (in toRef's), as is:
// a signature copied from another image.
func CopySignature(t testing.TB, fromRef string, from v1.Hash, toRef string, to v1.Hash) {
	t.Helper()
	desc, err := remote.Get(tag(t, sigTag(fromRef, from)))
	if err != nil {
		t.Fatal(err)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag(t, sigTag(toRef, to)), img); err != nil {
		t.Fatal(err)
	}
}

// FetchBundle returns the Sigstore bundle cosign attached to the manifest
// d in ref's repository (the first referrer).
func FetchBundle(t testing.TB, ref string, d v1.Hash) []byte {
	t.Helper()
	refs, err := remote.Referrers(digest(t, ByDigest(ref, d)))
	if err != nil {
		t.Fatal(err)
	}
	im, err := refs.IndexManifest()
	if err != nil || len(im.Manifests) == 0 {
		t.Fatalf("referrers of %s: %v, %v", ByDigest(ref, d), im, err)
	}
	img, err := remote.Image(digest(t, ByDigest(ref, im.Manifests[0].Digest)))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("bundle layers: %v, %v", layers, err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// AttachBundle attaches data as a Sigstore bundle to the manifest d in
// ref's repository, as cosign 3.x does on a registry without the
// referrers API: an artifact manifest whose subject is the image, listed
// in the referrers tag (which it replaces).
func AttachBundle(t testing.TB, ref string, d v1.Hash, data []byte) {
	t.Helper()
	subject, err := remote.Get(digest(t, ByDigest(ref, d)))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), static.NewLayer(data, signature.BundleType))
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(img, "application/vnd.oci.empty.v1+json")
	img = mutate.Subject(img, subject.Descriptor).(v1.Image)
	ad, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(digest(t, ByDigest(ref, ad)), img); err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	index := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{
		Add: img, Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(raw)), Digest: ad, ArtifactType: signature.BundleType},
	})
	if err := remote.WriteIndex(tag(t, Repo(ref)+":"+strings.Replace(d.String(), ":", "-", 1)), index); err != nil {
		t.Fatal(err)
	}
}

func tag(t testing.TB, s string) name.Tag {
	t.Helper()
	r, err := name.NewTag(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func digest(t testing.TB, s string) name.Digest {
	t.Helper()
	r, err := name.NewDigest(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
