package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/signature"
	"github.com/ociboot/ociboot/internal/store"
)

// keptSignature is what the store keeps of an image's verification, so
// that its stored copy can be checked again without the registry, with
// the keys of the day: the signature that verified, the digest it signs,
// and, when that is an index, the index, which leads to the platform's
// manifest the store holds.
type keptSignature struct {
	Signed    v1.Hash                  `json:"signed"`
	Index     []byte                   `json:"index,omitempty"`
	Signature signature.ImageSignature `json:"signature"`
}

// keep writes k into the store as a blob, and returns its digest.
func (k *keptSignature) keep(st *store.Store) (v1.Hash, error) {
	data, err := json.Marshal(k)
	if err != nil {
		return v1.Hash{}, err
	}
	d, size, err := v1.SHA256(bytes.NewReader(data))
	if err != nil {
		return v1.Hash{}, err
	}
	if _, err := st.Put(d, size, bytes.NewReader(data)); err != nil {
		return v1.Hash{}, fmt.Errorf("keeping its signature: %w", err)
	}
	return d, nil
}

// verifyStored checks the stored copy of r for platform with v, from the
// signature kept with it: the signature, with v's keys, then that what
// it signs leads to the stored manifest. It says which key signed.
func (o PullOptions) verifyStored(r Reference, platform v1.Platform, v *Verification) (signature.Key, error) {
	rec, err := o.Store.Ref(refName(r, platform))
	if err != nil {
		return signature.Key{}, err
	}
	if rec.Signature == (v1.Hash{}) {
		return signature.Key{}, errors.New("no signature was kept with it (it was pulled unverified)")
	}
	raw, err := o.Store.ReadBlob(rec.Signature)
	if err != nil {
		return signature.Key{}, fmt.Errorf("its kept signature: %w", err)
	}
	var k keptSignature
	if err := json.Unmarshal(raw, &k); err != nil {
		return signature.Key{}, fmt.Errorf("its kept signature %s: %w", rec.Signature, err)
	}
	k.Signature.Where = "its kept signature (" + k.Signature.Where + ")"
	ok, err := signature.VerifyImage(k.Signed, []signature.ImageSignature{k.Signature}, v.Keys)
	if err != nil {
		return signature.Key{}, err
	}
	if k.Signed == rec.Digest {
		return ok.Key, nil
	}
	if h, _, err := v1.SHA256(bytes.NewReader(k.Index)); k.Index == nil || err != nil || h != k.Signed {
		return signature.Key{}, fmt.Errorf("its kept signature signs %s, which is not the stored manifest %s", k.Signed, rec.Digest)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(k.Index))
	if err != nil {
		return signature.Key{}, fmt.Errorf("the index of its kept signature: %w", err)
	}
	for _, m := range idx.Manifests {
		if m.Digest == rec.Digest {
			return ok.Key, nil
		}
	}
	return signature.Key{}, fmt.Errorf("the index %s its kept signature signs does not hold the stored manifest %s", k.Signed, rec.Digest)
}
