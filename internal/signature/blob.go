package signature

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"

	"filippo.io/edwards25519"
)

// BlobSignature is a blob's detached signature as `cosign sign-blob`
// writes it.
type BlobSignature struct {
	sig []byte
	// digest is the SHA-256 a bundle says the blob has (nil: none, as in
	// a detached signature or an Ed25519 bundle).
	digest []byte
	hint   string
}

// ParseBlobSignature reads a blob's signature: the base64 file of
// `cosign sign-blob --output-signature` (URL.sig), or the Sigstore bundle
// of `--bundle`.
func ParseBlobSignature(data []byte) (*BlobSignature, error) {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		b, err := parseBundle(data)
		if err != nil {
			return nil, err
		}
		ms := b.MessageSignature
		if ms == nil {
			return nil, fmt.Errorf("bundle holds an image's signature (dsseEnvelope), not a blob's (messageSignature)")
		}
		s := &BlobSignature{sig: ms.Signature, hint: b.hint()}
		if md := ms.MessageDigest; md != nil && (md.Algorithm != "" || md.Digest != nil) {
			if md.Algorithm != "SHA2_256" || len(md.Digest) != sha256.Size {
				return nil, fmt.Errorf("malformed bundle: message digest %s of %d bytes, want SHA2_256 of %d", md.Algorithm, len(md.Digest), sha256.Size)
			}
			s.digest = md.Digest
		}
		return s, nil
	}
	sig, err := decodeSig(string(data))
	if err != nil {
		return nil, err
	}
	return &BlobSignature{sig: sig}, nil
}

// Checker checks a blob against its signature as the blob is written to
// it, in one pass, whatever its size.
type Checker struct {
	sig  *BlobSignature
	keys []Key
	sha  hash.Hash
	// ed holds, by Ed25519 key's hint, the SHA-512 of R, the key and the
	// blob, which Ed25519 signs; ph the blob's SHA-512, which Ed25519ph
	// signs (nil without Ed25519 keys).
	ed map[string]hash.Hash
	ph hash.Hash
}

// NewChecker returns a Checker of s with keys.
func (s *BlobSignature) NewChecker(keys []Key) *Checker {
	c := &Checker{sig: s, keys: keys, sha: sha256.New(), ed: map[string]hash.Hash{}}
	for _, k := range keys {
		p, ok := k.pub.(ed25519.PublicKey)
		if ok && c.ph == nil {
			c.ph = sha512.New()
		}
		if ok && len(s.sig) == ed25519.SignatureSize {
			h := sha512.New()
			h.Write(s.sig[:32])
			h.Write(p)
			c.ed[k.hint] = h
		}
	}
	return c
}

// Write hashes p; it never fails.
func (c *Checker) Write(p []byte) (int, error) {
	c.sha.Write(p)
	if c.ph != nil {
		c.ph.Write(p)
	}
	for _, h := range c.ed {
		if h != nil {
			h.Write(p)
		}
	}
	return len(p), nil
}

// Check tells whether what was written is the blob the signature signs,
// by one of the keys, and returns that key.
func (c *Checker) Check() (Key, error) {
	var sum [sha256.Size]byte
	c.sha.Sum(sum[:0])
	if c.sig.digest != nil && !bytes.Equal(c.sig.digest, sum[:]) {
		return Key{}, fmt.Errorf("the bundle signs a blob of SHA-256 %x, not this one (%x)", c.sig.digest, sum)
	}
	return firstKey(c.keys, c.sig.hint, func(k Key) error {
		if p, ok := k.pub.(ed25519.PublicKey); ok {
			var ph [sha512.Size]byte
			c.ph.Sum(ph[:0])
			if h := c.ed[k.hint]; (h == nil || !ed25519Check(p, h, c.sig.sig)) && !ed25519ph(p, ph, c.sig.sig) {
				return errBadSignature
			}
			return nil
		}
		return k.verifyDigest(sum, c.sig.sig)
	})
}

// ed25519Check finishes an Ed25519 verification (RFC 8032, as
// crypto/ed25519.Verify does it) whose hash of R, A and the message h
// has been computed as the message streamed by.
func ed25519Check(pub ed25519.PublicKey, h hash.Hash, sig []byte) bool {
	if len(sig) != ed25519.SignatureSize || sig[63]&224 != 0 {
		return false
	}
	A, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return false
	}
	k, err := new(edwards25519.Scalar).SetUniformBytes(h.Sum(nil))
	if err != nil {
		return false
	}
	S, err := new(edwards25519.Scalar).SetCanonicalBytes(sig[32:])
	if err != nil {
		return false
	}
	minusA := new(edwards25519.Point).Negate(A)
	R := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(k, minusA, S)
	return bytes.Equal(sig[:32], R.Bytes())
}
