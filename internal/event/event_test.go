package event

import (
	"fmt"
	"reflect"
	"testing"
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
