// Package console holds the console contract: the exact lines that
// boot2container users' tooling matches on a machine's console, and the
// sink that prints the boot's events as ociboot's progress lines between
// them (and, for CI logs, GitLab's section markers around them).
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

// Sink prints boot events as ociboot's console lines: a section line per
// stage, "ociboot: STAGE: " before a stage's messages, a line per
// container start and exit, and the status line boot2container users'
// tooling matches. Stage ends print nothing: a failure is printed by who
// handles it. With SetSections("gitlab"), GitLab CI's collapsible section
// markers go around each stage (collapsed) and each container (open),
// from its pull to its exit; the status line is outside them all.
type Sink struct {
	w   io.Writer
	now func() time.Time

	mu       sync.Mutex
	sections bool
	open     []string          // the open sections, innermost last
	names    map[string]string // a container's section, by job
}

// NewSink returns a Sink printing on w.
func NewSink(w io.Writer) *Sink { return &Sink{w: w, now: time.Now, names: map[string]string{}} }

// SetSections turns section markers on ("gitlab") or off ("").
func (s *Sink) SetSections(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sections = kind == "gitlab"
}

// Handle prints e.
func (s *Sink) Handle(e event.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e := e.(type) {
	case event.StageStart:
		s.start("stage_"+e.Stage, true)
		fmt.Fprintf(s.w, "ociboot: ==== %s ==== %.2f s since boot\n", e.Stage, e.SinceBoot.Seconds())
	case event.StageEnd:
		s.end("stage_" + e.Stage)
	case event.Message:
		if e.Stage == "" {
			fmt.Fprintf(s.w, "ociboot: %s\n", e.Text)
		} else {
			fmt.Fprintf(s.w, "ociboot: %s: %s\n", e.Stage, e.Text)
		}
	case event.Pull:
		name := fmt.Sprintf("container_%d", len(s.names)+1)
		s.names[e.Job] = name
		s.start(name, false)
		fmt.Fprintf(s.w, "ociboot: %s: pulling %s\n", e.Job, e.Image)
	case event.ContainerStart:
		fmt.Fprintf(s.w, "ociboot: %s: starting %s (pulled and unpacked in %s)\n", e.Job, e.ID, e.Prepared.Round(time.Millisecond))
	case event.ContainerBackground:
		fmt.Fprintf(s.w, "ociboot: %s: running in the background\n", e.Job)
		s.end(s.names[e.Job]) // its section would straddle the others'
	case event.ContainerSkipped:
		fmt.Fprintf(s.w, "ociboot: %s: not started: %s\n", e.Job, e.Why)
	case event.ContainerFailed:
		fmt.Fprintf(s.w, "ociboot: %s: %v\n", e.Job, e.Err)
		s.end(s.names[e.Job])
	case event.ContainerExit:
		if e.Stopped {
			fmt.Fprintf(s.w, "ociboot: %s: stopped, status %d\n", e.Job, e.Status)
		} else {
			fmt.Fprintf(s.w, "ociboot: %s exited with status %d\n", e.Job, e.Status)
		}
		s.end(s.names[e.Job])
	case event.PipelineStatus:
		s.closeFrom(0)
		fmt.Fprintf(s.w, "%s%d\n", StatusPrefix, e.Status)
	case event.EndAction:
		s.closeFrom(0)
		if e.Delay > 0 {
			fmt.Fprintf(s.w, "ociboot: %s in %ds\n", e.Action, int64(e.Delay/time.Second))
		}
	}
}

// start opens section name, when sections are on; the next line printed
// is its header.
func (s *Sink) start(name string, collapsed bool) {
	if !s.sections {
		return
	}
	opt := ""
	if collapsed {
		opt = "[collapsed=true]"
	}
	fmt.Fprintf(s.w, "\x1b[0Ksection_start:%d:%s%s\r\x1b[0K", s.now().Unix(), name, opt)
	s.open = append(s.open, name)
}

// end closes section name and those opened inside it. A section not
// open, or "", is left alone.
func (s *Sink) end(name string) {
	for i := len(s.open) - 1; name != "" && i >= 0; i-- {
		if s.open[i] == name {
			s.closeFrom(i)
			return
		}
	}
}

// closeFrom closes the sections open from the i-th, innermost first.
func (s *Sink) closeFrom(i int) {
	for j := len(s.open) - 1; j >= i; j-- {
		fmt.Fprintf(s.w, "\x1b[0Ksection_end:%d:%s\r\x1b[0K\n", s.now().Unix(), s.open[j])
	}
	s.open = s.open[:i]
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
