// Package cosigntest runs the real cosign CLI in tests (the version
// scripts/install-deps.sh installs): key pairs, image and blob
// signatures in both of its formats, and its own verdict to hold
// ociboot's to. It never reaches beyond 127.0.0.1: no transparency log,
// no TUF, no signing config, and every request to another address goes
// to a proxy that does not exist (Go sends loopback requests direct).
package cosigntest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/hosttest"
)

// CLI is cosign, run with a home and a TUF root of the test's own.
type CLI struct {
	path string
	home string
}

// New finds cosign, failing the test when it is missing.
func New(t testing.TB) *CLI {
	t.Helper()
	return &CLI{path: hosttest.Path(t, "cosign"), home: t.TempDir()}
}

// run runs cosign with args and returns its output; ok says whether it
// succeeded.
func (c *CLI) run(args ...string) (string, bool) {
	cmd := exec.Command(c.path, args...)
	cmd.Env = append(os.Environ(),
		"HOME="+c.home, "TUF_ROOT="+filepath.Join(c.home, "tuf"), "COSIGN_PASSWORD=", "COSIGN_YES=true",
		"HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "NO_PROXY=", "https_proxy=", "http_proxy=", "no_proxy=")
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// must runs cosign and fails the test if it fails.
func (c *CLI) must(t testing.TB, args ...string) string {
	t.Helper()
	out, ok := c.run(args...)
	if !ok {
		t.Fatalf("cosign %s:\n%s", strings.Join(args, " "), out)
	}
	return out
}

// KeyPair is a private key file and its public key file.
type KeyPair struct{ Key, Pub string }

// GenerateKeyPair makes an ECDSA P-256 key pair in dir as prefix.key and
// prefix.pub (cosign generate-key-pair).
func (c *CLI) GenerateKeyPair(t testing.TB, dir, prefix string) KeyPair {
	t.Helper()
	p := filepath.Join(dir, prefix)
	c.must(t, "generate-key-pair", "--output-key-prefix", p)
	return KeyPair{Key: p + ".key", Pub: p + ".pub"}
}

// ImportKeyPair imports a PEM private key (PKCS #8: RSA, ECDSA or
// Ed25519, as openssl genpkey writes them) as prefix.key and prefix.pub
// in dir (cosign import-key-pair).
func (c *CLI) ImportKeyPair(t testing.TB, pem, dir, prefix string) KeyPair {
	t.Helper()
	p := filepath.Join(dir, prefix)
	c.must(t, "import-key-pair", "--key", pem, "--output-key-prefix", p)
	return KeyPair{Key: p + ".key", Pub: p + ".pub"}
}

// Format is one of cosign's two ways of storing an image's signature.
type Format int

const (
	// SigTag is cosign 2.x's: a simple-signing payload in the
	// sha256-HEX.sig tag.
	SigTag Format = iota
	// Bundle is cosign 3.x's default: a Sigstore bundle attached as an
	// OCI referrer (through the referrers tag where the registry has no
	// referrers API).
	Bundle
)

func (f Format) String() string {
	if f == SigTag {
		return "sig-tag"
	}
	return "bundle"
}

// flag is the --new-bundle-format flag of f.
func (f Format) flag() string {
	if f == SigTag {
		return "--new-bundle-format=false"
	}
	return "--new-bundle-format=true"
}

// offline are the flags that keep signing to the key and the registry.
var offline = []string{"--tlog-upload=false", "--use-signing-config=false"}

// Sign signs the image ref (by digest: REGISTRY/REPO@sha256:HEX) with k
// in format f, pushing the signature to ref's repository.
func (c *CLI) Sign(t testing.TB, ref string, k KeyPair, f Format) {
	t.Helper()
	c.must(t, append(append([]string{"sign", "--key", k.Key, f.flag()}, offline...), ref)...)
}

// SignBlob signs file with k, writing a detached signature (SigTag: the
// base64 file of --output-signature) or a bundle to out.
func (c *CLI) SignBlob(t testing.TB, file string, k KeyPair, f Format, out string) {
	t.Helper()
	args := append([]string{"sign-blob", "--key", k.Key, f.flag()}, offline...)
	if f == SigTag {
		args = append(args, "--output-signature", out)
	} else {
		args = append(args, "--bundle", out)
	}
	c.must(t, append(args, file)...)
}

// Verify is cosign verify's verdict on ref's signatures in format f by
// the public key pub, and its output.
func (c *CLI) Verify(ref, pub string, f Format) (bool, string) {
	out, ok := c.run("verify", "--key", pub, "--insecure-ignore-tlog=true", f.flag(), ref)
	return ok, out
}

// VerifyBlob is cosign verify-blob's verdict on file's signature (SigTag:
// a detached signature file; Bundle: a bundle) by pub.
func (c *CLI) VerifyBlob(file, sig, pub string, f Format) (bool, string) {
	args := []string{"verify-blob", "--key", pub, "--insecure-ignore-tlog=true", f.flag()}
	if f == SigTag {
		args = append(args, "--signature", sig)
	} else {
		args = append(args, "--bundle", sig)
	}
	out, ok := c.run(append(args, file)...)
	return ok, out
}
