package bootcfg

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/switchroot"
)

// credsValue is the password of a container's --creds USER:PASSWORD, as
// written on the command line.
var credsValue = regexp.MustCompile(`(--creds(?:=|\s+)['"]?[^:\s'"]+:)[^\s'"]*`)

// maskCreds masks the passwords of --creds in a container parameter.
func maskCreds(s string) string { return credsValue.ReplaceAllString(s, "${1}***") }

// ParseContainer parses a container parameter's value, written as podman-run
// arguments: `[OPTIONS] IMAGE [COMMAND [ARG...]]`. Options come as `--opt
// value`, `--opt=value`, `-o value` or `-ovalue`, and one-letter flags may be
// combined (`-ti`). A `docker://` prefix on the image is removed. Everything
// after the image is the command.
func ParseContainer(spec string) (Container, error) {
	c := Container{Spec: spec}
	args, err := ShellSplit(spec)
	if err != nil {
		return Container{}, err
	}
	opts := containerOptions()
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		var consumed int
		if strings.HasPrefix(a, "--") {
			consumed, err = parseLongOption(&c, opts, args[i:])
		} else {
			consumed, err = parseShortOptions(&c, opts, args[i:])
		}
		if err != nil {
			return Container{}, err
		}
		i += consumed - 1
	}
	if i >= len(args) {
		return Container{}, fmt.Errorf("no image in %q: expected [OPTIONS] IMAGE [COMMAND [ARG...]]", spec)
	}
	if _, err := image.ParseReference(args[i]); err != nil {
		return Container{}, err
	}
	c.Image = strings.TrimPrefix(args[i], "docker://")
	c.Command = args[i+1:]
	if len(c.Command) == 0 {
		c.Command = nil
	}
	if err := c.check(); err != nil {
		return Container{}, err
	}
	c.Spec = maskCreds(c.Spec)
	return c, nil
}

// parseLongOption applies the `--name[=value]` option at args[0] and returns
// how many arguments it used.
func parseLongOption(c *Container, opts []containerOption, args []string) (int, error) {
	optName, val, hasVal := strings.Cut(args[0][2:], "=")
	opt, ok := findOption(opts, func(o containerOption) bool {
		return optName == o.long || (o.alias != "" && optName == o.alias)
	})
	flag := "--" + optName
	if !ok {
		return 0, unknownOption(flag)
	}
	switch {
	case !opt.value && hasVal:
		return 1, applyOption(c, opt, flag, val)
	case !opt.value:
		return 1, applyOption(c, opt, flag, "true")
	case hasVal:
		return 1, applyOption(c, opt, flag, val)
	case len(args) < 2:
		return 0, fmt.Errorf("option %s needs a value", flag)
	}
	return 2, applyOption(c, opt, flag, args[1])
}

// parseShortOptions applies the one-letter options combined in args[0]
// (`-ti`, `-eKEY=VALUE`, `-e KEY=VALUE`) and returns how many arguments it
// used.
func parseShortOptions(c *Container, opts []containerOption, args []string) (int, error) {
	a := args[0]
	for j := 1; j < len(a); j++ {
		flag := "-" + a[j:j+1]
		opt, ok := findOption(opts, func(o containerOption) bool { return o.short != 0 && a[j] == o.short })
		if !ok {
			return 0, unknownOption(flag)
		}
		if !opt.value {
			if err := applyOption(c, opt, flag, "true"); err != nil {
				return 0, err
			}
			continue
		}
		if val := strings.TrimPrefix(a[j+1:], "="); val != "" {
			return 1, applyOption(c, opt, flag, val)
		}
		if len(args) < 2 {
			return 0, fmt.Errorf("option %s needs a value", flag)
		}
		return 2, applyOption(c, opt, flag, args[1])
	}
	return 1, nil
}

// applyOption sets opt, written flag, to v; a flag's value is "true" or
// "false" (from any spelling strconv.ParseBool takes).
func applyOption(c *Container, opt containerOption, flag, v string) error {
	if !opt.value {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("option %s: got %q, expected true or false", flag, v)
		}
		v = strconv.FormatBool(b)
	}
	if err := opt.set(c, v); err != nil {
		return fmt.Errorf("option %s: %w", flag, err)
	}
	if opt.kind == warned {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s %s: %s", flag, v, opt.doc))
	}
	return nil
}

func findOption(opts []containerOption, match func(containerOption) bool) (containerOption, bool) {
	for _, o := range opts {
		if match(o) {
			return o, true
		}
	}
	return containerOption{}, false
}

func unknownOption(flag string) error {
	return fmt.Errorf("unknown container option %s: not an option of podman run (docs/cmdline.md lists them all, with what ociboot does with each)", flag)
}

// setEnv takes KEY=VALUE, KEY (ociboot's value, if it has one) or KEY*
// (ociboot's variables starting with KEY), as podman does.
func setEnv(c *Container, v string) error {
	key, _, _ := strings.Cut(v, "=")
	if key == "" || key == "*" || strings.ContainsAny(strings.TrimSuffix(key, "*"), "* \t\n") {
		return fmt.Errorf("got %q, expected KEY=VALUE, KEY or KEY*", v)
	}
	c.Env = append(c.Env, v)
	return nil
}

// setEntrypoint takes a JSON array of strings, as podman does, or else one
// string that is the whole entrypoint; "" gives an empty entrypoint.
func setEntrypoint(c *Container, v string) error {
	var list []string
	if strings.HasPrefix(v, "[") && json.Unmarshal([]byte(v), &list) == nil {
		c.Entrypoint = append([]string{}, list...)
		return nil
	}
	if v == "" {
		c.Entrypoint = []string{}
		return nil
	}
	c.Entrypoint = []string{v}
	return nil
}

func setWorkdir(c *Container, v string) error {
	if !strings.HasPrefix(v, "/") {
		return fmt.Errorf("got %q, expected an absolute path", v)
	}
	c.Workdir = v
	return nil
}

func setUser(c *Container, v string) error {
	user, group, hasGroup := strings.Cut(v, ":")
	if user == "" || (hasGroup && group == "") {
		return fmt.Errorf("got %q, expected USER[:GROUP] (names or numbers)", v)
	}
	c.User = v
	return nil
}

// setName accepts the names podman accepts: [a-zA-Z0-9][a-zA-Z0-9_.-]*.
func setName(c *Container, v string) error {
	for i, r := range v {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			i > 0 && (r == '_' || r == '.' || r == '-')
		if !ok {
			return fmt.Errorf("got %q, expected a name matching [a-zA-Z0-9][a-zA-Z0-9_.-]*", v)
		}
	}
	if v == "" {
		return fmt.Errorf("got an empty name, expected one matching [a-zA-Z0-9][a-zA-Z0-9_.-]*")
	}
	c.Name = v
	return nil
}

// setHostname checks the kernel's limits: 1 to 64 bytes.
func setHostname(c *Container, v string) error {
	if v == "" || len(v) > 64 || strings.ContainsAny(v, " \t\n/") {
		return fmt.Errorf("got %q, expected a host name of 1 to 64 characters", v)
	}
	c.Hostname = v
	return nil
}

// setPull takes podman's --pull policies: always, missing and never.
func setPull(c *Container, v string) error {
	if v == "" {
		return errors.New(`got "", expected always, missing or never`)
	}
	p, err := image.ParsePullPolicy(v)
	c.Pull = p
	return err
}

func setPlatform(c *Container, v string) error {
	p, err := image.ParsePlatform(v)
	c.Platform = p
	return err
}

// setNetwork accepts host networking (the default) and none.
func setNetwork(c *Container, v string) error {
	switch v {
	case "host":
		c.NoNetwork = false
	case "none":
		c.NoNetwork = true
	case "bridge", "private", "slirp4netns", "pasta":
		return fmt.Errorf("got %q, expected host or none: %s", v, whyNetwork)
	default:
		return fmt.Errorf("got %q, expected host or none", v)
	}
	return nil
}

// absPath checks an absolute path without "..".
func absPath(what, p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p && path.Clean(p)+"/" != p {
		return fmt.Errorf("%s %q: expected an absolute, clean path", what, p)
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return fmt.Errorf("%s %q: expected an absolute, clean path", what, p)
		}
	}
	return nil
}

// setVolume reads -v SRC:DST[:OPTS], SRC a host path or the name of a
// volume, OPTS ro or rw.
func setVolume(c *Container, v string) error {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Errorf("got %q, expected HOST-PATH:CONTAINER-PATH[:ro|rw] or VOLUME:CONTAINER-PATH[:ro|rw]", v)
	}
	m := Mount{Type: "bind", Source: parts[0], Target: parts[1]}
	if !strings.HasPrefix(parts[0], "/") {
		if !isVolumeName(parts[0]) {
			return fmt.Errorf("got %q: expected a host path such as /run/data or a volume name (letters, digits, '_', '.' and '-')", parts[0])
		}
		m.Type = "volume"
	}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				m.ReadOnly = true
			case "rw":
				m.ReadOnly = false
			case "z", "Z":
				// No SELinux labels to set.
			default:
				return fmt.Errorf("volume option %q: expected ro, rw, z or Z", o)
			}
		}
	}
	if m.Type == "bind" {
		if err := absPath("host path", m.Source); err != nil {
			return err
		}
	}
	if err := absPath("container path", m.Target); err != nil {
		return err
	}
	c.Mounts = append(c.Mounts, m)
	return nil
}

// setMount reads --mount type=bind|volume|tmpfs,source=…,target=…[,ro][,tmpfs-size=…][,tmpfs-mode=…].
func setMount(c *Container, v string) error {
	var m Mount
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(kv, "=")
		switch k {
		case "type":
			if val != "bind" && val != "tmpfs" && val != "volume" {
				return fmt.Errorf("type %q: expected bind, volume or tmpfs", val)
			}
			m.Type = val
		case "source", "src":
			m.Source = val
		case "target", "destination", "dst":
			m.Target = val
		case "ro", "readonly":
			m.ReadOnly = val == "" || val == "true"
		case "tmpfs-size", "tmpfs-mode":
			opt, err := tmpfsOption(strings.TrimPrefix(k, "tmpfs-"), val)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			m.Options = append(m.Options, opt)
		default:
			return fmt.Errorf("mount option %q: expected type, source, target, ro, tmpfs-size or tmpfs-mode", k)
		}
	}
	switch {
	case m.Type == "":
		return fmt.Errorf("got %q, expected type=bind, type=volume or type=tmpfs", v)
	case m.Type == "bind" && m.Source == "":
		return fmt.Errorf("got %q: a bind mount needs source=HOST-PATH", v)
	case m.Type == "tmpfs" && m.Source != "":
		return fmt.Errorf("got %q: a tmpfs has no source", v)
	case m.Type == "volume" && !isVolumeName(m.Source):
		return fmt.Errorf("got %q: a volume mount needs source=NAME, a volume name", v)
	}
	if m.Type == "bind" {
		if err := absPath("source", m.Source); err != nil {
			return err
		}
	}
	if err := absPath("target", m.Target); err != nil {
		return err
	}
	c.Mounts = append(c.Mounts, m)
	return nil
}

// setTmpfs reads --tmpfs PATH[:size=N,mode=M,ro].
func setTmpfs(c *Container, v string) error {
	target, opts, _ := strings.Cut(v, ":")
	if err := absPath("tmpfs path", target); err != nil {
		return err
	}
	m := Mount{Type: "tmpfs", Target: target}
	if opts != "" {
		for _, o := range strings.Split(opts, ",") {
			k, val, _ := strings.Cut(o, "=")
			switch k {
			case "size", "mode":
				opt, err := tmpfsOption(k, val)
				if err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
				m.Options = append(m.Options, opt)
			case "ro":
				m.ReadOnly = true
			case "rw":
			default:
				return fmt.Errorf("tmpfs option %q: expected size=, mode=, ro or rw", k)
			}
		}
	}
	c.Mounts = append(c.Mounts, m)
	return nil
}

// tmpfsOption checks a tmpfs's size (podman's sizes) or mode (octal) and
// returns the mount option.
func tmpfsOption(key, val string) (string, error) {
	if key == "size" {
		n, err := switchroot.ParseBytes(val)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("size=%d", n), nil
	}
	if _, err := strconv.ParseUint(val, 8, 32); err != nil {
		return "", fmt.Errorf("got %q, expected an octal mode such as 1777", val)
	}
	return "mode=" + val, nil
}

// setDevice reads --device HOST[:CONTAINER][:PERMS].
func setDevice(c *Container, v string) error {
	parts := strings.Split(v, ":")
	d := Device{Host: parts[0], Container: parts[0], Access: "rwm"}
	switch len(parts) {
	case 1:
	case 2:
		if strings.HasPrefix(parts[1], "/") {
			d.Container = parts[1]
		} else {
			d.Access = parts[1]
		}
	case 3:
		d.Container, d.Access = parts[1], parts[2]
	default:
		return fmt.Errorf("got %q, expected HOST[:CONTAINER][:PERMISSIONS]", v)
	}
	if err := absPath("host device", d.Host); err != nil {
		return err
	}
	if err := absPath("container device", d.Container); err != nil {
		return err
	}
	if d.Access == "" || strings.Trim(d.Access, "rwm") != "" {
		return fmt.Errorf("permissions %q: expected some of r, w and m", d.Access)
	}
	c.Devices = append(c.Devices, d)
	return nil
}

func setEnvFile(c *Container, v string) error {
	if v == "" {
		return errors.New("expected the path of a file of KEY=VALUE lines")
	}
	c.EnvFiles = append(c.EnvFiles, v)
	return nil
}

func setShmSize(c *Container, v string) error {
	n, err := switchroot.ParseBytes(v)
	if err != nil {
		return err
	}
	c.ShmSize = n
	return nil
}

// ulimitNames are podman's --ulimit names.
var ulimitNames = []string{"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}

// setUlimit reads NAME=SOFT[:HARD], -1 meaning unlimited.
func setUlimit(c *Container, v string) error {
	name, limits, ok := strings.Cut(v, "=")
	if !ok || !slices.Contains(ulimitNames, name) {
		return fmt.Errorf("got %q, expected NAME=SOFT[:HARD] with NAME one of %s", v, strings.Join(ulimitNames, ", "))
	}
	soft, hard, hasHard := strings.Cut(limits, ":")
	if !hasHard {
		hard = soft
	}
	parse := func(s string) (uint64, error) {
		if s == "-1" || s == "unlimited" {
			return math.MaxUint64, nil
		}
		return strconv.ParseUint(s, 10, 64)
	}
	u := Ulimit{Name: name}
	var err1, err2 error
	u.Soft, err1 = parse(soft)
	u.Hard, err2 = parse(hard)
	if err1 != nil || err2 != nil || u.Soft > u.Hard {
		return fmt.Errorf("got %q, expected NAME=SOFT[:HARD], whole numbers or -1, soft at most hard", v)
	}
	c.Ulimits = append(c.Ulimits, u)
	return nil
}

func setSecurityOpt(c *Container, v string) error {
	switch v {
	case "seccomp=unconfined":
		c.SeccompUnconfined = true
	case "no-new-privileges", "no-new-privileges=true", "no-new-privileges:true":
		c.NoNewPrivileges = true
	case "no-new-privileges=false", "no-new-privileges:false":
		c.NoNewPrivileges = false
	case "label=disable", "apparmor=unconfined":
		// No SELinux or AppArmor confinement is applied anyway.
	default:
		if paths, ok := strings.CutPrefix(v, "mask="); ok {
			return maskPaths(&c.Mask, "mask", paths, false)
		}
		if paths, ok := strings.CutPrefix(v, "unmask="); ok {
			return maskPaths(&c.Unmask, "unmask", paths, true)
		}
		return fmt.Errorf("got %q, expected seccomp=unconfined, no-new-privileges, mask=PATHS, unmask=PATHS, label=disable or apparmor=unconfined", v)
	}
	return nil
}

// maskPaths reads the ':'-separated paths of mask= or unmask= (which
// takes ALL too).
func maskPaths(to *[]string, what, paths string, all bool) error {
	for _, p := range strings.Split(paths, ":") {
		if all && p == "ALL" {
			*to = append(*to, p)
			continue
		}
		if err := absPath(what+" path", p); err != nil {
			return err
		}
		*to = append(*to, p)
	}
	return nil
}

// capNames checks a comma-separated list of capability names (with or
// without CAP_, any case) or ALL.
func capNames(v string) ([]string, error) {
	var out []string
	for _, n := range strings.Split(v, ",") {
		u := strings.ToUpper(n)
		ok := u != "" && u != "CAP_"
		for _, r := range strings.TrimPrefix(u, "CAP_") {
			ok = ok && (r >= 'A' && r <= 'Z' || r == '_')
		}
		if !ok {
			return nil, fmt.Errorf("got %q, expected capability names such as NET_ADMIN or CAP_SYS_TIME, or ALL", n)
		}
		out = append(out, u)
	}
	return out, nil
}

func setCapAdd(c *Container, v string) error {
	caps, err := capNames(v)
	c.CapAdd = append(c.CapAdd, caps...)
	return err
}

func setCapDrop(c *Container, v string) error {
	caps, err := capNames(v)
	c.CapDrop = append(c.CapDrop, caps...)
	return err
}
