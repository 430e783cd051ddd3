package cli

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/registrytest"
)

// runCLI runs ociboot with args and returns its stderr and error.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	_, stderr, err := runCLIOut(t, args...)
	return stderr, err
}

// runCLIOut runs the CLI with args and returns its stdout and stderr.
func runCLIOut(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := NewRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

func TestPullCommand(t *testing.T) {
	reg := registrytest.Start(t)
	top := registrytest.LayerFromFiles(t, map[string]string{"etc/added": "new\n"}, "etc/group")
	ref := registrytest.Push(t, reg, "test/busybox:1", registrytest.BusyboxImage(t, top))
	dir := filepath.Join(t.TempDir(), "new", "rootfs") // made by pull

	log, err := runCLI(t, "pull", "--insecure-registry", reg.Addr, ref, dir)
	if err != nil {
		t.Fatalf("ociboot pull: %v\n%s", err, log)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/added")); err != nil || string(b) != "new\n" {
		t.Errorf("etc/added = %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc/group")); !os.IsNotExist(err) {
		t.Errorf("etc/group: %v, want it whited out", err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || target != "busybox" {
		t.Errorf("bin/sh -> %q, %v", target, err)
	}
	// Not a terminal: plain lines, a start and an end per layer, no ANSI.
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if len(lines) != 6 || strings.Contains(log, "\x1b") {
		t.Fatalf("log has %d lines, want 6 plain ones (pulled, 2 per layer, unpacked):\n%s", len(lines), log)
	}
	for _, re := range []string{
		`^pulled ` + regexp.QuoteMeta(ref) + ` sha256:`,
		`^layer 1/2 sha256:[0-9a-f]{12} [0-9.]+ [kM]B: fetching$`,
		`^layer 2/2 sha256:[0-9a-f]{12} done: [0-9.]+ kB gzip, [0-9.]+ kB unpacked in [0-9.]+s \([0-9.]+ [kMG]B/s\)$`,
		`^unpacked ` + regexp.QuoteMeta(ref) + ` into ` + regexp.QuoteMeta(dir) + ` in [0-9.]+s$`,
	} {
		if !regexp.MustCompile(`(?m)` + re).MatchString(log) {
			t.Errorf("log does not match %s:\n%s", re, log)
		}
	}

	// DIR must be empty: unpacking over a tree by mistake would replace it.
	_, err = runCLI(t, "pull", "--insecure-registry", reg.Addr, ref, dir)
	if err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("pull into a non-empty directory: %v, want a refusal", err)
	}
	if _, err := runCLI(t, "pull", "--platform", "linux/arm/v7/extra", ref, t.TempDir()); err == nil || !strings.Contains(err.Error(), "--platform") {
		t.Errorf("bad --platform: %v, want an error naming the flag", err)
	}
	if _, err := runCLI(t, "pull", "--progress", "fancy", ref, t.TempDir()); err == nil || !strings.Contains(err.Error(), "--progress") {
		t.Errorf("bad --progress: %v, want an error naming the flag", err)
	}
}

func TestPullCommandDevicesFlag(t *testing.T) {
	reg := registrytest.Start(t)
	layer := registrytest.Layer(t, registrytest.Entry{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666})
	ref := registrytest.Push(t, reg, "test/dev:1", registrytest.Image(t, v1.Config{}, layer))
	_, err := runCLI(t, "pull", "--progress", "none", "--allow-devices=false", "--insecure-registry", reg.Addr, ref, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), `entry "dev/null"`) || !strings.Contains(err.Error(), "not allowed") {
		t.Errorf("--allow-devices=false: %v, want a refusal naming dev/null", err)
	}
	dir := t.TempDir()
	if log, err := runCLI(t, "pull", "--progress", "none", "--insecure-registry", reg.Addr, ref, dir); err != nil || log != "" {
		t.Fatalf("pull: %v, log %q (want none with --progress none)", err, log)
	}
	if st, err := os.Lstat(filepath.Join(dir, "dev/null")); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("dev/null: %v, %v; want a character device", st, err)
	}
}

func TestPullCommandTarballURL(t *testing.T) {
	tarPath := filepath.Join(t.TempDir(), "rootfs.tar")
	data := registrytest.Tar(t, registrytest.Entry{Name: "etc/os-release", Body: "ID=tarball\n"})
	if err := os.WriteFile(tarPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	log, err := runCLI(t, "pull", "file://"+tarPath, dir)
	if err != nil {
		t.Fatalf("pull file://: %v\n%s", err, log)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "etc/os-release")); err != nil || string(b) != "ID=tarball\n" {
		t.Errorf("etc/os-release = %q, %v", b, err)
	}
	if _, err := runCLI(t, "pull", "--platform", "linux/arm64", "file://"+tarPath, t.TempDir()); err == nil {
		t.Error("--platform with a tarball URL was accepted")
	}
}

func TestBarRenderer(t *testing.T) {
	var out bytes.Buffer
	b := newBarRenderer(&out, 100)
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	start := time.Now().Add(-time.Second)
	b.update(image.LayerProgress{Index: 2, Count: 2, Digest: d, Size: 1000, State: image.LayerFetching, Fetched: 600, Decompressed: 250, Start: start})
	first := out.String()
	if strings.Count(first, "\n") != 2 || strings.Contains(first, "\x1b[2A") {
		t.Fatalf("first draw %q: want two lines (both layers), no cursor movement", first)
	}
	out.Reset()
	b.update(image.LayerProgress{Index: 2, Count: 2, Digest: d, Size: 1000, State: image.LayerDone, Fetched: 1000, Decompressed: 1000, Start: start})
	if !strings.HasPrefix(out.String(), "\x1b[2A") {
		t.Errorf("redraw %q: want it to move back up over the two bars", out.String())
	}

	line := barLine(image.LayerProgress{Index: 1, Count: 3, Digest: d, Size: 1000, State: image.LayerApplying, Fetched: 600, Decompressed: 250, Start: start}, 80)
	if len(line) > 80 || !strings.HasPrefix(line, "layer 1/3 sha256:abababababab [") || !strings.Contains(line, "applying") {
		t.Errorf("bar %q (%d columns): want at most 80 columns, the layer, a bar and the state", line, len(line))
	}
	bar := line[strings.Index(line, "[")+1 : strings.Index(line, "]")]
	if eq, dash := strings.Count(bar, "="), strings.Count(bar, "-"); eq == 0 || dash == 0 || eq > dash {
		t.Errorf("bar %q: want '=' for a quarter decompressed, '-' for the rest of the 60%% fetched", bar)
	}
	if narrow := barLine(image.LayerProgress{Index: 1, Count: 1, Digest: d, Size: -1, State: image.LayerWaiting}, 20); len(narrow) > 20 {
		t.Errorf("narrow bar %q longer than 20 columns", narrow)
	}
}

func TestPullCommandAuthAndCA(t *testing.T) {
	ca := registrytest.NewCA(t)
	reg := registrytest.StartWith(t, registrytest.Options{TLS: ca, Htpasswd: map[string]string{"alice": "s3cret-pull"}})
	ref := registrytest.Push(t, reg, "test/private:1", registrytest.BusyboxImage(t))
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	authFile := filepath.Join(dir, "config.json")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	auth := `{"auths": {"` + reg.Addr + `": {"username": "alice", "password": "s3cret-pull"}}}`
	if err := os.WriteFile(authFile, []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "rootfs")
	if log, err := runCLI(t, "pull", "--registry-auth", authFile, "--ca-file", caFile, ref, root); err != nil {
		t.Fatalf("pull with credentials and CA: %v\n%s", err, log)
	}
	if _, err := os.Stat(filepath.Join(root, "bin/busybox")); err != nil {
		t.Errorf("bin/busybox: %v", err)
	}
	if _, err := runCLI(t, "pull", "--ca-file", caFile, ref, t.TempDir()); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Errorf("pull without credentials: %v, want UNAUTHORIZED", err)
	}
	if _, err := runCLI(t, "pull", "--registry-auth", caFile, ref, t.TempDir()); err == nil || !strings.Contains(err.Error(), "--registry-auth") {
		t.Errorf("pull with a bad --registry-auth: %v, want an error naming the flag", err)
	}
	if _, err := runCLI(t, "pull", "--registry-mirror", "nonsense", ref, t.TempDir()); err == nil || !strings.Contains(err.Error(), "--registry-mirror") {
		t.Errorf("pull with a bad --registry-mirror: %v, want an error naming the flag", err)
	}
}

// TestPullCommandStore pulls twice with --store: the second time the
// layers come from the store, not the registry.
func TestPullCommandStore(t *testing.T) {
	reg := registrytest.Start(t)
	ref := registrytest.Push(t, reg, "test/stored:1", registrytest.BusyboxImage(t))
	proxy := registrytest.NewProxy(t, reg, registrytest.ProxyOptions{})
	ref = strings.Replace(ref, reg.Addr, proxy.Addr, 1)
	storeDir := filepath.Join(t.TempDir(), "store")
	blobGets := func() int {
		return proxy.Count(func(r registrytest.ProxyRequest) bool {
			return r.Method == "GET" && strings.Contains(r.Path, "/blobs/sha256:") && !r.IsManifest()
		})
	}
	for i, want := range []int{2, 2} { // the config and the layer; then neither
		dir := t.TempDir()
		if log, err := runCLI(t, "pull", "--progress", "none", "--store", storeDir, ref, dir); err != nil {
			t.Fatalf("pull %d: %v\n%s", i+1, err, log)
		}
		if _, err := os.Lstat(filepath.Join(dir, "bin/busybox")); err != nil {
			t.Errorf("pull %d: bin/busybox: %v", i+1, err)
		}
		if got := blobGets(); got != want {
			t.Errorf("after pull %d: %d blob GETs in all, want %d", i+1, got, want)
		}
	}
	if blobs, _ := filepath.Glob(filepath.Join(storeDir, "blobs/sha256/*")); len(blobs) != 3 {
		t.Errorf("store holds %q, want the manifest, config and layer", blobs)
	}
	requests := len(proxy.Requests())
	if log, err := runCLI(t, "pull", "--progress", "none", "--store", storeDir, "--pull", "never", ref, t.TempDir()); err != nil {
		t.Errorf("--pull never, stored: %v\n%s", err, log)
	}
	if n := len(proxy.Requests()) - requests; n != 0 {
		t.Errorf("--pull never made %d requests", n)
	}
	other := strings.Replace(ref, "stored:1", "stored:2", 1)
	if _, err := runCLI(t, "pull", "--store", storeDir, "--pull", "never", other, t.TempDir()); err == nil || !strings.Contains(err.Error(), other) {
		t.Errorf("--pull never, not stored: %v; want an error naming %s", err, other)
	}
	if _, err := runCLI(t, "pull", "--store", storeDir, "--pull", "sometimes", ref, t.TempDir()); err == nil || !strings.Contains(err.Error(), "--pull") {
		t.Errorf("--pull sometimes: %v; want an error naming --pull", err)
	}
	if _, err := runCLI(t, "pull", "--store", storeDir, "file:///nonexistent.tar", t.TempDir()); err == nil || !strings.Contains(err.Error(), "--store") {
		t.Errorf("--store with a tarball URL: %v, want a refusal naming it", err)
	}
}
