// Package bootcfg turns the kernel command line (plus the defaults baked into
// the initramfs at build time) into one validated Plan. Every error names the
// parameter at fault and what was expected.
package bootcfg

import (
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/clock"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/netconf"
	"github.com/ociboot/ociboot/internal/switchroot"
	"github.com/ociboot/ociboot/internal/trust"
)

// Where `ociboot build` writes the baked configuration inside the
// initramfs, and where PID 1 reads it.
const (
	// BakedPath holds the Baked configuration as JSON.
	BakedPath = "/etc/ociboot/build.json"
	// AuthPath holds registry credentials in docker's config.json format
	// (`ociboot build --registry-auth`), mode 0600.
	AuthPath = "/etc/ociboot/auth.json"
	// CAPath holds extra CA certificates, PEM (`ociboot build --ca-file`).
	CAPath = "/etc/ociboot/ca.pem"
	// KeymapDir holds the binary keymaps `ociboot build --keymaps` stored,
	// as NAME.bmap.
	KeymapDir = "/usr/share/ociboot/keymaps"
	// EarlyMicrocodeDir is where the kernel's early loader finds CPU
	// microcode, in the initrd's first, uncompressed archive (`ociboot
	// build --early-microcode`): GenuineIntel.bin, AuthenticAMD.bin. The
	// kernel unpacks it into the root too, where the init frees it.
	EarlyMicrocodeDir = "/kernel/x86/microcode"
)

// Baked is the configuration `ociboot build` bakes into the initramfs.
type Baked struct {
	// Cmdline holds default kernel parameters; parameters given on the
	// real kernel command line override them key by key.
	Cmdline string `json:"cmdline,omitempty"`
	// Runtime is the absolute path of the OCI runtime inside the initramfs.
	Runtime string `json:"runtime"`
	// Modules are loaded at boot, in order, with their dependencies.
	Modules []string `json:"modules,omitempty"`
	// StorageModules are loaded, with their dependencies, only when the
	// boot uses local storage (a cache device): disk drivers, ext4.
	StorageModules []string `json:"storage_modules,omitempty"`
	// FscryptModules are loaded, with their dependencies, only when a
	// volume on a disk is encrypted with fscrypt_key=.
	FscryptModules []string `json:"fscrypt_modules,omitempty"`
	// Mkfs is the absolute path of mke2fs inside the initramfs, which
	// formats the cache; "" when there is none.
	Mkfs string `json:"mkfs,omitempty"`
	// KernelVersion is the `uname -r` the modules were taken from.
	KernelVersion string `json:"kernel_version,omitempty"`
	// Shell is the path of the shell `ociboot build --shell` installed,
	// for ociboot.on_failure=shell; "" when there is none.
	Shell string `json:"shell,omitempty"`
	// Keymaps are the console keymaps stored in KeymapDir.
	Keymaps []string `json:"keymaps,omitempty"`
	// Images are filesystem images PID 1 mounts first, before it loads
	// any driver: the whole module tree and firmware of `ociboot build
	// --modules-all`, kept compressed. ImageModules are the modules
	// that mounting them needs (loop, squashfs), loaded first.
	Images       []Image  `json:"images,omitempty"`
	ImageModules []string `json:"image_modules,omitempty"`

	// RegistryAuth holds the credentials read from AuthPath, by registry;
	// ociboot.registry_auth= wins for the same registry.
	RegistryAuth map[string]image.Credential `json:"-"`
	// CACerts holds the PEM certificates read from CAPath.
	CACerts []byte `json:"-"`
	// Trust holds the keys and policy read from trust.Dir (nil: none).
	Trust *trust.Trust `json:"-"`
}

// Image is a read-only filesystem image of the initramfs and where PID 1
// mounts it.
type Image struct {
	File   string `json:"file"`   // in the initramfs
	Dir    string `json:"dir"`    // where it is mounted
	FSType string `json:"fstype"` // such as squashfs
}

// FailureAction is what PID 1 does when it cannot go on
// (ociboot.on_failure=): after printing why and waiting.
type FailureAction string

// Failure actions.
const (
	FailPowerOff FailureAction = "poweroff"
	FailReboot   FailureAction = "reboot"
	FailShell    FailureAction = "shell" // needs Baked.Shell
)

// Plan is everything PID 1 has been asked to do, in typed form.
type Plan struct {
	// Containers form the pipeline, run one after the other, in order.
	Containers []Container
	// Services are background containers started before the pipeline
	// and stopped after it (and after the post containers).
	Services []Container
	// PostContainers run after the pipeline, even when it failed; their
	// statuses do not change the pipeline's.
	PostContainers []Container
	// Pipefail stops the pipeline at its first failing container (the
	// post containers still run).
	Pipefail bool
	// ShutdownCmd and RebootCmd, when set, are run (inside the
	// initramfs) to power off or reboot instead of ociboot's own calls.
	ShutdownCmd, RebootCmd []string
	// OnFailure is what to do when ociboot itself cannot go on; "" means
	// FailPowerOff.
	OnFailure FailureAction
	// Hostname is the machine's host name; "" means "ociboot".
	Hostname string
	// Insmods are module files in the initramfs, inserted as they are, in
	// order, before the named modules (ociboot.insmods=).
	Insmods []string
	// Ifaces configure the named links (ociboot.iface=, b2c.iface=); when
	// there are none, KernelIP (ip=) says what to do, and without it every
	// ethernet link gets DHCP.
	Ifaces   []netconf.Iface
	KernelIP *netconf.KernelIP
	// LinkWait is how long the network stage, running DHCP on every
	// link, still waits for the other links once one has a lease
	// (ociboot.link_wait=; netconf.DefaultLinkWait unless given).
	LinkWait time.Duration
	// NTPPeer says where the clock is set from; the zero value is none.
	NTPPeer clock.Peer
	// ExtraArgsURL, when set, is fetched once the network and the clock
	// are up, and read as more command line (see ParseWithExtra).
	ExtraArgsURL string
	// Report, when set, is the URL the boot's events are POSTed to
	// (ociboot.report=); it may hold credentials, which messages leave
	// out.
	Report string
	// ConsoleSections is the kind of section markers printed around each
	// stage and container on the console (ociboot.console_sections=):
	// "gitlab", or "" for none.
	ConsoleSections string
	// Modules are extra kernel modules to load (ociboot.modules=).
	Modules []string
	// NoColdplug turns off loading the modules of the devices present
	// (ociboot.coldplug=0).
	NoColdplug bool
	// Blacklist are modules coldplug leaves out (modprobe.blacklist=,
	// rd.driver.blacklist=), by name with '_' for '-'; loading them by
	// name still works, as with modprobe.
	Blacklist []string
	// Registry says where and how images come from, as one value for
	// the puller: insecure registries (ociboot.insecure_registry=),
	// mirrors tried in order before the registry they stand for
	// (ociboot.registry_mirror=, also baked in by `ociboot build
	// --registry-mirror`; one entry per registry), credentials by
	// normalized HOST[:PORT] (baked in at AuthPath, then
	// ociboot.registry_auth=, which wins for the same registry; printing
	// them shows no secret), PEM CA certificates trusted besides the
	// embedded roots (baked in at CAPath; rootfs tarballs and
	// extra_args_url trust them too), the platform of multi-platform
	// indexes (ociboot.platform=; the zero value means the running
	// machine's) and the timeout of each pull, layers included
	// (ociboot.pull_timeout=). Its Log and tuning fields are unset.
	Registry image.PullOptions
	// Trust is what signatures images and rootfs tarballs must carry:
	// the keys and policy baked in, with ociboot.verify= applied; nil
	// checks nothing. Registry.Verify is its Verification.
	Trust *trust.Trust
	// Storage is the local storage: the cache, swap, named filesystems.
	Storage Storage
	// S3 are the S3-compatible endpoints (minio=, ociboot.s3=), by alias;
	// their keys are secrets.
	S3 []S3
	// Volumes are the named volumes (volume=), in order; containers mount
	// them with -v NAME:/path, and also names no volume= defines, which
	// are plain local volumes.
	Volumes []Volume
	// PushTimeout bounds each pull and push of a volume
	// (ociboot.push_timeout=);
	// without a cache disk, a push that fails is tried again until it is
	// over.
	PushTimeout time.Duration
	// PoweroffDelay is how long to wait before powering off, in seconds
	// (ociboot.poweroff_delay= / b2c.poweroff_delay=); -1 when not set.
	PoweroffDelay int

	// Keymap is the console keymap to load (ociboot.keymap=), one of
	// Baked.Keymaps; "" leaves the kernel's.
	Keymap string

	// Root, when set, is the image reference or rootfs tarball URL booted
	// as the OS (ociboot.root=, rd.container.rootfs=) instead of running
	// containers.
	Root string
	// RootSize is the size of the root's tmpfs (ociboot.root_size=,
	// rd.tmpfs.size=); the zero value means the default. RootSizeParam
	// is the parameter as written, for messages.
	RootSize      switchroot.Size
	RootSizeParam string
	// Init is the image's init (ociboot.init=, or dracut's init=); ""
	// means /sbin/init, else /lib/systemd/systemd.
	Init string
	// InitArgs, when not nil, are the init's arguments
	// (ociboot.init_args=); nil passes on those the kernel gave PID 1.
	InitArgs []string
	// DropNetwork tears the network down before the image's init runs
	// (ociboot.keep_network=0); otherwise it is left for the OS.
	DropNetwork bool
	// SELinuxDisabled (selinux=0) skips loading the image's SELinux
	// policy; SELinuxPermissive (enforcing=0) makes a failed load a
	// warning.
	SELinuxDisabled, SELinuxPermissive bool

	shell     string   // Baked.Shell, for checking on_failure=shell
	keymaps   []string // Baked.Keymaps, for checking keymap=
	rootOnly  []string // parameters given that need Root
	initParam string   // "init=VALUE" when Init comes from the kernel's init=
	rdShell   bool     // rd.shell asked for a shell (and there is one)
}

// Shell is the shell on_failure=shell starts ("" when the initramfs has
// none).
func (p *Plan) Shell() string { return p.shell }

// Dialect says whose defaults a container gets.
type Dialect int

// Dialects.
const (
	// DialectNative containers (ociboot.container=) get podman run's
	// defaults.
	DialectNative Dialect = iota
	// DialectB2C containers (b2c.container=) get boot2container's:
	// --privileged --network=host --pull=always.
	DialectB2C
)

// Container is one `ociboot.container=` entry: podman-run style options,
// an image reference and an optional command.
type Container struct {
	// Spec is the parameter's value as written, for messages.
	Spec string
	// Dialect is set by the parameter's namespace.
	Dialect Dialect
	// Image is the image reference as written (docker:// prefix removed).
	Image string
	// Command, when not empty, replaces the image's Cmd.
	Command []string
	// Entrypoint, when not nil, replaces the image's Entrypoint
	// (--entrypoint; an empty string gives an empty entrypoint).
	Entrypoint []string
	// Env holds KEY=VALUE pairs added to (or overriding) the image's Env.
	Env []string
	// Workdir, when set, replaces the image's WorkingDir (-w/--workdir).
	Workdir string
	// User, when set, replaces the image's User (-u/--user).
	User string
	// Name is the container's name (--name); a default is derived if empty.
	Name string
	// Hostname is the container's hostname (-h/--hostname).
	Hostname string
	// Pull is the --pull policy; "" when not given, which is always
	// (boot2container's default).
	Pull image.PullPolicy
	// Platform (--platform) overrides the Plan's platform for this
	// container's image; the zero value means the Plan's.
	Platform v1.Platform
	// Privileged (--privileged) gives a native container what b2c.
	// containers always get.
	Privileged bool
	// CapAdd and CapDrop (--cap-add, --cap-drop) change the capability
	// set: names with or without CAP_, or ALL.
	CapAdd, CapDrop []string
	// Interactive (-i) gives the container the console as its input;
	// otherwise its stdin is /dev/null.
	Interactive bool
	// TTY (-t) gives the container a terminal (a pseudo-terminal whose
	// other end is the console).
	TTY bool
	// Mounts are -v/--volume, --mount and --tmpfs, in order.
	Mounts []Mount
	// Devices are --device nodes of the host given to the container.
	Devices []Device
	// EnvFiles are --env-file files (in the initramfs) of KEY=VALUE
	// lines, read when the container starts; -e values win over them.
	EnvFiles []string
	// NoNetwork (--network none) gives the container a network namespace
	// of its own with only a loopback link; otherwise it shares the
	// host's.
	NoNetwork bool
	// ShmSize (--shm-size) is the size of /dev/shm in bytes; 0 means 64 MiB.
	ShmSize int64
	// Ulimits (--ulimit) set the process's resource limits.
	Ulimits []Ulimit
	// Init (--init) runs a small init as the container's PID 1, in front
	// of its command: it passes signals on and reaps orphans.
	Init bool
	// SeccompUnconfined (--security-opt seccomp=unconfined) drops the
	// seccomp filter; NoNewPrivileges (--security-opt no-new-privileges)
	// sets the flag of that name.
	SeccompUnconfined, NoNewPrivileges bool
	// Mask and Unmask (--security-opt mask=, unmask=) add paths to the
	// masked ones and take paths (or ALL) off the masked and read-only
	// ones.
	Mask, Unmask []string

	// Registry holds how this container's image is pulled, besides the
	// Plan's settings (--tls-verify, --creds, --authfile, --cert-dir,
	// -q).
	Registry PullFlags
	// Resolv and hosts files: DNS (--dns), DNSNone (--dns=none: the
	// image's own resolv.conf), DNSSearch, DNSOptions, AddHosts
	// (HOST:IP lines of --add-host), NoHosts (--no-hosts: the image's
	// own /etc/hosts).
	DNS, DNSSearch, DNSOptions, AddHosts []string
	DNSNone, NoHosts                     bool
	// ReadOnly (--read-only) mounts the root read-only; then, unless
	// NoReadOnlyTmpfs (--read-only-tmpfs=false), /run, /tmp and
	// /var/tmp are tmpfs.
	ReadOnly, NoReadOnlyTmpfs bool
	// GroupAdd (--group-add) are more groups, names of the image's
	// /etc/group or numbers.
	GroupAdd []string
	// Namespaces shared with the machine: PIDHost (--pid host), IPC
	// (--ipc: "" or "private", "host", "none"), UTSHost (--uts host),
	// CgroupNSHost (--cgroupns host; the default is a cgroup namespace
	// of its own, as podman's on cgroup v2).
	PIDHost, UTSHost, CgroupNSHost bool
	IPC                            string
	// Sysctls (--sysctl) are KEY=VALUE kernel parameters of the
	// container's namespaces.
	Sysctls []string
	// Annotations (--annotation) and Labels (--label, --label-file) are
	// KEY=VALUE pairs written in the bundle's annotations.
	Annotations, Labels []string
	// LabelFiles (--label-file) are files of KEY=VALUE lines, read when
	// the container starts, as Labels.
	LabelFiles []string
	// StopSignal (--stop-signal) is the signal that stops the container;
	// 0 means SIGTERM. StopTimeout (--stop-timeout), when set, is how
	// long it gets before SIGKILL, in seconds (10 otherwise).
	StopSignal  int
	StopTimeout *int
	// Timeout (--timeout) is how long the container may run, in seconds,
	// before it is stopped; 0 means no limit.
	Timeout int
	// Resources are the cgroup limits (--memory, --cpus, --pids-limit,
	// ...).
	Resources Resources
	// OOMScoreAdj (--oom-score-adj), when set, is the process's.
	OOMScoreAdj *int
	// TZ (--tz) is the container's time zone: "local", or a zone of the
	// image's /usr/share/zoneinfo; "" leaves the image's.
	TZ string
	// Umask (--umask), when set, is the process's.
	Umask *uint32
	// Unsetenv (--unsetenv) are variables removed from the environment
	// (the image's and ociboot's); UnsetenvAll (--unsetenv-all) removes
	// all but those the options set.
	Unsetenv    []string
	UnsetenvAll bool
	// EnvHost (--env-host) passes ociboot's own environment on; with
	// NoHTTPProxy (--http-proxy=false) the proxy variables are not
	// passed on (they are by default, as with podman).
	EnvHost, NoHTTPProxy bool
	// EnvMerge (--env-merge) are KEY=VALUE pairs whose ${KEY} is the
	// value KEY had.
	EnvMerge []string
	// Attach (-a/--attach) are the streams the console is connected to,
	// some of stdin, stdout and stderr; empty means all.
	Attach []string
	// LogNone (--log-driver=none) discards the container's output.
	LogNone bool
	// Rmi (--rmi) forgets the image once the container is over.
	Rmi bool
	// Replace (--replace) stops a running service of the same Name
	// before the container starts.
	Replace bool
	// ImageVolumeTmpfs (--image-volume=tmpfs) mounts a tmpfs, holding a
	// copy of the image's files, on each of its VOLUME paths.
	ImageVolumeTmpfs bool
	// CgroupParent (--cgroup-parent) is where the container's cgroup is
	// made; "" is the root.
	CgroupParent string
	// Systemd (--systemd) is "true" (as ""), "false" or "always": when
	// the container runs in systemd mode (runtime.Systemd).
	// ShmSizeSystemd (--shm-size-systemd) is the size of the tmpfs of that
	// mode, in bytes; 0 is the kernel's default (half the memory).
	Systemd        string
	ShmSizeSystemd int64
	// Warnings are said when the container starts: options accepted that
	// change nothing here (-p, --expose).
	Warnings []string
}

// PullFlags are a container's own pull options.
type PullFlags struct {
	// TLSVerify (--tls-verify) is nil unless given: false reaches the
	// image's registry over plain HTTP or unchecked TLS, true refuses
	// that even for an insecure registry.
	TLSVerify *bool
	// Creds (--creds USER:PASSWORD) are used for the image's registry;
	// AuthFile (--authfile) is a docker config.json file whose
	// credentials are used instead of ociboot's.
	Creds    *image.Credential
	AuthFile string
	// CertDir (--cert-dir) holds *.crt CA certificates trusted for this
	// pull, and *.cert/*.key client certificate pairs.
	CertDir string
	// Quiet (-q) prints nothing about the pull.
	Quiet bool
}

// DeviceRate is an I/O limit on a block device: bytes or operations per
// second.
type DeviceRate struct {
	Path string
	Rate uint64
}

// Resources are a container's cgroup limits; zero values are no limit.
type Resources struct {
	// Memory (-m), MemoryReservation and MemorySwap (memory plus swap;
	// -1 unlimited) in bytes; MemorySwappiness 0 to 100, or nil.
	Memory, MemoryReservation, MemorySwap int64
	MemorySwappiness                      *uint64
	OOMKillDisable                        bool
	// CPUShares (-c), CPUPeriod and CPUQuota (µs; --cpus sets both),
	// CpusetCPUs and CpusetMems as in cpuset(7).
	CPUShares              uint64
	CPUPeriod              uint64
	CPUQuota               int64
	CpusetCPUs, CpusetMems string
	// PidsLimit (--pids-limit), when set, caps the number of tasks; -1
	// or 0 is no limit.
	PidsLimit *int64
	// BlkioWeight (10 to 1000) and the per-device rates (PATH:N).
	BlkioWeight                            uint16
	ReadBps, WriteBps, ReadIOps, WriteIOps []DeviceRate
	// Unified (--cgroup-conf) are cgroup v2 files to write, KEY=VALUE.
	Unified []string
}

// Mount is a bind mount of a host path or a tmpfs in a container.
type Mount struct {
	Type     string // "bind", "volume" or "tmpfs"
	Source   string // the host path of a bind mount, the name of a volume
	Target   string // absolute path in the container
	ReadOnly bool
	// Options are more mount options: for a tmpfs, size=BYTES and
	// mode=OCTAL.
	Options []string
}

// Device is a host device node given to a container.
type Device struct {
	Host, Container string // absolute paths
	Access          string // some of "rwm"
}

// Ulimit is one resource limit, by its podman name (nofile, nproc, core,
// memlock, stack, ...).
type Ulimit struct {
	Name       string
	Soft, Hard uint64
}

// TarballVerification is what the download of the root's tarball checks
// of its signature, nil for nothing.
func (p *Plan) TarballVerification() *image.Verification {
	if p.Trust == nil {
		return nil
	}
	return p.Trust.TarballVerification(p.Root)
}
