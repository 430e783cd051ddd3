package image_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/registrytest"
)

// TestRegistryOverrides pulls from a TLS registry that wants credentials,
// with a puller that knows neither its CA nor its users: a pull's own
// settings (podman run's --tls-verify, --cert-dir, --creds, --authfile)
// make it work for that pull only.
func TestRegistryOverrides(t *testing.T) {
	ca := registrytest.NewCA(t)
	reg := registrytest.StartWith(t, registrytest.Options{TLS: ca, Htpasswd: map[string]string{"ci": "s3cret"}})
	ref := registrytest.Push(t, reg, "private/img:1", registrytest.Image(t, v1.Config{}))
	p, err := image.NewPuller(image.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(certDir, "ca.crt"), ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cas, clients, err := image.ReadCertDir(certDir)
	if err != nil || len(clients) != 0 {
		t.Fatalf("ReadCertDir: %v, %d client certificates", err, len(clients))
	}
	creds := &image.Credential{Username: "ci", Password: "s3cret"}
	no, yes := false, true
	for _, tc := range []struct {
		name string
		o    image.RegistryOverrides
		want string // "" for success
	}{
		{"none", image.RegistryOverrides{}, "certificate signed by unknown authority"},
		{"the CA only", image.RegistryOverrides{CACerts: cas}, "UNAUTHORIZED"},
		{"the CA and --creds", image.RegistryOverrides{CACerts: cas, Creds: creds}, ""},
		{"--tls-verify=false and --creds", image.RegistryOverrides{TLSVerify: &no, Creds: creds}, ""},
		{"--tls-verify=true and --creds", image.RegistryOverrides{TLSVerify: &yes, Creds: creds}, "certificate signed by unknown authority"},
		{"--authfile", image.RegistryOverrides{CACerts: cas, Auth: map[string]image.Credential{reg.Addr: *creds}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := p.Pull(context.Background(), ref, image.Request{Registry: tc.o})
			if err == nil {
				_, err = img.ConfigFile()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("pull: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("pull: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// The puller's own settings are untouched.
	if _, err := p.Pull(context.Background(), ref, image.Request{}); err == nil {
		t.Error("the puller pulls from the registry with no CA and no credentials: an override leaked into it")
	}
}
