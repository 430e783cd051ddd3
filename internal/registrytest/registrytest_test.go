package registrytest

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
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
