// Command trivialinit is the baseline of bench/boot.sh: an init that only
// prints a line and powers off, so that the boot cost of ociboot's own work
// (modules, network, pull, crun) can be told apart from the kernel's.
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func main() {
	fmt.Println("trivial init: first line")
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintln(os.Stderr, "power off:", err)
	}
	select {}
}
