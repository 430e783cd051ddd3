package console

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

func TestStage(t *testing.T) {
	var buf bytes.Buffer
	w := Stage(&buf, "image")
	fmt.Fprintf(w, "layer 1/2\nlayer 2/2\n")
	fmt.Fprintln(w, "done")
	want := "ociboot: image: layer 1/2\nociboot: image: layer 2/2\nociboot: image: done\n"
	if buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

func TestSection(t *testing.T) {
	var buf bytes.Buffer
	before := SinceBoot()
	Section(&buf, "network")
	var secs float64
	if _, err := fmt.Sscanf(buf.String(), "ociboot: ==== network ==== %f s since boot\n", &secs); err != nil {
		t.Fatalf("section line %q: %v", buf.String(), err)
	}
	if got := time.Duration(secs * float64(time.Second)); got < before-10*time.Millisecond || got > SinceBoot()+10*time.Millisecond {
		t.Errorf("section line says %v since boot, want between %v and %v", got, before, SinceBoot())
	}
}
