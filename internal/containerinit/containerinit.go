// Package containerinit is the small init that `--init` puts in front of a
// container's command, as podman does with catatonit: the ociboot binary,
// bind-mounted into the container, runs as its PID 1, starts the command,
// passes signals on to it, reaps the orphans that end up with PID 1, and
// exits with the command's status.
package containerinit

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"

	"golang.org/x/sys/unix"
)

// Arg is the first argument that makes the ociboot binary run Main: the
// container's process is `PATH Arg -- COMMAND [ARG...]`.
const Arg = "container-init"

// Path is where the ociboot binary is mounted in a container given --init.
const Path = "/run/ociboot-init"

// Main runs args (after a leading "--") and returns the status to exit
// with: the command's exit code, or 128+N when signal N killed it.
func Main(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "ociboot container-init: no command given")
		return 125
	}
	// Catch signals before the child exists, so none is lost.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	defer signal.Stop(sigs)

	proc, err := os.StartProcess(lookPath(args[0]), args, &os.ProcAttr{
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Env:   os.Environ(),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ociboot container-init: %v\n", err)
		return 127
	}
	for s := range sigs {
		if s != unix.SIGCHLD {
			// Passed on; the child decides what it means.
			_ = proc.Signal(s)
			continue
		}
		if status, done := reap(proc.Pid); done {
			return status
		}
	}
	return 125 // not reached: sigs is never closed
}

// reap collects every exited child; it reports the status of child when
// it is among them.
func reap(child int) (int, bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return 0, false
		}
		if pid != child {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal()), true
		}
		return ws.ExitStatus(), true
	}
}

// lookPath finds name on $PATH when it has no slash, as a shell would;
// a name not found is tried as it is, for the error to name it.
func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}
