// Package report sends a boot's events to an HTTP endpoint
// (ociboot.report=URL): event records as JSON lines, gzip-compressed,
// POSTed in batches, in order, each event once the endpoint has answered
// 2xx. The Sink keeps the events from the start of the boot, before it
// knows where to send them, until the endpoint has them: while the
// network or the endpoint is down they wait in a bounded buffer, where
// the oldest console lines make room first, then other progress; a
// status, an exit or a failure is never dropped. Events carry the
// machine's identity and the time since boot, and the time of day once
// the clock has been set. Known secrets are replaced by "***" in every
// text before it leaves.
package report

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ociboot/ociboot/internal/console"
	"github.com/ociboot/ociboot/internal/event"
	"github.com/ociboot/ociboot/internal/fetch"
)

// Limits of the Sink, unless Options say otherwise.
const (
	DefaultLimit      = 1 << 20 // bytes of events kept
	DefaultBatchBytes = 256 << 10
	// RequestTimeout bounds each POST.
	RequestTimeout = 15 * time.Second
	firstWait      = 250 * time.Millisecond
	maxWait        = 5 * time.Second
)

// ContentType is the media type of a batch: JSON lines of event.Record.
const ContentType = "application/x-ndjson"

// Options make a Sink; the zero value is the defaults on the real clocks.
type Options struct {
	Limit      int // bytes of events kept at most (their JSON, roughly)
	BatchBytes int // bytes of JSON per POST at most
	// Mono is the boot's clock (console.SinceBoot); Now the time of day.
	Mono func() time.Duration
	Now  func() time.Time
	// Clock waits between tries.
	Clock fetch.Clock
	// Log receives the Sink's own lines (the endpoint unreachable, then
	// reached again; events dropped). They are not events: the Sink
	// cannot report to itself.
	Log io.Writer
}

// Endpoint is where a Sink sends events.
type Endpoint struct {
	URL    string
	Client *http.Client // the shared fetcher's, with the boot's CA certificates
	// Secrets are replaced by "***" wherever they appear in a text.
	Secrets []string
}

// Stats say what a Sink sent.
type Stats struct {
	Events   uint64 // events acknowledged by the endpoint
	Requests int    // POSTs answered 2xx
	Bytes    int64  // request bytes of those, compressed
	Raw      int64  // their JSON before compression
	Dropped  int    // events dropped to make room, or refused by the endpoint
}

// class orders events by what may be dropped first.
type class int

const (
	consoleLine class = iota // a line of progress
	progress                 // stage and layer changes, pulls, starts
	vital                    // statuses, exits, failures: never dropped
)

type entry struct {
	rec   event.Record
	class class
	size  int
}

// Sink is an event.Sink that sends to an Endpoint; see the package
// comment. Handle never blocks on the network.
type Sink struct {
	o Options

	mu      sync.Mutex
	pending []entry // oldest first
	size    int
	seq     uint64 // the last event's
	acked   uint64 // every event up to it has been sent or dropped
	ackCh   chan struct{}
	id      event.Identity
	bootAt  time.Time // the time of day the boot started, once the clock is set
	ended   bool      // Discard or Stop: nothing more is kept
	started bool
	cancel  context.CancelFunc // ends the sender (Stop)
	failing bool               // the last try failed (said once)
	full    bool               // events were dropped (said once)
	stats   Stats

	wake chan struct{} // events are pending
	kick chan struct{} // try now, whatever the backoff says
	done chan struct{} // the sender has returned
}

// New returns a Sink that keeps events until Start says where they go.
func New(o Options) *Sink {
	if o.Limit <= 0 {
		o.Limit = DefaultLimit
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = DefaultBatchBytes
	}
	if o.Mono == nil {
		o.Mono = console.SinceBoot
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Clock == nil {
		o.Clock = fetch.RealClock{}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return &Sink{o: o, ackCh: make(chan struct{}), wake: make(chan struct{}, 1), kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// Handle keeps e to be sent.
func (s *Sink) Handle(e event.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	mono := s.o.Mono()
	switch e := e.(type) {
	case event.StageStart:
		mono = cmp.Or(e.SinceBoot, mono) // the time the console line shows
	case event.StageEnd:
		mono = cmp.Or(e.SinceBoot, mono)
	case event.Identity:
		s.id.BootID = cmp.Or(e.BootID, s.id.BootID)
		s.id.MAC = cmp.Or(e.MAC, s.id.MAC)
		s.id.Host = cmp.Or(e.Host, s.id.Host)
	case event.ClockSet:
		s.bootAt = s.o.Now().UTC().Add(-mono)
	}
	s.seq++
	r := event.NewRecord(e)
	r.Seq, r.Mono = s.seq, mono.Seconds()
	en := entry{rec: r, class: classOf(e), size: approxSize(r)}
	s.pending = append(s.pending, en)
	s.size += en.size
	s.trim()
	signal(s.wake)
	if _, ok := e.(event.StageEnd); ok {
		// A stage ended: the network may be up now.
		signal(s.kick)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func classOf(e event.Event) class {
	switch e := e.(type) {
	case event.Message:
		return consoleLine
	case event.PipelineStatus, event.EndAction, event.ContainerExit, event.ContainerFailed, event.ContainerSkipped, event.Identity:
		return vital
	case event.StageEnd:
		if e.Err != nil {
			return vital
		}
	case event.Layer:
		if e.Err != nil {
			return vital
		}
	}
	return progress
}

// approxSize is about the size of r's JSON line, without marshalling it.
func approxSize(r event.Record) int {
	return 160 + len(r.Stage) + len(r.Job) + len(r.Text) + len(r.Image) + len(r.ID) + len(r.Error) + len(r.Digest)
}

// trim drops events, console lines first, then progress, oldest first,
// until the buffer is within its limit or holds only vital events.
func (s *Sink) trim() {
	for _, c := range []class{consoleLine, progress} {
		for i := 0; i < len(s.pending) && s.size > s.o.Limit; {
			if s.pending[i].class != c {
				i++
				continue
			}
			s.size -= s.pending[i].size
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			s.stats.Dropped++
			if !s.full {
				s.full = true
				fmt.Fprintf(s.o.Log, "ociboot: report: more than %d bytes of events wait to be sent: dropping the oldest console lines, then progress\n", s.o.Limit)
			}
		}
	}
}

// Start sends the events kept, and those to come, to ep, until ctx ends
// or Stop. It is called once.
func (s *Sink) Start(ctx context.Context, ep Endpoint) {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.started, s.cancel = true, cancel
	s.mu.Unlock()
	var pairs []string
	for _, secret := range ep.Secrets {
		if secret != "" {
			pairs = append(pairs, secret, "***")
		}
	}
	go s.send(ctx, ep, strings.NewReplacer(pairs...))
}

// Discard drops the events kept, and those to come: there is no
// endpoint.
func (s *Sink) Discard() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended, s.pending, s.size = true, nil, 0
}

// Stop ends the sending, a request under way too, and returns once the
// sender has: nothing is sent after it, and events handled later are
// dropped. The boot stops it before it powers off: nothing may write to
// the network while the kernel shuts its devices down (a virtio NIC's
// transmit path spins forever on a queue the shutdown broke).
func (s *Sink) Stop() {
	s.mu.Lock()
	cancel := s.cancel
	s.ended, s.pending, s.size = true, nil, 0
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-s.done
	}
}

// Flush waits until every event handled so far has been sent, or ctx
// ends (then it says how many were not). Without Start, it returns at
// once.
func (s *Sink) Flush(ctx context.Context) error {
	s.mu.Lock()
	target := s.acked // events dropped to make room are not waited for
	if n := len(s.pending); n > 0 {
		target = s.pending[n-1].rec.Seq
	}
	started := s.started && !s.ended
	s.mu.Unlock()
	if !started {
		return nil
	}
	signal(s.kick)
	for {
		s.mu.Lock()
		acked, ch := s.acked, s.ackCh
		s.mu.Unlock()
		if acked >= target {
			return nil
		}
		select {
		case <-ch:
		case <-s.done:
			return fmt.Errorf("%d events not sent: the sender stopped", target-acked)
		case <-ctx.Done():
			return fmt.Errorf("%d events not sent: %w", target-acked, context.Cause(ctx))
		}
	}
}

// Stats says what was sent so far.
func (s *Sink) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// send is the sender: it posts the pending events, a batch at a time,
// and waits between failed tries, doubling the wait up to maxWait; a
// kick (a stage ended, a flush) makes it try again at once.
func (s *Sink) send(ctx context.Context, ep Endpoint, secrets *strings.Replacer) {
	defer close(s.done)
	wait := firstWait
	for {
		batch, last, ok := s.next(ctx)
		if !ok {
			return
		}
		body, raw, err := encode(batch, secrets)
		if err != nil { // cannot happen with these types; drop rather than loop
			s.ack(last, len(batch), 0, 0, false)
			fmt.Fprintf(s.o.Log, "ociboot: report: %v: %d events dropped\n", err, len(batch))
			continue
		}
		after, permanent, err := post(ctx, ep, body)
		switch {
		case err == nil:
			s.ack(last, len(batch), len(body), raw, true)
			wait = firstWait
			continue
		case permanent: // retrying cannot help
			s.ack(last, len(batch), 0, 0, false)
			fmt.Fprintf(s.o.Log, "ociboot: report: %v: %d events dropped\n", err, len(batch))
			continue
		}
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		say := !s.failing
		s.failing = true
		s.mu.Unlock()
		if say {
			fmt.Fprintf(s.o.Log, "ociboot: report: %v; keeping the events until it answers\n", err)
		}
		s.pause(ctx, max(wait, after))
		wait = min(2*wait, maxWait)
	}
}

// next returns the oldest pending events, up to a batch, and the
// sequence number of the last; it waits for some. ok is false once ctx
// has ended.
func (s *Sink) next(ctx context.Context) (batch []event.Record, last uint64, ok bool) {
	for {
		s.mu.Lock()
		size := 0
		for _, en := range s.pending {
			if len(batch) > 0 && size+en.size > s.o.BatchBytes {
				break
			}
			r := en.rec
			s.stamp(&r)
			batch = append(batch, r)
			size += en.size
		}
		s.mu.Unlock()
		if len(batch) > 0 {
			return batch, batch[len(batch)-1].Seq, true
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return nil, 0, false
		}
	}
}

// stamp gives r the boot's identity and, once the clock is set, its time
// of day.
func (s *Sink) stamp(r *event.Record) {
	r.Boot, r.MAC, r.Host = s.id.BootID, s.id.MAC, s.id.Host
	if !s.bootAt.IsZero() {
		w := s.bootAt.Add(time.Duration(r.Mono * float64(time.Second)))
		r.Wall = &w
	}
}

// ack forgets the events up to last: sent when ok, dropped otherwise.
func (s *Sink) ack(last uint64, n, bytes int, raw int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := 0
	for i < len(s.pending) && s.pending[i].rec.Seq <= last {
		s.size -= s.pending[i].size
		i++
	}
	s.pending = s.pending[i:]
	s.acked = max(s.acked, last)
	if ok {
		s.stats.Events += uint64(n)
		s.stats.Requests++
		s.stats.Bytes += int64(bytes)
		s.stats.Raw += raw
		if s.failing {
			s.failing = false
			fmt.Fprintf(s.o.Log, "ociboot: report: the endpoint answers again\n")
		}
	} else {
		s.stats.Dropped += n
	}
	close(s.ackCh)
	s.ackCh = make(chan struct{})
}

// pause waits for d, or until a kick or the end of ctx.
func (s *Sink) pause(ctx context.Context, d time.Duration) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.kick:
			cancel()
		case <-wctx.Done():
		}
	}()
	_ = s.o.Clock.Sleep(wctx, d)
}

// encode writes batch as gzip-compressed JSON lines, secrets masked; raw
// is the size of the JSON.
func encode(batch []event.Record, secrets *strings.Replacer) (body []byte, raw int64, err error) {
	var lines bytes.Buffer
	enc := json.NewEncoder(&lines)
	enc.SetEscapeHTML(false)
	for _, r := range batch {
		for _, f := range []*string{&r.Host, &r.Stage, &r.Job, &r.Text, &r.Image, &r.ID, &r.Error} {
			*f = secrets.Replace(*f)
		}
		if err := enc.Encode(r); err != nil {
			return nil, 0, fmt.Errorf("encoding event %d: %w", r.Seq, err)
		}
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := zw.Write(lines.Bytes()); err != nil {
		return nil, 0, err
	}
	if err := zw.Close(); err != nil {
		return nil, 0, err
	}
	return out.Bytes(), int64(lines.Len()), nil
}

// post sends one batch. A failure says how long to wait at least before
// the next try (what Retry-After asked), or that the endpoint refused the
// batch for good.
func post(ctx context.Context, ep Endpoint, body []byte) (after time.Duration, permanent bool, err error) {
	rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return 0, true, err
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("Content-Encoding", "gzip")
	u := fetch.Redact(req.URL)
	resp, err := ep.Client.Do(req)
	if err != nil {
		return 0, false, fmt.Errorf("POST %s: %w", u, fetch.StripURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return 0, false, nil
	}
	err = fmt.Errorf("POST %s: the endpoint answered %s", u, resp.Status)
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return 0, true, err
	}
	after, _ = fetch.Retry{}.Retryable(resp, nil)
	return after, false, err
}
