package initramfs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/keymap"
	"github.com/u-root/u-root/pkg/cpio"
)

// testCertPEM returns a self-signed CA certificate, PEM.
func testCertPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

const secret = "Zq7-secret"

func TestBuildRegistryFiles(t *testing.T) {
	auth := []byte(`{"auths": {"registry.lan:5000": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("ci:"+secret)) + `"}, "https://index.docker.io/v1/": {"identitytoken": "` + secret + `"}}}`)
	ca := append(testCertPEM(t), testCertPEM(t)...)
	rep, raw := build(t, Options{
		Output: filepath.Join(t.TempDir(), "i.img"), Compression: None, InitBinary: smallInit(t), Runtime: "none",
		RegistryAuth: auth, CACerts: ca,
		Cmdline: "ociboot.registry_mirror=docker.io=10.0.2.100:5000",
	})
	a := readCPIO(t, raw)
	authName, caName := strings.TrimPrefix(bootcfg.AuthPath, "/"), strings.TrimPrefix(bootcfg.CAPath, "/")
	if a.mode(authName) != cpio.S_IFREG|0o600 || string(a.content[authName]) != string(auth) {
		t.Errorf("%s: mode %o, content %q; want mode 0600 and the file as given", bootcfg.AuthPath, a.mode(authName), a.content[authName])
	}
	if a.mode(caName) != cpio.S_IFREG|0o644 || string(a.content[caName]) != string(ca) {
		t.Errorf("%s: mode %o; want 0644 and the certificates as given", bootcfg.CAPath, a.mode(caName))
	}
	if strings.Contains(string(a.content[strings.TrimPrefix(bootcfg.BakedPath, "/")]), secret) {
		t.Errorf("%s holds a credential; it is world-readable", bootcfg.BakedPath)
	}
	if !slices.Equal(rep.AuthRegistries, []string{"docker.io", "registry.lan:5000"}) || rep.CACerts != 2 {
		t.Errorf("report: registries %v, %d certificates", rep.AuthRegistries, rep.CACerts)
	}
	// What PID 1 reads back parses.
	if _, err := image.ParseDockerConfig(a.content[authName]); err != nil {
		t.Errorf("baked credentials: %v", err)
	}

	// Without them, neither file exists.
	_, raw = build(t, Options{Output: filepath.Join(t.TempDir(), "j.img"), Compression: None, InitBinary: smallInit(t), Runtime: "none"})
	a = readCPIO(t, raw)
	if _, ok := a.records[authName]; ok {
		t.Errorf("%s present without --registry-auth", bootcfg.AuthPath)
	}
	if _, ok := a.records[caName]; ok {
		t.Errorf("%s present without --ca-file", bootcfg.CAPath)
	}
}

func TestBuildRegistryFilesErrors(t *testing.T) {
	key := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("k")})
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"bad credentials", Options{RegistryAuth: []byte(`{"auths": {"r.lan": {"auth": "` + secret + `"}}}`)}, `initramfs: registry credentials: auths entry "r.lan": "auth" is not valid base64`},
		{"helper credentials", Options{RegistryAuth: []byte(`{"auths": {"r.lan": {}}, "credsStore": "desktop"}`)}, `credential helper "desktop"`},
		{"not PEM", Options{CACerts: []byte("hello")}, "initramfs: CA certificates: no PEM CERTIFICATE block"},
		{"a key", Options{CACerts: append(testCertPEM(t), key...)}, `PEM block 2 is a "PRIVATE KEY"`},
	} {
		tc.opts.Output, tc.opts.InitBinary, tc.opts.Runtime = filepath.Join(t.TempDir(), "x.img"), smallInit(t), "none"
		_, err := Build(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %q shows a secret", tc.name, err)
		}
	}
}

func TestBuildShell(t *testing.T) {
	rep, raw := build(t, Options{
		Output: filepath.Join(t.TempDir(), "i.img"), Compression: None, InitBinary: smallInit(t), Runtime: "none",
		Shell: "/bin/busybox",
	})
	a := readCPIO(t, raw)
	host, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("the test needs busybox-static: %v", err)
	}
	if a.mode("bin/busybox") != cpio.S_IFREG|0o755 || string(a.content["bin/busybox"]) != string(host) {
		t.Errorf("/bin/busybox: mode %o, %d bytes; want 0755 and the host's busybox", a.mode("bin/busybox"), len(a.content["bin/busybox"]))
	}
	if a.mode("bin/sh")&cpio.S_IFMT != cpio.S_IFLNK || string(a.content["bin/sh"]) != "busybox" {
		t.Errorf("/bin/sh: mode %o, target %q; want a link to busybox", a.mode("bin/sh"), a.content["bin/sh"])
	}
	var baked bootcfg.Baked
	if err := json.Unmarshal(a.content[strings.TrimPrefix(bootcfg.BakedPath, "/")], &baked); err != nil || baked.Shell != "/bin/sh" || rep.Shell != "/bin/sh" {
		t.Errorf("baked shell %q (%v), report %q; want /bin/sh", baked.Shell, err, rep.Shell)
	}
	if _, err := Build(Options{Output: filepath.Join(t.TempDir(), "j.img"), InitBinary: smallInit(t), Runtime: "none", Shell: "/bin/true"}); err == nil || !strings.Contains(err.Error(), "not a busybox") {
		t.Errorf("a shell that is not busybox: %v", err)
	}
}

func TestBuildKeymaps(t *testing.T) {
	rep, raw := build(t, Options{
		Output: filepath.Join(t.TempDir(), "i.img"), Compression: None, InitBinary: smallInit(t), Runtime: "none",
		Keymaps: []string{"fr-latin1", "us", "fr-latin1"},
	})
	a := readCPIO(t, raw)
	for _, name := range []string{"fr-latin1", "us"} {
		data := a.content[strings.TrimPrefix(bootcfg.KeymapDir, "/")+"/"+name+".bmap"]
		if _, err := keymap.Parse(data); err != nil {
			t.Errorf("keymap %s in the image: %v", name, err)
		}
	}
	var baked bootcfg.Baked
	if err := json.Unmarshal(a.content[strings.TrimPrefix(bootcfg.BakedPath, "/")], &baked); err != nil || !slices.Equal(baked.Keymaps, []string{"fr-latin1", "us"}) || !slices.Equal(rep.Keymaps, baked.Keymaps) {
		t.Errorf("baked keymaps %v (%v), report %v; want fr-latin1 and us once each", baked.Keymaps, err, rep.Keymaps)
	}
	if _, err := Build(Options{Output: filepath.Join(t.TempDir(), "j.img"), InitBinary: smallInit(t), Runtime: "none", Keymaps: []string{"klingon"}}); err == nil || !strings.Contains(err.Error(), `keymap "klingon": not found`) {
		t.Errorf("unknown keymap: %v", err)
	}
	// Every keymap "common" names exists here.
	if _, err := Build(Options{Output: filepath.Join(t.TempDir(), "k.img"), InitBinary: smallInit(t), Runtime: "none", Keymaps: []string{"common"}}); err != nil {
		t.Errorf("--keymaps common: %v", err)
	}
}

func TestBuildSecondSegment(t *testing.T) {
	mods := filepath.Join(t.TempDir(), "6.1.0-test")
	fw := t.TempDir()
	for name, content := range map[string]string{
		filepath.Join(mods, "kernel/drivers/net/dummy.ko"): "not really a module",
		filepath.Join(mods, "modules.dep"):                 "kernel/drivers/net/dummy.ko:\n",
		filepath.Join(fw, "vendor/blob.bin"):               "firmware",
	} {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rep, raw := build(t, Options{
		Output: filepath.Join(t.TempDir(), "i.img"), Compression: None, InitBinary: smallInit(t), Runtime: "none",
		ModulesDir: mods, ModulesAll: true, Firmware: fw,
	})
	if rep.FirstSegment+rep.SecondSegment.Size != int64(len(raw)) || rep.SecondSegment.Entries == 0 {
		t.Fatalf("segments %d + %+v, image %d bytes", rep.FirstSegment, rep.SecondSegment, len(raw))
	}
	// The kernel reads the segments one after the other: each is a whole
	// archive.
	first, second := readCPIO(t, raw[:rep.FirstSegment]), readCPIO(t, raw[rep.FirstSegment:])
	if _, ok := first.records["init"]; !ok {
		t.Error("the first segment has no /init")
	}
	for name, want := range map[string]string{
		"lib/modules/6.1.0-test/kernel/drivers/net/dummy.ko": "not really a module",
		"lib/modules/6.1.0-test/modules.dep":                 "kernel/drivers/net/dummy.ko:\n",
		"lib/firmware/vendor/blob.bin":                       "firmware",
	} {
		if got := string(second.content[name]); got != want {
			t.Errorf("second segment /%s = %q, want %q", name, got, want)
		}
	}
	// Compressed, the image is still two segments that decompress to the
	// same archives.
	rep, _ = build(t, Options{Output: filepath.Join(t.TempDir(), "j.img"), Compression: Zstd, InitBinary: smallInit(t), Runtime: "none", ModulesDir: mods, ModulesAll: true})
	if rep.SecondSegment.Size == 0 || rep.FirstSegment == 0 {
		t.Errorf("zstd segments: %d and %+v", rep.FirstSegment, rep.SecondSegment)
	}
}
