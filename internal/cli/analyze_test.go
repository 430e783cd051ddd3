package cli

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAnalyzeCommand reads a boot's events from a file and a URL, and a
// console log; bad input gets errors naming it.
func TestAnalyzeCommand(t *testing.T) {
	dir := t.TempDir()
	events := `{"boot":"b1","seq":1,"mono":2.5,"type":"stage_start","stage":"network"}
{"boot":"b1","seq":2,"mono":3.25,"type":"stage_end","stage":"network"}
{"boot":"b1","seq":3,"mono":3.5,"type":"end_action","action":"poweroff"}
`
	console := "ociboot: ==== network ==== 2.50 s since boot\nociboot: ==== end ==== 3.25 s since boot\n[    3.500000] reboot: Power down\n"
	files := map[string]string{"events.jsonl": events, "console.log": console, "junk.txt": "hello\n", "bad.jsonl": "{\"seq\":1}\n"}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/boots/b1/events" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, events)
	}))
	defer srv.Close()

	svg := filepath.Join(dir, "boot.svg")
	for _, src := range []string{filepath.Join(dir, "events.jsonl"), srv.URL + "/v1/boots/b1/events", filepath.Join(dir, "console.log")} {
		root := NewRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs([]string{"analyze", src, "-o", svg})
		if err := root.Execute(); err != nil {
			t.Fatalf("analyze %s: %v", src, err)
		}
		if !strings.Contains(out.String(), "0.750s stage     network") || !strings.HasPrefix(out.String(), "3.500s in all: 2.500s in the kernel") {
			t.Errorf("analyze %s:\n%s", src, out.String())
		}
		if data, err := os.ReadFile(svg); err != nil || !strings.Contains(string(data), `data-name="network" data-start="2.500" data-end="3.250"`) {
			t.Errorf("analyze %s -o: %v\n%s", src, err, data)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{filepath.Join(dir, "missing")}, "open " + filepath.Join(dir, "missing")},
		{[]string{filepath.Join(dir, "junk.txt")}, "junk.txt: no stage lines"},
		{[]string{filepath.Join(dir, "bad.jsonl")}, "bad.jsonl: line 1: event 1 has no boot ID"},
		{[]string{srv.URL + "/nothing"}, "GET " + srv.URL + "/nothing: 404 Not Found"},
		{[]string{filepath.Join(dir, "events.jsonl"), "-o", filepath.Join(dir, "no", "such", "dir.svg")}, "-o: open "},
	} {
		if _, err := runCLI(t, append([]string{"analyze"}, c.args...)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("analyze %q: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}

func TestVMReportErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--netboot", "http://127.0.0.1:1/boot.ipxe"}, "--report adds ociboot.report= to --cmdline"},
		{[]string{"--uki", os.Args[0]}, "--report adds ociboot.report= to --cmdline: give --initramfs, or --uki with --cmdline"},
	} {
		args := append([]string{"vm", "--report", filepath.Join(t.TempDir(), "events.jsonl")}, c.args...)
		if _, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("vm %q: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}
