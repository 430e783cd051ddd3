package bootcfg

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/switchroot"
)

// This file holds the setters of the podman-run options that came with
// the full table (podman.go); container.go has the first ones.

// keyValue checks KEY=VALUE; with bareKey, KEY alone stands for KEY=.
func keyValue(v string, bareKey bool) (string, error) {
	key, _, ok := strings.Cut(v, "=")
	if key == "" || strings.ContainsAny(key, " \t\n") || (!ok && !bareKey) {
		return "", fmt.Errorf("got %q, expected KEY=VALUE", v)
	}
	if !ok {
		v += "="
	}
	return v, nil
}

func setAddHost(c *Container, v string) error {
	host, addr, ok := strings.Cut(v, ":")
	ip, err := netip.ParseAddr(strings.Trim(addr, "[]"))
	if !ok || host == "" || strings.ContainsAny(host, " \t/") || err != nil {
		return fmt.Errorf("got %q, expected HOST:IP, such as gateway:10.0.2.2 or db:[fd00::1]", v)
	}
	c.AddHosts = append(c.AddHosts, ip.String()+"\t"+host)
	return nil
}

func setAnnotation(c *Container, v string) error {
	kv, err := keyValue(v, false)
	c.Annotations = append(c.Annotations, kv)
	return err
}

func setLabel(c *Container, v string) error {
	kv, err := keyValue(v, true)
	c.Labels = append(c.Labels, kv)
	return err
}

func setLabelFile(c *Container, v string) error {
	if err := absPath("label file", v); err != nil {
		return err
	}
	c.LabelFiles = append(c.LabelFiles, v)
	return nil
}

func setArch(c *Container, v string) error {
	if v == "" || strings.Contains(v, "/") {
		return fmt.Errorf("got %q, expected an architecture such as amd64 or arm64", v)
	}
	c.Platform.Architecture = v
	return nil
}

func setOS(c *Container, v string) error {
	if v == "" || strings.Contains(v, "/") {
		return fmt.Errorf("got %q, expected an OS such as linux", v)
	}
	c.Platform.OS = v
	return nil
}

func setVariant(c *Container, v string) error {
	if v == "" || strings.Contains(v, "/") {
		return fmt.Errorf("got %q, expected a variant such as v7 or v8", v)
	}
	c.Platform.Variant = v
	return nil
}

func setAttach(c *Container, v string) error {
	s := strings.ToLower(v)
	if s != "stdin" && s != "stdout" && s != "stderr" {
		return fmt.Errorf("got %q, expected stdin, stdout or stderr", v)
	}
	c.Attach = append(c.Attach, s)
	return nil
}

func setAuthFile(c *Container, v string) error {
	if err := absPath("auth file", v); err != nil {
		return err
	}
	c.Registry.AuthFile = v
	return nil
}

func setCertDir(c *Container, v string) error {
	if err := absPath("certificate directory", v); err != nil {
		return err
	}
	c.Registry.CertDir = v
	return nil
}

// setCreds takes USER:PASSWORD; podman would prompt for a missing
// password, which a boot cannot.
func setCreds(c *Container, v string) error {
	user, pass, ok := strings.Cut(v, ":")
	if !ok || user == "" || pass == "" {
		return errors.New("expected USER:PASSWORD (there is no one to ask for a password)")
	}
	c.Registry.Creds = &image.Credential{Username: user, Password: pass}
	return nil
}

func setTLSVerify(c *Container, v string) error {
	b := v == "true"
	c.Registry.TLSVerify = &b
	return nil
}

// setOOMKillDisable accepts the flag as podman does on cgroup v2: the
// warning of its kind says it has no effect.
func setOOMKillDisable(*Container, string) error { return nil }

func setPasswd(_ *Container, v string) error {
	if v == "true" {
		return errors.New("only --passwd=false: ociboot never adds users to the image's /etc/passwd")
	}
	return nil
}

func setUnsetenv(c *Container, v string) error {
	if v == "" || strings.ContainsAny(v, "= \t") {
		return fmt.Errorf("got %q, expected a variable name", v)
	}
	c.Unsetenv = append(c.Unsetenv, v)
	return nil
}

func setEnvMerge(c *Container, v string) error {
	kv, err := keyValue(v, false)
	c.EnvMerge = append(c.EnvMerge, kv)
	return err
}

func setDNS(c *Container, v string) error {
	if v == "none" {
		c.DNSNone = true
		return nil
	}
	ip, err := netip.ParseAddr(v)
	if err != nil {
		return fmt.Errorf("got %q, expected an IP address or none", v)
	}
	c.DNS = append(c.DNS, ip.String())
	return nil
}

func setDNSSearch(c *Container, v string) error {
	if v == "" || strings.ContainsAny(v, " \t") {
		return fmt.Errorf("got %q, expected a domain, or . for none", v)
	}
	c.DNSSearch = append(c.DNSSearch, v)
	return nil
}

func setDNSOption(c *Container, v string) error {
	if v == "" || strings.ContainsAny(v, " \t") {
		return fmt.Errorf("got %q, expected a resolv.conf option such as ndots:2", v)
	}
	c.DNSOptions = append(c.DNSOptions, v)
	return nil
}

func setGroupAdd(c *Container, v string) error {
	switch {
	case v == "keep-groups":
		return errors.New("keep-groups: only for rootless podman; ociboot runs containers as root")
	case v == "" || strings.ContainsAny(v, ": \t,"):
		return fmt.Errorf("got %q, expected a group name or number", v)
	}
	c.GroupAdd = append(c.GroupAdd, v)
	return nil
}

func setImageVolume(c *Container, v string) error {
	switch v {
	case "bind", "ignore":
		c.ImageVolumeTmpfs = false
	case "tmpfs":
		c.ImageVolumeTmpfs = true
	default:
		return fmt.Errorf("got %q, expected bind, tmpfs or ignore", v)
	}
	return nil
}

// namespaceMode reads --pid, --uts and --cgroupns: private or host.
func namespaceMode(v string, host *bool) error {
	switch v {
	case "private":
		*host = false
	case "host":
		*host = true
	default:
		return fmt.Errorf("got %q, expected private or host (there are no other containers' namespaces to join)", v)
	}
	return nil
}

func setPID(c *Container, v string) error      { return namespaceMode(v, &c.PIDHost) }
func setUTS(c *Container, v string) error      { return namespaceMode(v, &c.UTSHost) }
func setCgroupNS(c *Container, v string) error { return namespaceMode(v, &c.CgroupNSHost) }

func setIPC(c *Container, v string) error {
	switch v {
	case "private", "shareable":
		c.IPC = ""
	case "host", "none":
		c.IPC = v
	default:
		return fmt.Errorf("got %q, expected private, shareable, host or none", v)
	}
	return nil
}

func setUserNS(_ *Container, v string) error {
	if v != "" && v != "host" {
		return fmt.Errorf("got %q, expected host: %s", v, whyUserNS)
	}
	return nil
}

func setCgroups(_ *Container, v string) error {
	switch v {
	case "enabled", "no-conmon":
		return nil
	case "disabled", "split":
		return fmt.Errorf("%s: not supported: every container gets a cgroup of its own", v)
	}
	return fmt.Errorf("got %q, expected enabled or no-conmon", v)
}

func setCgroupParent(c *Container, v string) error {
	p := path.Clean("/" + v)
	if v == "" || slices.Contains(strings.Split(v, "/"), "..") {
		return fmt.Errorf("got %q, expected a cgroup path such as /ci", v)
	}
	c.CgroupParent = p
	return nil
}

func setCgroupConf(c *Container, v string) error {
	kv, err := keyValue(v, false)
	key, _, _ := strings.Cut(kv, "=")
	if err != nil || !strings.Contains(key, ".") || strings.Contains(key, "/") {
		return fmt.Errorf("got %q, expected FILE=VALUE with FILE a cgroup v2 file such as memory.high", v)
	}
	c.Resources.Unified = append(c.Resources.Unified, kv)
	return nil
}

func setLogDriver(c *Container, v string) error {
	switch v {
	case "passthrough":
		c.LogNone = false
	case "none":
		c.LogNone = true
	default:
		return fmt.Errorf("got %q, expected passthrough or none: the output goes to the console, there is no log store", v)
	}
	return nil
}

func setRestart(_ *Container, v string) error {
	if v == "no" || v == "" {
		return nil
	}
	return fmt.Errorf("got %q, expected no: ociboot runs each container once, and a pipeline's status is its containers' first run", v)
}

func setSdnotify(_ *Container, v string) error {
	if v == "ignore" {
		return nil
	}
	return fmt.Errorf("got %q, expected ignore: nothing listens for sd_notify", v)
}

func setSeccompPolicy(_ *Container, v string) error {
	if v == "default" {
		return nil
	}
	return fmt.Errorf("got %q, expected default: seccomp profiles named by images are not supported", v)
}

// setStopSignal takes a signal by name (TERM, SIGTERM, RTMIN+3) or
// number.
func setStopSignal(c *Container, v string) error {
	n, err := ParseSignal(v)
	c.StopSignal = n
	return err
}

// The real-time signals as glibc numbers them (its own use the first
// two): systemd's SIGRTMIN+3 is 37.
const (
	sigRTMin = 34
	sigRTMax = 64
)

// ParseSignal reads a signal's name, with or without SIG (TERM,
// SIGRTMIN+3, RTMAX-1), or its number.
func ParseSignal(v string) (int, error) {
	bad := fmt.Errorf("got %q, expected a signal name such as SIGTERM or SIGRTMIN+3, or a number from 1 to 64", v)
	if n, err := strconv.Atoi(v); err == nil {
		if n < 1 || n > sigRTMax {
			return 0, bad
		}
		return n, nil
	}
	name := strings.TrimPrefix(strings.ToUpper(v), "SIG")
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{{"RTMIN+", sigRTMin, 1}, {"RTMAX-", sigRTMax, -1}} {
		if off, ok := strings.CutPrefix(name, rt.prefix); ok {
			n, err := strconv.Atoi(off)
			if err != nil || n < 0 || n > sigRTMax-sigRTMin {
				return 0, bad
			}
			return rt.base + rt.sign*n, nil
		}
	}
	switch name {
	case "RTMIN":
		return sigRTMin, nil
	case "RTMAX":
		return sigRTMax, nil
	}
	if s := unix.SignalNum("SIG" + name); s != 0 {
		return int(s), nil
	}
	return 0, bad
}

// seconds reads a whole number of seconds.
func seconds(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("got %q, expected a whole number of seconds", v)
	}
	return n, nil
}

func setStopTimeout(c *Container, v string) error {
	n, err := seconds(v)
	c.StopTimeout = &n
	return err
}

func setTimeout(c *Container, v string) error {
	n, err := seconds(v)
	c.Timeout = n
	return err
}

// namespacedSysctl tells which namespace owns a sysctl: "ipc", "net", or
// "" when it is the machine's (refused).
func namespacedSysctl(name string) string {
	switch {
	case slices.Contains([]string{"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}, name),
		strings.HasPrefix(name, "fs.mqueue."):
		return "ipc"
	case strings.HasPrefix(name, "net."):
		return "net"
	}
	return ""
}

func setSysctl(c *Container, v string) error {
	kv, err := keyValue(v, false)
	if err != nil {
		return fmt.Errorf("got %q, expected NAME=VALUE", v)
	}
	name, _, _ := strings.Cut(kv, "=")
	if namespacedSysctl(name) == "" {
		return fmt.Errorf("%s is not a sysctl of the container's namespaces (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*): it would change the machine's", name)
	}
	c.Sysctls = append(c.Sysctls, kv)
	return nil
}

func setOOMScoreAdj(c *Container, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < -1000 || n > 1000 {
		return fmt.Errorf("got %q, expected a number from -1000 to 1000", v)
	}
	c.OOMScoreAdj = &n
	return nil
}

// setTZ takes local or a zone name, whose file the image must have.
func setTZ(c *Container, v string) error {
	if v == "" || strings.HasPrefix(v, "/") || slices.Contains(strings.Split(v, "/"), "..") {
		return fmt.Errorf("got %q, expected local or a zone such as Europe/Paris", v)
	}
	c.TZ = v
	return nil
}

func setUmask(c *Container, v string) error {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || n > 0o777 {
		return fmt.Errorf("got %q, expected an octal umask such as 0022", v)
	}
	m := uint32(n)
	c.Umask = &m
	return nil
}

// memoryBytes reads a podman size; "0" (no limit) and, with minusOne,
// "-1" (unlimited) are taken too.
func memoryBytes(v string, minusOne bool) (int64, error) {
	if v == "0" || minusOne && v == "-1" {
		n, _ := strconv.ParseInt(v, 10, 64)
		return n, nil
	}
	return switchroot.ParseBytes(v)
}

func setMemory(c *Container, v string) error {
	n, err := memoryBytes(v, false)
	c.Resources.Memory = n
	return err
}

func setMemoryReservation(c *Container, v string) error {
	n, err := memoryBytes(v, false)
	c.Resources.MemoryReservation = n
	return err
}

func setMemorySwap(c *Container, v string) error {
	n, err := memoryBytes(v, true)
	c.Resources.MemorySwap = n
	return err
}

// setMemorySwappiness accepts the option as podman does on cgroup v2:
// the warning of its kind says it has no effect.
func setMemorySwappiness(_ *Container, v string) error {
	if n, err := strconv.Atoi(v); err != nil || n < -1 || n > 100 {
		return fmt.Errorf("got %q, expected a number from 0 to 100, or -1", v)
	}
	return nil
}

// uintIn reads a whole number from lo to hi.
func uintIn(v string, lo, hi uint64) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("got %q, expected a whole number from %d to %d", v, lo, hi)
	}
	return n, nil
}

func setCPUShares(c *Container, v string) error {
	n, err := uintIn(v, 2, 262144)
	c.Resources.CPUShares = n
	return err
}

func setCPUPeriod(c *Container, v string) error {
	n, err := uintIn(v, 1000, 1000000)
	c.Resources.CPUPeriod = n
	return err
}

func setCPUQuota(c *Container, v string) error {
	if v == "-1" {
		c.Resources.CPUQuota = -1
		return nil
	}
	n, err := uintIn(v, 1000, 1<<40)
	c.Resources.CPUQuota = int64(n)
	return err
}

// setCPUs sets a quota of v CPUs over podman's period, 100 ms.
func setCPUs(c *Container, v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || f > 1024 {
		return fmt.Errorf("got %q, expected a number of CPUs such as 1.5", v)
	}
	c.Resources.CPUPeriod = 100000
	c.Resources.CPUQuota = int64(f * 100000)
	return nil
}

// cpuList checks a cpuset list: numbers and ranges, comma-separated.
func cpuList(v string) error {
	for _, part := range strings.Split(v, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.ParseUint(lo, 10, 16)
		b, err2 := strconv.ParseUint(hi, 10, 16)
		if err1 != nil || isRange && (err2 != nil || b < a) {
			return fmt.Errorf("got %q, expected a list such as 0-2,4", v)
		}
	}
	return nil
}

func setCpusetCPUs(c *Container, v string) error {
	c.Resources.CpusetCPUs = v
	return cpuList(v)
}

func setCpusetMems(c *Container, v string) error {
	c.Resources.CpusetMems = v
	return cpuList(v)
}

func setPidsLimit(c *Container, v string) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < -1 {
		return fmt.Errorf("got %q, expected a whole number, or -1 for no limit", v)
	}
	c.Resources.PidsLimit = &n
	return nil
}

func setBlkioWeight(c *Container, v string) error {
	n, err := uintIn(v, 10, 1000)
	c.Resources.BlkioWeight = uint16(n)
	return err
}

// setDeviceRate returns the setter of --device-KIND, KIND one of
// read-bps, write-bps, read-iops and write-iops: DEVICE:RATE, a size for
// bytes per second.
func setDeviceRate(kind string) func(*Container, string) error {
	return func(c *Container, v string) error {
		dev, n, ok := strings.Cut(v, ":")
		if !ok {
			return fmt.Errorf("got %q, expected DEVICE:RATE such as /dev/sda:100", v)
		}
		if err := absPath("device", dev); err != nil {
			return err
		}
		var rate uint64
		var err error
		if strings.HasSuffix(kind, "bps") {
			var b int64
			b, err = switchroot.ParseBytes(n)
			rate = uint64(b)
		} else {
			rate, err = uintIn(n, 1, 1<<40)
		}
		to := map[string]*[]DeviceRate{
			"read-bps": &c.Resources.ReadBps, "write-bps": &c.Resources.WriteBps,
			"read-iops": &c.Resources.ReadIOps, "write-iops": &c.Resources.WriteIOps,
		}[kind]
		*to = append(*to, DeviceRate{Path: dev, Rate: rate})
		return err
	}
}

// check refuses what podman refuses in a whole container's options.
func (c *Container) check() error {
	for _, kv := range c.Sysctls {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case namespacedSysctl(name) == "net" && !c.NoNetwork:
			return fmt.Errorf("option --sysctl %s: the container shares the machine's network: net.* sysctls only with --network none", name)
		case namespacedSysctl(name) == "ipc" && c.IPC == "host":
			return fmt.Errorf("option --sysctl %s: not with --ipc host: it would change the machine's", name)
		}
	}
	if c.NoNetwork && (len(c.DNS) > 0 || len(c.DNSSearch) > 0 || len(c.DNSOptions) > 0) {
		return errors.New("options --dns, --dns-search and --dns-option conflict with --network none")
	}
	if c.NoHosts && len(c.AddHosts) > 0 {
		return errors.New("options --no-hosts and --add-host conflict")
	}
	if r := c.Resources; r.MemorySwap != 0 && (r.Memory == 0 || r.MemorySwap > 0 && r.MemorySwap < r.Memory) {
		return errors.New("option --memory-swap is memory plus swap: it needs --memory, and no less than it (or -1, unlimited swap)")
	}
	if c.Platform.Variant != "" && c.Platform.Architecture == "" {
		return errors.New("option --variant needs --arch, or --platform OS/ARCH/VARIANT")
	}
	return nil
}

func setSystemd(c *Container, v string) error {
	switch v {
	case "true", "false", "always":
		c.Systemd = v
		return nil
	}
	return fmt.Errorf("got %q, expected true, false or always", v)
}

func setShmSizeSystemd(c *Container, v string) error {
	n, err := switchroot.ParseBytes(v)
	c.ShmSizeSystemd = n
	return err
}

// checkNames refuses two containers with one --name that would run at
// once: a service, and any container started after it while it runs,
// unless the later one has --replace, which stops the service first.
func (p *Plan) checkNames() error {
	services := map[string]string{} // name → the spec of the service running under it
	check := func(kind string, c Container) error {
		spec, ok := services[c.Name]
		switch {
		case c.Name == "" || !ok:
			return nil
		case c.Replace:
			delete(services, c.Name)
			return nil
		}
		return fmt.Errorf("%s %s: the service %s is named %q too and would still be running: give another --name, or --replace to stop it first", kind, c.Spec, spec, c.Name)
	}
	for _, c := range p.Services {
		if err := check("service", c); err != nil {
			return err
		}
		if c.Name != "" {
			services[c.Name] = c.Spec
		}
	}
	for _, c := range p.Containers {
		if err := check("container", c); err != nil {
			return err
		}
	}
	for _, c := range p.PostContainers {
		if err := check("post container", c); err != nil {
			return err
		}
	}
	return nil
}
