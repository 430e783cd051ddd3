// Package registrytest starts a real CNCF distribution registry (Debian's
// docker-registry) on 127.0.0.1 for tests, and builds small images, such
// as a busybox one, to push to it. It is imported only by tests.
package registrytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Binary is the registry program started by Start (Debian package docker-registry).
const Binary = "/usr/bin/docker-registry"

// Registry is a running registry, reached over plain HTTP.
type Registry struct {
	Addr string // "127.0.0.1:PORT"
	Port int
	Root string // storage root directory (filesystem driver)
}

// BlobPath returns where the registry stores the blob with digest h.
func (r *Registry) BlobPath(h v1.Hash) string {
	return filepath.Join(r.Root, "docker", "registry", "v2", "blobs", h.Algorithm, h.Hex[:2], h.Hex, "data")
}

const configTemplate = `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: 127.0.0.1:%d
  secret: registrytest
`

// Start starts a registry listening on 127.0.0.1 only, with its storage
// in a temporary directory, waits until GET /v2/ answers and stops it when
// the test ends. The registry's log is shown if the test fails.
func Start(t testing.TB) *Registry {
	t.Helper()
	dir := t.TempDir()
	var errs []error
	for range 5 { // a free port may be taken by someone else before the registry binds it
		port, err := freePort()
		if err != nil {
			t.Fatalf("registrytest: %v", err)
		}
		r := &Registry{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, Root: filepath.Join(dir, fmt.Sprint("storage-", port))}
		err = r.start(t, dir)
		if err == nil {
			return r
		}
		errs = append(errs, err)
	}
	t.Fatalf("registrytest: start %s: %v", Binary, errors.Join(errs...))
	return nil
}

func (r *Registry) start(t testing.TB, dir string) error {
	cfg := filepath.Join(dir, fmt.Sprintf("config-%d.yml", r.Port))
	if err := os.WriteFile(cfg, fmt.Appendf(nil, configTemplate, r.Root, r.Port), 0o644); err != nil {
		return err
	}
	out := &lockedBuffer{}
	cmd := exec.Command(Binary, "serve", cfg)
	// A clean environment: REGISTRY_* variables would override the config.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	err := waitReady(r.Addr, done)
	if err == nil {
		// Someone else may have answered on our port: make sure ours still runs.
		select {
		case werr := <-done:
			err = fmt.Errorf("registry exited: %v", werr)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s: %w; log:\n%s", r.Addr, err, out.String())
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("registry %s log:\n%s", r.Addr, out.String())
		}
	})
	return nil
}

// waitReady polls GET /v2/ until it answers 200, the registry exits or
// 20 s pass.
func waitReady(addr string, done <-chan error) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-done:
			return fmt.Errorf("registry exited before answering: %v", err)
		default:
		}
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 20s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Push writes img to reg as repoTag (e.g. "test/busybox:1") and returns
// the full reference ("127.0.0.1:PORT/test/busybox:1").
func Push(t testing.TB, reg *Registry, repoTag string, img v1.Image) string {
	t.Helper()
	ref := reg.Addr + "/" + repoTag
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("registrytest: push: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("registrytest: push %s: %v", ref, err)
	}
	return ref
}

// PushIndex writes the multi-platform idx to reg as repoTag and returns
// the full reference.
func PushIndex(t testing.TB, reg *Registry, repoTag string, idx v1.ImageIndex) string {
	t.Helper()
	ref := reg.Addr + "/" + repoTag
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("registrytest: push: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx)); err != nil {
		t.Fatalf("registrytest: push index %s: %v", ref, err)
	}
	return ref
}

// lockedBuffer collects a process's output from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
