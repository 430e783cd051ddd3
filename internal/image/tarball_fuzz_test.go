package image

import (
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
)

// FuzzParseTarballURL checks the tarball URL parser on arbitrary input:
// no panic; an accepted URL has a supported scheme, a host (http, https)
// or an absolute path (file), and a pin exactly when it has a fragment;
// neither the name used in messages nor an error shows a password.
func FuzzParseTarballURL(f *testing.F) {
	for _, s := range []string{
		"http://127.0.0.1:8080/rootfs.tar.xz",
		"https://user:pass@127.0.0.1/r.tar.gz?X-Amz-Signature=abc#sha256=" + strings.Repeat("aB", 32),
		"file:///srv/rootfs.tar",
		"file://localhost/srv/r.tar#sha256=00",
		"tftp://127.0.0.1/r.tar",
		"http://u:p@[::1/x",
		"http://127.0.0.1/r.tar#md5=x",
		"#sha256=",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := parseTarballURL(s)
		msg := src.name
		if err != nil {
			msg += " " + err.Error()
		}
		if u, perr := url.Parse(strings.SplitN(s, "#", 2)[0]); perr == nil {
			if pass, ok := u.User.Password(); ok && len(pass) >= 4 && strings.Count(s, pass) == 1 && strings.Contains(msg, pass) {
				t.Fatalf("%q: message %q shows the password", s, msg)
			}
		}
		if err != nil {
			return
		}
		switch src.u.Scheme {
		case "http", "https":
			if src.u.Host == "" {
				t.Errorf("%q: accepted without a host", s)
			}
		case "file":
			if !strings.HasPrefix(src.u.Path, "/") {
				t.Errorf("%q: accepted a relative path %q", s, src.u.Path)
			}
		default:
			t.Errorf("%q: accepted scheme %q", s, src.u.Scheme)
		}
		if src.u.User != nil && strings.Contains(src.name, src.u.User.String()+"@") {
			t.Errorf("%q: name %q shows the user info", s, src.name)
		}
		_, frag, pinned := strings.Cut(s, "#")
		if pinned != (src.sha256 != nil) || (pinned && !strings.EqualFold(frag, "sha256="+hex.EncodeToString(src.sha256))) || (pinned && len(src.sha256) != 32) {
			t.Errorf("%q: pin %x does not follow the fragment", s, src.sha256)
		}
	})
}
