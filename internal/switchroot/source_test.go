package switchroot

import (
	"strings"
	"testing"
)

func TestCheckSource(t *testing.T) {
	tests := []struct {
		source string
		url    bool
		want   string // a part of the error; "" for none
	}{
		{"alpine", false, ""},
		{"debian:12", false, ""},
		{"registry.lan/os/debian:12", false, ""},
		{"registry.lan:5000/os/fedora@sha256:" + strings.Repeat("ab", 32), false, ""},
		{"docker://registry.lan/os/debian:12", false, ""}, // the transport containers' images may name
		{"http://boot.lan/rootfs.tar.gz", true, ""},
		{"https://boot.lan/rootfs.tar.zst#sha256=" + strings.Repeat("0", 64), true, ""},
		{"file:///srv/rootfs.tar.xz", true, ""},
		{"ftp://boot.lan/rootfs.tar.gz", true, `rootfs tarball URL: unsupported URL scheme "ftp": want http, https or file`},
		{"nfs://server/export/rootfs.tar", true, `URL scheme "nfs"`},
		{"tftp://boot.lan/rootfs.tar", true, `URL scheme "tftp"`},
		{"http://boot lan/x", true, "rootfs tarball URL: invalid URL"},
		{"http:///rootfs.tar", true, "no host in URL"},
		{"file://srv/rootfs.tar", true, "want file:///ABSOLUTE/PATH"},
		{"http://boot.lan/rootfs.tar#sha256=abc", true, "want #sha256= followed by 64 hex digits"},
		{"registry.lan/Debian:12", false, "invalid image reference"},
		{"alpine:", false, "invalid image reference"},
		{"", false, "invalid image reference"},
	}
	for _, tt := range tests {
		if got := IsURL(tt.source); got != tt.url {
			t.Errorf("IsURL(%q) = %v, want %v", tt.source, got, tt.url)
		}
		err := CheckSource(tt.source)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckSource(%q): %v", tt.source, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckSource(%q) = %v, want an error containing %q", tt.source, err, tt.want)
		}
	}
}
