// Command ociboot builds initramfs images that boot machines straight into
// OCI containers, and is the init (PID 1) inside them.
package main

import (
	"os"

	"github.com/ociboot/ociboot/internal/boot"
	"github.com/ociboot/ociboot/internal/cli"
	"github.com/ociboot/ociboot/internal/containerinit"
)

func main() {
	// In a container given --init, we are its PID 1, in front of its
	// command.
	if len(os.Args) > 1 && os.Args[1] == containerinit.Arg {
		os.Exit(containerinit.Main(os.Args[2:]))
	}
	// The kernel runs us as /init with PID 1; the re-exec after moving the
	// root into a tmpfs keeps PID 1. Anything else is a person at a shell.
	if os.Getpid() == 1 {
		boot.Main() // never returns
	}
	os.Exit(cli.Execute(os.Args[1:]))
}
