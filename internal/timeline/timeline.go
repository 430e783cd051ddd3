// Package timeline tells where a boot's time went. From the boot's
// events (ociboot.report) it makes spans for the kernel until /init, each
// stage, each container's pull and run, and each layer's fetch and
// unpack; from a console log alone, the kernel and the stages, from their
// section lines. It prints them systemd-analyze blame's way and draws
// them as an SVG picture.
package timeline

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ociboot/ociboot/internal/event"
)

// Kinds of spans.
const (
	Kernel    = "kernel"    // the kernel, until the init's first stage
	Stage     = "stage"     // a stage of the boot
	Pull      = "pull"      // a container's image pulled and unpacked
	Container = "container" // a container running
	Fetch     = "fetch"     // a layer downloading, before it is applied
	Unpack    = "unpack"    // a layer being applied (its download may go on)
)

// Span is a stretch of the boot, in seconds since the kernel started.
type Span struct {
	Kind       string
	Name       string
	Start, End float64
	// Open is set when the span's end was not seen (the machine went
	// off, or the log stops): End is the last time known then.
	Open bool
}

// Duration is the span's length in seconds.
func (s Span) Duration() float64 { return s.End - s.Start }

// Timeline is a boot's spans, in the order they started, and the time
// since boot of the last thing known of it.
type Timeline struct {
	Boot  string // the boot ID, when the events gave it
	Spans []Span
	End   float64
}

// Read reads a boot's events (JSON lines) or, when data is not JSON, a
// console log.
func Read(data []byte) (Timeline, error) {
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		var recs []event.Record
		for n, line := range bytes.Split(trimmed, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			r, err := event.ParseRecord(line)
			if err != nil {
				return Timeline{}, fmt.Errorf("line %d: %w", n+1, err)
			}
			recs = append(recs, r)
		}
		return FromEvents(recs)
	}
	return FromConsole(bytes.NewReader(data))
}

// FromEvents makes the timeline of one boot's events, in their order.
func FromEvents(recs []event.Record) (Timeline, error) {
	if len(recs) == 0 {
		return Timeline{}, fmt.Errorf("no events")
	}
	t := Timeline{Boot: recs[0].Boot}
	open := map[string]int{} // kind + name → index into Spans
	begin := func(kind, name string, at float64) {
		open[kind+"\x00"+name] = len(t.Spans)
		t.Spans = append(t.Spans, Span{Kind: kind, Name: name, Start: at, End: at, Open: true})
	}
	finish := func(kind, name string, at float64) {
		if i, ok := open[kind+"\x00"+name]; ok {
			t.Spans[i].End, t.Spans[i].Open = at, false
			delete(open, kind+"\x00"+name)
		}
	}
	for _, r := range recs {
		if r.Boot != t.Boot {
			return Timeline{}, fmt.Errorf("event %d is of boot %s, not %s: give one boot's events", r.Seq, r.Boot, t.Boot)
		}
		t.End = max(t.End, r.Mono)
		switch r.Type {
		case event.TypeStageStart:
			if !slices.ContainsFunc(t.Spans, func(s Span) bool { return s.Kind == Stage }) {
				t.Spans = append(t.Spans, Span{Kind: Kernel, Name: "kernel", End: r.Mono})
			}
			begin(Stage, r.Stage, r.Mono)
		case event.TypeStageEnd:
			finish(Stage, r.Stage, r.Mono)
		case event.TypePull:
			begin(Pull, r.Job, r.Mono)
		case event.TypeContainerStart:
			finish(Pull, r.Job, r.Mono)
			begin(Container, r.Job, r.Mono)
		case event.TypeContainerFailed:
			finish(Pull, r.Job, r.Mono)
			finish(Container, r.Job, r.Mono)
		case event.TypeContainerExit:
			finish(Container, r.Job, r.Mono)
		case event.TypeLayer:
			name := fmt.Sprintf("%s layer %d/%d", r.Job, r.Index, r.Count)
			switch r.State {
			case "fetching":
				begin(Fetch, name, r.Mono)
			case "applying":
				finish(Fetch, name, r.Mono)
				begin(Unpack, name, r.Mono)
			case "done", "failed":
				finish(Fetch, name, r.Mono)
				finish(Unpack, name, r.Mono)
			}
		}
	}
	t.closeOpen()
	return t, nil
}

// closeOpen ends the spans still open at the last time known.
func (t *Timeline) closeOpen() {
	for i := range t.Spans {
		if t.Spans[i].Open {
			t.Spans[i].End = max(t.Spans[i].Start, t.End)
		}
	}
}

// The console lines a timeline is read from: the stage lines, and the
// kernel's timestamps (printk times, when the kernel prints them).
var (
	stageLine  = regexp.MustCompile(`ociboot: ==== ([a-z_]+) ==== ([0-9]+\.[0-9]+) s since boot`)
	kernelTime = regexp.MustCompile(`^\[ *([0-9]+\.[0-9]+)\] `)
)

// FromConsole makes the timeline of a console log: the kernel until the
// first stage, then each stage until the next; the last ends at the last
// time the log shows (a kernel timestamp), open.
func FromConsole(r io.Reader) (Timeline, error) {
	var t Timeline
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if m := kernelTime.FindStringSubmatch(line); m != nil {
			at, _ := strconv.ParseFloat(m[1], 64)
			t.End = max(t.End, at)
		}
		m := stageLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return Timeline{}, fmt.Errorf("stage line %q: %w", line, err)
		}
		if len(t.Spans) == 0 {
			t.Spans = append(t.Spans, Span{Kind: Kernel, Name: "kernel", End: at})
		} else {
			last := &t.Spans[len(t.Spans)-1]
			last.End, last.Open = at, false
		}
		t.Spans = append(t.Spans, Span{Kind: Stage, Name: m[1], Start: at, Open: true})
		t.End = max(t.End, at)
	}
	if err := sc.Err(); err != nil {
		return Timeline{}, err
	}
	if len(t.Spans) == 0 {
		return Timeline{}, fmt.Errorf("no stage lines (ociboot: ==== STAGE ==== N s since boot): not an ociboot console log")
	}
	t.closeOpen()
	return t, nil
}

// Durations returns the duration of each span of kind, by name.
func (t Timeline) Durations(kind string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range t.Spans {
		if s.Kind == kind {
			out[s.Name] = s.Duration()
		}
	}
	return out
}

// Blame writes the spans, longest first, systemd-analyze blame's way,
// after a line with the boot's length.
func (t Timeline) Blame(w io.Writer) error {
	bw := bufio.NewWriter(w)
	kernel := 0.0
	if len(t.Spans) > 0 && t.Spans[0].Kind == Kernel {
		kernel = t.Spans[0].End
	}
	fmt.Fprintf(bw, "%.3fs in all: %.3fs in the kernel, %.3fs in ociboot\n", t.End, kernel, t.End-kernel)
	spans := slices.Clone(t.Spans)
	slices.SortStableFunc(spans, func(a, b Span) int { return cmp.Compare(b.Duration(), a.Duration()) })
	for _, s := range spans {
		open := ""
		if s.Open {
			open = " (still running when the record ends)"
		}
		fmt.Fprintf(bw, "%9.3fs %-9s %s%s\n", s.Duration(), s.Kind, s.Name, open)
	}
	return bw.Flush()
}
