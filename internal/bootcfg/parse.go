package bootcfg

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ociboot/ociboot/internal/image"
)

// paramDef is one parameter ociboot knows, under all its spellings.
type paramDef struct {
	// names are the accepted keys, in the order messages list them.
	names []string
	// apply checks one value and records it in the plan. It is called for
	// every value in command-line order: a repeatable parameter appends,
	// any other overwrites (the last value wins).
	apply func(p *Plan, v Param) error
	// key, when set, makes the parameter keyed: kernel values replace
	// baked-in values of the same key only (a registry's mirrors or
	// credentials), instead of the whole list.
	key func(v Param) string
	// secret parameters have their values left out of messages.
	secret bool
}

// knownParams is the table of parameters in the ociboot. and b2c.
// namespaces. Adding a parameter means adding a row.
func knownParams() []paramDef {
	return []paramDef{
		{names: []string{"ociboot.container", "ociboot.run", "b2c.container", "b2c.run"}, apply: applyContainer},
		{names: []string{"ociboot.modules"}, apply: applyModules},
		{names: []string{"ociboot.insecure_registry"}, apply: applyInsecureRegistry},
		{names: []string{"ociboot.registry_mirror"}, apply: applyRegistryMirror, key: mirrorKey},
		{names: []string{"ociboot.registry_auth"}, apply: applyRegistryAuth, key: authKey, secret: true},
		{names: []string{"ociboot.platform"}, apply: applyPlatform},
		{names: []string{"ociboot.pull_timeout"}, apply: applyPullTimeout},
		{names: []string{"ociboot.poweroff_delay", "b2c.poweroff_delay"}, apply: applyPoweroffDelay},
	}
}

// source is one parameter together with where it was written, for messages.
type source struct {
	Param
	origin string
}

// Parse builds the Plan from the kernel command line and the baked-in
// defaults. Parameters on the kernel command line replace the baked-in ones
// of the same parameter (all spellings of a parameter count as one; a
// repeatable parameter is replaced as a whole list, except registry mirrors
// and credentials, replaced registry by registry). Keys in the ociboot. and
// b2c. namespaces that ociboot does not know are errors; other parameters are
// left to the kernel. Parsing stops at a bare `--`, after which the kernel
// passes the arguments to init.
func Parse(kernelCmdline string, baked Baked) (*Plan, error) {
	defs := knownParams()
	defaults, err := collect(baked.Cmdline, "baked-in", defs)
	if err != nil {
		return nil, err
	}
	given, err := collect(kernelCmdline, "kernel", defs)
	if err != nil {
		return nil, err
	}
	plan := &Plan{PoweroffDelay: -1, PullTimeout: image.DefaultPullTimeout, CACerts: baked.CACerts}
	for host, c := range baked.RegistryAuth {
		if plan.RegistryAuth == nil {
			plan.RegistryAuth = map[string]image.Credential{}
		}
		plan.RegistryAuth[image.NormalizeRegistry(host)] = c
	}
	for i, def := range defs {
		values := given[i]
		switch {
		case def.key != nil:
			values = mergeByKey(defaults[i], given[i], def.key)
		case len(values) == 0:
			values = defaults[i]
		}
		for _, v := range values {
			if err := def.apply(plan, v.Param); err != nil {
				shown := v.Param.String()
				if def.secret {
					shown = v.Key + " (value not shown: it holds a password)"
				}
				return nil, fmt.Errorf("%s parameter %s: %w", v.origin, shown, err)
			}
		}
	}
	return plan, nil
}

// mergeByKey returns the baked-in values whose key the kernel does not
// give, followed by the kernel's values.
func mergeByKey(baked, kernel []source, key func(Param) string) []source {
	given := map[string]bool{}
	for _, v := range kernel {
		given[key(v.Param)] = true
	}
	var out []source
	for _, v := range baked {
		if !given[key(v.Param)] {
			out = append(out, v)
		}
	}
	return append(out, kernel...)
}

// collect splits a command line and sorts its ociboot. and b2c. parameters
// by definition: the result's i-th list holds the values of defs[i], in
// command-line order.
func collect(cmdline, origin string, defs []paramDef) ([][]source, error) {
	byDef := make([][]source, len(defs))
	for _, p := range SplitKernelCmdline(cmdline) {
		if p.Key == "--" && !p.HasValue {
			break
		}
		if !inNamespace(p.Key) {
			continue
		}
		i := findParam(defs, p.Key)
		if i < 0 {
			return nil, fmt.Errorf("unknown %s parameter %q: expected one of %s",
				origin, p.Key, strings.Join(allNames(defs), ", "))
		}
		byDef[i] = append(byDef[i], source{p, origin})
	}
	return byDef, nil
}

// inNamespace reports whether key is in a namespace whose parameters must
// all be known.
func inNamespace(key string) bool {
	return strings.HasPrefix(key, "ociboot.") || strings.HasPrefix(key, "b2c.")
}

func findParam(defs []paramDef, key string) int {
	for i, d := range defs {
		for _, n := range d.names {
			if n == key {
				return i
			}
		}
	}
	return -1
}

func allNames(defs []paramDef) []string {
	var names []string
	for _, d := range defs {
		names = append(names, d.names...)
	}
	return names
}

var errNoValue = errors.New("needs a value")

func value(v Param) (string, error) {
	if !v.HasValue {
		return "", errNoValue
	}
	return v.Value, nil
}

func applyContainer(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: [OPTIONS] IMAGE [COMMAND [ARG...]]", err)
	}
	c, err := ParseContainer(s)
	if err != nil {
		return err
	}
	p.Containers = append(p.Containers, c)
	return nil
}

func applyModules(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: comma-separated module names", err)
	}
	var mods []string
	for _, m := range strings.Split(s, ",") {
		if !isModuleName(m) {
			return fmt.Errorf("module name %q: expected comma-separated module names made of letters, digits, '_' and '-' (such as virtio_net,e1000)", m)
		}
		mods = append(mods, m)
	}
	p.Modules = mods
	return nil
}

func isModuleName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func applyInsecureRegistry(p *Plan, v Param) error {
	s, err := value(v)
	if err == nil {
		err = image.CheckRegistryHost(s)
	}
	if err != nil {
		return fmt.Errorf("%w (a registry is HOST[:PORT], such as registry.lan:5000, 10.0.2.100:5000 or [fd00::1]:5000)", err)
	}
	p.InsecureRegistries = append(p.InsecureRegistries, s)
	return nil
}

func applyPoweroffDelay(p *Plan, v Param) error {
	const want = "a whole number of seconds, 0 or more"
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: %s", err, want)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || s[0] == '+' {
		return fmt.Errorf("got %q, expected %s", s, want)
	}
	p.PoweroffDelay = n
	return nil
}

// mirrorKey is the registry a mirror parameter is for.
func mirrorKey(v Param) string {
	if m, err := image.ParseMirror(v.Value); err == nil {
		return m.Registry
	}
	return v.Value
}

func applyRegistryMirror(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: REGISTRY=MIRROR[|MIRROR…], such as docker.io=10.0.2.100:5000", err)
	}
	m, err := image.ParseMirror(s)
	if err != nil {
		return err
	}
	for i := range p.RegistryMirrors {
		if p.RegistryMirrors[i].Registry == m.Registry {
			p.RegistryMirrors[i].Mirrors = append(p.RegistryMirrors[i].Mirrors, m.Mirrors...)
			return nil
		}
	}
	p.RegistryMirrors = append(p.RegistryMirrors, m)
	return nil
}

// authKey is the registry a credential parameter is for.
func authKey(v Param) string {
	if host, _, err := image.ParseRegistryAuth(v.Value); err == nil {
		return host
	}
	return v.Value
}

func applyRegistryAuth(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: HOST[:PORT],USER,PASSWORD", err)
	}
	host, c, err := image.ParseRegistryAuth(s)
	if err != nil {
		return err
	}
	if p.RegistryAuth == nil {
		p.RegistryAuth = map[string]image.Credential{}
	}
	p.RegistryAuth[host] = c
	return nil
}

func applyPlatform(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: OS/ARCH[/VARIANT] or ARCH[/VARIANT], such as linux/arm64 or arm/v7", err)
	}
	p.Platform, err = image.ParsePlatform(s)
	return err
}

func applyPullTimeout(p *Plan, v Param) error {
	const want = "a duration such as 10m, 90s or 1h30m, or a number of seconds, at least 1s"
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: %s", err, want)
	}
	d, err := time.ParseDuration(s)
	if n, nerr := strconv.Atoi(s); nerr == nil && s[0] != '+' && s[0] != '-' {
		d, err = time.Duration(n)*time.Second, nil
		if n > int(math.MaxInt64/int64(time.Second)) {
			err = errors.New("too long")
		}
	}
	if err != nil || d < time.Second {
		return fmt.Errorf("got %q, expected %s", s, want)
	}
	p.PullTimeout = d
	return nil
}
