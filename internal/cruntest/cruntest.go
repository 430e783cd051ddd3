// Package cruntest lets tests run real containers with crun on the host, the
// way PID 1 runs them in the VM: with cgroup2 mounted on /sys/fs/cgroup. It
// is imported only by tests.
package cruntest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Path is the runtime the tests run containers with (Debian package crun).
const Path = "/usr/bin/crun"

// inPrivateNS marks the copy of the test binary that Main starts in its own
// mount namespace.
const inPrivateNS = "OCIBOOT_CRUNTEST_MOUNT_NS"

// Main runs the tests with cgroup2 on /sys/fs/cgroup; call it from TestMain.
// A host with a hybrid cgroup layout (cgroup v1 controllers and a cgroup2
// hierarchy on /sys/fs/cgroup/unified) makes crun fail with "cgroups in
// hybrid mode not supported", so there the test binary runs again in a
// private mount namespace with cgroup2 mounted on /sys/fs/cgroup; the host's
// mounts are not touched. It does not return.
func Main(m *testing.M) {
	var fs unix.Statfs_t
	onCgroup2 := unix.Statfs("/sys/fs/cgroup", &fs) == nil && fs.Type == unix.CGROUP2_SUPER_MAGIC
	switch {
	case onCgroup2 || os.Geteuid() != 0:
		os.Exit(m.Run())
	case os.Getenv(inPrivateNS) == "":
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), inPrivateNS+"=1")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // also makes / private
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "running the tests in a private mount namespace:", err)
			os.Exit(2)
		}
		os.Exit(0)
	default:
		if err := unix.Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, ""); err != nil {
			fmt.Fprintln(os.Stderr, "mounting cgroup2 on /sys/fs/cgroup in a private mount namespace:", err)
			os.Exit(2)
		}
		os.Exit(m.Run())
	}
}
