package image_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/layer/layertest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/fetch/fetchtest"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/registrytest"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestPullUnpackBusybox(t *testing.T) {
	reg := registrytest.Start(t)
	top := registrytest.LayerFromFiles(t, map[string]string{"etc/added": "new\n"}, "etc/group")
	ref := registrytest.Push(t, reg, "test/busybox:1", registrytest.BusyboxImage(t, top))
	ctx := testContext(t)

	var pullLog bytes.Buffer
	img, err := image.Pull(ctx, "docker://"+ref, image.PullOptions{Insecure: []string{reg.Addr}, Log: &pullLog})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if !strings.Contains(pullLog.String(), ref) {
		t.Errorf("pull log %q does not name %s", pullLog.String(), ref)
	}
	root := t.TempDir()
	var log bytes.Buffer
	if err := image.Unpack(ctx, img, root, &log); err != nil {
		t.Fatalf("Unpack: %v", err)
	}

	layertest.MustNotExist(t, filepath.Join(root, "etc/group"))
	if got := layertest.ReadFile(t, filepath.Join(root, "etc/added")); got != "new\n" {
		t.Errorf("etc/added = %q", got)
	}
	if got := layertest.ReadFile(t, filepath.Join(root, "etc/os-release")); !strings.Contains(got, "ID=busybox") {
		t.Errorf("etc/os-release = %q", got)
	}
	if target, err := os.Readlink(filepath.Join(root, "bin/sh")); err != nil || target != "busybox" {
		t.Errorf("bin/sh -> %q, %v; want busybox", target, err)
	}
	out, err := exec.Command(filepath.Join(root, "bin/sh"), "-c", "echo unpacked").CombinedOutput()
	if err != nil || string(out) != "unpacked\n" {
		t.Errorf("run unpacked bin/sh: %q, %v", out, err)
	}

	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	line := regexp.MustCompile(`^layer [12]/2 sha256:[0-9a-f]{12} ([0-9.]+ [kMG]B: fetching|done: [0-9.]+ [kMG]B gzip, [0-9.]+ [kMG]B unpacked in [0-9.]+s \([0-9.]+ [kMG]B/s\))$`)
	if len(lines) != 4 || !line.MatchString(lines[0]) || !line.MatchString(lines[1]) || !line.MatchString(lines[2]) || !line.MatchString(lines[3]) {
		t.Errorf("progress log %q: want four short lines, a start and an end per layer", lines)
	}
}

func TestUnpackCorruptLayer(t *testing.T) {
	reg := registrytest.Start(t)
	marker := strings.Repeat("A", 64)
	// An uncompressed layer: a changed byte in a file's content still makes
	// a valid tar, so only the digest check can catch it.
	layer := static.NewLayer(layertest.Tar(t, layertest.File("data", marker, 0o644)), types.OCIUncompressedLayer)
	ref := registrytest.Push(t, reg, "test/corrupt:1", registrytest.Image(t, v1.Config{}, layer))
	digest, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	blob := reg.BlobPath(digest)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatalf("read blob in registry storage: %v", err)
	}
	i := bytes.Index(data, []byte(marker))
	if i < 0 {
		t.Fatal("marker not found in stored blob")
	}
	data[i] = 'B'
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx := testContext(t)
	img, err := image.Pull(ctx, ref, image.PullOptions{Insecure: []string{reg.Addr}})
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	err = image.Unpack(ctx, img, t.TempDir(), nil)
	if err == nil {
		t.Fatal("Unpack accepted a layer whose content does not match its digest")
	}
	t.Logf("error: %v", err)
	if !strings.Contains(err.Error(), digest.String()) || !regexp.MustCompile(`digest|checksum`).MatchString(err.Error()) {
		t.Errorf("error %q: want it to name layer %s and the digest mismatch", err, digest)
	}
}

func TestPullUnreachableRegistry(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now

	// A refused connection is retried by the policy (a registry may be
	// restarting while the fleet boots), then the pull fails, naming it.
	clock := fetchtest.NewClock()
	_, err = image.Pull(testContext(t), addr+"/test/none:1", image.PullOptions{Insecure: []string{addr}, Retry: fetch.Retry{Attempts: 3, Clock: clock}})
	if err == nil {
		t.Fatal("Pull from a registry that is not listening succeeded")
	}
	t.Logf("error after waits %v: %v", clock.Sleeps(), err)
	if !strings.Contains(err.Error(), "registry "+addr) || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), "attempt 3 of 3") {
		t.Errorf("error %q: want it to name registry %s, the cause and the attempts", err, addr)
	}
	if n := len(clock.Sleeps()); n == 0 || n%2 != 0 {
		t.Errorf("waits %v: want two per scheme tried", clock.Sleeps())
	}
}

func TestPullErrors(t *testing.T) {
	reg := registrytest.Start(t)
	ctx := testContext(t)
	for _, tc := range []struct{ ref, want string }{
		{"Not/A/Valid:Ref", `invalid image reference "Not/A/Valid:Ref": repository "Not/A/Valid": path component "Not" is not lower-case`},
		{reg.Addr + "/test/missing:1", "MANIFEST_UNKNOWN"},
	} {
		_, err := image.Pull(ctx, tc.ref, image.PullOptions{Insecure: []string{reg.Addr}})
		t.Logf("Pull(%q): %v", tc.ref, err)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Pull(%q): error %v, want one containing %q", tc.ref, err, tc.want)
		}
	}
}

func TestPullPlatformFromIndex(t *testing.T) {
	reg := registrytest.Start(t)
	arm := v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	host := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if host.Architecture == arm.Architecture {
		arm.Architecture = "riscv64"
	}
	idx := registrytest.PlatformIndex(t, func(p v1.Platform) v1.Image {
		return registrytest.Image(t, v1.Config{Cmd: []string{p.Architecture}}, registrytest.LayerFromFiles(t, map[string]string{"arch": p.Architecture}))
	}, host, arm)
	ref := registrytest.PushIndex(t, reg, "test/multi:1", idx)
	ctx := testContext(t)
	for _, tc := range []struct {
		platform v1.Platform
		want     string
	}{
		{v1.Platform{}, host.Architecture},
		{v1.Platform{OS: "linux", Architecture: arm.Architecture}, arm.Architecture},
	} {
		img, err := image.Pull(ctx, ref, image.PullOptions{Insecure: []string{reg.Addr}, Platform: tc.platform})
		if err != nil {
			t.Fatalf("Pull %s for %v: %v", ref, tc.platform, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if got := cf.Config.Cmd[0]; got != tc.want {
			t.Errorf("platform %q: got the %s image, want %s", tc.platform.String(), got, tc.want)
		}
	}
	_, err := image.Pull(ctx, ref, image.PullOptions{Insecure: []string{reg.Addr}, Platform: v1.Platform{OS: "linux", Architecture: "mips"}})
	t.Logf("missing platform: %v", err)
	if err == nil || !strings.Contains(err.Error(), "linux/mips") {
		t.Errorf("platform missing from the index: error %v, want one naming linux/mips", err)
	}

	// A single image (no index) for another architecture is refused too.
	single := registrytest.Push(t, reg, "test/single:1", registrytest.Image(t, v1.Config{}, registrytest.LayerFromFiles(t, map[string]string{"f": "x"})))
	_, err = image.Pull(ctx, single, image.PullOptions{Insecure: []string{reg.Addr}, Platform: v1.Platform{Architecture: arm.Architecture}})
	t.Logf("single image, other platform: %v", err)
	if err == nil || !strings.Contains(err.Error(), "linux/"+runtime.GOARCH) || !strings.Contains(err.Error(), "linux/"+arm.Architecture) {
		t.Errorf("single image for another platform: error %v, want one naming both platforms", err)
	}
}
