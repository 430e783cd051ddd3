package console

import (
	"bytes"
	"fmt"
	"testing"
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
