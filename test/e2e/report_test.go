package e2e

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/ociboot/ociboot/internal/console"
	"github.com/ociboot/ociboot/internal/event"
	"github.com/ociboot/ociboot/internal/fleet"
	"github.com/ociboot/ociboot/internal/hosttest"
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

	t.Run("fleet-page", func(t *testing.T) {
		t.Parallel()
		f.fleetPage(t)
	})

	t.Run("report-late", func(t *testing.T) {
		t.Parallel()
		// serve starts once the machine has found it down: the events
		// wait in the machine until then. The container waits for serve,
		// so that the end's flush finds it up.
		port := freePort(t)
		const mac = "52:54:00:00:19:02"
		cmdline := fmt.Sprintf(`ociboot.report=http://%[1]s:%[2]d/v1/events `+
			`ociboot.container="%[3]s sh -c 'echo waiting for serve; until wget -q -O /dev/null http://%[1]s:%[2]d/v1/machines; do sleep 0.2; done; echo serve is up'"`,
			vm.GuestHost, port, f.images["busybox"])
		containers := newSighting("; keeping the events until it answers")
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
			t.Fatalf("the boot ended before it found serve down: %v", r.err)
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
		inOrder(t, r.out, "ociboot: report: POST http://"+vm.GuestHost, "; keeping the events until it answers", "serve is up",
			"Execution is over, pipeline status: 0", "ociboot: report: ", " events sent in ")
		inOrder(t, r.out, "; keeping the events until it answers", "ociboot: report: the endpoint answers again")
	})
}

// checkAnalyze runs `ociboot analyze` on a boot's events (with -o) and
// on its console: the SVG is XML with a box for each stage and container
// of the events' durations, and the console gives the same stage
// durations within its precision (a hundredth of a second).
func checkAnalyze(t *testing.T, bin, events, consoleLog string) {
	t.Helper()
	data, err := os.ReadFile(events)
	if err != nil {
		t.Fatal(err)
	}
	// The durations, from the events themselves; and, as the console
	// tells them, from each stage's start to the next one's (the gap
	// between a stage's end and the next start, a wait for the console,
	// say, counts in the first).
	want := map[string]float64{}
	starts := map[string]float64{}
	toNext := map[string]float64{}
	previous := ""
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		r, err := event.ParseRecord([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		switch r.Type {
		case event.TypeStageStart:
			if previous != "" {
				toNext[previous] = r.Mono - starts[previous]
			}
			previous = "stage " + r.Stage
			starts["stage "+r.Stage] = r.Mono
		case event.TypeStageEnd:
			want["stage "+r.Stage] = r.Mono - starts["stage "+r.Stage]
		case event.TypeContainerStart:
			starts["container "+r.Job] = r.Mono
		case event.TypeContainerExit:
			want["container "+r.Job] = r.Mono - starts["container "+r.Job]
		}
	}
	if len(want) < 6 {
		t.Fatalf("the events give %d stages and containers: %v", len(want), want)
	}
	dir := t.TempDir()
	svg, logFile := filepath.Join(dir, "boot.svg"), filepath.Join(dir, "console.log")
	blame := hosttest.Run(t, bin, "analyze", events, "-o", svg)
	if !strings.Contains(blame, "s in the kernel, ") || !strings.Contains(blame, "stage     containers") {
		t.Errorf("ociboot analyze:\n%s", blame)
	}
	picture, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	dec := xml.NewDecoder(strings.NewReader(string(picture)))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not XML: %v", svg, err)
		}
		if el, ok := tok.(xml.StartElement); ok && el.Name.Local == "rect" {
			a := map[string]string{}
			for _, at := range el.Attr {
				a[at.Name.Local] = at.Value
			}
			start, _ := strconv.ParseFloat(a["data-start"], 64)
			end, _ := strconv.ParseFloat(a["data-end"], 64)
			got[a["data-kind"]+" "+a["data-name"]] = end - start
		}
	}
	for k, d := range want {
		if g, ok := got[k]; !ok || math.Abs(g-d) > 0.002 {
			t.Errorf("the SVG's box %q: %.3f s (present %v), want %.3f s", k, g, ok, d)
		}
	}
	// From the console alone.
	if err := os.WriteFile(logFile, []byte(consoleLog), 0o644); err != nil {
		t.Fatal(err)
	}
	fromConsole := map[string]float64{}
	for _, line := range strings.Split(hosttest.Run(t, bin, "analyze", logFile), "\n") {
		var d float64
		var kind, name string
		if _, err := fmt.Sscanf(line, "%fs %s %s", &d, &kind, &name); err == nil && kind == "stage" {
			fromConsole["stage "+name] = d
		}
	}
	if len(toNext) < 5 {
		t.Errorf("the events give %d stages followed by another: %v", len(toNext), toNext)
	}
	for k, d := range toNext {
		if g, ok := fromConsole[k]; !ok || math.Abs(g-d) > 0.011 {
			t.Errorf("%s: %.3f s from the console (present %v), %.3f s from the events", k, g, ok, d)
		}
	}
}

// gate is an HTTP endpoint on 127.0.0.1 that answers 404 until opened,
// then 200: containers wait at it.
type gate struct {
	open atomic.Bool
	port int
}

func newGate(t *testing.T) *gate {
	t.Helper()
	g := &gate{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.open.Load() {
			http.NotFound(w, r)
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	g.port = ln.Addr().(*net.TCPAddr).Port
	return g
}

// fleetPage boots two machines at once, reporting to serve, and watches
// them on the fleet page in a real headless browser: both appear with
// their stage while their containers wait at a gate, one's console
// streams, then both show their status; a boot's page shows its
// timeline. The screenshots go to $OCIBOOT_SCREENSHOTS (a temporary
// directory when unset).
func (f *fixture) fleetPage(t *testing.T) {
	port, _ := f.startServe(t, "--state", t.TempDir())
	g := newGate(t)
	macs := []string{"52:54:00:00:20:01", "52:54:00:00:20:02"}
	type result struct {
		res vm.Result
		err error
	}
	done := make([]chan result, len(macs))
	for i, mac := range macs {
		cmdline := fmt.Sprintf(`ociboot.report=http://%[1]s:%[2]d/v1/events ociboot.hostname=node%[4]d `+
			`ociboot.container="%[5]s sh -c 'until wget -q -O /dev/null http://%[1]s:%[3]d/go; do sleep 0.2; done; exit %[6]d'"`,
			vm.GuestHost, port, g.port, i+1, f.images["busybox"], 5*i)
		done[i] = make(chan result, 1)
		go func() {
			res, _, err := f.bootWith(t, cmdline, machine{ports: []int{port, g.port}, mac: mac})
			done[i] <- result{res, err}
		}()
	}
	shots := os.Getenv("OCIBOOT_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(hosttest.Path(t, "chromium")),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1300, 800),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*bootTimeout)
	defer cancelTimeout()
	// waitFor waits until the page makes expression true: no race with
	// the boots, which the page follows live.
	waitFor := func(what, expression string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](expression, chromedp.WithPollingTimeout(2*bootTimeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body.innerText"))
			t.Fatalf("the page never showed %s: %v\n%s", what, err, html)
		}
	}
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", filepath.Join(shots, name))
	}
	row := func(mac string) string { return fmt.Sprintf(`document.querySelector('tr[data-mac="%s"]')`, mac) }
	cellText := func(mac, cell string) string {
		return fmt.Sprintf(`(%s?.querySelector('td.%s')?.textContent ?? '')`, row(mac), cell)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/fleet/", port))); err != nil {
		t.Fatal(err)
	}
	// Both machines, each waiting in its containers stage, the time in
	// it counting.
	waitFor("both machines in their containers stage", fmt.Sprintf(`%s === 'containers' && %s === 'containers' && /^[0-9]+\.[0-9] s$/.test(%s) && document.querySelector('#live').textContent === 'live'`,
		cellText(macs[0], "stage"), cellText(macs[1], "stage"), cellText(macs[0], "in-it")))
	screenshot("fleet-booting.png")
	// One machine's console, from its first lines, then live.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`tr[data-mac="%s"]`, macs[1])))); err != nil {
		t.Fatal(err)
	}
	waitFor("the console of the machine clicked", `document.querySelector('#console').textContent.includes('ociboot: ==== containers ====') && document.querySelector('#console').textContent.includes('network: up in')`)
	g.open.Store(true)
	for i, c := range done {
		r := <-c
		if r.err != nil || r.res.Status != 5*i {
			t.Fatalf("machine %s: %v, status %d; want %d", macs[i], r.err, r.res.Status, 5*i)
		}
	}
	waitFor("both statuses", fmt.Sprintf(`%s === '0' && %s.includes('ok') && %s === '5' && %s.includes('failed') && %s === 'ended: poweroff'`,
		cellText(macs[0], "status"), row(macs[0])+`.querySelector('td.status').className`, cellText(macs[1], "status"),
		row(macs[1])+`.querySelector('td.status').className`, cellText(macs[1], "stage")))
	waitFor("the console's end, streamed", `document.querySelector('#console').textContent.includes('Execution is over, pipeline status: 5')`)
	screenshot("fleet-done.png")
	host, err := chromedp.Run(ctx, chromedp.Evaluate[string](cellText(macs[1], "host")))
	if err != nil || host != "node2" {
		t.Errorf("host of %s: %q, %v", macs[1], host, err)
	}

	// The boot's page: its summary and timeline.
	boot, err := chromedp.Run(ctx, chromedp.Evaluate[string](row(macs[1])+`.dataset.boot`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("http://127.0.0.1:%d/fleet/boots/%s", port, boot))); err != nil {
		t.Fatal(err)
	}
	waitFor("the boot's timeline", `document.querySelectorAll('#timeline svg rect[data-kind="stage"]').length >= 5 && document.querySelector('#timeline svg rect[data-kind="container"]') !== null && document.querySelector('dd[data-field="pipeline status"]')?.textContent === '5' && document.querySelector('#boot-console').textContent.includes('Execution is over, pipeline status: 5')`)
	screenshot("boot.png")
}
