// Package console holds the console contract: the exact lines that
// boot2container users' tooling matches on a machine's console, and the
// stage-prefixed progress lines ociboot prints between them.
package console

import (
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// StatusPrefix starts the line that reports the pipeline's result; the
// status number follows it.
const StatusPrefix = "Execution is over, pipeline status: "

// SafeLine is printed just before the machine powers off or reboots.
const SafeLine = "It's now safe to turn off your computer"

// HandoverPrefix starts the line printed, in switch-root mode, just
// before the image's init is executed; the init's path follows it.
const HandoverPrefix = "ociboot: root: starting "

// prefixWriter writes each line with a prefix, so that a stage's output
// says which stage it comes from.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

// Stage returns a writer that prefixes every line written to it with
// "ociboot: STAGE: ". Each Write must hold whole lines.
func Stage(w io.Writer, stage string) io.Writer {
	return &prefixWriter{w: w, prefix: "ociboot: " + stage + ": "}
}

// Ours returns a writer that prefixes every line with "ociboot: ", for
// packages whose lines already name their stage. Each Write must hold
// whole lines.
func Ours(w io.Writer) io.Writer {
	return &prefixWriter{w: w, prefix: "ociboot: "}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	var sb strings.Builder
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			sb.WriteString(p.prefix)
			sb.WriteString(line)
		}
	}
	if _, err := io.WriteString(p.w, sb.String()); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Section prints the line that opens a stage, with the time since the
// kernel started (CLOCK_BOOTTIME, the clock of the kernel's own log), e.g.
// "ociboot: ==== network ==== 2.41 s since boot".
func Section(w io.Writer, stage string) {
	fmt.Fprintf(w, "ociboot: ==== %s ==== %.2f s since boot\n", stage, SinceBoot().Seconds())
}

// SinceBoot is the time since the kernel started, suspend included.
func SinceBoot() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
