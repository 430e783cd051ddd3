package image_test

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/image"
)

const (
	digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	digestB = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want image.Reference
		str  string
	}{
		{"alpine", image.Reference{Registry: "docker.io", Repository: "library/alpine", Tag: "latest"}, "docker.io/library/alpine:latest"},
		{"alpine:3.20", image.Reference{Registry: "docker.io", Repository: "library/alpine", Tag: "3.20"}, "docker.io/library/alpine:3.20"},
		{"docker.io/library/alpine:3.20", image.Reference{Registry: "docker.io", Repository: "library/alpine", Tag: "3.20"}, "docker.io/library/alpine:3.20"},
		{"docker://alpine:3.20", image.Reference{Registry: "docker.io", Repository: "library/alpine", Tag: "3.20"}, "docker.io/library/alpine:3.20"},
		{"index.docker.io/library/alpine", image.Reference{Registry: "docker.io", Repository: "library/alpine", Tag: "latest"}, "docker.io/library/alpine:latest"},
		{"registry-1.docker.io/alpine", image.Reference{Registry: "docker.io", Repository: "library/alpine", Tag: "latest"}, "docker.io/library/alpine:latest"},
		{"bitnami/redis:7", image.Reference{Registry: "docker.io", Repository: "bitnami/redis", Tag: "7"}, "docker.io/bitnami/redis:7"},
		{"docker.io/bitnami/redis", image.Reference{Registry: "docker.io", Repository: "bitnami/redis", Tag: "latest"}, "docker.io/bitnami/redis:latest"},
		{"quay.io/podman/stable", image.Reference{Registry: "quay.io", Repository: "podman/stable", Tag: "latest"}, "quay.io/podman/stable:latest"},
		{"Registry.LAN:5000/ns/img", image.Reference{Registry: "registry.lan:5000", Repository: "ns/img", Tag: "latest"}, "registry.lan:5000/ns/img:latest"},
		{"registry:5000/ns/img@" + digestA, image.Reference{Registry: "registry:5000", Repository: "ns/img", Digest: digestA}, "registry:5000/ns/img@" + digestA},
		{"localhost/img:1", image.Reference{Registry: "localhost", Repository: "img", Tag: "1"}, "localhost/img:1"},
		{"localhost:5000/img", image.Reference{Registry: "localhost:5000", Repository: "img", Tag: "latest"}, "localhost:5000/img:latest"},
		{"10.0.2.100:5000/ci/job:v1", image.Reference{Registry: "10.0.2.100:5000", Repository: "ci/job", Tag: "v1"}, "10.0.2.100:5000/ci/job:v1"},
		{"[fd00::1]:5000/ci/job", image.Reference{Registry: "[fd00::1]:5000", Repository: "ci/job", Tag: "latest"}, "[fd00::1]:5000/ci/job:latest"},
		{"img:tag@" + digestB, image.Reference{Registry: "docker.io", Repository: "library/img", Tag: "tag", Digest: digestB}, "docker.io/library/img:tag@" + digestB},
		{"docker://r.lan/a/b/c:v-1.2_3@" + digestB, image.Reference{Registry: "r.lan", Repository: "a/b/c", Tag: "v-1.2_3", Digest: digestB}, "r.lan/a/b/c:v-1.2_3@" + digestB},
	} {
		got, err := image.ParseReference(tc.in)
		if err != nil {
			t.Errorf("ParseReference(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseReference(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if got.String() != tc.str {
			t.Errorf("ParseReference(%q).String() = %q, want %q", tc.in, got.String(), tc.str)
		}
		// The normalized form reads back as itself.
		if again, err := image.ParseReference(got.String()); err != nil || again != got {
			t.Errorf("ParseReference(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
}

func TestParseReferenceErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `path component ""`},
		{"Alpine", `path component "Alpine" is not lower-case`},
		{"alpine:", "empty tag"},
		{"alpine@sha256:abc", `digest "sha256:abc"`},
		{"alpine@md5:0123", `digest "md5:0123"`},
		{"alpine:bad tag", "tag"},
		{"oci-archive://x.tar", `transport "oci-archive" is not supported`},
		{"https://registry.lan/img", `transport "https"`},
		{"registry.lan:0/img", `port "0"`},
		{"registry.lan:99999/img", `port "99999"`},
		{"reg_istry.lan/img", `"reg_istry.lan" is neither a host name`},
		{"[::1/img", "no closing ']'"},
		{"a@" + digestA + "@" + digestA, "digest"},
		{"r.lan//img", `path component ""`},
		{"r.lan/a..b", `path component "a..b"`},
		{"r.lan/-a", `path component "-a"`},
	} {
		_, err := image.ParseReference(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "invalid image reference") {
			t.Errorf("ParseReference(%q): error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"alpine", "docker://r.lan:5000/a/b:c@" + digestA, "img:tag@" + digestB, "[::1]:1/x", "localhost/x", "a:b:c", "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := image.ParseReference(s)
		if err != nil {
			return
		}
		if r.Registry == "" || r.Repository == "" || (r.Tag == "" && r.Digest == "") {
			t.Fatalf("ParseReference(%q) = %+v: a part is missing", s, r)
		}
		again, err := image.ParseReference(r.String())
		if err != nil || again != r {
			t.Fatalf("ParseReference(%q) = %+v, but its String %q reads back as %+v, %v", s, r, r.String(), again, err)
		}
	})
}

func TestParsePlatform(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want v1.Platform
	}{
		{"linux/amd64", v1.Platform{OS: "linux", Architecture: "amd64"}},
		{"amd64", v1.Platform{OS: "linux", Architecture: "amd64"}},
		{"x86_64", v1.Platform{OS: "linux", Architecture: "amd64"}},
		{"arm64", v1.Platform{OS: "linux", Architecture: "arm64"}},
		{"linux/arm64/v8", v1.Platform{OS: "linux", Architecture: "arm64"}},
		{"aarch64", v1.Platform{OS: "linux", Architecture: "arm64"}},
		{"linux/arm/v7", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{"arm/v6", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}},
		{"linux/arm/7", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{"armhf", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{"Linux/ARM64", v1.Platform{OS: "linux", Architecture: "arm64"}},
		{"i686", v1.Platform{OS: "linux", Architecture: "386"}},
		{"linux/riscv64", v1.Platform{OS: "linux", Architecture: "riscv64"}},
		{"linux/ppc64le", v1.Platform{OS: "linux", Architecture: "ppc64le"}},
		{"windows/amd64", v1.Platform{OS: "windows", Architecture: "amd64"}},
		{"linux/amd64/v3", v1.Platform{OS: "linux", Architecture: "amd64", Variant: "v3"}},
	} {
		got, err := image.ParsePlatform(tc.in)
		if err != nil || got.String() != tc.want.String() || got.OS != tc.want.OS || got.Architecture != tc.want.Architecture || got.Variant != tc.want.Variant {
			t.Errorf("ParsePlatform(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", `"" is not a name`},
		{"linux/", `"" is not a name`},
		{"linux/arm/v7/x", "too many parts"},
		{"plan10/arm64/v8", `unknown operating system "plan10"`},
		{"linux", "an operating system is only allowed first"},
		{"arm64/linux", "an operating system is only allowed first"},
		{"linux/am d64", `"am d64" is not a name`},
	} {
		_, err := image.ParsePlatform(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "expected OS/ARCH") {
			t.Errorf("ParsePlatform(%q): error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParsePlatform(f *testing.F) {
	for _, s := range []string{"linux/arm/v7", "arm64", "x86_64", "linux/arm64/8", "windows/amd64", "a/b/c/d", "armel"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := image.ParsePlatform(s)
		if err != nil {
			return
		}
		if p.OS == "" || p.Architecture == "" {
			t.Fatalf("ParsePlatform(%q) = %+v: OS or architecture missing", s, p)
		}
		again, err := image.ParsePlatform(p.String())
		if err != nil || again.String() != p.String() {
			t.Fatalf("ParsePlatform(%q) = %q, which reads back as %q, %v", s, p.String(), again.String(), err)
		}
	})
}
