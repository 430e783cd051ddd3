package timeline

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/event"
)

// recordedBoot is a boot's events and the console it printed, with the
// same times.
func recordedBoot() ([]event.Record, string) {
	var recs []event.Record
	var console strings.Builder
	add := func(at float64, e event.Event) {
		r := event.NewRecord(e)
		r.Boot, r.Seq, r.Mono = "b1", uint64(len(recs)+1), at
		recs = append(recs, r)
		if s, ok := e.(event.StageStart); ok {
			fmt.Fprintf(&console, "ociboot: ==== %s ==== %.2f s since boot\n", s.Stage, at)
		}
	}
	console.WriteString("[    0.000000] Linux version 6.1.0\n")
	add(2.571, event.Message{Text: "early microcode"})
	add(2.634, event.StageStart{Stage: "configuration"})
	add(2.650, event.StageEnd{Stage: "configuration"})
	add(2.651, event.StageStart{Stage: "network"})
	add(3.512, event.StageEnd{Stage: "network"})
	add(3.513, event.StageStart{Stage: "containers"})
	add(3.520, event.Pull{Job: "container 1/1 (alpine)", Image: "alpine"})
	add(3.600, event.Layer{Job: "container 1/1 (alpine)", Index: 1, Count: 2, State: "fetching"})
	add(3.700, event.Layer{Job: "container 1/1 (alpine)", Index: 2, Count: 2, State: "fetching"})
	add(3.900, event.Layer{Job: "container 1/1 (alpine)", Index: 1, Count: 2, State: "applying"})
	add(4.100, event.Layer{Job: "container 1/1 (alpine)", Index: 2, Count: 2, State: "applying"})
	add(4.300, event.Layer{Job: "container 1/1 (alpine)", Index: 1, Count: 2, State: "done"})
	add(4.400, event.Layer{Job: "container 1/1 (alpine)", Index: 2, Count: 2, State: "done"})
	add(4.420, event.ContainerStart{Job: "container 1/1 (alpine)", ID: "container-1"})
	add(6.000, event.ContainerExit{Job: "container 1/1 (alpine)", Status: 0})
	add(6.010, event.StageEnd{Stage: "containers"})
	add(6.011, event.StageStart{Stage: "end"})
	add(6.050, event.PipelineStatus{Status: 0})
	add(6.060, event.EndAction{Action: "poweroff"})
	console.WriteString("Execution is over, pipeline status: 0\n[    6.200000] reboot: Power down\n")
	return recs, console.String()
}

func TestFromEvents(t *testing.T) {
	recs, _ := recordedBoot()
	var lines bytes.Buffer
	for _, r := range recs {
		b, _ := json.Marshal(r)
		lines.Write(append(b, '\n'))
	}
	tl, err := Read(lines.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range tl.Spans {
		got = append(got, fmt.Sprintf("%s %s %.3f-%.3f%v", s.Kind, s.Name, s.Start, s.End, map[bool]string{true: " open"}[s.Open]))
	}
	want := []string{
		"kernel kernel 0.000-2.634",
		"stage configuration 2.634-2.650",
		"stage network 2.651-3.512",
		"stage containers 3.513-6.010",
		"pull container 1/1 (alpine) 3.520-4.420",
		"fetch container 1/1 (alpine) layer 1/2 3.600-3.900",
		"fetch container 1/1 (alpine) layer 2/2 3.700-4.100",
		"unpack container 1/1 (alpine) layer 1/2 3.900-4.300",
		"unpack container 1/1 (alpine) layer 2/2 4.100-4.400",
		"container container 1/1 (alpine) 4.420-6.000",
		"stage end 6.011-6.060 open",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("spans:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var blame bytes.Buffer
	if err := tl.Blame(&blame); err != nil {
		t.Fatal(err)
	}
	lines2 := strings.Split(blame.String(), "\n")
	if lines2[0] != "6.060s in all: 2.634s in the kernel, 3.426s in ociboot" || !strings.Contains(lines2[1], "2.634s kernel") || !strings.Contains(lines2[2], "2.497s stage     containers") {
		t.Errorf("blame:\n%s", blame.String())
	}
	if _, err := FromEvents(append(recs, event.Record{Boot: "other", Seq: 99})); err == nil || !strings.Contains(err.Error(), "event 99 is of boot other") {
		t.Errorf("two boots: %v", err)
	}
}

// The console gives the same stage durations, within its precision.
func TestFromConsole(t *testing.T) {
	recs, console := recordedBoot()
	fromEvents, err := FromEvents(recs)
	if err != nil {
		t.Fatal(err)
	}
	fromConsole, err := Read([]byte(console))
	if err != nil {
		t.Fatal(err)
	}
	ev, co := fromEvents.Durations(Stage), fromConsole.Durations(Stage)
	for _, name := range []string{"configuration", "network", "containers"} {
		if math.Abs(ev[name]-co[name]) > 0.011 {
			t.Errorf("stage %s: %.3f s from the events, %.3f s from the console", name, ev[name], co[name])
		}
	}
	if co["end"] < 0.18 || fromConsole.End != 6.2 {
		t.Errorf("the last stage ends at the last kernel time: %.3f s, end %.3f", co["end"], fromConsole.End)
	}
	if _, err := Read([]byte("hello\n")); err == nil || !strings.Contains(err.Error(), "no stage lines") {
		t.Errorf("not a console log: %v", err)
	}
	if _, err := Read([]byte("{\"boot\":\"b\"}\n")); err == nil || !strings.Contains(err.Error(), "line 1: event of boot b has no sequence number") {
		t.Errorf("a bad event: %v", err)
	}
}

// TestSVG checks that the picture is XML with a box per span, of the
// span's times.
func TestSVG(t *testing.T) {
	recs, _ := recordedBoot()
	tl, err := FromEvents(recs)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tl.SVG(&out); err != nil {
		t.Fatal(err)
	}
	boxes := readSVG(t, out.Bytes())
	if len(boxes) != len(tl.Spans) {
		t.Fatalf("%d boxes for %d spans", len(boxes), len(tl.Spans))
	}
	for i, s := range tl.Spans {
		b := boxes[i]
		if b.kind != s.Kind || b.name != s.Name || math.Abs(b.end-b.start-s.Duration()) > 0.001 {
			t.Errorf("box %d: %+v, want %+v", i, b, s)
		}
	}
}

type box struct {
	kind, name string
	start, end float64
}

// readSVG parses an SVG and returns its boxes.
func readSVG(t *testing.T, data []byte) []box {
	t.Helper()
	var boxes []box
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() == "EOF" {
				return boxes
			}
			t.Fatalf("the SVG is not XML: %v", err)
		}
		el, ok := tok.(xml.StartElement)
		if !ok || el.Name.Local != "rect" {
			continue
		}
		var b box
		for _, a := range el.Attr {
			switch a.Name.Local {
			case "data-kind":
				b.kind = a.Value
			case "data-name":
				b.name = a.Value
			case "data-start":
				b.start, _ = strconv.ParseFloat(a.Value, 64)
			case "data-end":
				b.end, _ = strconv.ParseFloat(a.Value, 64)
			}
		}
		if b.kind != "" {
			boxes = append(boxes, b)
		}
	}
}
