package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/ociboot/ociboot/internal/cosigntest"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/vm"
)

// verifyTests registers the signature subtests of TestBoot: an initramfs
// built with --verify-key and --verify-policy boots the images and the
// rootfs tarballs the real cosign signed, and refuses the others, each
// with its reason on the console.
func (f *fixture) verifyTests(t *testing.T) {
	cosign := cosigntest.New(t)
	dir := t.TempDir()
	release := cosign.GenerateKeyPair(t, dir, "release")
	other := cosign.GenerateKeyPair(t, dir, "other")
	push := func(repo string) (string, v1.Hash) {
		img := registrytest.BusyboxImage(t, registrytest.LayerFromFiles(t, map[string]string{"/marker": repo + "\n"}))
		ref := registrytest.Push(t, f.reg, repo+":1", img)
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return ref, d
	}
	bundled, bundledD := push("e2e/verify/bundle")
	cosign.Sign(t, cosigntest.ByDigest(bundled, bundledD), release, cosigntest.Bundle)
	legacy, legacyD := push("e2e/verify/legacy")
	cosign.Sign(t, cosigntest.ByDigest(legacy, legacyD), release, cosigntest.SigTag)
	scratch, _ := push("e2e/scratch/unsigned")
	unsigned, _ := push("e2e/verify/unsigned")
	otherKey, otherKeyD := push("e2e/verify/other-key")
	cosign.Sign(t, cosigntest.ByDigest(otherKey, otherKeyD), other, cosigntest.Bundle)
	copied, copiedD := push("e2e/verify/copied")
	cosigntest.CopySignature(t, legacy, legacyD, copied, copiedD)
	moved, movedD := push("e2e/verify/moved")
	cosign.Sign(t, cosigntest.ByDigest(moved, movedD), release, cosigntest.Bundle)
	registrytest.Push(t, f.reg, "e2e/verify/moved:1", registrytest.BusyboxImage(t, registrytest.LayerFromFiles(t, map[string]string{"/marker": "moved\n"})))
	truncated, truncatedD := push("e2e/verify/truncated")
	bundle := cosigntest.FetchBundle(t, bundled, bundledD)
	cosigntest.AttachBundle(t, truncated, truncatedD, bundle[:len(bundle)/2])

	// The switch-root tree as a signed .tar.gz (a bundle beside it), and
	// as a plain .tar with a detached signature, and that .tar with a
	// byte of a file changed, its signature copied.
	web := t.TempDir()
	rc := mutate.Extract(registrytest.BusyboxImage(t, rootLayer(t)))
	plain, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(web, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("rootfs.tar", plain)
	cosign.SignBlob(t, filepath.Join(web, "rootfs.tar"), release, cosigntest.SigTag, filepath.Join(web, "rootfs.tar.sig"))
	tampered := bytes.Replace(plain, []byte("ROOT-INIT-RUNNING"), []byte("ROOT-INIT-RUNNINg"), 1)
	if bytes.Equal(tampered, plain) {
		t.Fatal("nothing to tamper with in the root")
	}
	write("tampered.tar", tampered)
	sig, err := os.ReadFile(filepath.Join(web, "rootfs.tar.sig"))
	if err != nil {
		t.Fatal(err)
	}
	write("tampered.tar.sig", sig)
	webPort := serveDir(t, web)

	guest := fmt.Sprintf("%s:%d", vm.GuestHost, f.reg.Port)
	policy := write("policy.json", []byte(`{"default": {"mode": "require"}, "scopes": {"`+guest+`/e2e/scratch": {"mode": "warn"}}}`))
	initramfs := filepath.Join(dir, "verify.img")
	out, err := exec.Command(f.bin, "build", "-o", initramfs, "--verify-key", release.Pub, "--verify-policy", policy).CombinedOutput()
	if err != nil {
		t.Fatalf("ociboot build: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "  verify: key release.pub (ECDSA P-256 ") {
		t.Errorf("the build report does not show the key:\n%s", out)
	}

	t.Run("verify-images", func(t *testing.T) {
		t.Parallel()
		var cmdline []string
		for _, c := range []struct{ ref, name string }{
			{bundled, "bundle"}, {legacy, "legacy"}, {scratch, "scratch"}, {unsigned, "unsigned"},
			{otherKey, "other-key"}, {copied, "copied"}, {moved, "moved"}, {truncated, "truncated"},
		} {
			// The kernel echoes its command line: the container prints
			// what only its shell can.
			cmdline = append(cmdline, fmt.Sprintf(`ociboot.container="%s sh -c 'echo ran-$((6*7))-%s'"`, guestRef(c.ref), c.name))
		}
		var console bytes.Buffer
		res, err := vm.Run(t.Context(), vm.Config{
			Initramfs: initramfs,
			Cmdline:   fmt.Sprintf("ociboot.insecure_registry=%s %s", guest, strings.Join(cmdline, " ")),
			Forwards:  []int{f.reg.Port},
			Timeout:   bootTimeout,
			Console:   &lockedWriter{w: &console},
		})
		t.Logf("console:\n%s", console.String())
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		c := console.String()
		if !res.StatusSeen || res.Status != 125 {
			t.Errorf("pipeline status: seen %v, %d; want 125 (a container that could not start)", res.StatusSeen, res.Status)
		}
		inOrder(t, c, "verified "+guestRef(bundled)+" "+bundledD.String()+": signed by release.pub (ECDSA P-256 ", "ran-42-bundle")
		inOrder(t, c, "verified "+guestRef(legacy)+" "+legacyD.String()+": signed by release.pub (ECDSA P-256 ", "ran-42-legacy")
		inOrder(t, c, "WARNING: "+guestRef(scratch)+" sha256:", "is not verified (the policy scope "+guest+"/e2e/scratch: warn (release.pub)): no signature", "ran-42-scratch")
		refused := "refused by the policy default: require (release.pub): manifest sha256:"
		for _, r := range []struct{ ref, why string }{
			{unsigned, "no signature: neither a sha256-"},
			{otherKey, "not signed by any of the keys: release.pub (ECDSA P-256 "},
			{copied, "for another manifest, " + legacyD.String()},
			{moved, "no signature: neither a sha256-"},
			{truncated, "malformed bundle: unexpected end of JSON input"},
		} {
			line := lineWith(c, "pull "+guestRef(r.ref)+" (linux/amd64) from registry "+guest+": "+refused)
			if !strings.Contains(line, r.why) {
				t.Errorf("%s: refusal %q does not say %q", r.ref, line, r.why)
			}
		}
		for _, name := range []string{"unsigned", "other-key", "copied", "moved", "truncated"} {
			if strings.Contains(c, "ran-42-"+name) {
				t.Errorf("the refused image %s ran", name)
			}
		}
		inOrder(t, c, "Execution is over, pipeline status: 125", "It's now safe to turn off your computer")
	})

	t.Run("verify-root", func(t *testing.T) {
		t.Parallel()
		url := fmt.Sprintf("http://%s:%d/rootfs.tar", vm.GuestHost, webPort)
		_, console := f.bootRoot(t, initramfs, "ociboot.root="+url, webPort)
		inOrder(t, console, "ociboot: root: rootfs tarball "+url+": signed by release.pub (ECDSA P-256 ", "("+url+".sig)",
			"ociboot: root: starting /sbin/init", "ROOT-INIT-RUNNING as pid 1", "ROOT-INIT-DONE")
	})

	t.Run("verify-root-tampered", func(t *testing.T) {
		t.Parallel()
		url := fmt.Sprintf("http://%s:%d/tampered.tar", vm.GuestHost, webPort)
		_, console := f.bootRoot(t, initramfs, "ociboot.root="+url, webPort)
		inOrder(t, console,
			"rootfs tarball "+url+": refused by the policy default: require (release.pub): "+url+".sig: not signed by any of the keys: release.pub",
			"must not be used",
			"It's now safe to turn off your computer")
		if strings.Contains(console, "ROOT-INIT") || strings.Contains(console, "root: starting") {
			t.Error("a tampered tarball was booted")
		}
	})
}
