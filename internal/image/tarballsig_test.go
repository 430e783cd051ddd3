package image_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/cosigntest"
	"github.com/ociboot/ociboot/internal/hosttest"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/signature"
)

// TestUnpackTarballSignature signs a rootfs tarball with the real cosign
// (sign-blob, ECDSA, RSA and Ed25519 keys, detached signatures and
// bundles) and holds the unpack's verdict on each case to cosign
// verify-blob's: signed tarballs are unpacked, a tampered one, a
// truncated bundle, another key's signature and a missing signature are
// refused, naming the file and the reason; under warn they are unpacked
// with a warning.
func TestUnpackTarballSignature(t *testing.T) {
	cosign := cosigntest.New(t)
	dir := t.TempDir()
	pair := map[string]cosigntest.KeyPair{"ecdsa": cosign.GenerateKeyPair(t, dir, "ecdsa")}
	for _, kind := range []string{"rsa", "ed25519"} {
		pem := filepath.Join(dir, kind+".pem")
		alg := map[string][]string{"rsa": {"-algorithm", "rsa", "-pkeyopt", "rsa_keygen_bits:3072"}, "ed25519": {"-algorithm", "ed25519"}}[kind]
		hosttest.Run(t, "openssl", append(append([]string{"genpkey", "-quiet"}, alg...), "-out", pem)...)
		pair[kind] = cosign.ImportKeyPair(t, pem, dir, kind)
	}
	other := cosign.GenerateKeyPair(t, dir, "other")
	// A plain tar: a byte changed in a file's contents is seen by
	// nothing but the signature (a compressor's checksum would see it
	// first).
	rootfs := tarballFiles(t, tarballTree(t))["tar"]
	file := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(file, rootfs, 0o644); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(rootfs, []byte("ID=ocibootest"), []byte("ID=ocibooTest"), 1)
	if bytes.Equal(tampered, rootfs) {
		t.Fatal("nothing to tamper with")
	}
	sign := func(k cosigntest.KeyPair, f cosigntest.Format) []byte {
		out := filepath.Join(t.TempDir(), "sig")
		cosign.SignBlob(t, file, k, f, out)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	served := map[string][]byte{}
	put := func(name string, tarball, sig []byte, sigName string) string {
		served["/"+name] = tarball
		if sig != nil {
			served["/"+name+sigName] = sig
		}
		return "/" + name
	}
	var keys []signature.Key
	for _, kind := range []string{"ecdsa", "rsa", "ed25519"} {
		keys = append(keys, parseKey(t, pair[kind].Pub))
	}
	bundle := sign(pair["ecdsa"], cosigntest.Bundle)
	type tcase struct {
		name, path string
		pub        string            // the key cosign verify-blob is given
		format     cosigntest.Format // how cosign verify-blob reads the signature
		want       string            // "" when it is verified, else the reason
		// cosignRefuses is why cosign verify-blob refuses what ociboot
		// verifies: cosign 3.1.3 refuses its own Ed25519 bundles, whose
		// messageDigest is empty (Ed25519 signs the blob itself, not a
		// digest); the signature is valid, and ociboot checks it.
		cosignRefuses string
	}
	cases := []tcase{
		{"ECDSA, detached", put("ecdsa-sig.tar", rootfs, sign(pair["ecdsa"], cosigntest.SigTag), ".sig"), pair["ecdsa"].Pub, cosigntest.SigTag, "", ""},
		{"ECDSA, bundle", put("ecdsa-bundle.tar", rootfs, bundle, ".sigstore.json"), pair["ecdsa"].Pub, cosigntest.Bundle, "", ""},
		{"RSA, bundle as .sig", put("rsa.tar", rootfs, sign(pair["rsa"], cosigntest.Bundle), ".sig"), pair["rsa"].Pub, cosigntest.Bundle, "", ""},
		{"Ed25519, detached", put("ed-sig.tar", rootfs, sign(pair["ed25519"], cosigntest.SigTag), ".sig"), pair["ed25519"].Pub, cosigntest.SigTag, "", ""},
		{"Ed25519, bundle", put("ed-bundle.tar", rootfs, sign(pair["ed25519"], cosigntest.Bundle), ".sigstore.json"), pair["ed25519"].Pub, cosigntest.Bundle, "", "message is missing artifact digest"},
		{"tampered, detached", put("tampered-sig.tar", tampered, sign(pair["ecdsa"], cosigntest.SigTag), ".sig"), pair["ecdsa"].Pub, cosigntest.SigTag, "not signed by any of the keys", ""},
		{"tampered, bundle", put("tampered-bundle.tar", tampered, bundle, ".sigstore.json"), pair["ecdsa"].Pub, cosigntest.Bundle, "the bundle signs a blob of SHA-256", ""},
		{"tampered, Ed25519", put("tampered-ed.tar", tampered, sign(pair["ed25519"], cosigntest.Bundle), ".sigstore.json"), pair["ed25519"].Pub, cosigntest.Bundle, "not signed by any of the keys", ""},
		{"another key", put("other.tar", rootfs, sign(other, cosigntest.Bundle), ".sigstore.json"), pair["ecdsa"].Pub, cosigntest.Bundle, "not signed by any of the keys: ecdsa.pub", ""},
		{"truncated bundle", put("truncated.tar", rootfs, bundle[:len(bundle)/2], ".sigstore.json"), pair["ecdsa"].Pub, cosigntest.Bundle, "malformed bundle: unexpected end of JSON input", ""},
		{"unsigned", put("unsigned.tar", rootfs, nil, ""), pair["ecdsa"].Pub, cosigntest.Bundle, "no signature: neither ", ""},
	}
	srv, _ := tarballServer(t, tarballServe(served))
	ctx := tarballContext(t, 5*time.Minute)
	require := &image.Verification{Keys: keys, Policy: "policy default: require (ecdsa.pub, ed25519.pub, rsa.pub)"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// cosign's verdict, on the same files.
			local := filepath.Join(t.TempDir(), "rootfs.tar")
			if err := os.WriteFile(local, served[c.path], 0o644); err != nil {
				t.Fatal(err)
			}
			sig := served[c.path+".sig"]
			if sig == nil {
				sig = served[c.path+".sigstore.json"]
			}
			cosignOK, cosignOut := false, ""
			if sig != nil {
				if err := os.WriteFile(local+".sig", sig, 0o644); err != nil {
					t.Fatal(err)
				}
				cosignOK, cosignOut = cosign.VerifyBlob(local, local+".sig", c.pub, c.format)
			}
			var log bytes.Buffer
			root := t.TempDir()
			err := image.UnpackTarball(ctx, srv.URL+c.path, root, image.TarballOptions{Log: &log, Verify: require})
			switch {
			case c.cosignRefuses != "":
				if cosignOK || !strings.Contains(cosignOut, c.cosignRefuses) {
					t.Errorf("cosign verify-blob no longer refuses with %q: %v\n%s", c.cosignRefuses, cosignOK, cosignOut)
				}
			case (err == nil) != cosignOK:
				t.Errorf("ociboot says %v, cosign verify-blob says %v:\n%s", err, cosignOK, cosignOut)
			}
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(log.String(), "rootfs tarball "+srv.URL+c.path+": signed by ") {
					t.Errorf("log:\n%s", log.String())
				}
				if _, err := os.Stat(filepath.Join(root, "etc/os-release")); err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil || !errors.Is(err, image.ErrRefused) || !strings.Contains(err.Error(), c.want) ||
				!strings.Contains(err.Error(), "refused by the policy default: require") || !strings.Contains(err.Error(), srv.URL+c.path) {
				t.Errorf("UnpackTarball: %v, want a refusal for %q", err, c.want)
			}
			if strings.HasPrefix(c.name, "tampered") && !strings.Contains(err.Error(), "the root in "+root+" must not be used") {
				t.Errorf("a tampered tarball's refusal does not say the root must go: %v", err)
			}
			// The host's check says the same, without unpacking.
			if verr := image.VerifyTarball(ctx, srv.URL+c.path, image.TarballOptions{Verify: require}); verr == nil || !strings.Contains(verr.Error(), c.want) {
				t.Errorf("VerifyTarball: %v, want %q", verr, c.want)
			}
		})
	}

	t.Run("file and warn", func(t *testing.T) {
		var log bytes.Buffer
		if err := image.VerifyTarball(ctx, "file://"+file, image.TarballOptions{Log: &log, Verify: require}); err == nil || !strings.Contains(err.Error(), "no signature: neither file://"+file+".sig nor file://"+file+".sigstore.json") {
			t.Errorf("file, unsigned: %v", err)
		}
		if err := os.WriteFile(file+".sig", sign(pair["rsa"], cosigntest.SigTag), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := image.VerifyTarball(ctx, "file://"+file+"#sha256="+tarballSHA256(rootfs), image.TarballOptions{Log: &log, Verify: require}); err != nil ||
			!strings.Contains(log.String(), "signed by rsa.pub (RSA 3072 ") || !strings.Contains(log.String(), "sha256:"+tarballSHA256(rootfs)+" verified") {
			t.Errorf("file, signed: %v\n%s", err, log.String())
		}
		warn := &image.Verification{Keys: keys, Warn: true, Policy: "policy scope " + srv.URL + "/: warn (ecdsa.pub)"}
		log.Reset()
		if err := image.UnpackTarball(ctx, srv.URL+"/tampered-sig.tar", t.TempDir(), image.TarballOptions{Log: &log, Verify: warn}); err != nil {
			t.Fatal(err)
		}
		if want := "WARNING: rootfs tarball " + srv.URL + "/tampered-sig.tar is not verified (the " + warn.Policy + "): " + srv.URL + "/tampered-sig.tar.sig: not signed by any of the keys"; !strings.Contains(log.String(), want) {
			t.Errorf("warn: log lacks %q:\n%s", want, log.String())
		}
	})
}
