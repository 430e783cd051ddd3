package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/ociboot/ociboot/internal/signature"
)

// Verification is what a pull checks of an image's cosign signatures
// (PullOptions.Verify).
type Verification struct {
	// Keys are the keys whose signatures count.
	Keys []signature.Key
	// Warn makes an image without a valid signature a warning in the log
	// instead of a refusal.
	Warn bool
	// Policy says where the rule comes from, in messages.
	Policy string
}

// verification is what o checks of r's signatures, nil for nothing.
func (o PullOptions) verification(r Reference) *Verification {
	if o.Verify == nil {
		return nil
	}
	return o.Verify(r.Registry, r.Repository)
}

// Bounds on what an image's signatures may make a pull fetch.
const (
	maxSignatures    = 32
	maxSignatureSize = 1 << 20
)

// ErrRefused wraps the error of a pull refused for its signatures.
var ErrRefused = errors.New("refused")

// verifyAt checks the signatures of the image nref names at its endpoint
// and returns the reference by the digest they sign (the manifest, or
// the index, the tag points to), which is then pulled: nothing can change
// between the check and the use. The signatures are read from the same
// repository: its sha256-HEX.sig tag (cosign 2.x) and its Sigstore bundle
// referrers (cosign 3.x; the referrers tag where the registry has no
// referrers API). Under v.Warn, a missing or invalid signature is a
// warning in the log. The signature that verified is returned too (nil
// under Warn without one), for the store to keep.
func (o PullOptions) verifyAt(r Reference, nref name.Reference, v *Verification, opts []remote.Option) (name.Reference, *keptSignature, error) {
	// One go-containerregistry puller for the check's requests: the
	// registry is pinged, and a token fetched, once rather than per
	// request.
	shared, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, nil, err
	}
	opts = append(slices.Clip(opts), remote.Reuse(shared))
	// A HEAD, which Docker Hub does not count as a pull: the digest it
	// gives is checked when the image is pulled by it.
	desc, err := remote.Head(nref, opts...)
	if err != nil {
		// Some registries answer HEAD badly; a GET says why it fails.
		full, gerr := remote.Get(nref, opts...)
		if gerr != nil {
			return nil, nil, fmt.Errorf("manifest: %w", gerr)
		}
		desc = &full.Descriptor
	}
	d := desc.Digest
	byDigest := nref.Context().Digest(d.String())
	sigs, err := signaturesAt(nref.Context(), d, opts)
	if err == nil {
		var ok signature.Verified
		if ok, err = signature.VerifyImage(d, sigs, v.Keys); err == nil {
			if o.Log != nil {
				fmt.Fprintf(o.Log, "verified %s %s: signed by %s\n", r, d, ok.Key)
			}
			kept := &keptSignature{Signed: d, Signature: ok.Signature}
			if o.Store != nil && desc.MediaType.IsIndex() {
				// The store keeps the index, which leads from the signed
				// digest to the platform's manifest it holds.
				full, err := remote.Get(byDigest, opts...)
				if err != nil {
					return nil, nil, fmt.Errorf("index %s: %w", d, err)
				}
				kept.Index = full.Manifest
			}
			return byDigest, kept, nil
		}
		if errors.Is(err, signature.ErrUnsigned) {
			err = fmt.Errorf("no signature: neither a %s.sig tag nor a Sigstore bundle referrer", strings.Replace(d.String(), ":", "-", 1))
		}
	} else {
		err = fmt.Errorf("its signatures cannot be read: %w", err)
	}
	if v.Warn {
		if o.Log != nil {
			fmt.Fprintf(o.Log, "WARNING: %s %s is not verified (the %s): %v; using it all the same\n", r, d, v.Policy, err)
		}
		return byDigest, nil, nil
	}
	return nil, nil, fmt.Errorf("%w by the %s: manifest %s: %w", ErrRefused, v.Policy, d, err)
}

// signaturesAt fetches the signatures of manifest d in repo.
func signaturesAt(repo name.Repository, d v1.Hash, opts []remote.Option) ([]signature.ImageSignature, error) {
	var sigs []signature.ImageSignature
	tag := repo.Tag(strings.Replace(d.String(), ":", "-", 1) + ".sig")
	m, err := signatureManifest(tag, opts)
	if err != nil {
		return nil, err
	}
	if m != nil {
		for _, l := range m.Layers {
			if l.MediaType != signature.SimpleSigningType {
				continue
			}
			payload, err := signatureBlob(repo, l, opts)
			if err != nil {
				return nil, fmt.Errorf("the %s tag: %w", tag.TagStr(), err)
			}
			sigs = append(sigs, signature.ImageSignature{Where: "the " + tag.TagStr() + " tag", Payload: payload, Sig: l.Annotations[signature.SigAnnotation]})
		}
	}
	idx, err := remote.Referrers(repo.Digest(d.String()), append(opts, remote.WithFilter("artifactType", signature.BundleType))...)
	if err != nil {
		return nil, fmt.Errorf("referrers: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("referrers: %w", err)
	}
	if len(im.Manifests) > maxSignatures {
		return nil, fmt.Errorf("%d signature referrers, more than the %d ociboot checks", len(im.Manifests), maxSignatures)
	}
	for _, desc := range im.Manifests {
		if desc.ArtifactType != signature.BundleType {
			continue
		}
		where := "referrer " + desc.Digest.String()
		m, err := signatureManifest(repo.Digest(desc.Digest.String()), opts)
		if err == nil && m == nil {
			err = errors.New("listed, but not found")
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		for _, l := range m.Layers {
			if l.MediaType != signature.BundleType {
				continue
			}
			b, err := signatureBlob(repo, l, opts)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			sigs = append(sigs, signature.ImageSignature{Where: where, Bundle: b})
		}
	}
	if len(sigs) > maxSignatures {
		return nil, fmt.Errorf("%d signatures, more than the %d ociboot checks", len(sigs), maxSignatures)
	}
	return sigs, nil
}

// signatureManifest fetches the manifest ref names, nil if there is none.
func signatureManifest(ref name.Reference, opts []remote.Option) (*v1.Manifest, error) {
	desc, err := remote.Get(ref, opts...)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(desc.Manifest) > maxSignatureSize {
		return nil, fmt.Errorf("a manifest of %d bytes", len(desc.Manifest))
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if len(m.Layers) > maxSignatures {
		return nil, fmt.Errorf("%d layers, more than the %d signatures ociboot checks", len(m.Layers), maxSignatures)
	}
	return m, nil
}

// signatureBlob fetches a payload or bundle, checked against its digest.
func signatureBlob(repo name.Repository, l v1.Descriptor, opts []remote.Option) ([]byte, error) {
	if l.Size > maxSignatureSize {
		return nil, fmt.Errorf("layer %s: %d bytes, more than a signature's %d", l.Digest, l.Size, maxSignatureSize)
	}
	layer, err := remote.Layer(repo.Digest(l.Digest.String()), opts...)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSignatureSize+1))
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	if int64(len(b)) != l.Size {
		return nil, fmt.Errorf("layer %s: %d bytes, its descriptor says %d", l.Digest, len(b), l.Size)
	}
	return b, nil
}
