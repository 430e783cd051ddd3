package console

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/event"
)

// TestSink checks the lines the console prints for each event, the
// contract's among them.
func TestSink(t *testing.T) {
	var buf bytes.Buffer
	r := event.New(Sink{W: &buf})
	fmt.Fprintf(r.Writer("image"), "layer 1/2\nlayer 2/2\n")
	fmt.Fprintln(r.Writer(""), "clock: set")
	for _, e := range []event.Event{
		event.StageEnd{Stage: "network", Took: time.Second},
		event.Pull{Job: "container 1/1 (alpine)", Image: "alpine"},
		event.ContainerStart{Job: "container 1/1 (alpine)", ID: "c1", Prepared: 1234567 * time.Microsecond},
		event.ContainerBackground{Job: "service 1/1 (redis)"},
		event.ContainerSkipped{Job: "container 2/2 (x)", Why: "shutting down"},
		event.ContainerFailed{Job: "container 2/2 (x)", Err: errors.New("no such image")},
		event.ContainerExit{Job: "container 1/1 (alpine)", Status: 3},
		event.ContainerExit{Job: "service 1/1 (redis)", Status: 143, Stopped: true},
		event.PipelineStatus{Status: 3},
		event.EndAction{Action: "poweroff"},
		event.EndAction{Action: "reboot", Delay: 90 * time.Second},
	} {
		r.Report(e)
	}
	want := `ociboot: image: layer 1/2
ociboot: image: layer 2/2
ociboot: clock: set
ociboot: container 1/1 (alpine): pulling alpine
ociboot: container 1/1 (alpine): starting c1 (pulled and unpacked in 1.235s)
ociboot: service 1/1 (redis): running in the background
ociboot: container 2/2 (x): not started: shutting down
ociboot: container 2/2 (x): no such image
ociboot: container 1/1 (alpine) exited with status 3
ociboot: service 1/1 (redis): stopped, status 143
Execution is over, pipeline status: 3
ociboot: reboot in 90s
`
	if buf.String() != want {
		t.Errorf("console:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestSection(t *testing.T) {
	var buf bytes.Buffer
	before := SinceBoot()
	Sink{W: &buf}.Handle(event.StageStart{Stage: "network", SinceBoot: SinceBoot()})
	var secs float64
	if _, err := fmt.Sscanf(buf.String(), "ociboot: ==== network ==== %f s since boot\n", &secs); err != nil {
		t.Fatalf("section line %q: %v", buf.String(), err)
	}
	if got := time.Duration(secs * float64(time.Second)); got < before-10*time.Millisecond || got > SinceBoot()+10*time.Millisecond {
		t.Errorf("section line says %v since boot, want between %v and %v", got, before, SinceBoot())
	}
}

// failing is a console that takes nothing.
type failing struct{ tries int }

func (f *failing) Write([]byte) (int, error) {
	f.tries++
	return 0, errors.New("resource temporarily unavailable")
}

// TestMirror checks that the copies get what is written once they are
// added, and that a copy that fails changes nothing for the console.
func TestMirror(t *testing.T) {
	var primary, other bytes.Buffer
	full := &failing{}
	m := NewMirror(&primary)
	fmt.Fprintln(m, "before")
	m.Add(full, &other)
	if n, err := fmt.Fprintln(m, "after"); n != 6 || err != nil {
		t.Errorf("Write = %d, %v; want the primary's 6, nil", n, err)
	}
	if primary.String() != "before\nafter\n" || other.String() != "after\n" || full.tries != 1 {
		t.Errorf("primary %q, copy %q, failing copy tried %d times", primary.String(), other.String(), full.tries)
	}
}
