package image_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/image"
)

// secretMarker is in every password of these tests, so that a test can
// check no output holds one.
const secretMarker = "Zq7-secret"

func TestParseRegistryAuth(t *testing.T) {
	for _, tc := range []struct {
		in, host string
		want     image.Credential
	}{
		{"registry.lan:5000,ci," + secretMarker, "registry.lan:5000", image.Credential{Username: "ci", Password: secretMarker}},
		{"Index.Docker.IO,me,a,b,,c" + secretMarker, "docker.io", image.Credential{Username: "me", Password: "a,b,,c" + secretMarker}},
		{"[fd00::1]:5000,u,p=q " + secretMarker, "[fd00::1]:5000", image.Credential{Username: "u", Password: "p=q " + secretMarker}},
	} {
		host, c, err := image.ParseRegistryAuth(tc.in)
		if err != nil || host != tc.host || c != tc.want {
			t.Errorf("ParseRegistryAuth(%q) = %q, %+v, %v; want %q, %+v", tc.in, host, c, err, tc.host, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"registry.lan", "no ',' after the registry"},
		{"registry.lan,ci" + secretMarker, "no ',' between user and password"},
		{"registry.lan,," + secretMarker, "empty user or password"},
		{"registry.lan,ci,", "empty user or password"},
		{"https://registry.lan,ci," + secretMarker, "has a scheme or a path"},
		{",ci," + secretMarker, `"" is empty`},
	} {
		_, _, err := image.ParseRegistryAuth(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "expected HOST[:PORT],USER,PASSWORD") {
			t.Errorf("ParseRegistryAuth(%q): error %v, want one containing %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secretMarker) {
			t.Errorf("ParseRegistryAuth(%q): error %q shows the password", tc.in, err)
		}
	}
}

func FuzzParseRegistryAuth(f *testing.F) {
	for _, s := range []string{"r.lan:5000,u,p", "docker.io,u,p,q", "[::1]:5,u,", ",,", "a,b", "000000,,000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, c, err := image.ParseRegistryAuth(s)
		if err != nil {
			// The error must not depend on the secret part: the same
			// input with another secret gives the same message, which
			// does not show it.
			before, secretPart, ok := strings.Cut(s, ",")
			if !ok || secretPart == "" {
				return
			}
			marker := "MARKER-" + secretMarker
			if user, pass, ok := strings.Cut(secretPart, ","); ok {
				if pass == "" {
					return
				}
				before, marker = before+","+user, ","+marker
			}
			_, _, err2 := image.ParseRegistryAuth(before + "," + strings.TrimPrefix(marker, ","))
			if err2 == nil || strings.Contains(err2.Error(), secretMarker) || err2.Error() != err.Error() {
				t.Fatalf("ParseRegistryAuth(%q): error %q; with another secret: %v", s, err, err2)
			}
			return
		}
		if host == "" || c.Username == "" || c.Password == "" || !strings.HasSuffix(s, ","+c.Password) {
			t.Fatalf("ParseRegistryAuth(%q) = %q, %+v", s, host, c)
		}
		// Every verb prints the user name only.
		want := fmt.Sprintf("user %q, password (redacted)", c.Username)
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			if got := fmt.Sprintf(verb, c); got != want {
				t.Fatalf("Sprintf(%s) of the credential of %q = %q, want %q", verb, s, got, want)
			}
		}
	})
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseDockerConfig(t *testing.T) {
	cfg := `{
	  "auths": {
	    "https://index.docker.io/v1/": {"auth": "` + b64("hubuser:hub"+secretMarker) + `"},
	    "registry.lan:5000": {"username": "ci", "password": "ci` + secretMarker + `"},
	    "http://10.0.2.100:5000": {"identitytoken": "refresh` + secretMarker + `"},
	    "ghcr.io": {"registrytoken": "bearer` + secretMarker + `"}
	  },
	  "credsStore": "desktop",
	  "HttpHeaders": {"User-Agent": "x"}
	}`
	got, err := image.ParseDockerConfig([]byte(cfg))
	if err != nil {
		t.Fatalf("ParseDockerConfig: %v", err)
	}
	want := map[string]image.Credential{
		"docker.io":         {Username: "hubuser", Password: "hub" + secretMarker},
		"registry.lan:5000": {Username: "ci", Password: "ci" + secretMarker},
		"10.0.2.100:5000":   {IdentityToken: "refresh" + secretMarker},
		"ghcr.io":           {RegistryToken: "bearer" + secretMarker},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseDockerConfig:\n got %v\nwant %v", got, want)
	}
	// Printing the credentials, in any form, shows no secret.
	for _, out := range []string{fmt.Sprint(got), fmt.Sprintf("%+v", got), fmt.Sprintf("%#v", got), fmt.Sprintf("%s", got["docker.io"])} {
		if strings.Contains(out, secretMarker) {
			t.Errorf("printed credentials show a secret: %s", out)
		}
		if !strings.Contains(out, "redacted") {
			t.Errorf("printed credentials %s do not say they were redacted", out)
		}
	}
	if js, err := json.Marshal(got); err != nil || strings.Contains(string(js), secretMarker) {
		t.Errorf("JSON of the credentials: %s, %v: want no secret", js, err)
	}
}

func TestParseDockerConfigErrors(t *testing.T) {
	for _, tc := range []struct{ cfg, want string }{
		{``, "invalid JSON"},
		{`{"auths": {"r.lan": {"auth": "` + secretMarker, "invalid JSON at byte"},
		{`{"auths": {"r.lan": {"auth": 12}}}`, `field "auths.auth" holds a JSON number`},
		{`{"auths": {}}`, `no "auths" entries`},
		{`{"credsStore": "desktop"}`, `no "auths" entries`},
		{`{"auths": {"r.lan": {}}, "credsStore": "desktop"}`, `"r.lan" has no credentials: they are kept by the credential helper "desktop"`},
		{`{"auths": {"r.lan": {}}, "credHelpers": {"r.lan": "pass"}}`, `credential helper "pass"`},
		{`{"auths": {"r.lan": {}}}`, `"r.lan" has no credentials: expected "auth"`},
		{`{"auths": {"r.lan": {"auth": "%%` + secretMarker + `"}}}`, `"auth" is not valid base64`},
		{`{"auths": {"r.lan": {"auth": "` + b64("nocolon"+secretMarker) + `"}}}`, `"auth" does not decode to USER:PASSWORD`},
		{`{"auths": {"r.lan": {"password": "` + secretMarker + `"}}}`, `a password without a "username"`},
		{`{"auths": {"r_lan": {"auth": "` + b64("u:"+secretMarker) + `"}}}`, `auths entry "r_lan": registry "r_lan"`},
		{`{"auths": {"docker.io": {"auth": "` + b64("a:"+secretMarker) + `"}, "https://index.docker.io/v1/": {"auth": "` + b64("b:"+secretMarker) + `"}}}`, "registry docker.io has credentials twice"},
	} {
		_, err := image.ParseDockerConfig([]byte(tc.cfg))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDockerConfig(%s): error %v, want one containing %q", tc.cfg, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), secretMarker) {
			t.Errorf("ParseDockerConfig(%s): error %q shows a secret", tc.cfg, err)
		}
	}
}

func FuzzParseDockerConfig(f *testing.F) {
	f.Add([]byte(`{"auths": {"r.lan:5000": {"auth": "` + b64("u:p") + `"}}}`))
	f.Add([]byte(`{"auths": {"https://index.docker.io/v1/": {"identitytoken": "t"}}, "credsStore": "x"}`))
	f.Add([]byte(`{"auths": {"r": {"username": "u", "password": "p"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		creds, err := image.ParseDockerConfig(data)
		if err != nil {
			return
		}
		for host, c := range creds {
			if _, err := image.ParseReference(host + "/x"); err != nil {
				t.Fatalf("registry key %q is not a registry: %v", host, err)
			}
			if c.Password == "" && c.IdentityToken == "" && c.RegistryToken == "" {
				t.Fatalf("registry %q got an empty credential", host)
			}
		}
	})
}
