package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/initramfs"
)

func TestRegistryOptions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	auth := write("config.json", `{"auths": {"r.lan": {"username": "u", "password": "Zq7-secret"}}}`)
	opts := initramfs.Options{Cmdline: "quiet"}
	err := registryOptions(&opts, auth, nil, []string{"Docker.io=m.lan:5000|m2.lan/hub", "quay.io=q.lan"})
	if err != nil {
		t.Fatalf("registryOptions: %v", err)
	}
	if want := "quiet ociboot.registry_mirror=docker.io=m.lan:5000|m2.lan/hub ociboot.registry_mirror=quay.io=q.lan"; opts.Cmdline != want {
		t.Errorf("cmdline %q, want %q", opts.Cmdline, want)
	}
	if !strings.Contains(string(opts.RegistryAuth), "Zq7-secret") {
		t.Errorf("credentials not carried to the build")
	}
	for _, tc := range []struct {
		auth    string
		ca      []string
		mirrors []string
		want    string
	}{
		{filepath.Join(dir, "none.json"), nil, nil, "--registry-auth: open"},
		{write("bad.json", `{"auths": {"r.lan": {"auth": "!!Zq7-secret"}}}`), nil, nil, "--registry-auth " + dir + "/bad.json: auths entry \"r.lan\""},
		{"", []string{write("ca.pem", "junk")}, nil, "--ca-file " + dir + "/ca.pem: no PEM CERTIFICATE block"},
		{"", nil, []string{"docker.io"}, `--registry-mirror "docker.io": no '='`},
	} {
		err := registryOptions(&initramfs.Options{}, tc.auth, tc.ca, tc.mirrors)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "Zq7-secret") {
			t.Errorf("registryOptions(%q, %q, %q): error %v, want one containing %q and no secret", tc.auth, tc.ca, tc.mirrors, err, tc.want)
		}
	}
}
