package runtime

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/ociboot/ociboot/internal/bootcfg"
)

// userMounts maps the container's -v, --mount and --tmpfs to mounts,
// after the standard ones. A bind mount's source must exist.
func userMounts(c bootcfg.Container) ([]specs.Mount, error) {
	var out []specs.Mount
	for _, m := range c.Mounts {
		var sm specs.Mount
		switch m.Type {
		case "bind":
			if _, err := os.Stat(m.Source); err != nil {
				return nil, fmt.Errorf("volume %s:%s: %w", m.Source, m.Target, err)
			}
			sm = specs.Mount{Destination: m.Target, Type: "bind", Source: m.Source, Options: []string{"rbind", "rprivate"}}
		case "tmpfs":
			sm = specs.Mount{Destination: m.Target, Type: "tmpfs", Source: "tmpfs", Options: append([]string{"nosuid", "nodev"}, m.Options...)}
		default:
			return nil, fmt.Errorf("mount on %s: unknown type %q", m.Target, m.Type)
		}
		if m.ReadOnly {
			sm.Options = append(sm.Options, "ro")
		}
		out = append(out, sm)
	}
	return out, nil
}

// isPrivileged: boot2container's containers are all privileged; the
// native dialect's only with --privileged, as with podman.
func isPrivileged(c bootcfg.Container) bool {
	return c.Privileged || c.Dialect == bootcfg.DialectB2C
}

// UsesHostDevices reports whether Spec reads the machine's device nodes
// for c: a privileged container gets them all, --device, a bind mount of
// a node under /dev and the per-device I/O limits name some. The drivers
// of the devices present must be loaded before Spec for such a
// container, and only for it.
func UsesHostDevices(c bootcfg.Container) bool {
	r := c.Resources
	if isPrivileged(c) || len(c.Devices)+len(r.ReadBps)+len(r.WriteBps)+len(r.ReadIOps)+len(r.WriteIOps) > 0 {
		return true
	}
	for _, m := range c.Mounts {
		if rel, ok := strings.CutPrefix(filepath.Clean(m.Source), "/dev/"); m.Type == "bind" && ok && rel != "" {
			return true
		}
	}
	return false
}

// userDevices maps --device to device nodes made in the container.
func userDevices(c bootcfg.Container) ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	for _, d := range c.Devices {
		dev, err := deviceOf(filepath.Dir(d.Host), d.Host)
		if err != nil {
			return nil, fmt.Errorf("--device %s: %w", d.Host, err)
		}
		dev.Path = d.Container
		out = append(out, dev)
	}
	return out, nil
}

// envFiles reads --env-file files: KEY=VALUE lines; blank lines and lines
// starting with # are skipped; a bare KEY takes ociboot's own value, if
// it has one, as podman does.
func envFiles(c bootcfg.Container) ([]string, error) {
	var env []string
	for _, name := range c.EnvFiles {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("--env-file: %w", err)
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			key, _, hasValue := strings.Cut(line, "=")
			if key == "" || strings.ContainsAny(key, " \t") {
				f.Close()
				return nil, fmt.Errorf("--env-file %s, line %d: expected KEY=VALUE", name, n)
			}
			if !hasValue {
				v, ok := os.LookupEnv(key)
				if !ok {
					continue
				}
				line = key + "=" + v
			}
			env = append(env, line)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--env-file %s: %w", name, err)
		}
	}
	return env, nil
}

// rlimits maps --ulimit to the process's resource limits.
func rlimits(c bootcfg.Container) []specs.POSIXRlimit {
	var out []specs.POSIXRlimit
	for _, u := range c.Ulimits {
		out = append(out, specs.POSIXRlimit{Type: "RLIMIT_" + strings.ToUpper(u.Name), Soft: u.Soft, Hard: u.Hard})
	}
	return out
}
