// Package runtime writes the OCI runtime bundle for one container, from its
// image config and its podman-run style options, and builds the command that
// runs it with an OCI runtime binary (crun, or runc).
//
// Containers of the b2c. dialect, and those given --privileged, are set
// up the way boot2container runs its containers (podman run --privileged
// --network=host): every capability the host can grant, no seccomp
// filter, no masked or read-only paths, the host's device nodes. Others
// get podman run's defaults: its default capability set, its masked and
// read-only paths, a read-only /sys, the standard device nodes only, and a
// seccomp filter. All share the host's network and get their own pid,
// mount, ipc, uts and cgroup namespaces (no user namespace), unless their
// options say otherwise (podman.go maps the options of podman run).
package runtime

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/containerinit"
	"github.com/ociboot/ociboot/internal/layer"
)

// SpecVersion is the ociVersion of the specs Spec writes: the runtime spec
// version that has everything they use. crun 1.8 (Debian 12) refuses 1.2.0
// and later with "unknown version specified".
const SpecVersion = "1.0.2"

// DefaultPath is the PATH a container gets when its image sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Options are what Spec needs besides the image config and the container's
// options.
type Options struct {
	// RootfsDir is the container's root filesystem, an absolute path.
	RootfsDir string
	// Hostname is used when the container has no --hostname; when empty,
	// the host's hostname is used, as podman does with --network host.
	Hostname string
	// Env holds KEY=VALUE pairs set by ociboot itself (such as
	// B2C_PIPELINE_STATUS); they override the image's Env, and the
	// container's -e values override them.
	Env []string
	// HostEtcDir holds the resolv.conf and hosts files bind-mounted into
	// the container when they exist; "" means /etc.
	HostEtcDir string
	// DevDir is the host directory whose device nodes the container gets;
	// "" means /dev.
	DevDir string
	// CmdlineFile, when set, is a host file the container sees as
	// /proc/cmdline (read-only): the kernel command line with its secrets
	// masked (bootcfg.MaskSecrets).
	CmdlineFile string
	// InitBinary is the ociboot binary, mounted into containers given
	// --init to be their PID 1 (containerinit).
	InitBinary string
	// ID is the container's ID, its cgroup's name under --cgroup-parent.
	ID string
	// FilesDir is a directory of the container's own where Spec writes
	// the files it mounts into it (its resolv.conf and hosts when its
	// options change them).
	FilesDir string
	// ConsolePath is the machine's console, a container's /dev/console in
	// systemd mode; "" means /dev/console.
	ConsolePath string
}

// Spec builds the runtime spec of container c of an image with config img
// (nil for an image without config) unpacked in o.RootfsDir. It reads the
// rootfs's /etc/passwd and /etc/group to resolve the user, creates the
// working directory in the rootfs when it is missing (as podman does), and
// lists the host's device nodes.
func Spec(img *v1.ConfigFile, c bootcfg.Container, o Options) (*specs.Spec, error) {
	if !filepath.IsAbs(o.RootfsDir) {
		return nil, fmt.Errorf("rootfs directory %q: expected an absolute path", o.RootfsDir)
	}
	var cfg v1.Config
	if img != nil {
		cfg = img.Config
	}
	args, err := processArgs(cfg, c)
	if err != nil {
		return nil, err
	}
	systemd := Systemd(c, args)
	hostname, err := pickHostname(c, o)
	if err != nil {
		return nil, err
	}

	root, err := unix.Open(o.RootfsDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("rootfs of image %s: open %s: %w", c.Image, o.RootfsDir, err)
	}
	defer unix.Close(root)
	userSpec := firstNonEmpty(c.User, cfg.User)
	user, err := resolveUser(root, userSpec)
	if err != nil {
		return nil, fmt.Errorf("user %q of image %s: %w", userSpec, c.Image, err)
	}
	added, err := extraGroups(root, c, user)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Image, err)
	}
	user.groups = append(user.groups, added...)
	cwd := firstNonEmpty(c.Workdir, cfg.WorkingDir, "/")
	cwd = path.Clean("/" + cwd)
	if err := makeWorkdir(root, cwd, user); err != nil {
		return nil, fmt.Errorf("working directory %q of image %s: %w", cwd, c.Image, err)
	}

	env, err := processEnv(cfg, c, o, hostname, user.home)
	if err != nil {
		return nil, err
	}
	if env, err = setTimeZone(root, c, env); err != nil {
		return nil, err
	}

	privileged := isPrivileged(c)
	capSet := defaultCapabilities
	if privileged {
		capSet = boundingSet()
	}
	capSet, err = adjustCapabilities(capSet, c.CapAdd, c.CapDrop)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Image, err)
	}
	// Without --privileged the container gets only the standard device
	// nodes, and without CAP_MKNOD it cannot make others. The device
	// cgroup allows all: a deny list needs crun to load an eBPF program,
	// which needs a higher RLIMIT_MEMLOCK than some hosts grant.
	var devices []specs.LinuxDevice
	if privileged {
		devDir := firstNonEmpty(o.DevDir, "/dev")
		if devices, err = hostDevices(devDir); err != nil {
			return nil, fmt.Errorf("listing host devices in %s: %w", devDir, err)
		}
	}
	mounts := containerMounts(privileged, c)
	resolver, err := resolverMounts(c, firstNonEmpty(o.HostEtcDir, "/etc"), o.FilesDir)
	if err != nil {
		return nil, err
	}
	extra, err := userMounts(c)
	if err != nil {
		return nil, err
	}
	mounts = slices.Concat(mounts, resolver, readOnlyTmpfs(c), imageVolumes(c, cfg), extra)
	if c.Init {
		if o.InitBinary == "" {
			return nil, fmt.Errorf("container %s: --init: no init binary to mount", c.Image)
		}
		mounts = append(mounts, specs.Mount{Destination: containerinit.Path, Type: "bind", Source: o.InitBinary, Options: []string{"bind", "ro"}})
		args = append([]string{containerinit.Path, containerinit.Arg, "--"}, args...)
	}
	given, err := userDevices(c)
	if err != nil {
		return nil, err
	}
	devices = append(devices, given...)
	if o.CmdlineFile != "" {
		if _, err := os.Stat(o.CmdlineFile); err != nil {
			return nil, fmt.Errorf("command line to show as /proc/cmdline: %w", err)
		}
		mounts = append(mounts, specs.Mount{Destination: "/proc/cmdline", Type: "bind", Source: o.CmdlineFile, Options: []string{"bind", "ro", "nosuid", "noexec", "nodev"}})
	}

	res, err := resources(c.Resources)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Image, err)
	}
	notes, err := annotations(c)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Image, err)
	}

	spec := &specs.Spec{
		Version: SpecVersion,
		Process: &specs.Process{
			Terminal: c.TTY,
			User: specs.User{
				UID:            user.uid,
				GID:            user.gid,
				AdditionalGids: user.groups,
				Umask:          c.Umask,
			},
			Args:            args,
			Env:             env,
			Cwd:             cwd,
			Capabilities:    capabilities(user.uid, capSet),
			NoNewPrivileges: c.NoNewPrivileges,
			Rlimits:         rlimits(c),
			OOMScoreAdj:     c.OOMScoreAdj,
		},
		Root:        &specs.Root{Path: o.RootfsDir, Readonly: c.ReadOnly},
		Hostname:    hostname,
		Mounts:      mounts,
		Annotations: notes,
		Linux: &specs.Linux{
			Namespaces: namespaces(c),
			Devices:    devices,
			Resources:  res,
			Sysctl:     sysctls(c),
		},
	}
	if c.UTSHost {
		spec.Hostname = "" // the machine's, which the runtime may not set
	}
	if c.CgroupParent != "" {
		spec.Linux.CgroupsPath = path.Join(c.CgroupParent, firstNonEmpty(o.ID, c.Name, "container"))
	}
	if !privileged {
		spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths = confinedPaths(c)
		if !c.SeccompUnconfined {
			spec.Linux.Seccomp = seccompProfile()
		}
	}
	if systemd {
		if err := systemdMode(spec, root, c, firstNonEmpty(o.ConsolePath, "/dev/console")); err != nil {
			return nil, fmt.Errorf("container %s: %w", c.Image, err)
		}
	}
	// A mount goes after those of its parents, as podman orders them:
	// the tmpfs on /run must not hide a volume on /run/x.
	slices.SortStableFunc(spec.Mounts, func(a, b specs.Mount) int {
		return cmp.Compare(strings.Count(path.Clean(a.Destination), "/"), strings.Count(path.Clean(b.Destination), "/"))
	})
	return spec, nil
}

// processArgs applies podman's rules: --entrypoint replaces the image's
// Entrypoint and drops the image's Cmd; a command replaces the image's Cmd;
// an entrypoint of [""] counts as none.
func processArgs(cfg v1.Config, c bootcfg.Container) ([]string, error) {
	entrypoint := cfg.Entrypoint
	if c.Entrypoint != nil {
		entrypoint = c.Entrypoint
	}
	var args []string
	if len(entrypoint) != 1 || entrypoint[0] != "" {
		args = append(args, entrypoint...)
	}
	cmd := c.Command
	if len(cmd) == 0 && c.Entrypoint == nil {
		cmd = cfg.Cmd
	}
	args = append(args, cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("image %s has no Entrypoint or Cmd and the container gives no command: nothing to run", c.Image)
	}
	return args, nil
}

func pickHostname(c bootcfg.Container, o Options) (string, error) {
	if h := firstNonEmpty(c.Hostname, o.Hostname); h != "" {
		return h, nil
	}
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("no hostname given for image %s and the host's is unknown: %w", c.Image, err)
	}
	return h, nil
}

// mergeEnv concatenates KEY=VALUE lists; a later value for a key replaces an
// earlier one in its place.
func mergeEnv(lists ...[]string) []string {
	var env []string
	index := map[string]int{}
	for _, list := range lists {
		for _, kv := range list {
			key, _, _ := strings.Cut(kv, "=")
			if i, ok := index[key]; ok {
				env[i] = kv
				continue
			}
			index[key] = len(env)
			env = append(env, kv)
		}
	}
	return env
}

// setDefault appends key=value to env unless env sets key.
func setDefault(env []string, key, value string) []string {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return env
		}
	}
	return append(env, key+"="+value)
}

// makeWorkdir creates dir (absolute, clean) in the rootfs when missing,
// giving the directories it creates to the container's user. The rootfs's
// links are followed inside it, as the container will see them.
func makeWorkdir(root int, dir string, u execUser) error {
	fd, err := layer.MkdirAllInRoot(root, dir, 0o755, func(fd int, name string) error {
		if err := unix.Fchownat(fd, "", int(u.uid), int(u.gid), unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("chown %s to %d:%d: %w", name, u.uid, u.gid, err)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) {
			return fmt.Errorf("%s exists in the rootfs and is not a directory", dir)
		}
		return err
	}
	unix.Close(fd)
	return nil
}

// containerMounts lists the container's filesystems: what a podman
// container gets (a writable /sys when privileged); --ipc none leaves
// out /dev/shm.
func containerMounts(privileged bool, c bootcfg.Container) []specs.Mount {
	sysMode := "ro"
	if privileged {
		sysMode = "rw"
	}
	shm := "size=65536k"
	if c.ShmSize > 0 {
		shm = fmt.Sprintf("size=%d", c.ShmSize)
	}
	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", shm}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", sysMode}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", sysMode}},
	}
	if c.IPC == "none" {
		mounts = slices.DeleteFunc(mounts, func(m specs.Mount) bool { return m.Destination == "/dev/shm" })
	}
	return mounts
}

// boundingSet lists every capability the caller can grant: those in its
// bounding set, which for PID 1 is all that the kernel knows (what podman
// --privileged gives).
func boundingSet() []string {
	var all []string
	for i, name := range allCapabilities() {
		if in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(i), 0, 0, 0); err == nil && in == 1 {
			all = append(all, name)
		}
	}
	return all
}

// capabilities gives root the capabilities of set; any other user keeps
// them in its bounding set only, as podman does.
func capabilities(uid uint32, set []string) *specs.LinuxCapabilities {
	if uid != 0 {
		return &specs.LinuxCapabilities{Bounding: set}
	}
	return &specs.LinuxCapabilities{Bounding: set, Effective: set, Permitted: set}
}

// allCapabilities lists every Linux capability, CAP_CHOWN (0) to
// CAP_CHECKPOINT_RESTORE (40).
func allCapabilities() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
		"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
		"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
		"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
		"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
		"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
		"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
		"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
		"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
		"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
		"CAP_CHECKPOINT_RESTORE",
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
