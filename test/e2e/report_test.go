package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/console"
	"github.com/ociboot/ociboot/internal/event"
	"github.com/ociboot/ociboot/internal/fleet"
	"github.com/ociboot/ociboot/internal/vm"
)

// getJSON decodes what `ociboot serve` answers at path.
func getJSON(t *testing.T, port int, path string, v any) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	dec := json.NewDecoder(resp.Body)
	if recs, ok := v.(*[]event.Record); ok {
		for dec.More() {
			var r event.Record
			if err := dec.Decode(&r); err != nil {
				t.Fatal(err)
			}
			*recs = append(*recs, r)
		}
		return
	}
	if err := dec.Decode(v); err != nil {
		t.Fatal(err)
	}
}

// reportedBoot returns the one boot serve on port has, and its events,
// checking that none is missing or out of order.
func reportedBoot(t *testing.T, port int, mac string) (fleet.Boot, []event.Record) {
	t.Helper()
	var machines []fleet.Machine
	getJSON(t, port, "/v1/machines", &machines)
	if len(machines) != 1 || len(machines[0].Boots) != 1 || machines[0].MAC != mac {
		t.Fatalf("serve has %+v, want one machine %s with one boot", machines, mac)
	}
	b := machines[0].Boots[0]
	var recs []event.Record
	getJSON(t, port, "/v1/boots/"+b.ID+"/events", &recs)
	for i, r := range recs {
		if r.Seq != uint64(i+1) || r.Boot != b.ID || r.MAC != mac {
			t.Fatalf("event %d: seq %d, boot %s, MAC %s: want every event, in order, of boot %s on %s", i, r.Seq, r.Boot, r.MAC, b.ID, mac)
		}
	}
	if b.Missing != 0 || b.Events != len(recs) {
		t.Errorf("boot %+v: %d events, want none missing", b, len(recs))
	}
	return b, recs
}

// stagesOf lists the stage starts and ends of recs, as "+name" and
// "-name".
func stagesOf(recs []event.Record) []string {
	var out []string
	for _, r := range recs {
		switch r.Type {
		case event.TypeStageStart:
			out = append(out, "+"+r.Stage)
		case event.TypeStageEnd:
			out = append(out, "-"+r.Stage)
		}
	}
	return out
}

// reportTests registers the subtests of ociboot.report: a boot's events
// reach `ociboot serve`, complete and in order, even when serve starts
// late; the console has GitLab's sections.
func (f *fixture) reportTests(t *testing.T) {
	t.Run("report", func(t *testing.T) {
		t.Parallel()
		state := t.TempDir()
		port, _ := f.startServe(t, "--state", state)
		tap, _ := ntpNetwork(t)
		const mac = "52:54:00:00:19:01"
		cmdline := fmt.Sprintf(`ociboot.report=http://%s:%d/v1/events ociboot.console_sections=gitlab b2c.ntp_peer=auto `+
			`ociboot.hostname=rack1-node7 ociboot.registry_auth=registry.lan,bob,pw-%s `+
			`ociboot.container="%s sh -c 'echo the job ran; exit 3'"`, vm.GuestHost, port, secretMarker, f.images["layered"])
		res, out, err := f.bootWith(t, cmdline, machine{ports: []int{port}, taps: []*os.File{tap}, mac: mac})
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		if !res.StatusSeen || res.Status != 3 {
			t.Fatalf("pipeline status: seen %v, %d; want 3", res.StatusSeen, res.Status)
		}
		b, recs := reportedBoot(t, port, mac)
		if b.Host != "rack1-node7" || b.Status == nil || *b.Status != res.Status || b.End != "poweroff" || b.Stage != "" || b.Failed != "" {
			t.Errorf("boot %+v: want host rack1-node7, status %d as the console, ended with poweroff", b, res.Status)
		}
		want := []string{"+configuration", "-configuration", "+modules", "-modules", "+network", "-network", "+clock", "-clock", "+containers", "-containers", "+end"}
		if got := stagesOf(recs); !slices.Equal(got, want) {
			t.Errorf("stages %q, want %q", got, want)
		}
		// The image's four layers fetched and unpacked, then the
		// container and the pipeline's status, in order.
		var seq []string
		layersDone := 0
		for _, r := range recs {
			switch r.Type {
			case event.TypeLayer:
				if r.State == "done" && r.Count == 4 {
					layersDone++
				}
			case event.TypePull, event.TypeContainerStart, event.TypeContainerExit, event.TypePipelineStatus, event.TypeEndAction:
				status := ""
				if r.Status != nil {
					status = fmt.Sprint(*r.Status)
				}
				seq = append(seq, r.Type+status)
			}
		}
		if layersDone != 4 {
			t.Errorf("%d layers done, want 4", layersDone)
		}
		if want := []string{"pull", "container_start", "container_exit3", "pipeline_status3", "end_action"}; !slices.Equal(seq, want) {
			t.Errorf("events %q, want %q", seq, want)
		}
		// Console lines travel too; secrets never.
		lines, clockSet := 0, false
		for _, r := range recs {
			line, _ := json.Marshal(r)
			if strings.Contains(string(line), secretMarker) {
				t.Errorf("event %d holds a secret: %s", r.Seq, line)
			}
			if r.Type == event.TypeMessage && strings.HasPrefix(r.Text, "network: up in") {
				lines++
			}
			// The clock set by NTP (an hour ahead): every event from then
			// on has its time of day.
			clockSet = clockSet || r.Type == event.TypeClockSet
			if clockSet && (r.Wall == nil || r.Wall.Sub(time.Now().Add(time.Hour)).Abs() > 30*time.Minute) {
				t.Errorf("event %d after the clock was set: time of day %v, want about an hour from now", r.Seq, r.Wall)
			}
		}
		if lines != 1 || !clockSet {
			t.Errorf("%d 'network: up' lines, clock set %v: want 1, true", lines, clockSet)
		}
		// Kept in --state, a line per event.
		kept, err := os.ReadFile(filepath.Join(state, b.ID+".jsonl"))
		if err != nil || strings.Count(string(kept), "\n") != len(recs) {
			t.Errorf("--state holds %d lines (%v), want %d", strings.Count(string(kept), "\n"), err, len(recs))
		}
		inOrder(t, out, "Execution is over, pipeline status: 3", "ociboot: report: ", " events sent in ")
		if strings.Contains(out, "keeping the events") {
			t.Error("the sender tried before the network was up, or serve refused events")
		}

		// GitLab's sections, well formed and balanced, around the stages
		// and the container.
		secs, err := console.ReadSections(out)
		if err != nil {
			t.Fatalf("sections: %v", err)
		}
		var names []string
		for _, s := range secs {
			names = append(names, s.Name)
		}
		if want := "stage_modules stage_network stage_clock stage_containers container_1 stage_end"; strings.Join(names, " ") != want {
			t.Errorf("sections %s, want %s", strings.Join(names, " "), want)
		}
	})

	t.Run("report-late", func(t *testing.T) {
		t.Parallel()
		// serve starts once the boot has reached its containers: the
		// events wait in the machine until then. The container waits for
		// serve, so that the end's flush finds it up.
		port := freePort(t)
		const mac = "52:54:00:00:19:02"
		cmdline := fmt.Sprintf(`ociboot.report=http://%[1]s:%[2]d/v1/events `+
			`ociboot.container="%[3]s sh -c 'until wget -q -O /dev/null http://%[1]s:%[2]d/v1/machines; do sleep 0.2; done; echo serve is up'"`,
			vm.GuestHost, port, f.images["busybox"])
		containers := newSighting("ociboot: ==== containers ====")
		type result struct {
			res vm.Result
			out string
			err error
		}
		done := make(chan result, 1)
		go func() {
			res, out, err := f.bootWith(t, cmdline, machine{ports: []int{port}, mac: mac, watch: containers})
			done <- result{res, out, err}
		}()
		var r result
		select {
		case <-containers.seen:
		case r = <-done:
			t.Fatalf("the boot ended before its containers: %v", r.err)
		}
		f.startServe(t, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
		r = <-done
		if r.err != nil || r.res.Status != 0 {
			t.Fatalf("vm.Run: %v, status %d", r.err, r.res.Status)
		}
		b, recs := reportedBoot(t, port, mac)
		// From the boot's first line on, sent before serve listened.
		if !strings.HasPrefix(recs[0].Text, "early microcode: ") || stagesOf(recs)[0] != "+configuration" || b.Status == nil || *b.Status != 0 {
			t.Errorf("the first events or the status are missing: boot %+v, first event %+v", b, recs[0])
		}
		inOrder(t, r.out, "serve is up", "Execution is over, pipeline status: 0", "ociboot: report: ", " events sent in ")
	})
}
