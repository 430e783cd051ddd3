package runtime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/ociboot/ociboot/internal/atomicfile"
	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/layer"
)

// This file maps the podman-run options of the full table to the spec:
// environment, resolver files, namespaces, cgroup limits, time zone.

// ContainerName is the value of the container variable every container
// gets, as podman's get "podman": how systemd and others tell they run
// in a container, and whose.
const ContainerName = "ociboot"

// proxyVars are the variables --http-proxy passes on.
var proxyVars = []string{"http_proxy", "https_proxy", "ftp_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY"}

// processEnv computes the process's environment with podman's precedence,
// later winning: the image's, the proxy variables and (--env-host) the
// whole environment of ociboot, ociboot's own (o.Env), --env-file, -e,
// --env-merge; then the defaults; then --unsetenv and --unsetenv-all take
// theirs away.
func processEnv(cfg v1.Config, c bootcfg.Container, o Options, hostname, home string) ([]string, error) {
	fromFiles, err := envFiles(c)
	if err != nil {
		return nil, err
	}
	host := os.Environ()
	var passed []string
	if !c.NoHTTPProxy {
		for _, kv := range host {
			if k, _, _ := strings.Cut(kv, "="); slices.Contains(proxyVars, k) {
				passed = append(passed, kv)
			}
		}
	}
	if c.EnvHost {
		passed = host
	}
	given := append(slices.Clone(fromFiles), hostValues(c.Env, host)...)
	env := mergeEnv(cfg.Env, passed, o.Env, given)
	merged := expandMerge(c.EnvMerge, env)
	env = mergeEnv(env, merged)
	given = append(given, merged...)

	env = setDefault(env, "PATH", DefaultPath)
	env = setDefault(env, "HOSTNAME", hostname)
	env = setDefault(env, "HOME", home)
	env = setDefault(env, "container", ContainerName)
	if c.TTY {
		env = setDefault(env, "TERM", "xterm")
	}
	return slices.DeleteFunc(env, func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(c.Unsetenv, k) {
			return true
		}
		return c.UnsetenvAll && !slices.ContainsFunc(given, func(g string) bool { return strings.HasPrefix(g, k+"=") })
	}), nil
}

// hostValues resolves -e KEY (ociboot's value, if any) and -e KEY*
// (every variable of ociboot's starting with KEY).
func hostValues(env, host []string) []string {
	var out []string
	for _, kv := range env {
		if strings.Contains(kv, "=") {
			out = append(out, kv)
			continue
		}
		prefix, isPrefix := strings.CutSuffix(kv, "*")
		for _, h := range host {
			k, _, _ := strings.Cut(h, "=")
			if k == kv || isPrefix && strings.HasPrefix(k, prefix) {
				out = append(out, h)
			}
		}
	}
	return out
}

// expandMerge expands ${KEY} and $KEY in the --env-merge values with the
// values env has.
func expandMerge(merge, env []string) []string {
	values := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		values[k] = v
	}
	out := make([]string, len(merge))
	for i, kv := range merge {
		k, v, _ := strings.Cut(kv, "=")
		out[i] = k + "=" + os.Expand(v, func(name string) string { return values[name] })
	}
	return out
}

// resolverMounts are the container's /etc/resolv.conf and /etc/hosts:
// the machine's (from etcDir), or files of the container's own in
// filesDir when its options change them, or none with --dns=none and
// --no-hosts (the image's own then stay).
func resolverMounts(c bootcfg.Container, etcDir, filesDir string) ([]specs.Mount, error) {
	var mounts []specs.Mount
	for _, f := range []struct {
		name string
		skip bool
		edit func([]byte) []byte
	}{
		{"resolv.conf", c.DNSNone, editResolvConf(c)},
		{"hosts", c.NoHosts, editHosts(c)},
	} {
		if f.skip {
			continue
		}
		src := filepath.Join(etcDir, f.name)
		fi, err := os.Stat(src)
		missing := errors.Is(err, fs.ErrNotExist)
		switch {
		case missing && f.edit == nil:
			continue
		case err != nil && !missing:
			return nil, fmt.Errorf("host file to share with containers: %w", err)
		case !missing && !fi.Mode().IsRegular():
			return nil, fmt.Errorf("host file to share with containers %s: expected a regular file, found %s", src, fi.Mode().Type())
		}
		if f.edit != nil {
			if filesDir == "" {
				return nil, fmt.Errorf("container %s: no directory for its own /etc/%s", c.Image, f.name)
			}
			var data []byte // the machine's file, when there is one
			if !missing {
				if data, err = os.ReadFile(src); err != nil {
					return nil, fmt.Errorf("host file to share with containers: %w", err)
				}
			}
			src = filepath.Join(filesDir, f.name)
			if err := atomicfile.WriteFile(src, f.edit(data), 0o644); err != nil {
				return nil, fmt.Errorf("container %s: writing its /etc/%s: %w", c.Image, f.name, err)
			}
		}
		mounts = append(mounts, specs.Mount{Destination: "/etc/" + f.name, Type: "bind", Source: src, Options: []string{"rbind", "rprivate"}})
	}
	return mounts, nil
}

// editResolvConf returns how --dns, --dns-search and --dns-option change
// the machine's resolv.conf (each replaces the lines of its kind), or nil
// when they are not given.
func editResolvConf(c bootcfg.Container) func([]byte) []byte {
	if len(c.DNS)+len(c.DNSSearch)+len(c.DNSOptions) == 0 {
		return nil
	}
	return func(host []byte) []byte {
		var b bytes.Buffer
		replaced := map[string][]string{"nameserver": c.DNS, "options": c.DNSOptions}
		if len(c.DNSSearch) > 0 {
			// Not nil, even when "." leaves it empty: no search domains.
			replaced["search"] = slices.DeleteFunc(slices.Clone(c.DNSSearch), func(s string) bool { return s == "." })
		}
		sc := bufio.NewScanner(bytes.NewReader(host))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 0 {
				if r, ok := replaced[fields[0]]; ok && r != nil {
					continue
				}
			}
			b.WriteString(sc.Text() + "\n")
		}
		for _, ns := range c.DNS {
			fmt.Fprintf(&b, "nameserver %s\n", ns)
		}
		for _, kind := range []string{"search", "options"} {
			if values := replaced[kind]; len(values) > 0 {
				fmt.Fprintf(&b, "%s %s\n", kind, strings.Join(values, " "))
			}
		}
		return b.Bytes()
	}
}

// editHosts returns how --add-host changes the machine's hosts file (its
// lines come first, as podman writes them), or nil.
func editHosts(c bootcfg.Container) func([]byte) []byte {
	if len(c.AddHosts) == 0 {
		return nil
	}
	return func(host []byte) []byte {
		return append([]byte(strings.Join(c.AddHosts, "\n")+"\n"), host...)
	}
}

// namespaces are the container's: its own pid, mount, ipc, uts and
// cgroup namespaces unless --pid, --ipc, --uts or --cgroupns host share
// the machine's; a network namespace with --network none.
func namespaces(c bootcfg.Container) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	for _, n := range []struct {
		t    specs.LinuxNamespaceType
		host bool
	}{
		{specs.PIDNamespace, c.PIDHost},
		{specs.IPCNamespace, c.IPC == "host"},
		{specs.UTSNamespace, c.UTSHost},
		{specs.CgroupNamespace, c.CgroupNSHost},
		{specs.NetworkNamespace, !c.NoNetwork},
	} {
		if !n.host {
			ns = append(ns, specs.LinuxNamespace{Type: n.t})
		}
	}
	return ns
}

// resources maps the cgroup options; device paths are read for their
// numbers.
func resources(r bootcfg.Resources) (*specs.LinuxResources, error) {
	out := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}}
	if r.Memory != 0 || r.MemoryReservation != 0 {
		m := &specs.LinuxMemory{}
		if r.Memory > 0 {
			m.Limit = &r.Memory
			swap := 2 * r.Memory   // podman's default: as much swap as memory
			if r.MemorySwap != 0 { // bootcfg allows it only with --memory
				swap = r.MemorySwap
			}
			m.Swap = &swap
		}
		if r.MemoryReservation > 0 {
			m.Reservation = &r.MemoryReservation
		}
		out.Memory = m
	}
	if r.CPUShares != 0 || r.CPUPeriod != 0 || r.CPUQuota != 0 || r.CpusetCPUs != "" || r.CpusetMems != "" {
		cpu := &specs.LinuxCPU{Cpus: r.CpusetCPUs, Mems: r.CpusetMems}
		if r.CPUShares != 0 {
			cpu.Shares = &r.CPUShares
		}
		if r.CPUPeriod != 0 {
			cpu.Period = &r.CPUPeriod
		}
		if r.CPUQuota != 0 {
			cpu.Quota = &r.CPUQuota
		}
		out.CPU = cpu
	}
	if r.PidsLimit != nil {
		limit := *r.PidsLimit
		if limit == 0 {
			limit = -1
		}
		out.Pids = &specs.LinuxPids{Limit: &limit}
	}
	io, err := blockIO(r)
	if err != nil {
		return nil, err
	}
	out.BlockIO = io
	for _, kv := range r.Unified {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		k, v, _ := strings.Cut(kv, "=")
		out.Unified[k] = v
	}
	return out, nil
}

// blockIO maps --blkio-weight and the --device-{read,write}-{bps,iops}
// rates.
func blockIO(r bootcfg.Resources) (*specs.LinuxBlockIO, error) {
	if r.BlkioWeight == 0 && len(r.ReadBps)+len(r.WriteBps)+len(r.ReadIOps)+len(r.WriteIOps) == 0 {
		return nil, nil
	}
	io := &specs.LinuxBlockIO{}
	if r.BlkioWeight != 0 {
		io.Weight = &r.BlkioWeight
	}
	for _, t := range []struct {
		flag   string
		values []bootcfg.DeviceRate
		to     *[]specs.LinuxThrottleDevice
	}{
		{"--device-read-bps", r.ReadBps, &io.ThrottleReadBpsDevice},
		{"--device-write-bps", r.WriteBps, &io.ThrottleWriteBpsDevice},
		{"--device-read-iops", r.ReadIOps, &io.ThrottleReadIOPSDevice},
		{"--device-write-iops", r.WriteIOps, &io.ThrottleWriteIOPSDevice},
	} {
		for _, v := range t.values {
			major, minor, err := blockNumbers(v.Path, t.flag)
			if err != nil {
				return nil, err
			}
			*t.to = append(*t.to, specs.LinuxThrottleDevice{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: v.Rate})
		}
	}
	return io, nil
}

// blockNumbers returns the major and minor numbers of a block device.
func blockNumbers(dev, flag string) (int64, int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return 0, 0, fmt.Errorf("%s %s: %w", flag, dev, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, fmt.Errorf("%s %s: not a block device", flag, dev)
	}
	return int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev)), nil
}

// annotations are --annotation and the labels (--label, --label-file),
// the labels under their own names as podman's inspect shows them.
func annotations(c bootcfg.Container) (map[string]string, error) {
	labels := slices.Clone(c.Labels)
	for _, name := range c.LabelFiles {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("--label-file: %w", err)
		}
		for n, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if k, _, _ := strings.Cut(line, "="); k == "" {
				return nil, fmt.Errorf("--label-file %s, line %d: expected KEY=VALUE", name, n+1)
			}
			labels = append(labels, line)
		}
	}
	if len(labels)+len(c.Annotations) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range append(labels, c.Annotations...) {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out, nil
}

// sysctls maps --sysctl.
func sysctls(c bootcfg.Container) map[string]string {
	if len(c.Sysctls) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, kv := range c.Sysctls {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// confinedPaths are the masked and read-only paths of a container that
// is not privileged, with --security-opt mask= and unmask= applied.
func confinedPaths(c bootcfg.Container) (masked, readonly []string) {
	if slices.Contains(c.Unmask, "ALL") {
		return c.Mask, nil
	}
	keep := func(p string) bool { return !slices.Contains(c.Unmask, p) }
	for _, p := range maskedPaths {
		if keep(p) {
			masked = append(masked, p)
		}
	}
	for _, p := range readonlyPaths {
		if keep(p) {
			readonly = append(readonly, p)
		}
	}
	return append(masked, c.Mask...), readonly
}

// readOnlyTmpfs are the tmpfs of a --read-only root, unless
// --read-only-tmpfs=false.
func readOnlyTmpfs(c bootcfg.Container) []specs.Mount {
	if !c.ReadOnly || c.NoReadOnlyTmpfs {
		return nil
	}
	var out []specs.Mount
	for _, dir := range []string{"/run", "/tmp", "/var/tmp"} {
		out = append(out, specs.Mount{Destination: dir, Type: "tmpfs", Source: "tmpfs", Options: []string{"rw", "rprivate", "nosuid", "nodev", "tmpcopyup"}})
	}
	return out
}

// imageVolumes are the tmpfs of --image-volume=tmpfs, one on each of the
// image's VOLUME paths, holding a copy of what the image has there.
func imageVolumes(c bootcfg.Container, cfg v1.Config) []specs.Mount {
	if !c.ImageVolumeTmpfs {
		return nil
	}
	var out []specs.Mount
	for _, dir := range slices.Sorted(maps.Keys(cfg.Volumes)) {
		out = append(out, specs.Mount{Destination: path.Clean("/" + dir), Type: "tmpfs", Source: "tmpfs", Options: []string{"rw", "rprivate", "nosuid", "nodev", "tmpcopyup"}})
	}
	return out
}

// setTimeZone applies --tz: TZ in the environment, and /etc/localtime in
// the root a link to the zone's file of the image (checked to be there).
// "local" is the machine's zone, UTC: ociboot keeps no other.
func setTimeZone(root int, c bootcfg.Container, env []string) ([]string, error) {
	if c.TZ == "" {
		return env, nil
	}
	zone := c.TZ
	if zone == "local" {
		zone = "UTC"
	}
	file := "/usr/share/zoneinfo/" + zone
	if ok, err := layer.ExistsInRoot(root, file); err != nil || !ok {
		if c.TZ == "local" {
			return mergeEnv(env, []string{"TZ=UTC"}), nil // glibc's UTC needs no file
		}
		return nil, fmt.Errorf("--tz %s: the image has no %s", c.TZ, file)
	}
	etc, err := layer.MkdirAllInRoot(root, "/etc", 0o755)
	if err != nil {
		return nil, fmt.Errorf("--tz %s: /etc: %w", c.TZ, err)
	}
	defer unix.Close(etc)
	if err := unix.Unlinkat(etc, "localtime", 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("--tz %s: removing the image's /etc/localtime: %w", c.TZ, err)
	}
	if err := unix.Symlinkat(".."+file, etc, "localtime"); err != nil {
		return nil, fmt.Errorf("--tz %s: linking /etc/localtime: %w", c.TZ, err)
	}
	return mergeEnv(env, []string{"TZ=" + zone}), nil
}

// extraGroups resolves --group-add in the image's /etc/group, leaving
// out the groups the user has already.
func extraGroups(root int, c bootcfg.Container, u execUser) ([]uint32, error) {
	if len(c.GroupAdd) == 0 {
		return nil, nil
	}
	groups, err := readGroup(root)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(u.groups)
	for _, name := range c.GroupAdd {
		gid, err := resolveGroup(root, groups, name)
		if err != nil {
			return nil, fmt.Errorf("--group-add: %w", err)
		}
		if !slices.Contains(out, gid) {
			out = append(out, gid)
		}
	}
	return out[len(u.groups):], nil
}
