package initramfs

import (
	"bytes"
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
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/hosttest"
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

func TestBuildImages(t *testing.T) {
	mods := filepath.Join(t.TempDir(), "6.1.0-test")
	fw := t.TempDir()
	for name, content := range map[string]string{
		filepath.Join(mods, "kernel/drivers/net/dummy.ko"):    "not really a module",
		filepath.Join(mods, "kernel/drivers/block/loop.ko"):   "loop",
		filepath.Join(mods, "kernel/fs/squashfs/squashfs.ko"): "squashfs",
		filepath.Join(mods, "modules.dep"):                    "kernel/drivers/net/dummy.ko:\nkernel/drivers/block/loop.ko:\nkernel/fs/squashfs/squashfs.ko:\n",
		filepath.Join(fw, "vendor/blob.bin"):                  "firmware",
	} {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{
		Output: filepath.Join(t.TempDir(), "i.img"), Compression: Zstd, InitBinary: smallInit(t), Runtime: "none",
		ModulesDir: mods, ModulesAll: true, Firmware: fw, SourceDateEpoch: 1700000000,
		// A program whose libraries bring the host's /lib -> usr/lib
		// link into the first segment.
		Programs: []string{"true"},
	}
	rep, raw := build(t, opts)
	if rep.FirstSegment+rep.SecondSegment.Size != int64(len(raw)) || rep.SecondSegment.Entries == 0 {
		t.Fatalf("segments %d + %+v, image %d bytes", rep.FirstSegment, rep.SecondSegment, len(raw))
	}
	// The kernel reads the segments one after the other: each is a whole
	// archive, the second uncompressed (it holds compressed images).
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	unpacked, err := dec.DecodeAll(raw[:rep.FirstSegment], nil)
	if err != nil {
		t.Fatalf("the first segment: %v", err)
	}
	first := readCPIO(t, unpacked)
	if pad := rep.SecondSegment.Size - rep.SecondSegment.ArchiveSize; pad < 0 || pad > 3 {
		t.Errorf("second segment: %d bytes of cpio in %d: want it stored as it is", rep.SecondSegment.ArchiveSize, rep.SecondSegment.Size)
	}
	// It starts at an offset that is a multiple of 4, after zeros.
	rest := bytes.TrimLeft(raw[rep.FirstSegment:], "\x00")
	if off := len(raw) - len(rest); off%4 != 0 {
		t.Errorf("the second segment starts at offset %d, not a multiple of 4: the kernel would refuse it", off)
	}
	second := readCPIO(t, rest)
	if _, ok := first.records["init"]; !ok {
		t.Error("the first segment has no /init")
	}
	// The images are where the first segment's links lead: the kernel
	// would replace its /lib link with a directory of the second.
	lib := first.records["lib"]
	if lib.Mode&cpio.S_IFMT != cpio.S_IFLNK || string(first.content["lib"]) != "usr/lib" {
		t.Fatalf("the first segment's /lib: mode %o %q; the test wants the host's link to usr/lib", lib.Mode, first.content["lib"])
	}
	for _, name := range second.order {
		if r := first.records[name]; r.Name != "" && r.Mode&cpio.S_IFMT != second.records[name].Mode&cpio.S_IFMT {
			t.Errorf("/%s is of another kind in each segment (%o, %o)", name, r.Mode, second.records[name].Mode)
		}
	}
	// Mounting the images needs loop and squashfs, in the first segment
	// and named for PID 1.
	for _, m := range []string{"kernel/drivers/block/loop.ko", "kernel/fs/squashfs/squashfs.ko"} {
		if !slices.ContainsFunc(first.order, func(name string) bool { return strings.HasPrefix(name, "usr/lib/modules/6.1.0-test/"+m) }) {
			t.Errorf("the first segment lacks %s", m)
		}
	}
	var baked bootcfg.Baked
	if err := json.Unmarshal(first.content[strings.TrimPrefix(bootcfg.BakedPath, "/")], &baked); err != nil {
		t.Fatal(err)
	}
	wantImages := []bootcfg.Image{
		{File: "/lib/ociboot/modules.squashfs", Dir: "/lib/modules/6.1.0-test", FSType: "squashfs"},
		{File: "/lib/ociboot/firmware.squashfs", Dir: "/lib/firmware", FSType: "squashfs"},
	}
	if !reflect.DeepEqual(baked.Images, wantImages) || !reflect.DeepEqual(baked.ImageModules, []string{"loop", "squashfs"}) {
		t.Errorf("baked images %+v, modules %v; want %+v and loop, squashfs", baked.Images, baked.ImageModules, wantImages)
	}
	if len(rep.Images) != 2 || rep.Images[0].Files != 4 || rep.Images[1].Files != 1 || rep.Images[1].TreeSize != int64(len("firmware")) {
		t.Errorf("report %+v", rep.Images)
	}
	// Each image holds its tree, as unsquashfs reads it back.
	for img, want := range map[string]map[string]string{
		"usr/lib/ociboot/modules.squashfs":  {"kernel/drivers/net/dummy.ko": "not really a module", "modules.dep": "kernel/drivers/net/dummy.ko:\nkernel/drivers/block/loop.ko:\nkernel/fs/squashfs/squashfs.ko:\n"},
		"usr/lib/ociboot/firmware.squashfs": {"vendor/blob.bin": "firmware"},
	} {
		data, ok := second.content[img]
		if !ok {
			t.Fatalf("the second segment lacks /%s", img)
		}
		out := unsquashfs(t, data)
		for name, content := range want {
			if got, err := os.ReadFile(filepath.Join(out, name)); err != nil || string(got) != content {
				t.Errorf("/%s: %s = %q, %v; want %q", img, name, got, err, content)
			}
		}
	}
	// The same inputs make the same bytes.
	opts.Output = filepath.Join(t.TempDir(), "j.img")
	if _, again := build(t, opts); !bytes.Equal(raw, again) {
		t.Error("two builds of the same trees differ")
	}
	// A tree that cannot be an image is refused, and says why.
	opts.Firmware = filepath.Join(fw, "vendor/blob.bin")
	if _, err := Build(opts); err == nil || !strings.Contains(err.Error(), "--firmware "+opts.Firmware+": want a directory") {
		t.Errorf("a firmware file: %v", err)
	}
}

// unsquashfs unpacks the squashfs image data with unsquashfs(1) and
// returns the directory it made.
func unsquashfs(t *testing.T, data []byte) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "image")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	hosttest.Run(t, "unsquashfs", "-no-progress", "-d", out, file)
	return out
}
