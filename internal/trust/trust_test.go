package trust_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/signature"
	"github.com/ociboot/ociboot/internal/trust"
)

func keys(t *testing.T, names ...string) []signature.Key {
	t.Helper()
	var ks []signature.Key
	for _, n := range names {
		data, err := os.ReadFile("../signature/testdata/" + strings.TrimSuffix(n, ".pub") + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		k, err := signature.ParseKey(n, data)
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	return ks
}

func names(ks []signature.Key) string {
	var s []string
	for _, k := range ks {
		s = append(s, k.Name)
	}
	return strings.Join(s, ",")
}

func TestDecisions(t *testing.T) {
	p, err := trust.ParsePolicy("policy.json", []byte(`{
		"default": {"mode": "require", "keys": ["ecdsa.pub"]},
		"scopes": {
			"registry.example": {"mode": "warn"},
			"registry.example/lab": {"mode": "require", "keys": ["rsa.pub"]},
			"registry.example/lab/open": {"mode": "accept"},
			"docker.io/library": {"mode": "warn", "keys": ["ed25519.pub", "rsa.pub"]},
			"https://boot.example/roots/": {"mode": "require", "keys": ["ed25519.pub"]}
		},
		"cmdline_may_warn": true
	}`))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trust.New(keys(t, "ecdsa.pub", "rsa.pub", "ed25519.pub"), p)
	if err != nil {
		t.Fatal(err)
	}
	hardened, err := tr.WithMode(trust.Require)
	if err != nil {
		t.Fatal(err)
	}
	weakened, err := tr.WithMode(trust.Warn)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target, scope string
		mode          trust.Mode
		keys          string
		hard, weak    trust.Mode
	}{
		{"other.example/app", "default", trust.Require, "ecdsa.pub", trust.Require, trust.Warn},
		{"registry.example/app", "registry.example", trust.Warn, "ecdsa.pub,ed25519.pub,rsa.pub", trust.Require, trust.Warn},
		{"registry.example/lab", "registry.example/lab", trust.Require, "rsa.pub", trust.Require, trust.Warn},
		{"registry.example/lab/app", "registry.example/lab", trust.Require, "rsa.pub", trust.Require, trust.Warn},
		{"registry.example/laboratory", "registry.example", trust.Warn, "ecdsa.pub,ed25519.pub,rsa.pub", trust.Require, trust.Warn},
		{"registry.example/lab/open/x", "registry.example/lab/open", trust.Accept, "ecdsa.pub,ed25519.pub,rsa.pub", trust.Accept, trust.Accept},
		{"busybox", "docker.io/library", trust.Warn, "ed25519.pub,rsa.pub", trust.Require, trust.Warn},
		{"index.docker.io/library/alpine", "docker.io/library", trust.Warn, "ed25519.pub,rsa.pub", trust.Require, trust.Warn},
		{"https://boot.example/roots/a.tar.gz", "https://boot.example/roots/", trust.Require, "ed25519.pub", trust.Require, trust.Warn},
		{"https://BOOT.example/roots/a.tar.gz?token=x", "https://boot.example/roots/", trust.Require, "ed25519.pub", trust.Require, trust.Warn},
		{"https://boot.example/other.tar", "default", trust.Require, "ecdsa.pub", trust.Require, trust.Warn},
	} {
		decide := func(tr *trust.Trust) trust.Decision {
			if strings.HasPrefix(c.target, "https://") {
				u, err := url.Parse(c.target)
				if err != nil {
					t.Fatal(err)
				}
				return tr.URL(u)
			}
			r, err := image.ParseReference(c.target)
			if err != nil {
				t.Fatal(err)
			}
			return tr.Image(r.Registry, r.Repository)
		}
		d := decide(tr)
		if d.Scope != c.scope || d.Mode != c.mode || names(d.Keys) != c.keys {
			t.Errorf("%s: %s", c.target, d)
		}
		if m := decide(hardened).Mode; m != c.hard {
			t.Errorf("%s, ociboot.verify=require: %s", c.target, m)
		}
		if m := decide(weakened).Mode; m != c.weak {
			t.Errorf("%s, ociboot.verify=warn: %s", c.target, m)
		}
	}
	if s := tr.Image("registry.example", "lab/x").String(); s != "policy scope registry.example/lab: require (rsa.pub)" {
		t.Errorf("String = %q", s)
	}
}

func TestDefaults(t *testing.T) {
	r := image.Reference{Registry: "registry.example", Repository: "app"}
	none, err := trust.New(nil, trust.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if d := none.Image(r.Registry, r.Repository); d.Mode != trust.Accept {
		t.Errorf("no keys: %s", d)
	}
	if _, err := none.WithMode(trust.Warn); err != nil {
		t.Errorf("ociboot.verify=warn without keys: %v", err)
	}
	all, err := trust.New(keys(t, "ecdsa.pub", "rsa.pub"), trust.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if d := all.Image(r.Registry, r.Repository); d.Mode != trust.Require || names(d.Keys) != "ecdsa.pub,rsa.pub" || d.String() != "policy default: require (ecdsa.pub, rsa.pub)" {
		t.Errorf("keys without a policy: %s", d)
	}
	if _, err := all.WithMode(trust.Warn); err == nil || !strings.Contains(err.Error(), "does not let the command line weaken it") {
		t.Errorf("ociboot.verify=warn on a policy that forbids it: %v", err)
	}
	scoped, err := trust.New(keys(t, "ecdsa.pub"), trust.Policy{Scopes: map[string]trust.Rule{"registry.example/lab": {Mode: trust.Require}}})
	if err != nil {
		t.Fatal(err)
	}
	if d := scoped.Image(r.Registry, r.Repository); d.Mode != trust.Accept || d.Scope != "default" {
		t.Errorf("outside a policy's scopes, without a default: %s", d)
	}
}

func TestErrors(t *testing.T) {
	ks := keys(t, "ecdsa.pub")
	for _, c := range []struct {
		policy, want string
	}{
		{`{"default": {"mode": "deny"}}`, `policy default: mode "deny": want require, warn or accept`},
		{`{"scopes": {"registry.example": {"mode": "require", "keys": ["x.pub"]}}}`, `policy scope "registry.example": key "x.pub" is not one of the keys given with --verify-key (ecdsa.pub)`},
		{`{"scopes": {"lab/app": {"mode": "require"}}}`, `policy scope "lab/app": want the registry first`},
		{`{"scopes": {"https://u:p@boot.example/": {"mode": "require"}}}`, `policy scope "https://u:p@boot.example/": want a URL prefix`},
		{`{"scopes": {"Bad Host": {"mode": "require"}}}`, `policy scope "Bad Host": want a registry HOST[:PORT]`},
		{`{"scopes": {"registry.example/lab/": {"mode": "require"}}}`, `want a repository HOST/PATH, without a trailing /`},
	} {
		p, err := trust.ParsePolicy("p.json", []byte(c.policy))
		if err == nil {
			_, err = trust.New(ks, p)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.policy, err, c.want)
		}
	}
	for _, c := range []struct{ data, want string }{
		{`{"defaults": {}}`, `policy p.json: json: unknown field "defaults"`},
		{`{} {}`, "more than one JSON value"},
		{`[`, "policy p.json: unexpected EOF"},
	} {
		if _, err := trust.ParsePolicy("p.json", []byte(c.data)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.data, err, c.want)
		}
	}
	if _, err := trust.New(nil, trust.DefaultPolicy()); err == nil || !strings.Contains(err.Error(), "without keys") {
		t.Errorf("policy without keys: %v", err)
	}
	if _, err := trust.New(append(ks, ks...), trust.DefaultPolicy()); err == nil || !strings.Contains(err.Error(), "two keys named ecdsa.pub") {
		t.Errorf("two keys of one name: %v", err)
	}
	tr, _ := trust.New(ks, trust.DefaultPolicy())
	if _, err := tr.WithMode("accept"); err == nil || !strings.Contains(err.Error(), `mode "accept": want require or warn`) {
		t.Errorf("ociboot.verify=accept: %v", err)
	}
}

func TestReadDir(t *testing.T) {
	none, err := trust.ReadDir(filepath.Join(t.TempDir(), "none"))
	if err != nil || none.Image("registry.lan", "app").Mode != trust.Accept {
		t.Errorf("no directory: %v", err)
	}
	// Keys put there without a policy (by --include, say) require a
	// signature, as --verify-key alone does.
	dir := t.TempDir()
	data, err := os.ReadFile("../signature/testdata/ecdsa.pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "release.pub"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	keysOnly, err := trust.ReadDir(dir)
	if err != nil || keysOnly.Image("registry.lan", "app").String() != "policy default: require (release.pub)" {
		t.Errorf("keys alone: %v, %v", keysOnly.Image("registry.lan", "app"), err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.pub"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := trust.ReadDir(dir); err == nil || !strings.Contains(err.Error(), dir+"/bad.pub: key bad.pub: no PEM block") {
		t.Errorf("a bad key: %v", err)
	}
}
