package signature_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/signature"
)

// The corpus in testdata was written by the real cosign CLI (gen.sh).
var kinds = []string{"ecdsa", "rsa", "ed25519"}

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func key(t testing.TB, kind string) signature.Key {
	t.Helper()
	k, err := signature.ParseKey(kind+".pub", read(t, kind+".pub"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func corpusDigest(t testing.TB) v1.Hash {
	t.Helper()
	d, err := v1.NewHash(strings.TrimSpace(string(read(t, "image.digest"))))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParseKey(t *testing.T) {
	for kind, alg := range map[string]string{"ecdsa": "ECDSA P-256", "rsa": "RSA 3072", "ed25519": "Ed25519"} {
		k := key(t, kind)
		if k.Algorithm() != alg || !strings.HasPrefix(k.String(), kind+".pub ("+alg+" ") {
			t.Errorf("%s: %s, %s", kind, k.Algorithm(), k)
		}
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	for _, c := range []struct {
		data []byte
		want string
	}{
		{[]byte("hello"), "key k.pub: no PEM block"},
		{pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: []byte{1}}), `a PEM "ENCRYPTED SIGSTORE PRIVATE KEY" block: want a PUBLIC KEY`},
		{pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2}}), "key k.pub: not a PKIX public key"},
		{pemOf(&p384.PublicKey), "ECDSA on P-384: want P-256"},
		{pemOf(&small.PublicKey), "RSA of 1024 bits: want 2048 or more"},
		{append(read(t, "ecdsa.pub"), read(t, "rsa.pub")...), "more than one PEM block"},
	} {
		if _, err := signature.ParseKey("k.pub", c.data); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseKey(%.30q) = %v, want %q", c.data, err, c.want)
		}
	}
}

func TestVerifyImage(t *testing.T) {
	d := corpusDigest(t)
	other := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			k := key(t, kind)
			var wrong []signature.Key
			for _, o := range kinds {
				if o != kind {
					wrong = append(wrong, key(t, o))
				}
			}
			for _, s := range []signature.ImageSignature{
				{Where: "the .sig tag", Payload: read(t, "image."+kind+".payload"), Sig: string(read(t, "image."+kind+".sig"))},
				{Where: "a referrer", Bundle: read(t, "image."+kind+".bundle")},
			} {
				got, err := signature.VerifyImage(d, []signature.ImageSignature{s}, append(wrong, k))
				if err != nil || got.Key.Hint() != k.Hint() || got.Signature.Where != s.Where {
					t.Fatalf("%s: VerifyImage = %v, %v; want %s", s.Where, got, err, k)
				}
				_, err = signature.VerifyImage(d, []signature.ImageSignature{s}, wrong)
				if err == nil || !strings.Contains(err.Error(), s.Where+": not signed by any of the keys: "+wrong[0].String()) {
					t.Errorf("%s, other keys: %v", s.Where, err)
				}
				_, err = signature.VerifyImage(other, []signature.ImageSignature{s}, []signature.Key{k})
				if err == nil || !strings.Contains(err.Error(), "for another manifest, "+d.String()) {
					t.Errorf("%s, other digest: %v", s.Where, err)
				}
			}
		})
	}
	if _, err := signature.VerifyImage(d, nil, []signature.Key{key(t, "ecdsa")}); err != signature.ErrUnsigned {
		t.Errorf("no signatures: %v", err)
	}
	// One bad signature among good ones is passed over; when all are
	// bad, each one says why.
	bad := signature.ImageSignature{Where: "referrer sha256:x", Bundle: read(t, "image.ecdsa.bundle")[:100]}
	good := signature.ImageSignature{Where: "the .sig tag", Payload: read(t, "image.rsa.payload"), Sig: string(read(t, "image.rsa.sig"))}
	if _, err := signature.VerifyImage(d, []signature.ImageSignature{bad, good}, []signature.Key{key(t, "rsa")}); err != nil {
		t.Errorf("bad then good: %v", err)
	}
	_, err := signature.VerifyImage(d, []signature.ImageSignature{bad, good}, []signature.Key{key(t, "ecdsa")})
	if err == nil || !strings.Contains(err.Error(), "none of its 2 signatures is valid: referrer sha256:x: malformed bundle: unexpected end of JSON input; the .sig tag: not signed by any of the keys") {
		t.Errorf("two bad: %v", err)
	}
}

func TestVerifyImageMalformed(t *testing.T) {
	d := corpusDigest(t)
	k := key(t, "ecdsa")
	payload := read(t, "image.ecdsa.payload")
	sig := string(read(t, "image.ecdsa.sig"))
	bundle := string(read(t, "image.ecdsa.bundle"))
	blobBundle := read(t, "blob.ecdsa.bundle")
	for _, c := range []struct {
		name string
		s    signature.ImageSignature
		want string
	}{
		{"sig not base64", signature.ImageSignature{Payload: payload, Sig: "@@"}, "malformed signature: not base64"},
		{"payload changed", signature.ImageSignature{Payload: bytes.Replace(payload, []byte("corpus"), []byte("CORPUS"), 1), Sig: sig}, "not signed by any of the keys"},
		{"truncated bundle", signature.ImageSignature{Bundle: []byte(bundle[:len(bundle)/2])}, "malformed bundle: unexpected end of JSON input"},
		{"other media type", signature.ImageSignature{Bundle: []byte(strings.Replace(bundle, "bundle.v0.3", "bundle.v9", 1))}, `malformed bundle: media type "application/vnd.dev.sigstore.bundle.v9+json"`},
		{"keyless", signature.ImageSignature{Bundle: []byte(strings.Replace(bundle, `"publicKey":{"hint":`, `"certificate":{"rawBytes":`, 1))}, "bundle signed by a certificate (cosign's keyless signing)"},
		{"blob's bundle", signature.ImageSignature{Bundle: blobBundle}, "bundle holds a blob's signature"},
		{"no signatures", signature.ImageSignature{Bundle: []byte(strings.Replace(bundle, `"signatures":[{`, `"signatures":[],"x":[{`, 1))}, "dsseEnvelope has no signatures"},
	} {
		if _, err := signature.VerifyImage(d, []signature.ImageSignature{c.s}, []signature.Key{k}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestBlob(t *testing.T) {
	blob := read(t, "blob")
	for _, kind := range kinds {
		for _, file := range []string{"blob." + kind + ".sig", "blob." + kind + ".bundle"} {
			t.Run(file, func(t *testing.T) {
				s, err := signature.ParseBlobSignature(read(t, file))
				if err != nil {
					t.Fatal(err)
				}
				keys := []signature.Key{key(t, "ecdsa"), key(t, "rsa"), key(t, "ed25519")}
				check := func(data []byte, keys []signature.Key) (signature.Key, error) {
					c := s.NewChecker(keys)
					for chunk := range chunks(data, 1000) {
						c.Write(chunk)
					}
					return c.Check()
				}
				if k, err := check(blob, keys); err != nil || k.Name != kind+".pub" {
					t.Fatalf("Check = %v, %v", k, err)
				}
				tampered := bytes.Clone(blob)
				tampered[len(tampered)/2] ^= 1
				if _, err := check(tampered, keys); err == nil {
					t.Errorf("a tampered blob passed")
				} else if strings.HasSuffix(file, ".bundle") && kind != "ed25519" {
					if !strings.Contains(err.Error(), "the bundle signs a blob of SHA-256") {
						t.Errorf("tampered: %v", err)
					}
				} else if !strings.Contains(err.Error(), "not signed by any of the keys") {
					t.Errorf("tampered: %v", err)
				}
				if _, err := check(blob[:len(blob)-1], keys); err == nil {
					t.Errorf("a truncated blob passed")
				}
				var others []signature.Key
				for _, k := range keys {
					if k.Name != kind+".pub" {
						others = append(others, k)
					}
				}
				if _, err := check(blob, others); err == nil || !strings.Contains(err.Error(), "not signed by any of the keys") {
					t.Errorf("other keys: %v", err)
				}
			})
		}
	}
	for _, c := range []struct {
		data, want string
	}{
		{"", "malformed signature: empty"},
		{"not base64!", "malformed signature: not base64"},
		{`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"`, "malformed bundle: unexpected end of JSON input"},
		{string(read(t, "image.ecdsa.bundle")), "bundle holds an image's signature"},
		{strings.Replace(string(read(t, "blob.ecdsa.bundle")), "SHA2_256", "SHA2_512", 1), "message digest SHA2_512 of 32 bytes, want SHA2_256"},
	} {
		if _, err := signature.ParseBlobSignature([]byte(c.data)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseBlobSignature(%.40q) = %v, want %q", c.data, err, c.want)
		}
	}
}

// TestEd25519Stream holds the streaming Ed25519 check to crypto/ed25519.
func TestEd25519Stream(t *testing.T) {
	for i := range 200 {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, i*37)
		rand.Read(msg)
		sig := ed25519.Sign(priv, msg)
		switch i % 4 {
		case 1:
			sig[i%64] ^= byte(1 << (i % 8))
		case 2:
			if len(msg) > 0 {
				msg[i%len(msg)] ^= 1
			}
		case 3:
			pub2, _, _ := ed25519.GenerateKey(rand.Reader)
			pub = pub2
		}
		want := ed25519.Verify(pub, msg, sig)
		if got := signature.Ed25519Stream(pub, msg, sig); got != want {
			t.Errorf("case %d: streaming check %v, crypto/ed25519 %v", i, got, want)
		}
	}
}

// chunks cuts b into pieces of n bytes.
func chunks(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			m := min(n, len(b))
			if !yield(b[:m]) {
				return
			}
			b = b[m:]
		}
	}
}
