package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestReporter(t *testing.T) {
	var a, b Recorder
	r := New(&a, &b)
	r.Report(StageStart{Stage: "network"})
	fmt.Fprint(r.Writer("image"), "layer 1/2\nlayer 2/2\n")
	fmt.Fprintln(r.Writer(""), "clock: set")
	want := []Event{
		StageStart{Stage: "network"},
		Message{Stage: "image", Text: "layer 1/2"},
		Message{Stage: "image", Text: "layer 2/2"},
		Message{Text: "clock: set"},
	}
	if !reflect.DeepEqual(a.Events(), want) || !reflect.DeepEqual(b.Events(), want) {
		t.Errorf("sinks got %v and %v, want %v", a.Events(), b.Events(), want)
	}
	var none *Reporter
	none.Report(PipelineStatus{}) // dropped, no panic
	fmt.Fprintln(none.Writer("x"), "dropped")
}

// TestRecords checks that every event type has a record type of its own,
// and that records read back as written.
func TestRecords(t *testing.T) {
	events := []Event{
		StageStart{Stage: "network"}, StageEnd{Stage: "network", Took: time.Second, Err: errors.New("no link")},
		Message{Text: "x"}, Pull{Job: "j", Image: "alpine"}, Layer{Job: "j", Index: 1, Count: 2, Size: -1, State: "done"},
		ContainerStart{Job: "j", ID: "c"}, ContainerBackground{Job: "j"}, ContainerSkipped{Job: "j", Why: "w"},
		ContainerFailed{Job: "j", Err: errors.New("e")}, ContainerExit{Job: "j", Status: 0}, PipelineStatus{Status: 0},
		EndAction{Action: "poweroff"}, Identity{BootID: "b"}, ClockSet{},
	}
	types := map[string]bool{}
	for i, e := range events {
		r := NewRecord(e)
		if strings.Contains(r.Type, ".") || types[r.Type] {
			t.Errorf("%T has record type %q", e, r.Type)
		}
		types[r.Type] = true
		r.Boot, r.Seq = "b", uint64(i+1)
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseRecord(line)
		if err != nil || !reflect.DeepEqual(back, r) {
			t.Errorf("%s read back as %+v, %v", line, back, err)
		}
	}
	if r := NewRecord(ContainerExit{Status: 0}); r.Status == nil || *r.Status != 0 {
		t.Error("a status of 0 is left out")
	}
	if r := NewRecord(StageEnd{Stage: "x", Err: errors.New("bad")}); r.Error != "bad" || r.Took == nil {
		t.Errorf("stage end: %+v", r)
	}
}
