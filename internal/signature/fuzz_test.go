package signature_test

import (
	"testing"

	"github.com/ociboot/ociboot/internal/signature"
)

// FuzzPayload feeds simple-signing payloads to ParsePayload, seeded with
// cosign's.
func FuzzPayload(f *testing.F) {
	for _, kind := range kinds {
		f.Add(read(f, "image."+kind+".payload"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := signature.ParsePayload(data)
		if err == nil && (d.Algorithm != "sha256" || len(d.Hex) != 64) {
			t.Fatalf("ParsePayload = %v", d)
		}
	})
}

// FuzzBundle feeds Sigstore bundles (and detached signatures) to both
// checks, seeded with cosign's: no input may panic, and an image's
// bundle is valid only for the manifest it names.
func FuzzBundle(f *testing.F) {
	for _, kind := range kinds {
		f.Add(read(f, "image."+kind+".bundle"))
		f.Add(read(f, "blob."+kind+".bundle"))
		f.Add(read(f, "blob."+kind+".sig"))
	}
	var keys []signature.Key
	for _, kind := range kinds {
		keys = append(keys, key(f, kind))
	}
	d := corpusDigest(f)
	blob := read(f, "blob")
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := signature.VerifyImage(d, []signature.ImageSignature{{Where: "fuzz", Bundle: data}}, keys); err == nil {
			d2 := d
			d2.Hex = d.Hex[1:] + d.Hex[:1]
			if _, err := signature.VerifyImage(d2, []signature.ImageSignature{{Where: "fuzz", Bundle: data}}, keys); err == nil {
				t.Fatal("a bundle valid for two manifests")
			}
		}
		s, err := signature.ParseBlobSignature(data)
		if err != nil {
			return
		}
		c := s.NewChecker(keys)
		c.Write(blob)
		c.Check()
	})
}
