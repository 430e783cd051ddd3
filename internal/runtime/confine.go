package runtime

import (
	"fmt"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultCapabilities is the capability set podman gives a container that
// is not privileged (containers.conf's default_capabilities).
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP",
	"CAP_SETUID", "CAP_SYS_CHROOT",
}

// Paths podman hides (masked: an empty file or directory over them) or
// makes read-only in a container that is not privileged.
var (
	maskedPaths = []string{
		"/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/pressure", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
		"/proc/timer_stats", "/sys/dev/block", "/sys/devices/virtual/powercap",
		"/sys/firmware", "/sys/fs/selinux",
	}
	readonlyPaths = []string{
		"/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
		"/proc/sysrq-trigger",
	}
)

// deniedSyscalls are refused with EPERM by the seccomp filter of a
// container that is not privileged: what the default profiles of Docker
// and podman keep from a container without CAP_SYS_ADMIN and friends
// (kernel modules, kexec, mounts and namespaces, the clock, keyrings,
// accounting, swap, BPF, perf, raw I/O ports). They are written as a
// deny list, not podman's allow list of ~350 names: the effect on these
// calls is the same, and calls the kernel added later are not refused by
// accident.
var deniedSyscalls = []string{
	"acct", "add_key", "bpf", "clock_adjtime", "clock_settime",
	"create_module", "delete_module", "finit_module", "fsconfig", "fsmount",
	"fsopen", "fspick", "get_kernel_syms", "init_module", "ioperm", "iopl",
	"kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mount",
	"mount_setattr", "move_mount", "nfsservctl", "open_by_handle_at",
	"open_tree", "perf_event_open", "pivot_root", "query_module", "quotactl",
	"quotactl_fd", "reboot", "request_key", "setns", "settimeofday", "stime",
	"swapoff", "swapon", "sysfs", "_sysctl", "umount", "umount2", "unshare",
	"uselib", "userfaultfd", "ustat", "vm86", "vm86old",
}

// seccompProfile is the filter of a container that is not privileged.
func seccompProfile() *specs.LinuxSeccomp {
	eperm := uint(unix.EPERM)
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: deniedSyscalls, Action: specs.ActErrno, ErrnoRet: &eperm}},
	}
}

// adjustCapabilities applies --cap-add and --cap-drop (names with or
// without CAP_, or ALL) to set.
func adjustCapabilities(set, add, drop []string) ([]string, error) {
	norm := func(list []string) ([]string, error) {
		var out []string
		for _, c := range list {
			c = strings.ToUpper(c)
			if c == "ALL" {
				out = append(out, allCapabilities()...)
				continue
			}
			if !strings.HasPrefix(c, "CAP_") {
				c = "CAP_" + c
			}
			if !slices.Contains(allCapabilities(), c) {
				return nil, fmt.Errorf("unknown capability %q", c)
			}
			out = append(out, c)
		}
		return out, nil
	}
	adds, err := norm(add)
	if err != nil {
		return nil, err
	}
	drops, err := norm(drop)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range append(slices.Clone(set), adds...) {
		if !slices.Contains(drops, c) && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}
