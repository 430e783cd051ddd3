// Command ociboot builds initramfs images that boot machines straight into
// OCI containers, and is the init (PID 1) inside them.
package main

import (
	"os"
	"path/filepath"

	"github.com/ociboot/ociboot/internal/cli"
	"github.com/ociboot/ociboot/internal/boot"
)

func main() {
	// The kernel runs us as /init with PID 1; the re-exec after moving the
	// root into a tmpfs keeps PID 1. Anything else is a person at a shell.
	if os.Getpid() == 1 || filepath.Base(os.Args[0]) == "init" {
		boot.Main() // never returns
	}
	os.Exit(cli.Execute(os.Args[1:]))
}
