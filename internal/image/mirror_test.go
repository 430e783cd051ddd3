package image_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/image"
)

func TestParseMirror(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want image.Mirror
	}{
		{"docker.io=10.0.2.100:5000", image.Mirror{Registry: "docker.io", Mirrors: []string{"10.0.2.100:5000"}}},
		{"Index.Docker.io=Mirror.LAN:5000|mirror2.lan/hub/x", image.Mirror{Registry: "docker.io", Mirrors: []string{"mirror.lan:5000", "mirror2.lan/hub/x"}}},
		{"docker.io/library=m.lan/lib", image.Mirror{Registry: "docker.io/library", Mirrors: []string{"m.lan/lib"}}},
		{"quay.io=[fd00::1]:5000|localhost:5000", image.Mirror{Registry: "quay.io", Mirrors: []string{"[fd00::1]:5000", "localhost:5000"}}},
	} {
		got, err := image.ParseMirror(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseMirror(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if again, err := image.ParseMirror(got.String()); err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("ParseMirror(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"docker.io", "no '=' between the registry and its mirrors"},
		{"=m.lan", `registry "" is empty`},
		{"docker.io=", `mirror of docker.io: "" is empty`},
		{"docker.io=m.lan|", `mirror of docker.io: "" is empty`},
		{"docker.io=http://m.lan", `"http://m.lan" has a scheme`},
		{"docker.io=m.lan/Hub", `path element "Hub"`},
		{"docker.io=m.lan//x", `path element ""`},
		{"docker.io=m.lan:0", `port "0"`},
		{"docker.io=m_lan", `"m_lan" is neither a host name`},
	} {
		_, err := image.ParseMirror(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "expected REGISTRY=MIRROR") {
			t.Errorf("ParseMirror(%q): error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParseMirror(f *testing.F) {
	for _, s := range []string{"docker.io=m.lan:5000|m2.lan/hub", "docker.io/library=m/x", "a=b", "=", "a=|", "[::1]:5=[::2]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := image.ParseMirror(s)
		if err != nil {
			return
		}
		if m.Registry == "" || len(m.Mirrors) == 0 {
			t.Fatalf("ParseMirror(%q) = %+v: a part is missing", s, m)
		}
		again, err := image.ParseMirror(m.String())
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("ParseMirror(%q) = %+v, which reads back as %+v, %v", s, m, again, err)
		}
	})
}
