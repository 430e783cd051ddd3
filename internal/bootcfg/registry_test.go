package bootcfg

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/netconf"
)

const secret = "Zq7-secret"

func TestParseRegistryParameters(t *testing.T) {
	baked := Baked{
		Cmdline: `ociboot.registry_mirror=docker.io=hub.lan:5000|hub2.lan/dockerhub ociboot.registry_mirror=quay.io=q.lan ` +
			`ociboot.registry_auth=quay.io,baked,b` + secret + ` ociboot.platform=arm64 ociboot.pull_timeout=20m`,
		RegistryAuth: map[string]image.Credential{
			"Registry.LAN:5000": {Username: "file", Password: "f" + secret},
			"docker.io":         {IdentityToken: "t" + secret},
		},
		CACerts: []byte("PEM"),
	}
	kernel := `ociboot.registry_mirror=docker.io=10.0.2.100:5000 ociboot.registry_mirror=Index.Docker.IO=10.0.2.100:5001 ` +
		`ociboot.registry_mirror=ghcr.io/org=g.lan/org ociboot.registry_auth=registry.lan:5000,ci,c,` + secret +
		` ociboot.platform=linux/arm/v7 ociboot.pull_timeout=90`
	got, err := Parse(kernel, baked)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Plan{
		PoweroffDelay: -1,
		PushTimeout:   DefaultPushTimeout,
		LinkWait:      netconf.DefaultLinkWait,
		Registry: image.PullOptions{
			// Kernel mirrors replace the baked-in ones registry by registry.
			Mirrors: []image.Mirror{
				{Registry: "quay.io", Mirrors: []string{"q.lan"}},
				{Registry: "docker.io", Mirrors: []string{"10.0.2.100:5000", "10.0.2.100:5001"}},
				{Registry: "ghcr.io/org", Mirrors: []string{"g.lan/org"}},
			},
			// The credentials file, then the command line, which wins.
			Auth: map[string]image.Credential{
				"registry.lan:5000": {Username: "ci", Password: "c," + secret},
				"docker.io":         {IdentityToken: "t" + secret},
				"quay.io":           {Username: "baked", Password: "b" + secret},
			},
			CACerts:  []byte("PEM"),
			Platform: v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"},
			Timeout:  90 * time.Second,
		},
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("Parse\n got %+v\nwant %+v", *got, want)
	}
	// The baked-in values alone.
	got, err = Parse("", baked)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if r := got.Registry; len(r.Mirrors) != 2 || r.Mirrors[0].Mirrors[1] != "hub2.lan/dockerhub" || r.Platform.Architecture != "arm64" ||
		r.Timeout != 20*time.Minute || r.Auth["registry.lan:5000"].Username != "file" {
		t.Errorf("Parse with baked-in values only: %+v", got)
	}
	// A plan prints without its secrets.
	for _, out := range []string{fmt.Sprint(got), fmt.Sprintf("%+v", got), fmt.Sprintf("%#v", got)} {
		if strings.Contains(out, secret) {
			t.Errorf("printed plan shows a secret: %s", out)
		}
	}
}

func TestParsePullTimeout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"10m", 10 * time.Minute}, {"600", 600 * time.Second}, {"1h30m", 90 * time.Minute}, {"1s", time.Second}, {"2.5m", 150 * time.Second},
	} {
		p, err := Parse("ociboot.pull_timeout="+tc.in, Baked{})
		if err != nil || p.Registry.Timeout != tc.want {
			t.Errorf("ociboot.pull_timeout=%s: %v, %v; want %v", tc.in, p, err, tc.want)
		}
	}
	if p, err := Parse("", Baked{}); err != nil || p.Registry.Timeout != image.DefaultPullTimeout {
		t.Errorf("default pull timeout: %v, %v", p, err)
	}
}

func TestParseRegistryErrors(t *testing.T) {
	for _, tc := range []struct{ kernel, want string }{
		{"ociboot.registry_mirror", "ociboot.registry_mirror: needs a value: REGISTRY=MIRROR"},
		{"ociboot.registry_mirror=docker.io", `ociboot.registry_mirror="docker.io": no '=' between the registry and its mirrors`},
		{"ociboot.registry_mirror=docker.io=http://m.lan", `"http://m.lan" has a scheme`},
		{"ociboot.registry_auth", "ociboot.registry_auth (value not shown: it holds a password): needs a value: HOST[:PORT],USER,PASSWORD"},
		{"ociboot.registry_auth=r.lan,u" + secret, "ociboot.registry_auth (value not shown: it holds a password): registry \"r.lan\": no ',' between user and password"},
		{"ociboot.registry_auth=r_lan,u," + secret, `registry "r_lan" is neither a host name`},
		{"ociboot.platform=linux", `ociboot.platform="linux": platform "linux": an operating system is only allowed first`},
		{"ociboot.platform", "ociboot.platform: needs a value: OS/ARCH"},
		{"ociboot.pull_timeout=0", `ociboot.pull_timeout="0": got "0", expected a duration such as 10m`},
		{"ociboot.pull_timeout=-5m", `got "-5m"`},
		{"ociboot.pull_timeout=500ms", `got "500ms"`},
		{"ociboot.pull_timeout=soon", `got "soon"`},
		{"ociboot.pull_timeout=99999999999999999999", `got "99999999999999999999"`},
		{"ociboot.pull_timeout=9999999999999", `got "9999999999999"`},
		{"ociboot.pull_timeout", "ociboot.pull_timeout: needs a value"},
	} {
		_, err := Parse(tc.kernel, Baked{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): error %v, want one containing %q", tc.kernel, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("Parse(%q): error %q shows the password", tc.kernel, err)
		}
	}
}
