// Package event is the boot's reporter: what happens during a boot, as
// typed events (stages starting and ending, images being pulled,
// containers starting and exiting, the pipeline's status, the end
// action), handed in order to every sink. The console is the first sink
// (console.Sink), and prints them as ociboot always has; later sinks send
// them elsewhere.
package event

import (
	"io"
	"strings"
	"sync"
	"time"
)

// Event is one of the types below.
type Event interface{ event() }

// StageStart opens a stage of the boot.
type StageStart struct {
	Stage     string
	SinceBoot time.Duration // CLOCK_BOOTTIME, the kernel log's clock
}

// StageEnd closes a stage; Err is nil when it succeeded.
type StageEnd struct {
	Stage     string
	SinceBoot time.Duration // when it ended, CLOCK_BOOTTIME
	Took      time.Duration
	Err       error
}

// Message is a progress line of a stage, without its newline.
type Message struct {
	Stage string // "" for lines that name their stage themselves
	Text  string
}

// Pull says a container's image is being pulled.
type Pull struct {
	Job   string // the container, as the console names it
	Image string
}

// Layer says a layer of a container's image changed state: "fetching",
// "applying", "done" or "failed" (see image.LayerState).
type Layer struct {
	Job          string
	Index, Count int // Index counts from 1, bottom layer first
	Digest       string
	Size         int64 // compressed, from the manifest; -1 unknown
	Fetched      int64 // compressed bytes received so far
	Unpacked     int64 // tar bytes applied so far
	State        string
	Err          error // set when State is "failed"
}

// ContainerStart says a container starts; Prepared is the time its image
// took to be pulled and unpacked.
type ContainerStart struct {
	Job, ID  string
	Prepared time.Duration
}

// ContainerBackground says a service container runs in the background.
type ContainerBackground struct{ Job string }

// ContainerSkipped says a container was not started, and why.
type ContainerSkipped struct{ Job, Why string }

// ContainerFailed says a container could not be started.
type ContainerFailed struct {
	Job string
	Err error
}

// ContainerExit says a container ended with Status; Stopped when it was
// a service stopped at the end of the pipeline.
type ContainerExit struct {
	Job     string
	Status  int
	Stopped bool
}

// PipelineStatus is the pipeline's result, as boot2container reports it.
type PipelineStatus struct{ Status int }

// EndAction says what the machine does next ("power off", "reboot"),
// after Delay.
type EndAction struct {
	Action string
	Delay  time.Duration
}

func (StageStart) event()          {}
func (StageEnd) event()            {}
func (Message) event()             {}
func (Pull) event()                {}
func (Layer) event()               {}
func (ContainerStart) event()      {}
func (ContainerBackground) event() {}
func (ContainerSkipped) event()    {}
func (ContainerFailed) event()     {}
func (ContainerExit) event()       {}
func (PipelineStatus) event()      {}
func (EndAction) event()           {}

// Sink receives events, one at a time, in the order they happened.
type Sink interface{ Handle(Event) }

// Reporter hands events to its sinks. It may be used from several
// goroutines; a nil Reporter drops everything.
type Reporter struct {
	mu    sync.Mutex
	sinks []Sink
}

// New returns a reporter to sinks.
func New(sinks ...Sink) *Reporter { return &Reporter{sinks: sinks} }

// Report hands e to every sink.
func (r *Reporter) Report(e Event) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sinks {
		s.Handle(e)
	}
}

// Writer returns a writer whose lines become Message events of stage, for
// packages that write progress lines. Each Write must hold whole lines.
func (r *Reporter) Writer(stage string) io.Writer { return messageWriter{r, stage} }

type messageWriter struct {
	r     *Reporter
	stage string
}

func (w messageWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			w.r.Report(Message{Stage: w.stage, Text: strings.TrimSuffix(line, "\n")})
		}
	}
	return len(b), nil
}

// Recorder is a sink that keeps the events, for tests.
type Recorder struct {
	mu     sync.Mutex
	events []Event
}

// Handle keeps e.
func (r *Recorder) Handle(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns the events kept so far.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}
