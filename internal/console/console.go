// Package console holds the console contract: the exact lines that
// boot2container users' tooling matches on a machine's console, and the
// sink that prints the boot's events as ociboot's progress lines between
// them.
package console

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ociboot/ociboot/internal/event"
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

// SinceBoot is the time since the kernel started, suspend included.
func SinceBoot() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// Sink prints boot events on w as ociboot's console lines: a section
// line per stage, "ociboot: STAGE: " before a stage's messages, a line per
// container start and exit, and the status line boot2container users'
// tooling matches. Stage ends print nothing: a failure is printed by who
// handles it.
type Sink struct{ W io.Writer }

// Handle prints e.
func (s Sink) Handle(e event.Event) {
	switch e := e.(type) {
	case event.StageStart:
		fmt.Fprintf(s.W, "ociboot: ==== %s ==== %.2f s since boot\n", e.Stage, e.SinceBoot.Seconds())
	case event.Message:
		if e.Stage == "" {
			fmt.Fprintf(s.W, "ociboot: %s\n", e.Text)
		} else {
			fmt.Fprintf(s.W, "ociboot: %s: %s\n", e.Stage, e.Text)
		}
	case event.Pull:
		fmt.Fprintf(s.W, "ociboot: %s: pulling %s\n", e.Job, e.Image)
	case event.ContainerStart:
		fmt.Fprintf(s.W, "ociboot: %s: starting %s (pulled and unpacked in %s)\n", e.Job, e.ID, e.Prepared.Round(time.Millisecond))
	case event.ContainerBackground:
		fmt.Fprintf(s.W, "ociboot: %s: running in the background\n", e.Job)
	case event.ContainerSkipped:
		fmt.Fprintf(s.W, "ociboot: %s: not started: %s\n", e.Job, e.Why)
	case event.ContainerFailed:
		fmt.Fprintf(s.W, "ociboot: %s: %v\n", e.Job, e.Err)
	case event.ContainerExit:
		if e.Stopped {
			fmt.Fprintf(s.W, "ociboot: %s: stopped, status %d\n", e.Job, e.Status)
		} else {
			fmt.Fprintf(s.W, "ociboot: %s exited with status %d\n", e.Job, e.Status)
		}
	case event.PipelineStatus:
		fmt.Fprintf(s.W, "%s%d\n", StatusPrefix, e.Status)
	case event.EndAction:
		if e.Delay > 0 {
			fmt.Fprintf(s.W, "ociboot: %s in %ds\n", e.Action, int64(e.Delay/time.Second))
		}
	}
}

// Mirror is the console the boot writes to: its primary writer
// (/dev/console), and copies of every write to the other consoles the
// kernel writes to (Add). A copy that fails is not retried: a console
// that is full or gone must not stop the boot. It is safe for concurrent
// use.
type Mirror struct {
	primary io.Writer
	mu      sync.Mutex
	copies  []io.Writer
}

// NewMirror returns a Mirror of primary, without copies yet.
func NewMirror(primary io.Writer) *Mirror { return &Mirror{primary: primary} }

// Add makes w get a copy of what is written from now on.
func (m *Mirror) Add(w ...io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.copies = append(m.copies, w...)
}

// Write writes p to the copies, then to the primary writer, whose result
// it returns.
func (m *Mirror) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.copies {
		_, _ = c.Write(p)
	}
	return m.primary.Write(p)
}
