// Package bootcfg turns the kernel command line (plus the defaults baked into
// the initramfs at build time) into one validated Plan. Every error names the
// parameter at fault and what was expected.
package bootcfg

// BakedPath is where `ociboot build` writes the Baked configuration inside
// the initramfs, and where PID 1 reads it.
const BakedPath = "/etc/ociboot/build.json"

// Baked is the configuration `ociboot build` bakes into the initramfs.
type Baked struct {
	// Cmdline holds default kernel parameters; parameters given on the
	// real kernel command line override them key by key.
	Cmdline string `json:"cmdline,omitempty"`
	// Runtime is the absolute path of the OCI runtime inside the initramfs.
	Runtime string `json:"runtime"`
	// Modules are loaded at boot, in order, with their dependencies.
	Modules []string `json:"modules,omitempty"`
	// KernelVersion is the `uname -r` the modules were taken from.
	KernelVersion string `json:"kernel_version,omitempty"`
}

// Plan is everything PID 1 has been asked to do, in typed form.
type Plan struct {
	// Containers form the pipeline, run one after the other, in order.
	Containers []Container
	// Modules are extra kernel modules to load (ociboot.modules=).
	Modules []string
	// InsecureRegistries are HOST[:PORT] registries reached over plain HTTP.
	InsecureRegistries []string
	// PoweroffDelay is how long to wait before powering off, in seconds
	// (ociboot.poweroff_delay= / b2c.poweroff_delay=); -1 when not set.
	PoweroffDelay int
}

// Container is one `ociboot.container=` entry: podman-run style options,
// an image reference and an optional command.
type Container struct {
	// Spec is the parameter's value as written, for messages.
	Spec string
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
	// Pull is the --pull policy: "always", "missing", "never", or "" when
	// not given (the puller's default).
	Pull string
}
