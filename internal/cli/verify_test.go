package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/cosigntest"
	"github.com/ociboot/ociboot/internal/hosttest"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/trust"
)

// TestBuildVerify bakes keys and a policy into an initramfs: the build
// report shows them, the archive holds them in trust.Dir with mode 0644,
// and what the init reads back decides as the files given did.
func TestBuildVerify(t *testing.T) {
	dir := t.TempDir()
	init := filepath.Join(dir, "init")
	if err := os.WriteFile(init, []byte("#!/not/run\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default": {"mode": "require", "keys": ["release.pub"]},
		"scopes": {"registry.lan/scratch": {"mode": "warn"}}, "cmdline_may_warn": true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{"release.pub": "ecdsa.pub", "lab.pub": "ed25519.pub"}
	for name, src := range keys {
		data, err := os.ReadFile(filepath.Join("../signature/testdata", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "initrd.img")
	base := []string{"build", "-o", img, "--init-binary", init, "--runtime", "none", "--modules", "", "--storage-modules", "",
		"--fscrypt-modules", "", "--drivers", "", "--mkfs", "none", "--compress", "none", "--early-microcode=false"}
	out, errOut, err := runCLIOut(t, append(base, "--verify-key", filepath.Join(dir, "release.pub"), "--verify-key", filepath.Join(dir, "lab.pub"), "--verify-policy", policy)...)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, errOut)
	}
	for _, want := range []string{"  verify: key release.pub (ECDSA P-256 ", "  verify: key lab.pub (Ed25519 ", "  verify: default: require (release.pub)\n",
		"  verify: scope registry.lan/scratch: warn (any key)\n", "  verify: ociboot.verify=warn may weaken require to warn\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the build report lacks %q:\n%s", want, out)
		}
	}
	list := hosttest.Run(t, "sh", "-c", "cpio -itv < "+img)
	for _, f := range []string{"release.pub", "lab.pub", "policy.json"} {
		if !regexpLine(list, "-rw-r--r--", strings.TrimPrefix(trust.Dir, "/")+"/"+f) {
			t.Errorf("no %s/%s of mode 0644 in:\n%s", trust.Dir, f, list)
		}
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "cpio -idm --quiet < "+img)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v\n%s", err, out)
	}
	baked, err := trust.ReadDir(filepath.Join(root, trust.Dir))
	if err != nil {
		t.Fatal(err)
	}
	given, err := trust.Load([]string{filepath.Join(dir, "release.pub"), filepath.Join(dir, "lab.pub")}, policy)
	if err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{"lab/app", "scratch/app"} {
		if b, g := baked.Image("registry.lan", repo).String(), given.Image("registry.lan", repo).String(); b != g {
			t.Errorf("registry.lan/%s: the init decides %q, the build %q", repo, b, g)
		}
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--verify-key", filepath.Join(dir, "none.pub")}, "--verify-key: open " + dir + "/none.pub"},
		{[]string{"--verify-key", policy}, "--verify-key " + policy + ": a key may not be named policy.json"},
		{[]string{"--verify-key", init}, "--verify-key " + init + ": key init: no PEM block"},
		{[]string{"--verify-policy", policy}, "a verification policy without keys"},
		{[]string{"--verify-key", filepath.Join(dir, "lab.pub"), "--verify-policy", policy}, `policy default: key "release.pub" is not one of the keys given with --verify-key (lab.pub)`},
	} {
		if _, _, err := runCLIOut(t, append(base, c.args...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("build %s: %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}

// regexpLine tells whether a line of list starts with mode and ends with
// name.
func regexpLine(list, mode, name string) bool {
	for _, l := range strings.Split(list, "\n") {
		if strings.HasPrefix(l, mode) && strings.HasSuffix(l, " "+name) {
			return true
		}
	}
	return false
}

// TestVerifyCommand checks images signed by the real cosign with
// `ociboot verify`: verified, refused (exit status and reason), and not
// checked where the policy accepts.
func TestVerifyCommand(t *testing.T) {
	cosign := cosigntest.New(t)
	reg := registrytest.Start(t)
	dir := t.TempDir()
	k := cosign.GenerateKeyPair(t, dir, "release")
	signed := registrytest.Push(t, reg, "lab/signed:1", registrytest.Image(t, v1.Config{Cmd: []string{"signed"}}))
	unsigned := registrytest.Push(t, reg, "lab/unsigned:1", registrytest.Image(t, v1.Config{Cmd: []string{"unsigned"}}))
	d := hosttest.Run(t, "skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+signed)
	cosign.Sign(t, strings.TrimSuffix(signed, ":1")+"@"+strings.TrimSpace(d), k, cosigntest.Bundle)
	policy := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default": {"mode": "require"}, "scopes": {"`+reg.Addr+`/lab/unsigned": {"mode": "accept"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := runCLIOut(t, "verify", "--verify-key", k.Pub, signed)
	if err != nil || !strings.Contains(out, "verified "+signed+" sha256:") || !strings.Contains(out, ": signed by release.pub (ECDSA P-256 ") {
		t.Errorf("verify signed: %v\n%s%s", err, out, errOut)
	}
	_, _, err = runCLIOut(t, "verify", "--verify-key", k.Pub, unsigned)
	if err == nil || !strings.Contains(err.Error(), "refused by the policy default: require (release.pub): manifest sha256:") || !strings.Contains(err.Error(), ": no signature: neither a sha256-") {
		t.Errorf("verify unsigned: %v", err)
	}
	out, _, err = runCLIOut(t, "verify", "--verify-key", k.Pub, "--verify-policy", policy, unsigned)
	if err != nil || !strings.Contains(out, unsigned+" is not checked: policy scope "+reg.Addr+"/lab/unsigned: accept") {
		t.Errorf("verify under accept: %v\n%s", err, out)
	}
	if _, _, err := runCLIOut(t, "verify", unsigned); err == nil || !strings.Contains(err.Error(), "no key: give the keys with --verify-key") {
		t.Errorf("verify without a key: %v", err)
	}

	// A rootfs tarball, by file:// URL, and its detached signature.
	tarball := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(tarball, registrytest.Tar(t, registrytest.Entry{Name: "etc/os-release", Body: "ID=test\n"}), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = runCLIOut(t, "verify", "--verify-key", k.Pub, "file://"+tarball)
	if err == nil || !strings.Contains(err.Error(), "rootfs tarball file://"+tarball+": refused by the policy default: require (release.pub): no signature: neither file://"+tarball+".sig nor") {
		t.Errorf("verify an unsigned tarball: %v", err)
	}
	cosign.SignBlob(t, tarball, k, cosigntest.SigTag, tarball+".sig")
	out, errOut, err = runCLIOut(t, "verify", "--verify-key", k.Pub, "file://"+tarball)
	if err != nil || !strings.Contains(out, "rootfs tarball file://"+tarball+": signed by release.pub (ECDSA P-256 ") {
		t.Errorf("verify a signed tarball: %v\n%s%s", err, out, errOut)
	}
	if _, _, err := runCLIOut(t, "verify", "--verify-key", k.Pub, "--platform", "linux/arm64", "file://"+tarball); err == nil || !strings.Contains(err.Error(), "do not apply to a rootfs tarball URL") {
		t.Errorf("verify a tarball with --platform: %v", err)
	}
}
