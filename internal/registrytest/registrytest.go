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

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Binary is the registry program started by Start (Debian package docker-registry).
const Binary = "/usr/bin/docker-registry"

// Registry is a running registry.
type Registry struct {
	Addr string // "127.0.0.1:PORT", where clients connect
	Port int
	Root string // storage root directory (filesystem driver)
	// Scheme is "http", or "https" with Options.TLS.
	Scheme string
	// CA signed the registry's certificate (Options.TLS), else nil.
	CA *CA
	// Token is the token server of a registry started with Options.Token.
	Token *TokenServer
	// PushUser and PushPassword are what Push authenticates with when the
	// registry requires authentication (a user StartWith adds).
	PushUser, PushPassword string
}

// BlobPath returns where the registry stores the blob with digest h.
func (r *Registry) BlobPath(h v1.Hash) string {
	return filepath.Join(r.Root, "docker", "registry", "v2", "blobs", h.Algorithm, h.Hex[:2], h.Hex, "data")
}

// Options configure StartWith. The zero value is a plain-HTTP registry
// open to all.
type Options struct {
	// TLS, when set, makes the registry serve HTTPS with a certificate
	// for 127.0.0.1 issued by this CA.
	TLS *CA
	// TLSIPs are more addresses the certificate is valid for, such as
	// the address a VM guest reaches the forwarded port at. Nothing is
	// sent to them.
	TLSIPs []net.IP
	// Htpasswd, when set, makes the registry require HTTP basic
	// authentication by these users (name → password), checked against
	// an htpasswd file made with the htpasswd tool (apache2-utils).
	Htpasswd map[string]string
	// Token, when set, makes the registry require bearer tokens issued by
	// this token server. The token server is served at /token on the
	// same address (go-containerregistry only follows a token realm on a
	// loopback address when it is the registry's own), in front of the
	// registry process.
	Token *TokenServer
	// PullThrough, when set, is the URL of another registry this one
	// caches (the distribution registry's proxy mode): it serves that
	// registry's images, fetching a blob the first time it is asked for,
	// and takes no pushes.
	PullThrough string
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
  relativeurls: %t
`

// Start starts a plain-HTTP registry open to all: see StartWith.
func Start(t testing.TB) *Registry {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith starts a registry listening on 127.0.0.1 only, with its
// storage in a temporary directory, waits until GET /v2/ answers and stops
// it when the test ends. The registry's log is shown if the test fails.
func StartWith(t testing.TB, o Options) *Registry {
	t.Helper()
	dir := t.TempDir()
	var errs []error
	for range 5 { // a free port may be taken by someone else before the registry binds it
		port, err := freePort()
		if err != nil {
			t.Fatalf("registrytest: %v", err)
		}
		r := &Registry{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, Root: filepath.Join(dir, fmt.Sprint("storage-", port)), Scheme: "http"}
		err = r.start(t, dir, o)
		if err == nil {
			return r
		}
		errs = append(errs, err)
	}
	t.Fatalf("registrytest: start %s: %v", Binary, errors.Join(errs...))
	return nil
}

// config writes the registry's configuration file. realm is the token
// realm when o.Token is set.
func (r *Registry) config(t testing.TB, dir string, o Options, realm string) (string, error) {
	cfg := fmt.Sprintf(configTemplate, r.Root, r.Port, o.Token != nil)
	if o.TLS != nil && o.Token == nil {
		_, certFile, keyFile := o.TLS.ServerCert(t, o.TLSIPs...)
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", certFile, keyFile)
	}
	switch {
	case o.Token != nil:
		cfg += fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			realm, o.Token.Service, o.Token.Issuer, o.Token.CertFile)
	case o.Htpasswd != nil:
		users := map[string]string{r.PushUser: r.PushPassword}
		for u, p := range o.Htpasswd {
			users[u] = p
		}
		file := filepath.Join(dir, fmt.Sprintf("htpasswd-%d", r.Port))
		if err := writeHtpasswd(file, users); err != nil {
			return "", err
		}
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: registrytest\n    path: %s\n", file)
	}
	if o.PullThrough != "" {
		cfg += fmt.Sprintf("proxy:\n  remoteurl: %s\n", o.PullThrough)
	}
	path := filepath.Join(dir, fmt.Sprintf("config-%d.yml", r.Port))
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

// writeHtpasswd writes an htpasswd file (bcrypt, which the registry
// requires) with the htpasswd tool.
func writeHtpasswd(file string, users map[string]string) error {
	var buf bytes.Buffer
	for u, p := range users {
		out, err := exec.Command("htpasswd", "-Bbn", u, p).Output()
		if err != nil {
			return fmt.Errorf("htpasswd (package apache2-utils) for user %s: %w", u, err)
		}
		buf.Write(bytes.TrimSpace(out))
		buf.WriteByte('\n')
	}
	return os.WriteFile(file, buf.Bytes(), 0o600)
}

func (r *Registry) start(t testing.TB, dir string, o Options) error {
	client := &http.Client{Timeout: 2 * time.Second}
	if o.TLS != nil {
		r.CA, r.Scheme = o.TLS, "https"
		client.Transport = o.TLS.Transport()
	}
	if o.Htpasswd != nil || o.Token != nil {
		r.PushUser, r.PushPassword = "registrytest-push", fmt.Sprintf("push-%x", serial(t))
	}
	// With a token server, clients talk to a front on its own port that
	// serves /token and forwards the rest to the registry process.
	var front net.Listener
	realm := ""
	if o.Token != nil {
		o.Token.AddUser(r.PushUser, r.PushPassword)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		front = l
		realm = r.Scheme + "://" + l.Addr().String() + "/token"
		client = &http.Client{Timeout: 2 * time.Second}
	}
	cfg, err := r.config(t, dir, o, realm)
	if err != nil {
		return err
	}
	out := &LockedBuffer{}
	cmd := exec.Command(Binary, "serve", cfg)
	// A clean environment: REGISTRY_* variables would override the config.
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	scheme := r.Scheme
	if front != nil {
		scheme = "http" // the registry process itself
	}
	err = waitReady(client, scheme+"://"+r.Addr+"/v2/", done)
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
		if front != nil {
			front.Close()
		}
		return fmt.Errorf("%s: %w; log:\n%s", r.Addr, err, out.String())
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("registry %s log:\n%s", r.Addr, out.String())
		}
	})
	if front != nil {
		mux := http.NewServeMux()
		mux.Handle("/token", o.Token)
		p := serveProxy(t, front, "http://"+r.Addr, nil, ProxyOptions{TLS: o.TLS, TLSIPs: o.TLSIPs}, mux)
		r.Addr, r.Token = p.Addr, o.Token
		r.Port = front.Addr().(*net.TCPAddr).Port
	}
	return nil
}

// waitReady polls url until the registry answers 200 (open) or 401
// (authentication required), the registry exits or 20 s pass.
func waitReady(client *http.Client, url string, done <-chan error) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-done:
			return fmt.Errorf("registry exited before answering: %v", err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
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
	return reg.push(t, repoTag, func(r name.Reference, opts ...remote.Option) error {
		return remote.Write(r, img, opts...)
	})
}

// PushIndex writes the multi-platform idx to reg as repoTag and returns
// the full reference.
func PushIndex(t testing.TB, reg *Registry, repoTag string, idx v1.ImageIndex) string {
	t.Helper()
	return reg.push(t, repoTag, func(r name.Reference, opts ...remote.Option) error {
		return remote.WriteIndex(r, idx, opts...)
	})
}

// push writes to the registry as repoTag with write and returns the full
// reference.
func (reg *Registry) push(t testing.TB, repoTag string, write func(name.Reference, ...remote.Option) error) string {
	t.Helper()
	ref := reg.Addr + "/" + repoTag
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatalf("registrytest: push: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := write(r, reg.pushOptions(ctx)...); err != nil {
		t.Fatalf("registrytest: push %s: %v", ref, err)
	}
	return ref
}

// pushOptions authenticate as the push user and trust the registry's CA.
func (r *Registry) pushOptions(ctx context.Context) []remote.Option {
	opts := []remote.Option{remote.WithContext(ctx)}
	if r.PushUser != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.PushUser, Password: r.PushPassword}))
	}
	if r.CA != nil {
		opts = append(opts, remote.WithTransport(r.CA.Transport()))
	}
	return opts
}

// LockedBuffer collects output written from several goroutines (a
// process's, a server's log).
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
