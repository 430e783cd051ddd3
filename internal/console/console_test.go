package console

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/event"
)

// TestSink checks the lines the console prints for each event, the
// contract's among them.
func TestSink(t *testing.T) {
	var buf bytes.Buffer
	r := event.New(NewSink(&buf))
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
	NewSink(&buf).Handle(event.StageStart{Stage: "network", SinceBoot: SinceBoot()})
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

// TestGitLabSections checks the markers around stages and containers:
// well formed, balanced, the status line outside them all.
func TestGitLabSections(t *testing.T) {
	var buf bytes.Buffer
	s := NewSink(&buf)
	s.now = func() time.Time { return time.Unix(1765000000, 0) }
	r := event.New(s)
	r.Report(event.StageStart{Stage: "configuration"}) // before the plan is read: no markers yet
	s.SetSections("gitlab")
	for _, e := range []event.Event{
		event.StageEnd{Stage: "configuration"},
		event.StageStart{Stage: "network"},
		event.Message{Stage: "network", Text: "up"},
		event.StageEnd{Stage: "network"},
		event.StageStart{Stage: "containers"},
		event.Pull{Job: "service 1/1 (redis)", Image: "redis"},
		event.ContainerStart{Job: "service 1/1 (redis)", ID: "s1"},
		event.ContainerBackground{Job: "service 1/1 (redis)"},
		event.ContainerFailed{Job: "container 1/3 (x)", Err: errors.New("container_start hook failed")}, // no pull, no section
		event.Pull{Job: "container 2/3 (alpine)", Image: "alpine"},
		event.ContainerStart{Job: "container 2/3 (alpine)", ID: "c2"},
		event.ContainerExit{Job: "container 2/3 (alpine)", Status: 3},
		event.Pull{Job: "container 3/3 (busybox)", Image: "busybox"}, // still open at the end
		event.ContainerExit{Job: "service 1/1 (redis)", Status: 143, Stopped: true},
		event.StageEnd{Stage: "containers"},
		event.StageStart{Stage: "end"},
		event.PipelineStatus{Status: 3},
		event.EndAction{Action: "power off"},
	} {
		r.Report(e)
	}
	log := buf.String()
	secs, err := ReadSections(log)
	if err != nil {
		t.Fatalf("%v in\n%q", err, log)
	}
	var got []string
	for _, sec := range secs {
		got = append(got, fmt.Sprintf("%s/%d/%v", sec.Name, sec.Depth, sec.Collapsed))
	}
	want := "stage_network/0/true stage_containers/0/true container_1/1/false container_2/1/false container_3/1/false stage_end/0/true"
	if strings.Join(got, " ") != want {
		t.Errorf("sections %s, want %s", strings.Join(got, " "), want)
	}
	if !strings.Contains(log, "section_end:1765000000:stage_end\r\x1b[0K\nExecution is over, pipeline status: 3\n") {
		t.Errorf("the status line is not outside every section:\n%q", log)
	}
	if !strings.Contains(log, "\x1b[0Ksection_start:1765000000:container_2\r\x1b[0Kociboot: container 2/3 (alpine): pulling alpine\n") {
		t.Errorf("a container's section has not its pull line as header:\n%q", log)
	}
	// Without sections, no marker.
	buf.Reset()
	s.SetSections("")
	r.Report(event.StageStart{Stage: "x"})
	r.Report(event.StageEnd{Stage: "x"})
	if strings.Contains(buf.String(), "section_") {
		t.Errorf("markers with sections off: %q", buf.String())
	}
}

func TestReadSectionsErrors(t *testing.T) {
	start := func(name string, ts int) string {
		return fmt.Sprintf("\x1b[0Ksection_start:%d:%s\r\x1b[0Kheader\n", ts, name)
	}
	end := func(name string, ts int) string { return fmt.Sprintf("\x1b[0Ksection_end:%d:%s\r\x1b[0K\n", ts, name) }
	for _, tt := range []struct{ log, want string }{
		{start("a", 1), "section a never ends"},
		{end("a", 1), "section a ends but is not open"},
		{start("a", 1) + start("b", 1) + end("a", 2) + end("b", 2), "section a ends inside section b"},
		{start("a", 5) + end("a", 4), "section a ends (4) before it starts (5)"},
		{start("a", 1) + "section_end:2:a\n", "section a never ends"},
		{start("a", 1) + end("a", 2) + "\x1b[0Ksection_start:x:b\r\x1b[0K", "3 section markers, of which 2 are well formed"},
	} {
		if _, err := ReadSections(tt.log); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadSections(%q) = %v, want %q", tt.log, err, tt.want)
		}
	}
}
