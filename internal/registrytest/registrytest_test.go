package registrytest

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestStartPushFetch(t *testing.T) {
	reg := Start(t)
	// Bound to 127.0.0.1 only: another loopback address gets no answer.
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.2:%d", reg.Port), time.Second); err == nil {
		c.Close()
		t.Errorf("registry answers on 127.0.0.2:%d, want 127.0.0.1 only", reg.Port)
	}
	img := BusyboxImage(t, LayerFromFiles(t, map[string]string{"etc/motd": "hi\n"}, "etc/group"))
	ref := Push(t, reg, "test/busybox:1", img)
	if want := reg.Addr + "/test/busybox:1"; ref != want {
		t.Errorf("Push returned %q, want %q", ref, want)
	}

	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := remote.Image(r, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("fetch back %s: %v", ref, err)
	}
	want, _ := img.Digest()
	if d, err := got.Digest(); err != nil || d != want {
		t.Errorf("fetched digest %v (%v), want %v", d, err, want)
	}
	cf, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.Cmd[0] != "sh" || cf.Config.Env[0] != BusyboxPathEnv || cf.OS != "linux" {
		t.Errorf("config = %+v, want Cmd [sh], Env [%s], os linux", cf.Config, BusyboxPathEnv)
	}

	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	if _, err := os.Stat(reg.BlobPath(d)); err != nil {
		t.Errorf("BlobPath of the base layer: %v", err)
	}
}

func TestLayerFromFilesWhiteouts(t *testing.T) {
	l := LayerFromFiles(t, map[string]string{"a/b/c": "x"}, "a/gone", "d/")
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
	want := []string{"a/", "a/.wh.gone", "d/", "d/.wh..wh..opq", "a/b/", "a/b/c"}
	if !slices.Equal(names, want) {
		t.Errorf("entries = %q, want %q", names, want)
	}
}

// fetch reads ref back with go-containerregistry, trusting ca.
func fetch(t *testing.T, ref string, ca *CA, auth authn.Authenticator) error {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithTransport(ca.Transport()), remote.WithAuth(auth))
	if err != nil {
		return err
	}
	_, err = img.ConfigFile()
	return err
}

func TestHtpasswdOverTLS(t *testing.T) {
	ca := NewCA(t)
	reg := StartWith(t, Options{TLS: ca, Htpasswd: map[string]string{"alice": "s3cret"}})
	if reg.Scheme != "https" || reg.CA != ca {
		t.Errorf("Scheme %q, CA %p: want https and the CA", reg.Scheme, reg.CA)
	}
	ref := Push(t, reg, "test/private:1", Image(t, v1.Config{}, LayerFromFiles(t, map[string]string{"f": "x"})))
	if err := fetch(t, ref, ca, &authn.Basic{Username: "alice", Password: "s3cret"}); err != nil {
		t.Errorf("fetch with alice's password: %v", err)
	}
	for _, auth := range []authn.Authenticator{authn.Anonymous, &authn.Basic{Username: "alice", Password: "wrong"}} {
		if err := fetch(t, ref, ca, auth); err == nil || !strings.Contains(err.Error(), "UNAUTHORIZED") {
			t.Errorf("fetch as %v: error %v, want UNAUTHORIZED", auth, err)
		}
	}
	// Another CA's client does not trust the registry.
	if err := fetch(t, ref, NewCA(t), &authn.Basic{Username: "alice", Password: "s3cret"}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("fetch trusting another CA: error %v, want a certificate error", err)
	}
}

func TestTokenAuth(t *testing.T) {
	ca := NewCA(t)
	ts := NewTokenServer(t, map[string]string{"bob": "hunter2"})
	reg := StartWith(t, Options{TLS: ca, Token: ts})
	ref := Push(t, reg, "test/token:1", Image(t, v1.Config{}, LayerFromFiles(t, map[string]string{"f": "x"})))
	if err := fetch(t, ref, ca, &authn.Basic{Username: "bob", Password: "hunter2"}); err != nil {
		t.Errorf("fetch as bob: %v", err)
	}
	issued := 0
	for _, r := range ts.Requests() {
		if r.User == "bob" && r.Status == 200 && slices.Contains(r.Scopes, "repository:test/token:pull") {
			issued++
		}
	}
	if issued == 0 {
		t.Errorf("token server requests %+v: want a token issued to bob for repository:test/token:pull", ts.Requests())
	}
	if err := fetch(t, ref, ca, &authn.Basic{Username: "bob", Password: "nope"}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("fetch with a wrong password: error %v, want a 401 from the token server", err)
	}
}
