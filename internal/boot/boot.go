// Package boot is the init's main sequence: the walk from the kernel command
// line to power-off, one stage after the other.
package boot

// Main runs the init. It never returns.
func Main() {
	select {}
}
