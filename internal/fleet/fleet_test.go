package fleet_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/event"
	"github.com/ociboot/ociboot/internal/fleet"
	"github.com/ociboot/ociboot/internal/report"
)

// boot sends a short boot's events through a real report.Sink.
func boot(t *testing.T, url, id, mac string, status int) {
	t.Helper()
	var mono time.Duration
	s := report.New(report.Options{Mono: func() time.Duration { mono += time.Second; return mono }})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.Start(ctx, report.Endpoint{URL: url, Client: http.DefaultClient})
	for _, e := range []event.Event{
		event.Identity{BootID: id, Host: "node"},
		event.StageStart{Stage: "network"},
		event.Identity{MAC: mac},
		event.StageEnd{Stage: "network", Took: time.Second},
		event.StageStart{Stage: "containers"},
		event.ContainerExit{Job: "container 1/1 (alpine)", Status: status},
		event.StageEnd{Stage: "containers"},
		event.StageStart{Stage: "end"},
		event.PipelineStatus{Status: status},
		event.EndAction{Action: "power off"},
	} {
		s.Handle(e)
	}
	fctx, fcancel := context.WithTimeout(context.Background(), time.Minute)
	defer fcancel()
	if err := s.Flush(fctx); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestFleet(t *testing.T) {
	dir := t.TempDir()
	f, err := fleet.New(fleet.Options{Dir: dir, KeepBoots: 2})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	boot(t, srv.URL+"/v1/events", "b-1", "52:54:00:00:00:01", 0)
	boot(t, srv.URL+"/v1/events", "b-2", "52:54:00:00:00:01", 1)
	boot(t, srv.URL+"/v1/events", "b-3", "52:54:00:00:00:01", 2)
	boot(t, srv.URL+"/v1/events", "c-1", "52:54:00:00:00:02", 3)

	var machines []fleet.Machine
	get(t, srv.URL+"/v1/machines", &machines)
	if len(machines) != 2 || machines[0].MAC != "52:54:00:00:00:01" || machines[1].MAC != "52:54:00:00:00:02" {
		t.Fatalf("machines %+v", machines)
	}
	// Two boots kept in memory, the newest first.
	m := machines[0]
	if len(m.Boots) != 2 || m.Boots[0].ID != "b-3" || m.Boots[1].ID != "b-2" {
		t.Fatalf("boots %+v", m.Boots)
	}
	b := m.Boots[0]
	if b.Status == nil || *b.Status != 2 || b.End != "power off" || b.Stage != "" || b.Events != 10 || b.Missing != 0 || b.Host != "node" {
		t.Errorf("boot %+v", b)
	}

	// The same batch again adds nothing; a gap counts as missing.
	post := func(body string) *http.Response {
		resp, err := http.Post(srv.URL+"/v1/events", report.ContentType, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := post(`{"boot":"c-1","seq":5,"mono":5,"type":"message","text":"again"}` + "\n" +
		`{"boot":"c-1","seq":14,"mono":14,"type":"stage_start","stage":"x"}` + "\n"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST: %s", resp.Status)
	}
	var c fleet.Boot
	get(t, srv.URL+"/v1/boots/c-1", &c)
	if c.Events != 11 || c.Missing != 3 || c.Stage != "x" || c.StageStart != 14 {
		t.Errorf("after a resend and a gap: %+v", c)
	}

	// Bad batches are refused whole, saying why.
	for _, tt := range []struct {
		body   string
		status int
		want   string
	}{
		{"{\"boot\":\"c-1\",\"seq\":20,\"type\":\"message\"}\nnot json\n", http.StatusBadRequest, "line 2: not a JSON event"},
		{`{"boot":"../x","seq":1,"type":"message"}`, http.StatusBadRequest, `boot ID "../x"`},
		{`{"boot":"x","type":"message"}`, http.StatusBadRequest, "no sequence number"},
	} {
		resp, err := http.Post(srv.URL+"/v1/events", report.ContentType, strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(msg), tt.want) {
			t.Errorf("POST %q: %s %s, want %d %q", tt.body, resp.Status, msg, tt.status, tt.want)
		}
	}
	get(t, srv.URL+"/v1/boots/c-1", &c)
	if c.Events != 11 {
		t.Errorf("a refused batch was kept in part: %d events", c.Events)
	}

	// The events, in order, from memory and from the state directory.
	resp, err := http.Get(srv.URL + "/v1/boots/b-3/events")
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := bytes.Count(lines, []byte("\n")); n != 10 {
		t.Errorf("%d events served, want 10", n)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := fleet.New(fleet.Options{Dir: dir, KeepBoots: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	_, recs, ok := again.Events("b-1") // pruned from memory before, kept on disk
	if !ok || len(recs) != 10 || recs[9].Type != event.TypeEndAction || recs[8].Status == nil || *recs[8].Status != 0 {
		t.Errorf("boot b-1 read back: %v %+v", ok, recs)
	}
	b3, _, _ := again.Events("b-3")
	if b3.Status == nil || *b3.Status != 2 {
		t.Errorf("boot b-3 read back: %+v", b3)
	}

	// A file cut short by a crash loses its last line only; a bad line
	// elsewhere is an error naming the file.
	name := filepath.Join(dir, "c-1.jsonl")
	data, _ := os.ReadFile(name)
	if err := os.WriteFile(name, append(data, `{"boot":"c-1","se`...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fleet.New(fleet.Options{Dir: dir}); err != nil {
		t.Errorf("a cut last line: %v", err)
	}
	if err := os.WriteFile(name, append([]byte("junk\n"), data...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fleet.New(fleet.Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "c-1.jsonl line 1: not a JSON event") {
		t.Errorf("a bad line: %v", err)
	}
}

// TestStream reads the server-sent events, and the pages.
func TestStream(t *testing.T) {
	f, err := fleet.New(fleet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	boot(t, srv.URL+"/v1/events", "s-1", "52:54:00:00:00:03", 4)
	sc := bufio.NewScanner(resp.Body)
	var types []string
	for sc.Scan() && len(types) < 10 {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		r, err := event.ParseRecord([]byte(data))
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, r.Type)
	}
	if len(types) != 10 || types[0] != "identity" || types[9] != "end_action" {
		t.Errorf("streamed %q", types)
	}
	f.EndStreams() // the stream ends, as when serve stops
	for sc.Scan() {
	}

	for path, want := range map[string]string{
		"/fleet/":                     "<title>ociboot fleet</title>",
		"/fleet/boots/s-1":            "<title>ociboot fleet</title>",
		"/v1/boots/s-1/timeline.svg":  `data-kind="stage" data-name="containers"`,
		"/v1/boots/none/timeline.svg": "no boot none is kept",
		"/v1/nothing":                 "404 page not found",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s %.200s, want %q", path, resp.Status, body, want)
		}
	}
}
