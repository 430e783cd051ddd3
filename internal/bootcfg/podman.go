package bootcfg

import (
	"fmt"
	"strings"
)

// optionKind says what ociboot does with a podman-run option.
type optionKind int

const (
	// supported options have podman's meaning (some of their values may
	// still be refused, each with its reason).
	//lint:ignore U1000 the zero value, named for readers of the table
	supported optionKind = iota
	// noEffect options are accepted and change nothing: what they ask
	// for is what ociboot does anyway.
	noEffect
	// warned options are accepted with a warning when the container
	// starts, their doc: they have nothing to act on here.
	warned
	// refused options are an error that says why.
	refused
)

func (k optionKind) String() string {
	return [...]string{"supported", "no effect", "warning", "refused"}[k]
}

// containerOption is one podman-run option.
type containerOption struct {
	long  string // name without the leading "--"
	alias string // another long name, or ""
	short byte   // one-letter name, or 0
	// value: the option takes a value. Otherwise it is a flag, which may
	// be written --flag=true or --flag=false; set then gets "true" or
	// "false".
	value bool
	kind  optionKind
	doc   string // what it does here, for docs/cmdline.md
	set   func(c *Container, v string) error
}

// refuse is the setter of an option ociboot does not take.
func refuse(why string) func(*Container, string) error {
	return func(*Container, string) error { return fmt.Errorf("not supported: %s", why) }
}

// flag is the setter of a flag that sets the field field gives;
// negated's clears it.
func flag(field func(*Container) *bool) func(*Container, string) error {
	return func(c *Container, v string) error {
		*field(c) = v == "true"
		return nil
	}
}

func negated(field func(*Container) *bool) func(*Container, string) error {
	return func(c *Container, v string) error {
		*field(c) = v == "false"
		return nil
	}
}

// ignore is the setter of an option that changes nothing.
func ignore(*Container, string) error { return nil }

// Reasons shared by several refused options.
const (
	whyUserNS   = "ociboot runs containers without a user namespace, as the machine's root"
	whyNetwork  = "containers share the machine's network (or have none, with --network none): there is no container network to configure"
	whyNoHealth = "ociboot runs no health checks; a service's status is its exit status"
	whyNoFiles  = "ociboot keeps no container state for a host to read"
	whyNoRT     = "cgroup v2 has no real-time CPU controller"
	whyNoPod    = "ociboot has no pods: services, the pipeline and post containers are its groups"
)

// containerOptions lists every option of podman run (podman 4.x) and what
// ociboot does with it.
func containerOptions() []containerOption {
	return []containerOption{
		{long: "add-host", value: true, set: setAddHost, doc: "`HOST:IP` added to the container's `/etc/hosts` (the machine's, copied)"},
		{long: "annotation", value: true, set: setAnnotation, doc: "`KEY=VALUE` in the bundle's annotations"},
		{long: "arch", value: true, set: setArch, doc: "the architecture of the image to pull (as `--platform`)"},
		{long: "attach", short: 'a', value: true, set: setAttach, doc: "`stdin`, `stdout` or `stderr`, repeatable: only those are connected to the console (the others to `/dev/null`)"},
		{long: "authfile", value: true, set: setAuthFile, doc: "a docker `config.json` in the initramfs (or a volume): its credentials are used for this image's pull"},
		{long: "blkio-weight", value: true, set: setBlkioWeight, doc: "10 to 1000: the container's I/O weight, converted to cgroup v2's `io.weight` (300 gives 2930)"},
		{long: "blkio-weight-device", value: true, kind: refused, set: refuse("the runtime (crun 1.8) fails to set per-device weights on cgroup v2 (\"open io.weight\"); --blkio-weight sets the container's")},
		{long: "cap-add", value: true, set: setCapAdd, doc: "capabilities added, comma-separated, or `ALL`"},
		{long: "cap-drop", value: true, set: setCapDrop, doc: "capabilities dropped, comma-separated, or `ALL`"},
		{long: "cert-dir", value: true, set: setCertDir, doc: "a directory of `*.crt` CA certificates trusted for this image's pull, and `*.cert`/`*.key` client certificate pairs"},
		{long: "cgroup-conf", value: true, set: setCgroupConf, doc: "`KEY=VALUE`: a cgroup v2 file of the container's cgroup, written"},
		{long: "cgroup-parent", value: true, set: setCgroupParent, doc: "the cgroup under which the container's is made"},
		{long: "cgroupns", value: true, set: setCgroupNS, doc: "`private` (the default: a cgroup namespace of its own) or `host`"},
		{long: "cgroups", value: true, set: setCgroups, doc: "`enabled` (the default) or `no-conmon` (the same here); `disabled` and `split` are refused"},
		{long: "chrootdirs", value: true, kind: refused, set: refuse("ociboot writes no /etc files into chroots")},
		{long: "cidfile", value: true, kind: refused, set: refuse(whyNoFiles)},
		{long: "conmon-pidfile", value: true, kind: refused, set: refuse(whyNoFiles)},
		{long: "cpu-period", value: true, set: setCPUPeriod, doc: "the CPU quota's period, in µs"},
		{long: "cpu-quota", value: true, set: setCPUQuota, doc: "CPU time per period, in µs"},
		{long: "cpu-rt-period", value: true, kind: refused, set: refuse(whyNoRT)},
		{long: "cpu-rt-runtime", value: true, kind: refused, set: refuse(whyNoRT)},
		{long: "cpu-shares", short: 'c', value: true, set: setCPUShares, doc: "the CPU weight, in cgroup v1 shares (1024 is the default)"},
		{long: "cpus", value: true, set: setCPUs, doc: "how many CPUs' worth of time, such as `1.5`"},
		{long: "cpuset-cpus", value: true, set: setCpusetCPUs, doc: "the CPUs allowed, such as `0-2,4`"},
		{long: "cpuset-mems", value: true, set: setCpusetMems, doc: "the memory nodes allowed"},
		{long: "creds", value: true, set: setCreds, doc: "`USER:PASSWORD` for this image's registry (masked in messages and in the containers' `/proc/cmdline`)"},
		{long: "decryption-key", value: true, kind: refused, set: refuse("encrypted images are not supported")},
		{long: "detach", short: 'd', kind: refused, set: refuse("a pipeline container runs in the foreground; ociboot.service runs one in the background")},
		{long: "detach-keys", value: true, kind: noEffect, set: ignore, doc: "nothing detaches from a container here"},
		{long: "device", value: true, set: setDevice, doc: "`HOST[:PATH][:rwm]`: a device node of the machine"},
		{long: "device-cgroup-rule", value: true, kind: noEffect, set: ignore, doc: "the device cgroup already allows every device; what a container may open is what it has nodes for"},
		{long: "device-read-bps", value: true, set: setDeviceRate("read-bps"), doc: "`DEVICE:RATE`, bytes per second (`1mb`)"},
		{long: "device-read-iops", value: true, set: setDeviceRate("read-iops"), doc: "`DEVICE:RATE`, operations per second"},
		{long: "device-write-bps", value: true, set: setDeviceRate("write-bps"), doc: "`DEVICE:RATE`, bytes per second"},
		{long: "device-write-iops", value: true, set: setDeviceRate("write-iops"), doc: "`DEVICE:RATE`, operations per second"},
		{long: "disable-content-trust", kind: noEffect, set: ignore, doc: "podman ignores it too"},
		{long: "dns", value: true, set: setDNS, doc: "a name server for the container's `/etc/resolv.conf`, repeatable; `none`: the image's own file, untouched"},
		{long: "dns-option", alias: "dns-opt", value: true, set: setDNSOption, doc: "an `options` entry of the container's `/etc/resolv.conf`"},
		{long: "dns-search", value: true, set: setDNSSearch, doc: "a search domain of the container's `/etc/resolv.conf`; `.` none"},
		{long: "entrypoint", value: true, set: setEntrypoint, doc: "the entrypoint: a string, or a JSON array"},
		{long: "env", short: 'e', value: true, set: setEnv, doc: "`KEY=VALUE`; `KEY` alone takes ociboot's value, `KEY*` every variable of ociboot's starting with KEY"},
		{long: "env-file", value: true, set: setEnvFile, doc: "a file of `KEY=VALUE` lines, in the initramfs"},
		{long: "env-host", set: flag(func(c *Container) *bool { return &c.EnvHost }), doc: "ociboot's own environment (the kernel's variables) is passed on"},
		{long: "env-merge", value: true, set: setEnvMerge, doc: "`KEY=VALUE` where `${KEY}` is KEY's value before it (the image's, or one given), such as `PATH=/opt/bin:${PATH}`"},
		{long: "expose", value: true, kind: warned, set: ignore, doc: "the container shares the machine's network: its ports are the machine's, nothing to publish"},
		{long: "gidmap", value: true, kind: refused, set: refuse(whyUserNS)},
		{long: "gpus", value: true, kind: refused, set: refuse("no GPU hooks in the initramfs; give the device nodes with --device")},
		{long: "group-add", value: true, set: setGroupAdd, doc: "a group (name in the image's `/etc/group`, or number) added to the user's; `keep-groups` is refused"},
		{long: "group-entry", value: true, kind: refused, set: refuse("ociboot does not write the image's /etc/group")},
		{long: "health-cmd", value: true, kind: refused, set: refuse(whyNoHealth)},
		{long: "health-interval", value: true, kind: refused, set: refuse(whyNoHealth)},
		{long: "health-on-failure", value: true, kind: refused, set: refuse(whyNoHealth)},
		{long: "health-retries", value: true, kind: refused, set: refuse(whyNoHealth)},
		{long: "health-start-period", value: true, kind: refused, set: refuse(whyNoHealth)},
		{long: "health-startup-cmd", value: true, kind: refused, set: refuse(whyNoHealth)},
		{long: "health-startup-interval", value: true, kind: refused, set: refuse(whyNoHealth)},
		{long: "health-startup-retries", value: true, kind: refused, set: refuse(whyNoHealth)},
		{long: "health-startup-success", value: true, kind: refused, set: refuse(whyNoHealth)},
		{long: "health-startup-timeout", value: true, kind: refused, set: refuse(whyNoHealth)},
		{long: "health-timeout", value: true, kind: refused, set: refuse(whyNoHealth)},
		{long: "help", kind: refused, set: refuse("not a container option: docs/cmdline.md lists them")},
		{long: "hostname", short: 'h', value: true, set: setHostname, doc: "the container's host name (otherwise the machine's)"},
		{long: "hostuser", value: true, kind: refused, set: refuse("the machine has no users to copy")},
		{long: "http-proxy", set: negated(func(c *Container) *bool { return &c.NoHTTPProxy }), doc: "on by default: ociboot's `http_proxy`, `https_proxy`, `ftp_proxy`, `no_proxy` (either case) are passed on; `=false` does not"},
		{long: "image-volume", value: true, set: setImageVolume, doc: "`bind` and `ignore` (the default: the image's VOLUME directories are writable parts of its root, gone at its end) or `tmpfs` (a tmpfs on each, holding a copy of the image's files)"},
		{long: "init", set: flag(func(c *Container) *bool { return &c.Init }), doc: "ociboot itself, mounted into the container, is its PID 1: it passes signals on, reaps orphans and exits with the command's status"},
		{long: "init-ctr", value: true, kind: refused, set: refuse(whyNoPod)},
		{long: "init-path", value: true, kind: refused, set: refuse("--init's init is ociboot itself")},
		{long: "interactive", short: 'i', set: flag(func(c *Container) *bool { return &c.Interactive }), doc: "the container reads the console; otherwise its stdin is `/dev/null`"},
		{long: "ip", value: true, kind: refused, set: refuse(whyNetwork)},
		{long: "ip6", value: true, kind: refused, set: refuse(whyNetwork)},
		{long: "ipc", value: true, set: setIPC, doc: "`private` (the default; also `shareable`), `host` or `none` (no `/dev/shm`)"},
		{long: "label", short: 'l', value: true, set: setLabel, doc: "`KEY=VALUE` in the bundle's annotations (ociboot has no `inspect`)"},
		{long: "label-file", value: true, set: setLabelFile, doc: "a file of `KEY=VALUE` lines, as `--label`, read when the container starts"},
		{long: "link-local-ip", value: true, kind: refused, set: refuse(whyNetwork)},
		{long: "log-driver", value: true, set: setLogDriver, doc: "`passthrough` (what ociboot does: the console) or `none` (output discarded); others are refused"},
		{long: "log-opt", value: true, kind: refused, set: refuse("the output goes to the console; there is no log file to configure")},
		{long: "mac-address", value: true, kind: refused, set: refuse(whyNetwork)},
		{long: "memory", short: 'm', value: true, set: setMemory, doc: "the memory limit (`512m`)"},
		{long: "memory-reservation", value: true, set: setMemoryReservation, doc: "the memory soft limit (`memory.low`)"},
		{long: "memory-swap", value: true, set: setMemorySwap, doc: "memory plus swap (`-1`: unlimited swap)"},
		{long: "memory-swappiness", value: true, kind: warned, set: setMemorySwappiness, doc: "cgroup v2 has no per-cgroup swappiness: ignored, as podman does"},
		{long: "mount", value: true, set: setMount, doc: "`type=bind,source=…,target=…[,ro]`, `type=volume,source=NAME,target=…[,ro]`, `type=tmpfs,target=…[,tmpfs-size=…][,tmpfs-mode=…]`"},
		{long: "name", value: true, set: setName, doc: "the container's name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`)"},
		{long: "network", alias: "net", value: true, set: setNetwork, doc: "`host` (the default) or `none` (a loopback link only); others are refused: there are no container networks"},
		{long: "network-alias", value: true, kind: refused, set: refuse(whyNetwork)},
		{long: "no-healthcheck", kind: noEffect, set: ignore, doc: "ociboot runs no health checks"},
		{long: "no-hosts", set: flag(func(c *Container) *bool { return &c.NoHosts }), doc: "the image's own `/etc/hosts`, untouched"},
		{long: "oom-kill-disable", kind: warned, set: setOOMKillDisable, doc: "cgroup v2 has no switch to turn the OOM killer off: ignored, as podman does"},
		{long: "oom-score-adj", value: true, set: setOOMScoreAdj, doc: "-1000 to 1000"},
		{long: "os", value: true, set: setOS, doc: "the OS of the image to pull (as `--platform`)"},
		{long: "passwd", set: setPasswd, doc: "`=false` only: ociboot never adds users to the image's `/etc/passwd`"},
		{long: "passwd-entry", value: true, kind: refused, set: refuse("ociboot does not write the image's /etc/passwd")},
		{long: "personality", value: true, kind: refused, set: refuse("the runtime (crun 1.8) does not set personalities")},
		{long: "pid", value: true, set: setPID, doc: "`private` (the default) or `host`"},
		{long: "pidfile", value: true, kind: refused, set: refuse(whyNoFiles)},
		{long: "pids-limit", value: true, set: setPidsLimit, doc: "the most tasks; `-1` or `0`: no limit"},
		{long: "platform", value: true, set: setPlatform, doc: "`OS/ARCH[/VARIANT]` of the image to pull"},
		{long: "pod", value: true, kind: refused, set: refuse(whyNoPod)},
		{long: "pod-id-file", value: true, kind: refused, set: refuse(whyNoPod)},
		{long: "preserve-fd", value: true, kind: refused, set: refuse("ociboot passes no file descriptor besides stdin, stdout and stderr")},
		{long: "preserve-fds", value: true, kind: refused, set: refuse("ociboot passes no file descriptor besides stdin, stdout and stderr")},
		{long: "privileged", set: flag(func(c *Container) *bool { return &c.Privileged }), doc: "what `b2c.` containers get: every capability, the machine's devices, no seccomp filter, nothing masked"},
		{long: "publish", short: 'p', value: true, kind: warned, set: ignore, doc: "the container shares the machine's network: its ports are the machine's, nothing to publish"},
		{long: "publish-all", short: 'P', kind: warned, set: ignore, doc: "the container shares the machine's network: its ports are the machine's, nothing to publish"},
		{long: "pull", value: true, set: setPull, doc: "`always` (the default), `missing` or `never`: see below"},
		{long: "quiet", short: 'q', set: flag(func(c *Container) *bool { return &c.Registry.Quiet }), doc: "nothing printed about the pull"},
		{long: "rdt-class", value: true, kind: refused, set: refuse("no resctrl filesystem is mounted")},
		{long: "read-only", set: flag(func(c *Container) *bool { return &c.ReadOnly }), doc: "the root is read-only; `/run`, `/tmp` and `/var/tmp` are tmpfs unless `--read-only-tmpfs=false`"},
		{long: "read-only-tmpfs", set: negated(func(c *Container) *bool { return &c.NoReadOnlyTmpfs }), doc: "on by default, with `--read-only`"},
		{long: "replace", set: flag(func(c *Container) *bool { return &c.Replace }), doc: "a container named as a service still running stops that service first (its stop signal, then SIGKILL); without it, two containers that would run at once with one `--name` are an error"},
		{long: "requires", value: true, kind: refused, set: refuse("containers start in the order given: services, then the pipeline, then the post containers")},
		{long: "restart", value: true, set: setRestart, doc: "`no` only: ociboot runs each container once"},
		{long: "rm", set: ignore, kind: noEffect, doc: "every container is removed at its end"},
		{long: "rmi", set: flag(func(c *Container) *bool { return &c.Rmi }), doc: "the image is removed from the image store when the container is over, with the blobs and layers no other image needs (kept while a running service uses it); without a store nothing is kept anyway"},
		{long: "rootfs", kind: refused, set: refuse("a container's root is an image")},
		{long: "sdnotify", value: true, set: setSdnotify, doc: "`ignore` only (nothing listens for sd_notify)"},
		{long: "seccomp-policy", value: true, set: setSeccompPolicy, doc: "`default` only"},
		{long: "secret", value: true, kind: refused, set: refuse("ociboot has no secret store: use -e, --env-file or a volume")},
		{long: "security-opt", value: true, set: setSecurityOpt, doc: "`seccomp=unconfined`, `no-new-privileges[=true|false]`, `mask=PATH[:PATH…]`, `unmask=ALL|PATH[:PATH…]`; `label=disable` and `apparmor=unconfined` change nothing (neither is applied)"},
		{long: "shm-size", value: true, set: setShmSize, doc: "the size of `/dev/shm` (64m)"},
		{long: "shm-size-systemd", value: true, set: setShmSizeSystemd, doc: "the size of the tmpfs of systemd mode (`/run`, `/run/lock`, `/tmp`, `/var/log/journal`); half the memory otherwise"},
		{long: "sig-proxy", kind: noEffect, set: ignore, doc: "a shutdown request reaches the container as its stop signal"},
		{long: "stop-signal", value: true, set: setStopSignal, doc: "the signal that stops the container (`SIGTERM`; `SIGRTMIN+3` in systemd mode), by name or number"},
		{long: "stop-timeout", value: true, set: setStopTimeout, doc: "seconds between the stop signal and SIGKILL (10)"},
		{long: "subgidname", value: true, kind: refused, set: refuse(whyUserNS)},
		{long: "subuidname", value: true, kind: refused, set: refuse(whyUserNS)},
		{long: "sysctl", value: true, set: setSysctl, doc: "`NAME=VALUE` of the container's namespaces: `kernel.msg*`, `kernel.sem`, `kernel.shm*`, `fs.mqueue.*` (not with `--ipc host`), `net.*` (only with `--network none`)"},
		{long: "systemd", value: true, set: setSystemd, doc: "`true` (the default: systemd mode when the command is `/sbin/init`, `/usr/sbin/init`, `/usr/local/sbin/init` or a `systemd`, after a `/bin/sh -c`), `false` or `always`. Systemd mode, as podman's: tmpfs on `/run`, `/run/lock`, `/tmp` and `/var/log/journal`; `/sys/fs/cgroup` writable (its own cgroup namespace); `container_uuid` set and `/etc/machine-id` written from it when the image has none; the machine's console as `/dev/console`; stop signal `SIGRTMIN+3`; a privileged container gets no virtual console (`/dev/ttyN`)"},
		{long: "timeout", value: true, set: setTimeout, doc: "seconds the container may run before it is stopped, as at the end: its stop signal, then SIGKILL after its stop timeout"},
		{long: "tls-verify", set: setTLSVerify, doc: "`=false`: this image's registry is reached over plain HTTP or without checking its certificate; `=true`: with TLS, checked, even if `insecure_registry` names it"},
		{long: "tmpfs", value: true, set: setTmpfs, doc: "`PATH[:size=…,mode=…,ro]`"},
		{long: "tty", short: 't', set: flag(func(c *Container) *bool { return &c.TTY }), doc: "a terminal, relayed to the console, whose input the container then reads too"},
		{long: "tz", value: true, set: setTZ, doc: "`local` (the machine's: UTC) or `AREA/CITY` from the image's `/usr/share/zoneinfo`, as `/etc/localtime` and `TZ`"},
		{long: "uidmap", value: true, kind: refused, set: refuse(whyUserNS)},
		{long: "ulimit", value: true, set: setUlimit, doc: "`NAME=SOFT[:HARD]`, `-1` unlimited"},
		{long: "umask", value: true, set: setUmask, doc: "the process's umask, octal (0022)"},
		{long: "unsetenv", value: true, set: setUnsetenv, doc: "a variable removed from the environment"},
		{long: "unsetenv-all", set: flag(func(c *Container) *bool { return &c.UnsetenvAll }), doc: "only the variables the options set are left"},
		{long: "user", short: 'u', value: true, set: setUser, doc: "`USER[:GROUP]`, names of the image's or numbers"},
		{long: "userns", value: true, set: setUserNS, doc: "`host` (the default, also `\"\"`) only: " + whyUserNS},
		{long: "uts", value: true, set: setUTS, doc: "`private` (the default) or `host`"},
		{long: "variant", value: true, set: setVariant, doc: "the architecture variant of the image to pull (as `--platform`)"},
		{long: "volume", short: 'v', value: true, set: setVolume, doc: "`HOST-PATH:PATH[:OPTIONS]` or `VOLUME:PATH[:OPTIONS]` (a named volume: see Volumes), OPTIONS `ro`, `rw`, `z`, `Z` (no labels here: no effect)"},
		{long: "volumes-from", value: true, kind: refused, set: refuse("the containers of a boot share named volumes: -v NAME:/path")},
		{long: "workdir", short: 'w', value: true, set: setWorkdir, doc: "the working directory, made when missing"},
	}
}

// optionsMarkdown is the table of docs/cmdline.md that lists the options.
func optionsMarkdown() string {
	var b strings.Builder
	b.WriteString("| option | here | meaning |\n| --- | --- | --- |\n")
	for _, o := range containerOptions() {
		name := "`--" + o.long + "`"
		if o.alias != "" {
			name += " `--" + o.alias + "`"
		}
		if o.short != 0 {
			name = "`-" + string(o.short) + "` " + name
		}
		doc := o.doc
		if o.kind == refused {
			why := o.set(&Container{}, "").Error()
			doc = strings.TrimPrefix(why, "not supported: ")
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, o.kind, strings.ReplaceAll(doc, "|", "\\|"))
	}
	return b.String()
}
