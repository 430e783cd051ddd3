package runtime

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/layer"
)

// SystemdStopSignal is how a container in systemd mode is asked to
// stop, unless --stop-signal says otherwise: SIGRTMIN+3, which systemd
// takes as a request to power off (SIGTERM makes it re-execute itself).
const SystemdStopSignal = 37

// StopSignal is the signal that stops container c of an image with
// config cfg: --stop-signal's, else the image's STOPSIGNAL, else
// SystemdStopSignal in systemd mode, else SIGTERM, as podman chooses.
func StopSignal(cfg v1.Config, c bootcfg.Container) (int, error) {
	if c.StopSignal != 0 {
		return c.StopSignal, nil
	}
	if cfg.StopSignal != "" {
		n, err := bootcfg.ParseSignal(cfg.StopSignal)
		if err != nil {
			return 0, fmt.Errorf("the STOPSIGNAL of image %s: %w", c.Image, err)
		}
		return n, nil
	}
	if SystemdMode(cfg, c) {
		return SystemdStopSignal, nil
	}
	return int(unix.SIGTERM), nil
}

// SystemdMode tells whether container c of an image with config cfg runs
// in systemd mode (see Systemd).
func SystemdMode(cfg v1.Config, c bootcfg.Container) bool {
	args, err := processArgs(cfg, c)
	return err == nil && Systemd(c, args)
}

// Systemd tells whether container c, whose process is args, runs in
// systemd mode, by podman's rules: with --systemd=always, or with the
// default --systemd=true when the command (after a "/bin/sh -c") is
// /sbin/init, /usr/sbin/init, /usr/local/sbin/init or a systemd.
func Systemd(c bootcfg.Container, args []string) bool {
	switch c.Systemd {
	case "always":
		return true
	case "false":
		return false
	}
	if len(args) > 2 && args[0] == "/bin/sh" && args[1] == "-c" {
		args = args[2:]
	}
	if len(args) == 0 {
		return false
	}
	return slices.Contains([]string{"/sbin/init", "/usr/sbin/init", "/usr/local/sbin/init"}, args[0]) || path.Base(args[0]) == "systemd"
}

// systemdMode changes spec for systemd, as podman's systemd mode does:
// tmpfs on /run, /run/lock, /tmp and /var/log/journal (where c mounts
// nothing itself), a writable /sys/fs/cgroup, container_uuid in the
// environment (which systemd takes as the machine ID) and in
// /etc/machine-id when the image has none. Beyond podman, the machine's
// console is the container's /dev/console unless it has a terminal of
// its own (-t): systemd writes its status and journal+console units
// there. A privileged container gets none of the machine's virtual
// consoles, as with podman, and --shm-size-systemd sizes the tmpfs.
func systemdMode(spec *specs.Spec, root int, c bootcfg.Container, consolePath string) error {
	uuid, err := containerUUID(spec.Process.Env)
	if err != nil {
		return err
	}
	spec.Process.Env = setDefault(spec.Process.Env, "container_uuid", uuid)
	if err := writeMachineID(root, uuid); err != nil {
		return fmt.Errorf("systemd mode: %w", err)
	}
	mounted := func(dir string) bool {
		return slices.ContainsFunc(c.Mounts, func(m bootcfg.Mount) bool { return path.Clean(m.Target) == dir })
	}
	for _, dir := range []string{"/run", "/run/lock", "/tmp", "/var/log/journal"} {
		if mounted(dir) {
			continue
		}
		options := []string{"rw", "rprivate", "nosuid", "nodev", "tmpcopyup"}
		if c.ShmSizeSystemd > 0 {
			options = append(options, fmt.Sprintf("size=%d", c.ShmSizeSystemd))
		}
		spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == dir })
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: dir, Type: "tmpfs", Source: "tmpfs", Options: options})
	}
	// The machine's virtual consoles stay its own: systemd would start a
	// getty on each.
	spec.Linux.Devices = slices.DeleteFunc(spec.Linux.Devices, func(d specs.LinuxDevice) bool { return virtualConsole.MatchString(d.Path) })
	for i, m := range spec.Mounts {
		if m.Destination != "/sys/fs/cgroup" {
			continue
		}
		if c.CgroupNSHost {
			spec.Mounts[i] = specs.Mount{Destination: m.Destination, Type: "bind", Source: "/sys/fs/cgroup", Options: []string{"rbind", "rprivate", "rw"}}
		} else {
			spec.Mounts[i].Options = append(slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" || o == "rw" }), "rw")
		}
	}
	if !c.TTY && consolePath != "" {
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/dev/console", Type: "bind", Source: consolePath, Options: []string{"bind", "rprivate", "nosuid", "noexec"}})
	}
	return nil
}

// virtualConsole matches the device nodes of the virtual consoles, which
// a privileged container in systemd mode does not get, as with podman.
var virtualConsole = regexp.MustCompile(`^/dev/tty[0-9]+$`)

// containerUUID is the container_uuid env sets, or a new one: 32 hex
// digits, as podman's (the first 32 of its container ID).
func containerUUID(env []string) (string, error) {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "container_uuid="); ok {
			return v, nil
		}
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("systemd mode: container_uuid: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// writeMachineID writes id as the root's /etc/machine-id when it has
// none, or an empty one.
func writeMachineID(root int, id string) error {
	data, err := layer.ReadFileInRoot(root, "/etc/machine-id")
	if err == nil && strings.TrimSpace(string(data)) != "" {
		return nil
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("/etc/machine-id: %w", err)
	}
	etc, err := layer.MkdirAllInRoot(root, "/etc", 0o755)
	if err != nil {
		return fmt.Errorf("/etc: %w", err)
	}
	defer unix.Close(etc)
	fd, err := unix.Openat(etc, "machine-id", unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return fmt.Errorf("/etc/machine-id: %w", err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte(id+"\n")); err != nil {
		return fmt.Errorf("/etc/machine-id: %w", err)
	}
	return nil
}
