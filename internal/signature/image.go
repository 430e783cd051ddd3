package signature

import (
	"errors"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ImageSignature is one signature of an image as its registry holds it:
// a layer of the .sig tag's manifest (Payload and Sig), or a referrer's
// bundle (Bundle).
type ImageSignature struct {
	// Where says where it was found, in messages, such as "the
	// sha256-….sig tag" or "referrer sha256:…".
	Where string `json:"where"`
	// Payload is a simple-signing payload, Sig its base64 signature (the
	// layer's SigAnnotation).
	Payload []byte `json:"payload,omitempty"`
	Sig     string `json:"sig,omitempty"`
	// Bundle is a Sigstore bundle.
	Bundle []byte `json:"bundle,omitempty"`
}

// ErrUnsigned is returned by VerifyImage when there is no signature at
// all.
var ErrUnsigned = errors.New("no signature")

// Verified is a signature that VerifyImage accepted, and its key.
type Verified struct {
	Key       Key
	Signature ImageSignature
}

// VerifyImage checks that one of sigs is a signature of the manifest
// digest d by one of keys, and returns it with its key. When none is,
// the error says why each one failed: not signed by any of the keys,
// signed for another digest, malformed; ErrUnsigned when sigs is empty.
func VerifyImage(d v1.Hash, sigs []ImageSignature, keys []Key) (Verified, error) {
	if len(sigs) == 0 {
		return Verified{}, ErrUnsigned
	}
	var why []string
	for _, s := range sigs {
		var k Key
		var err error
		if s.Bundle != nil {
			k, err = verifyImageBundle(d, s.Bundle, keys)
		} else {
			k, err = verifySimple(d, s.Payload, s.Sig, keys)
		}
		if err == nil {
			return Verified{Key: k, Signature: s}, nil
		}
		why = append(why, fmt.Sprintf("%s: %v", s.Where, err))
	}
	if len(why) == 1 {
		return Verified{}, errors.New(why[0])
	}
	return Verified{}, fmt.Errorf("none of its %d signatures is valid: %s", len(sigs), strings.Join(why, "; "))
}

// verifySimple checks a simple-signing payload and its signature.
func verifySimple(d v1.Hash, payload []byte, sig string, keys []Key) (Key, error) {
	raw, err := decodeSig(sig)
	if err != nil {
		return Key{}, err
	}
	k, err := firstKey(keys, "", func(k Key) error { return k.verify(payload, raw) })
	if err != nil {
		return Key{}, err
	}
	got, err := ParsePayload(payload)
	if err != nil {
		return Key{}, err
	}
	if got != d {
		return Key{}, fmt.Errorf("signed by %s for another manifest, %s (a signature copied from another image?)", k, got)
	}
	return k, nil
}

// verifyImageBundle checks a bundle's DSSE envelope and its in-toto
// statement.
func verifyImageBundle(d v1.Hash, data []byte, keys []Key) (Key, error) {
	b, err := parseBundle(data)
	if err != nil {
		return Key{}, err
	}
	env := b.DSSEEnvelope
	if env == nil {
		return Key{}, fmt.Errorf("bundle holds a blob's signature (messageSignature), not an image's (dsseEnvelope)")
	}
	msg := pae(env.PayloadType, env.Payload)
	k, err := firstKey(keys, b.hint(), func(k Key) error {
		for _, s := range env.Signatures {
			if k.verify(msg, s.Sig) == nil {
				return nil
			}
		}
		return errBadSignature
	})
	if err != nil {
		return Key{}, err
	}
	subjects, err := parseStatement(env.PayloadType, env.Payload)
	if err != nil {
		return Key{}, err
	}
	for _, s := range subjects {
		if s == d {
			return k, nil
		}
	}
	return Key{}, fmt.Errorf("signed by %s for another manifest, %s (a signature copied from another image?)", k, subjects[0])
}

// firstKey returns the first of keys that check accepts; otherwise the
// error names the keys tried and, when the signature names its key
// (hint), that one.
func firstKey(keys []Key, hint string, check func(Key) error) (Key, error) {
	var names []string
	for _, k := range keys {
		err := check(k)
		if err == nil {
			return k, nil
		}
		if !errors.Is(err, errBadSignature) {
			names = append(names, fmt.Sprintf("%s: %v", k, err))
			continue
		}
		names = append(names, k.String())
	}
	if len(keys) == 0 {
		return Key{}, errors.New("no key to check it with")
	}
	by := ""
	if hint != "" {
		by = fmt.Sprintf(" (the bundle names key %.12s)", hint)
	}
	return Key{}, fmt.Errorf("not signed by any of the keys: %s%s", strings.Join(names, ", "), by)
}
