// Package signature checks cosign's signatures with public keys: the
// simple-signing payloads of an image's `sha256-<digest>.sig` tag (cosign
// 2.x), the Sigstore bundles cosign 3.x attaches to an image as OCI
// referrers, and the detached signatures and bundles of `cosign
// sign-blob`, which a blob can be checked against as it streams in.
//
// It is written with the standard library's crypto (and edwards25519 for
// Ed25519 over a stream) rather than with cosign's own packages, which
// bring some 300 modules into a static init; its tests hold it to files
// the real cosign CLI wrote. Only keyed signatures are checked: a bundle
// signed by a certificate (cosign's keyless mode) is refused, and
// transparency-log entries are not required (a key pinned in the
// initramfs is the trust; cosign verify --insecure-ignore-tlog).
package signature

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// Key is a public key signatures are checked with.
type Key struct {
	// Name says where the key came from (a file name), in messages.
	Name string
	pub  crypto.PublicKey
	hint string
}

// ParseKey reads one PEM public key (PKIX, "PUBLIC KEY", as `cosign
// generate-key-pair` and `cosign import-key-pair` write them): ECDSA
// P-256, RSA of 2048 bits or more, or Ed25519. name names it in messages.
func ParseKey(name string, data []byte) (Key, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return Key{}, fmt.Errorf("key %s: no PEM block: want a public key as cosign writes it (-----BEGIN PUBLIC KEY-----)", name)
	}
	if block.Type != "PUBLIC KEY" {
		return Key{}, fmt.Errorf("key %s: a PEM %q block: want a PUBLIC KEY (the .pub file, never the private key)", name, block.Type)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return Key{}, fmt.Errorf("key %s: more than one PEM block: want one public key per file", name)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return Key{}, fmt.Errorf("key %s: not a PKIX public key: %w", name, err)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return Key{}, fmt.Errorf("key %s: ECDSA on %s: want P-256, cosign's curve", name, k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return Key{}, fmt.Errorf("key %s: RSA of %d bits: want 2048 or more", name, k.N.BitLen())
		}
	case ed25519.PublicKey:
	default:
		return Key{}, fmt.Errorf("key %s: a %T: want ECDSA P-256, RSA or Ed25519", name, pub)
	}
	sum := sha256.Sum256(block.Bytes)
	return Key{Name: name, pub: pub, hint: base64.StdEncoding.EncodeToString(sum[:])}, nil
}

// Hint is cosign's name for the key, which bundles carry: the base64
// SHA-256 of its DER encoding.
func (k Key) Hint() string { return k.hint }

// Algorithm names the key's kind: "ECDSA P-256", "RSA 3072", "Ed25519".
func (k Key) Algorithm() string {
	switch p := k.pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA P-256"
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", p.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return "none"
}

// String names the key for messages: its name, kind and the start of
// its hint.
func (k Key) String() string {
	if k.pub == nil {
		return "no key"
	}
	return fmt.Sprintf("%s (%s %s)", k.Name, k.Algorithm(), k.hint[:12])
}

// errBadSignature is a signature that a key does not verify.
var errBadSignature = errors.New("signature does not verify")

// verify checks sig over msg as cosign signs: ECDSA (ASN.1) and RSA
// PKCS #1 v1.5 over msg's SHA-256; Ed25519 over msg itself, or as
// Ed25519ph over its SHA-512 (cosign signs an image's payload so). The
// two Ed25519 forms are kept apart by the algorithm's own domain
// separation: accepting either admits nothing the key did not sign.
func (k Key) verify(msg, sig []byte) error {
	if p, ok := k.pub.(ed25519.PublicKey); ok {
		ph := sha512.Sum512(msg)
		if !ed25519.Verify(p, msg, sig) && !ed25519ph(p, ph, sig) {
			return errBadSignature
		}
		return nil
	}
	sum := sha256.Sum256(msg)
	return k.verifyDigest(sum, sig)
}

// ed25519ph checks an Ed25519ph signature of a message whose SHA-512 is
// sum.
func ed25519ph(pub ed25519.PublicKey, sum [sha512.Size]byte, sig []byte) bool {
	return ed25519.VerifyWithOptions(pub, sum[:], sig, &ed25519.Options{Hash: crypto.SHA512}) == nil
}

// verifyDigest checks sig over a message whose SHA-256 is sum; an
// Ed25519 key, which signs the message itself, cannot.
func (k Key) verifyDigest(sum [sha256.Size]byte, sig []byte) error {
	switch p := k.pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, sum[:], sig) {
			return errBadSignature
		}
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(p, crypto.SHA256, sum[:], sig) != nil {
			return errBadSignature
		}
	default:
		return fmt.Errorf("an %s key signs the message, not its digest", k.Algorithm())
	}
	return nil
}

// PEM is the key as a PEM PUBLIC KEY block, as cosign writes it.
func (k Key) PEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(k.pub)
	if err != nil {
		return nil // ParseKey made k from DER of a kind that marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
