package report_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/event"
	"github.com/ociboot/ociboot/internal/report"
)

// endpoint is a real HTTP endpoint that keeps the records it is sent,
// and answers with status while it is set.
type endpoint struct {
	mu       sync.Mutex
	status   int // 0: 204
	records  []event.Record
	bodies   []string
	requests int
	hit      chan struct{} // a request came
}

func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests++
	select {
	case e.hit <- struct{}{}:
	default:
	}
	if e.status != 0 {
		w.WriteHeader(e.status)
		return
	}
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Content-Type") != report.ContentType {
		http.Error(w, "want gzip-compressed JSON lines", http.StatusUnsupportedMediaType)
		return
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var buf bytes.Buffer
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		rec, err := event.ParseRecord(sc.Bytes())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		e.records = append(e.records, rec)
		buf.Write(sc.Bytes())
		buf.WriteByte('\n')
	}
	e.bodies = append(e.bodies, buf.String())
	w.WriteHeader(http.StatusNoContent)
}

func (e *endpoint) set(status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.status = status
}

func (e *endpoint) got() ([]event.Record, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]event.Record(nil), e.records...), strings.Join(e.bodies, "")
}

// stalled is a clock whose waits end only with their context: the
// sender tries again only when kicked (a stage ends, a flush).
type stalled struct{}

func (stalled) Now() time.Time { return time.Unix(0, 0) }
func (stalled) Sleep(ctx context.Context, _ time.Duration) error {
	<-ctx.Done()
	return ctx.Err()
}

// bootClock is a boot's clock that moves a second per event.
type bootClock struct {
	mu sync.Mutex
	t  time.Duration
}

func (c *bootClock) mono() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t += time.Second
	return c.t
}

func newSink(t *testing.T, o report.Options) (*report.Sink, *endpoint, report.Endpoint) {
	t.Helper()
	ep := &endpoint{hit: make(chan struct{}, 1)}
	srv := httptest.NewServer(ep)
	t.Cleanup(srv.Close)
	clock := &bootClock{}
	o.Mono = clock.mono
	o.Clock = stalled{}
	return report.New(o), ep, report.Endpoint{URL: srv.URL + "/v1/events", Client: srv.Client()}
}

// start starts s sending to target until the test ends.
func start(t *testing.T, s *report.Sink, target report.Endpoint) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s.Start(ctx, target)
}

func flush(t *testing.T, s *report.Sink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSendsInOrderWithIdentity(t *testing.T) {
	var log bytes.Buffer
	s, ep, target := newSink(t, report.Options{
		Now: func() time.Time { return time.Date(2026, 12, 7, 12, 0, 10, 0, time.UTC) },
		Log: &log,
	})
	// Before Start: kept.
	s.Handle(event.Identity{BootID: "b1", Host: "node1"})
	s.Handle(event.StageStart{Stage: "network"})
	s.Handle(event.Message{Stage: "network", Text: "up"})
	s.Handle(event.Identity{MAC: "52:54:00:12:34:56"})
	s.Handle(event.StageEnd{Stage: "network", Took: 2 * time.Second})
	s.Handle(event.ClockSet{}) // at mono 6 s, 12:00:10
	start(t, s, target)
	s.Handle(event.ContainerExit{Job: "container 1", Status: 3})
	s.Handle(event.PipelineStatus{Status: 3})
	flush(t, s)

	recs, _ := ep.got()
	wantTypes := []string{"identity", "stage_start", "message", "identity", "stage_end", "clock_set", "container_exit", "pipeline_status"}
	if len(recs) != len(wantTypes) {
		t.Fatalf("got %d records, want %d: %+v", len(recs), len(wantTypes), recs)
	}
	for i, r := range recs {
		if r.Type != wantTypes[i] || r.Seq != uint64(i+1) || r.Mono != float64(i+1) {
			t.Errorf("record %d: type %s seq %d mono %v, want %s %d %d", i, r.Type, r.Seq, r.Mono, wantTypes[i], i+1, i+1)
		}
		// The identity learned late is on the early events too.
		if r.Boot != "b1" || r.Host != "node1" || r.MAC != "52:54:00:12:34:56" {
			t.Errorf("record %d: identity %q %q %q", i, r.Boot, r.Host, r.MAC)
		}
		// The time of day, from the clock's setting, on every event.
		want := time.Date(2026, 12, 7, 12, 0, 10, 0, time.UTC).Add(time.Duration(i+1-6) * time.Second)
		if r.Wall == nil || !r.Wall.Equal(want) {
			t.Errorf("record %d: wall %v, want %v", i, r.Wall, want)
		}
	}
	if st := recs[7].Status; st == nil || *st != 3 {
		t.Errorf("pipeline status %v, want 3", st)
	}
	if st := s.Stats(); st.Events != 8 || st.Requests < 1 || st.Bytes <= 0 || st.Raw <= st.Bytes/2 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

// The endpoint down: nothing is lost, events arrive late and in order,
// each once.
func TestEndpointDown(t *testing.T) {
	var log bytes.Buffer
	s, ep, target := newSink(t, report.Options{Log: &log})
	ep.set(http.StatusServiceUnavailable)
	s.Handle(event.Identity{BootID: "b2"})
	start(t, s, target)
	for i := range 50 {
		s.Handle(event.Message{Text: strings.Repeat("x", i)})
	}
	<-ep.hit                                   // tried, and refused
	s.Handle(event.StageEnd{Stage: "network"}) // a kick: one more try
	<-ep.hit
	short, stop := context.WithCancel(context.Background())
	stop()
	err := s.Flush(short)
	if err == nil || !strings.Contains(err.Error(), "52 events not sent") {
		t.Errorf("Flush with the endpoint down: %v, want 52 events not sent", err)
	}
	ep.set(0)
	s.Handle(event.PipelineStatus{Status: 0})
	flush(t, s)
	recs, _ := ep.got()
	if len(recs) != 53 {
		t.Fatalf("got %d records, want 53", len(recs))
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
	}
	if !strings.Contains(log.String(), "503 Service Unavailable; keeping the events") || !strings.Contains(log.String(), "answers again") {
		t.Errorf("log: %q", log.String())
	}
}

// A full buffer drops the oldest console lines, never a status.
func TestBufferFull(t *testing.T) {
	var log bytes.Buffer
	s, ep, target := newSink(t, report.Options{Limit: 4000, Log: &log})
	s.Handle(event.Identity{BootID: "b3"})
	s.Handle(event.StageStart{Stage: "containers"})
	for i := range 100 {
		s.Handle(event.Message{Text: "line " + strings.Repeat("y", i%7)})
		if i == 50 {
			s.Handle(event.ContainerExit{Job: "container 1", Status: 1})
		}
	}
	s.Handle(event.PipelineStatus{Status: 1})
	start(t, s, target)
	flush(t, s)
	recs, _ := ep.got()
	var types []string
	for i, r := range recs {
		if i > 0 && r.Seq <= recs[i-1].Seq {
			t.Fatalf("out of order: %d after %d", r.Seq, recs[i-1].Seq)
		}
		if r.Type != "message" {
			types = append(types, r.Type)
		}
	}
	if got := strings.Join(types, " "); got != "identity stage_start container_exit pipeline_status" {
		t.Errorf("kept %s", got)
	}
	if recs[len(recs)-2].Type != "message" || recs[len(recs)-2].Seq != 103 {
		t.Errorf("the newest line was not kept: %+v", recs[len(recs)-2])
	}
	st := s.Stats()
	if st.Dropped == 0 || int(st.Events)+st.Dropped != 104 {
		t.Errorf("stats %+v: want drops, and 104 events in all", st)
	}
	if !strings.Contains(log.String(), "dropping the oldest console lines") {
		t.Errorf("log: %q", log.String())
	}
}

func TestSecretsMasked(t *testing.T) {
	s, ep, target := newSink(t, report.Options{})
	target.Secrets = []string{"hunter2", ""}
	start(t, s, target)
	s.Handle(event.Identity{BootID: "b4"})
	s.Handle(event.Message{Text: `login with "hunter2"`})
	s.Handle(event.ContainerFailed{Job: "container 1", Err: errors.New("bad password hunter2")})
	flush(t, s)
	_, body := ep.got()
	if strings.Contains(body, "hunter2") || strings.Count(body, "***") != 2 {
		t.Errorf("sent %s", body)
	}
}

// A batch the endpoint refuses for good is dropped; the next go on.
func TestRefusedBatch(t *testing.T) {
	var log bytes.Buffer
	s, ep, target := newSink(t, report.Options{Log: &log})
	ep.set(http.StatusBadRequest)
	s.Handle(event.Identity{BootID: "b5"})
	start(t, s, target)
	flush(t, s)
	ep.set(0)
	s.Handle(event.PipelineStatus{Status: 0})
	flush(t, s)
	recs, _ := ep.got()
	if len(recs) != 1 || recs[0].Seq != 2 {
		t.Errorf("got %+v, want the status alone", recs)
	}
	if !strings.Contains(log.String(), "400 Bad Request: 1 events dropped") {
		t.Errorf("log: %q", log.String())
	}
}

// Without an endpoint, nothing is kept and Flush does not wait.
func TestDiscard(t *testing.T) {
	s := report.New(report.Options{})
	s.Handle(event.Message{Text: "x"})
	s.Discard()
	s.Handle(event.Message{Text: "y"})
	if err := s.Flush(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestStop: once Stop returns, the sender has returned, a request under
// way included, and nothing handled later is sent.
func TestStop(t *testing.T) {
	s, ep, target := newSink(t, report.Options{})
	s.Handle(event.Identity{BootID: "b1", Host: "node1"})
	s.Handle(event.Message{Text: "before"})
	start(t, s, target)
	flush(t, s)
	s.Stop()
	s.Handle(event.Message{Text: "after"})
	if err := s.Flush(context.Background()); err != nil {
		t.Errorf("Flush after Stop: %v", err)
	}
	s.Stop() // twice is harmless
	recs, _ := ep.got()
	for _, r := range recs {
		if r.Text == "after" {
			t.Errorf("an event handled after Stop was sent: %+v", r)
		}
	}
	if len(recs) == 0 || recs[len(recs)-1].Text != "before" {
		t.Errorf("sent %+v, want the event before Stop last", recs)
	}
}
