// Package fleet is the receiving end of ociboot.report: it takes the
// events machines POST (JSON lines of event.Record, gzip-compressed or
// not), keeps each machine's recent boots in memory and, given a state
// directory, every boot's events in a JSON-lines file of its own, read
// back when the server starts again. It answers what the events say: the
// machines, each with its current boot's stage and last status, each
// boot's events in order and its timeline, and the events as they come
// (server-sent events); and it serves the fleet page, which shows them to
// people.
//
// A boot's events are kept once each and in order: a batch sent again
// (its answer was lost) adds nothing, and events a machine had to drop
// are counted as missing.
package fleet

import (
	"bufio"
	"cmp"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ociboot/ociboot/internal/event"
	"github.com/ociboot/ociboot/internal/timeline"
)

// Limits of what is kept and received.
const (
	DefaultKeepBoots = 10       // boots kept in memory per machine
	maxBootEvents    = 50000    // events kept in memory per boot
	maxBatch         = 32 << 20 // bytes of a batch, uncompressed
)

// Options make a Fleet.
type Options struct {
	// Dir, when set, keeps each boot's events in Dir/BOOT.jsonl.
	Dir string
	// KeepBoots is how many boots of each machine are kept in memory;
	// 0 means DefaultKeepBoots.
	KeepBoots int
	// Now is the server's clock; nil means time.Now.
	Now func() time.Time
}

// Fleet holds the boots machines report; it is an http.Handler of the
// /v1/ API (see ServeHTTP).
type Fleet struct {
	o        Options
	mu       sync.Mutex
	boots    map[string]*boot
	arrivals int
	subs     map[chan event.Record]struct{}
}

// boot is one boot of a machine, as its events tell it.
type boot struct {
	Boot
	arrival int // the order in which the server first heard of the boots
	events  []event.Record
	file    *os.File // nil without a state directory
}

// Boot summarizes a boot.
type Boot struct {
	ID   string `json:"boot"`
	MAC  string `json:"mac,omitempty"`
	Host string `json:"host,omitempty"`
	// Stage is the stage running, with the time since boot it started;
	// "" once the boot has ended or failed.
	Stage      string  `json:"stage,omitempty"`
	StageStart float64 `json:"stage_start,omitempty"`
	// Status is the pipeline's; Failed the stage that failed, with
	// Error; End the end action.
	Status *int   `json:"status,omitempty"`
	Failed string `json:"failed,omitempty"`
	Error  string `json:"error,omitempty"`
	End    string `json:"end,omitempty"`
	// Events counts the events received, Missing those the machine
	// dropped before they could be sent (gaps in their numbers).
	Events  int `json:"events"`
	Missing int `json:"missing,omitempty"`
	// Last is the time since boot of the last event; Started the time
	// of day the boot started, when its events gave one, else when the
	// first arrived; Updated when the last arrived (server's clock).
	Last    float64   `json:"last"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	lastSeq uint64
}

// New returns a Fleet, reading the boots kept in o.Dir.
func New(o Options) (*Fleet, error) {
	if o.KeepBoots <= 0 {
		o.KeepBoots = DefaultKeepBoots
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	f := &Fleet{o: o, boots: map[string]*boot{}, subs: map[chan event.Record]struct{}{}}
	if o.Dir == "" {
		return f, nil
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("--state: %w", err)
	}
	if err := f.load(); err != nil {
		return nil, fmt.Errorf("--state %s: %w", o.Dir, err)
	}
	return f, nil
}

// load reads the boots of the state directory.
func (f *Fleet) load() error {
	files, err := filepath.Glob(filepath.Join(f.o.Dir, "*.jsonl"))
	if err != nil {
		return err
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		var recs []event.Record
		for n, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			r, err := event.ParseRecord([]byte(line))
			if err != nil {
				// A line cut by a crash ends the file; what came before counts.
				if n == strings.Count(string(data), "\n") {
					break
				}
				return fmt.Errorf("%s line %d: %w", name, n+1, err)
			}
			recs = append(recs, r)
		}
		st, err := os.Stat(name)
		if err != nil {
			return err
		}
		if err := f.add(recs, st.ModTime(), false); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	f.prune()
	return nil
}

// validBoot is what a boot ID may be: the kernel's are UUIDs.
var validBoot = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// Add keeps a batch of records, received now; they are checked first,
// and none is kept when one is bad.
func (f *Fleet) Add(recs []event.Record) error {
	for _, r := range recs {
		if !validBoot.MatchString(r.Boot) {
			return fmt.Errorf("event %d: boot ID %q: expected letters, digits, '-' and '_' (the kernel's boot_id)", r.Seq, r.Boot)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.add(recs, f.o.Now(), true); err != nil {
		return err
	}
	f.prune()
	return nil
}

// add keeps recs, received at now, writing them to the boots' files when
// write is set.
func (f *Fleet) add(recs []event.Record, now time.Time, write bool) error {
	lines := map[*boot][]byte{}
	var order []*boot
	for _, r := range recs {
		b := f.boots[r.Boot]
		if b == nil {
			b = &boot{Boot: Boot{ID: r.Boot, Started: now}, arrival: f.arrivals}
			f.arrivals++
			f.boots[r.Boot] = b
		}
		if r.Seq <= b.lastSeq {
			continue // sent again
		}
		b.Missing += int(min(r.Seq-b.lastSeq-1, 1<<31))
		b.lastSeq = r.Seq
		b.apply(r, now)
		if len(b.events) < maxBootEvents {
			b.events = append(b.events, r)
		}
		for c := range f.subs {
			select {
			case c <- r:
			default: // a reader that falls behind misses records; the fleet goes on
			}
		}
		if write {
			line, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if _, ok := lines[b]; !ok {
				order = append(order, b)
			}
			lines[b] = append(append(lines[b], line...), '\n')
		}
	}
	for _, b := range order {
		if err := f.write(b, lines[b]); err != nil {
			return err
		}
	}
	return nil
}

// write appends lines to b's file.
func (f *Fleet) write(b *boot, lines []byte) error {
	if f.o.Dir == "" {
		return nil
	}
	if b.file == nil {
		file, err := os.OpenFile(filepath.Join(f.o.Dir, b.ID+".jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		b.file = file
	}
	if _, err := b.file.Write(lines); err != nil {
		return fmt.Errorf("keeping the events of boot %s: %w", b.ID, err)
	}
	return nil
}

// apply updates the boot's summary with r.
func (b *boot) apply(r event.Record, now time.Time) {
	b.Events++
	b.Last, b.Updated = r.Mono, now
	b.MAC = cmp.Or(r.MAC, b.MAC)
	b.Host = cmp.Or(r.Host, b.Host)
	if r.Wall != nil {
		b.Started = r.Wall.Add(-time.Duration(r.Mono * float64(time.Second)))
	}
	switch r.Type {
	case event.TypeStageStart:
		b.Stage, b.StageStart = r.Stage, r.Mono
	case event.TypeStageEnd:
		if r.Error != "" {
			b.Failed, b.Error = r.Stage, r.Error
		}
		if b.Stage == r.Stage {
			b.Stage = ""
		}
	case event.TypePipelineStatus:
		b.Status = r.Status
	case event.TypeEndAction:
		b.End, b.Stage = r.Action, ""
	}
}

// prune forgets, from memory, the boots of each machine beyond the
// newest KeepBoots.
func (f *Fleet) prune() {
	for _, boots := range f.byMachine() {
		for _, b := range boots[min(len(boots), f.o.KeepBoots):] {
			if b.file != nil {
				b.file.Close()
			}
			delete(f.boots, b.ID)
		}
	}
}

// byMachine groups the boots by machine (MAC, else host name, else the
// boot itself), newest first.
func (f *Fleet) byMachine() map[string][]*boot {
	out := map[string][]*boot{}
	for _, b := range f.boots {
		key := cmp.Or(b.MAC, cmp.Or(b.Host, "boot "+b.ID))
		out[key] = append(out[key], b)
	}
	for _, boots := range out {
		slices.SortFunc(boots, func(a, b *boot) int {
			return cmp.Or(b.Started.Compare(a.Started), b.arrival-a.arrival)
		})
	}
	return out
}

// Machine is a machine and its boots, the newest first.
type Machine struct {
	MAC   string `json:"mac,omitempty"`
	Host  string `json:"host,omitempty"`
	Boots []Boot `json:"boots"`
}

// Machines returns every machine, by MAC (then host name).
func (f *Fleet) Machines() []Machine {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Machine
	for _, boots := range f.byMachine() {
		m := Machine{MAC: boots[0].MAC, Host: boots[0].Host}
		for _, b := range boots {
			m.Boots = append(m.Boots, b.Boot)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Machine) int {
		return strings.Compare(a.MAC+"\x00"+a.Host, b.MAC+"\x00"+b.Host)
	})
	return out
}

// Events returns a boot's events, in order; ok is false for a boot not
// kept.
func (f *Fleet) Events(id string) (Boot, []event.Record, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.boots[id]
	if b == nil {
		return Boot{}, nil, false
	}
	return b.Boot, slices.Clone(b.events), true
}

// Subscribe returns a channel of the records received from now on, and
// the function that ends the subscription. A reader that falls behind
// misses records. EndStreams closes every channel.
func (f *Fleet) Subscribe() (<-chan event.Record, func()) {
	c := make(chan event.Record, 4096)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[c] = struct{}{}
	return c, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[c]; ok {
			delete(f.subs, c)
			close(c)
		}
	}
}

// EndStreams ends the subscriptions, so that the server can stop.
func (f *Fleet) EndStreams() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.subs {
		delete(f.subs, c)
		close(c)
	}
}

// Close closes the boots' files.
func (f *Fleet) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for _, b := range f.boots {
		if b.file != nil {
			errs = append(errs, b.file.Close())
			b.file = nil
		}
	}
	return errors.Join(errs...)
}

// ServeHTTP answers:
//
//	POST /v1/events                  a batch of events (JSON lines, gzip or not)
//	GET  /v1/machines                the machines and their boots (JSON)
//	GET  /v1/boots/ID                a boot's summary (JSON)
//	GET  /v1/boots/ID/events         its events (JSON lines)
//	GET  /v1/boots/ID/timeline.svg   its timeline (see package timeline)
//	GET  /v1/stream                  every event from now on, as server-sent events
//	GET  /fleet/, /fleet/boots/ID    the fleet page, and a boot's page
func (f *Fleet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p != "/v1/events" && r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	switch {
	case p == "/v1/events":
		if r.Method != http.MethodPost {
			http.Error(w, "POST events here", http.StatusMethodNotAllowed)
			return
		}
		f.receive(w, r)
	case p == "/v1/machines":
		writeJSON(w, f.Machines())
	case p == "/v1/stream":
		f.stream(w, r)
	case strings.HasPrefix(p, "/v1/boots/"):
		id, rest, _ := strings.Cut(strings.TrimPrefix(p, "/v1/boots/"), "/")
		b, recs, ok := f.Events(id)
		switch {
		case !ok:
			http.Error(w, "no boot "+id+" is kept", http.StatusNotFound)
		case rest == "":
			writeJSON(w, b)
		case rest == "events":
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Header().Set("Cache-Control", "no-store")
			enc := json.NewEncoder(w)
			for _, r := range recs {
				_ = enc.Encode(r)
			}
		case rest == "timeline.svg":
			tl, err := timeline.FromEvents(recs)
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "image/svg+xml")
			w.Header().Set("Cache-Control", "no-store")
			_ = tl.SVG(w)
		default:
			http.NotFound(w, r)
		}
	case p == "/fleet":
		http.Redirect(w, r, "/fleet/", http.StatusMovedPermanently)
	case p == "/fleet/" || strings.HasPrefix(p, "/fleet/boots/"):
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, page)
	default:
		http.NotFound(w, r)
	}
}

// page is the fleet page: plain HTML and a little JavaScript, which
// reads the API above.
//
//go:embed page.html
var page string

// keepAlive is how often an idle stream gets a comment, so that proxies
// keep it open.
const keepAlive = 15 * time.Second

// stream sends every record received, as it comes, as server-sent events.
func (f *Fleet) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	recs, stop := f.Subscribe()
	defer stop()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return // a writer that cannot stream: the page falls back to polling
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		var err error
		select {
		case rec, ok := <-recs:
			if !ok {
				return
			}
			data, merr := json.Marshal(rec)
			if merr != nil {
				return
			}
			_, err = fmt.Fprintf(w, "data: %s\n\n", data)
		case <-tick.C:
			_, err = io.WriteString(w, ": keep-alive\n\n")
		case <-r.Context().Done():
			return
		}
		if err != nil || rc.Flush() != nil {
			return
		}
	}
}

// receive reads a batch and keeps it.
func (f *Fleet) receive(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = http.MaxBytesReader(w, r.Body, maxBatch)
	switch r.Header.Get("Content-Encoding") {
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, "the body is not gzip: "+err.Error(), http.StatusBadRequest)
			return
		}
		body = io.LimitReader(zr, maxBatch+1)
	case "", "identity":
	default:
		http.Error(w, "Content-Encoding: expected gzip or none", http.StatusUnsupportedMediaType)
		return
	}
	var recs []event.Record
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	size := 0
	for n := 1; sc.Scan(); n++ {
		size += len(sc.Bytes()) + 1
		if size > maxBatch {
			http.Error(w, fmt.Sprintf("a batch of more than %d bytes", maxBatch), http.StatusRequestEntityTooLarge)
			return
		}
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		rec, err := event.ParseRecord(sc.Bytes())
		if err != nil {
			http.Error(w, fmt.Sprintf("line %d: %v", n, err), http.StatusBadRequest)
			return
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		http.Error(w, "reading the batch: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := f.Add(recs); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
