package registry_test

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ociboot/ociboot/internal/registry"
	"github.com/ociboot/ociboot/internal/registrytest"
)

// serveEnv makes the test binary serve the OCI layout it names as
// repository bench/blob, printing its address, instead of testing: the
// benchmark's registry in a process of its own, as the CNCF one is.
const serveEnv = "OCIBOOT_REGISTRY_BENCH_LAYOUT"

func TestMain(m *testing.M) {
	if dir := os.Getenv(serveEnv); dir != "" {
		r := registry.New()
		if err := r.AddLayout("bench/blob", "", dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(ln.Addr())
		fmt.Fprintln(os.Stderr, http.Serve(ln, r))
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// startServer runs the layout's registry in a child process.
func startServer(b *testing.B, layout string) string {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serveEnv+"="+layout)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.Fatalf("the registry process: %v", err)
	}
	return strings.TrimSpace(addr)
}

// BenchmarkBlob100MiB fetches one 100 MiB blob over loopback HTTP from
// serve's registry (an OCI layout) and from the CNCF distribution
// registry (its filesystem storage), both on the same disk (TMPDIR) and
// each in a process of its own, side by side: compare their MB/s.
func BenchmarkBlob100MiB(b *testing.B) {
	const size = 100 << 20
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(data)
	layer := static.NewLayer(data, types.OCILayer)
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		b.Fatal(err)
	}
	d, err := layer.Digest()
	if err != nil {
		b.Fatal(err)
	}
	cncf := registrytest.Start(b)
	registrytest.Push(b, cncf, "bench/blob:1", img)
	lay, err := layout.Write(b.TempDir(), empty.Index)
	if err != nil {
		b.Fatal(err)
	}
	if err := lay.AppendImage(img); err != nil {
		b.Fatal(err)
	}
	ours := startServer(b, string(lay))
	for _, side := range []struct{ name, base string }{{"ociboot", "http://" + ours}, {"cncf", "http://" + cncf.Addr}} {
		b.Run(side.name, func(b *testing.B) {
			b.SetBytes(size)
			url := side.base + "/v2/bench/blob/blobs/" + d.String()
			for b.Loop() {
				resp, err := http.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || n != size || resp.StatusCode != 200 {
					b.Fatalf("%s: %s, %d bytes, %v", side.name, resp.Status, n, err)
				}
			}
		})
	}
}
