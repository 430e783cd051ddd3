// Package trust says which signatures an image or a rootfs tarball must
// carry: the public keys `ociboot build --verify-key` baked in, and the
// policy of --verify-policy, which gives each registry, repository or URL
// prefix (a scope) its keys and its mode: require a valid signature, warn
// without one, or accept anything. The most specific scope wins.
//
// Without a policy file every image and tarball requires a signature by
// one of the keys. The kernel command line's ociboot.verify=require
// hardens every warn to require; ociboot.verify=warn weakens every
// require to warn, only when the policy allows it (cmdline_may_warn).
package trust

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/signature"
)

// Mode is what a scope does with a signature that is missing or invalid.
type Mode string

// Modes.
const (
	// Require refuses the image or tarball.
	Require Mode = "require"
	// Warn says what is wrong on the console, and goes on.
	Warn Mode = "warn"
	// Accept checks nothing.
	Accept Mode = "accept"
)

// Rule is what a scope requires.
type Rule struct {
	Mode Mode `json:"mode"`
	// Keys names the keys (their file names, as given to --verify-key)
	// whose signatures the scope takes; none means all of them.
	Keys []string `json:"keys,omitempty"`
}

// Policy is the --verify-policy file, JSON.
type Policy struct {
	// Default applies where no scope does; nil means accept.
	Default *Rule `json:"default,omitempty"`
	// Scopes are, by scope, their rules. A scope is a registry
	// (HOST[:PORT]), a repository (HOST[:PORT]/PATH, covering the
	// repositories under it) or a URL prefix (https://HOST/PATH).
	Scopes map[string]Rule `json:"scopes,omitempty"`
	// CmdlineMayWarn lets ociboot.verify=warn weaken require to warn.
	CmdlineMayWarn bool `json:"cmdline_may_warn,omitempty"`
}

// DefaultPolicy is the policy when keys are given without a policy
// file: everything requires a signature by one of them.
func DefaultPolicy() Policy { return Policy{Default: &Rule{Mode: Require}} }

// ParsePolicy reads a policy file; the error names file.
func ParsePolicy(file string, data []byte) (Policy, error) {
	var p Policy
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Policy{}, fmt.Errorf("policy %s: %w (want {\"default\": {\"mode\": \"require\"}, \"scopes\": {\"registry.example/lab\": {\"mode\": \"warn\", \"keys\": [\"lab.pub\"]}}, \"cmdline_may_warn\": false})", file, err)
	}
	if dec.More() {
		return Policy{}, fmt.Errorf("policy %s: more than one JSON value", file)
	}
	return p, nil
}

// Trust is a policy with its keys, checked.
type Trust struct {
	policy Policy
	keys   []signature.Key
	scopes []scope // most specific first
	// override is ociboot.verify's mode ("" for none).
	override Mode
}

// scope is a policy scope, normalized.
type scope struct {
	name   string // as written
	prefix string // what a normalized image name or URL starts with
	url    bool
	rule   Rule
}

// New checks p against keys (every key a rule names exists, modes are
// known, scopes parse) and returns them as one Trust. No keys means no
// checking at all, and then p must be empty.
func New(keys []signature.Key, p Policy) (*Trust, error) {
	keys = slices.Clone(keys)
	slices.SortStableFunc(keys, func(a, b signature.Key) int { return strings.Compare(a.Name, b.Name) })
	t := &Trust{policy: p, keys: keys}
	if len(keys) == 0 {
		if p.Default != nil || len(p.Scopes) > 0 {
			return nil, fmt.Errorf("a verification policy without keys: give the keys with --verify-key")
		}
		return t, nil
	}
	names := map[string]bool{}
	for _, k := range keys {
		if names[k.Name] {
			return nil, fmt.Errorf("two keys named %s: give keys distinct file names", k.Name)
		}
		names[k.Name] = true
	}
	check := func(where string, r Rule) error {
		switch r.Mode {
		case Require, Warn, Accept:
		default:
			return fmt.Errorf("policy %s: mode %q: want require, warn or accept", where, r.Mode)
		}
		for _, n := range r.Keys {
			if !names[n] {
				return fmt.Errorf("policy %s: key %q is not one of the keys given with --verify-key (%s)", where, n, strings.Join(slices.Sorted(maps.Keys(names)), ", "))
			}
		}
		return nil
	}
	if p.Default != nil {
		if err := check("default", *p.Default); err != nil {
			return nil, err
		}
	}
	for s, r := range p.Scopes {
		if err := check(fmt.Sprintf("scope %q", s), r); err != nil {
			return nil, err
		}
		sc, err := parseScope(s)
		if err != nil {
			return nil, fmt.Errorf("policy scope %q: %w", s, err)
		}
		sc.rule = r
		t.scopes = append(t.scopes, sc)
	}
	slices.SortFunc(t.scopes, func(a, b scope) int {
		if c := len(b.prefix) - len(a.prefix); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return t, nil
}

// parseScope reads a scope: a URL prefix, a registry or a repository.
func parseScope(s string) (scope, error) {
	if strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return scope{}, fmt.Errorf("want a URL prefix, scheme://HOST[/PATH], without credentials, query or fragment")
		}
		return scope{name: s, prefix: urlKey(u), url: true}, nil
	}
	if !strings.Contains(s, "/") {
		if err := image.CheckRegistryHost(s); err != nil {
			return scope{}, fmt.Errorf("want a registry HOST[:PORT], a repository HOST/PATH or a URL prefix: %w", err)
		}
		return scope{name: s, prefix: image.NormalizeRegistry(s) + "/"}, nil
	}
	host, path, _ := strings.Cut(s, "/")
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		// Docker would read "lab/app" as Docker Hub's lab/app: a scope
		// names its registry.
		return scope{}, fmt.Errorf("want the registry first, HOST[:PORT]/PATH (docker.io/%s for Docker Hub)", s)
	}
	if path == "" || strings.HasSuffix(path, "/") {
		return scope{}, fmt.Errorf("want a repository HOST/PATH, without a trailing /")
	}
	if _, err := image.ParseReference(s); err != nil {
		return scope{}, fmt.Errorf("want a registry HOST[:PORT], a repository HOST/PATH or a URL prefix: %w", err)
	}
	return scope{name: s, prefix: image.NormalizeRegistry(host) + "/" + path}, nil
}

// urlKey is a URL as scopes match it: scheme, host and path.
func urlKey(u *url.URL) string {
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + u.EscapedPath()
}

// WithMode applies ociboot.verify=MODE ("" changes nothing): require
// hardens every warn to require; warn weakens every require to warn,
// when the policy allows it.
func (t *Trust) WithMode(m Mode) (*Trust, error) {
	switch m {
	case "":
		return t, nil
	case Require:
	case Warn:
		if len(t.keys) > 0 && !t.policy.CmdlineMayWarn {
			return nil, fmt.Errorf("the build's verification policy does not let the command line weaken it (its cmdline_may_warn is false)")
		}
	default:
		return nil, fmt.Errorf("mode %q: want require or warn", m)
	}
	c := *t
	c.override = m
	return &c, nil
}

// Decision is what applies to one image or tarball.
type Decision struct {
	// Scope is the policy scope that applies ("default" for the default).
	Scope string
	Mode  Mode
	Keys  []signature.Key
}

// String says where the decision comes from, for messages: "policy
// scope registry.example/lab: require (lab.pub)".
func (d Decision) String() string {
	names := make([]string, len(d.Keys))
	for i, k := range d.Keys {
		names[i] = k.Name
	}
	where := "policy " + d.Scope
	if d.Scope != "default" {
		where = fmt.Sprintf("policy scope %s", d.Scope)
	}
	return fmt.Sprintf("%s: %s (%s)", where, d.Mode, strings.Join(names, ", "))
}

// Image is what applies to the images of repository at registry, as
// image.ParseReference normalizes them.
func (t *Trust) Image(registry, repository string) Decision {
	n := registry + "/" + repository
	return t.decide(func(s scope) bool {
		return !s.url && (n == s.prefix || strings.HasPrefix(n, strings.TrimSuffix(s.prefix, "/")+"/"))
	})
}

// URL is what applies to a tarball at u.
func (t *Trust) URL(u *url.URL) Decision {
	k := urlKey(u)
	return t.decide(func(s scope) bool { return s.url && strings.HasPrefix(k, s.prefix) })
}

// decide returns the rule of the first scope that matches, else the
// default's.
func (t *Trust) decide(match func(scope) bool) Decision {
	if len(t.keys) == 0 {
		return Decision{Scope: "default", Mode: Accept}
	}
	d := Decision{Scope: "default", Mode: Accept}
	rule := t.policy.Default
	for _, s := range t.scopes {
		if match(s) {
			d.Scope, rule = s.name, &s.rule
			break
		}
	}
	if rule != nil {
		d.Mode = rule.Mode
		for _, k := range t.keys {
			if len(rule.Keys) == 0 || slices.Contains(rule.Keys, k.Name) {
				d.Keys = append(d.Keys, k)
			}
		}
	}
	switch {
	case t.override == Require && d.Mode == Warn:
		d.Mode = Require
	case t.override == Warn && d.Mode == Require:
		d.Mode = Warn
	}
	return d
}

// Keys are the keys, sorted by name.
func (t *Trust) Keys() []signature.Key { return t.keys }

// Policy is the policy.
func (t *Trust) Policy() Policy { return t.policy }

// Verification is what a pull of the image of repository at registry
// checks, nil when the policy accepts it unsigned.
func (t *Trust) Verification(registry, repository string) *image.Verification {
	return t.Image(registry, repository).verification()
}

// verification is what a pull checks under d, nil for nothing.
func (d Decision) verification() *image.Verification {
	if d.Mode == Accept {
		return nil
	}
	return &image.Verification{Keys: d.Keys, Warn: d.Mode == Warn, Policy: d.String()}
}

// URLDecision is what applies to the tarball at rawURL (its #sha256= pin
// apart); a URL that does not parse gets the default.
func (t *Trust) URLDecision(rawURL string) Decision {
	base, _, _ := strings.Cut(rawURL, "#")
	u, err := url.Parse(base)
	if err != nil {
		return t.decide(func(scope) bool { return false })
	}
	return t.URL(u)
}

// TarballVerification is what the download of the rootfs tarball at
// rawURL (its #sha256= pin apart) checks, nil when the policy accepts it
// unsigned.
func (t *Trust) TarballVerification(rawURL string) *image.Verification {
	return t.URLDecision(rawURL).verification()
}
