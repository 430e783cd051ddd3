package volume

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/fetch/fetchtest"
	"github.com/ociboot/ociboot/internal/volume/s3test"
)

// TestJournal follows a volume whose push fails through three boots:
// dirty from before a container writes to it, kept (not expired) with
// why its push failed, refused to the next boot's containers, pushed by
// the first boot that has its endpoint, then deleted as its expiration
// said.
func TestJournal(t *testing.T) {
	srv := s3test.Start(t, "job-bucket")
	up := bootcfg.S3{Alias: "gw", URL: srv.URL, AccessKey: srv.Access, SecretKey: srv.Secret}
	down := up
	down.URL = "http://127.0.0.1:1"
	b := bootcfg.Bucket{Alias: "gw", Bucket: "job-bucket", Prefix: "run"}
	def := bootcfg.Volume{Name: "job", PushTo: b, PushOn: []bootcfg.VolumeEvent{bootcfg.ContainerEnd},
		ExpireAtPipelineEnd: true, Preserve: true, Exclude: []string{"*.tmp"}}
	other := bootcfg.Volume{Name: "other", PushTo: b, PushOn: []bootcfg.VolumeEvent{bootcfg.PipelineEnd}}
	dir := t.TempDir()
	ctx := context.Background()

	// Boot 1: the server is out of reach.
	s, err := Open(dir, []bootcfg.Volume{def, other}, nil, Options{Endpoints: []bootcfg.S3{down}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.At(ctx, "pipeline_start"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "job", journalFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the journal before any container: %v, want no entry", err)
	}
	data, err := s.Dir("job")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "job", journalFile)); err != nil {
		t.Errorf("no journal entry once a container has the volume: %v", err)
	}
	writeFiles(t, data, map[string]string{"result": "done", "skip.tmp": "x"})
	if err := s.At(ctx, "container_end"); err == nil || !strings.Contains(err.Error(), "volume job: push to gw/job-bucket/run") {
		t.Errorf("At(container_end) with the server down: %v", err)
	}
	if err := s.At(ctx, "pipeline_end"); err == nil {
		t.Error("At(pipeline_end) with the server down: no error")
	}
	gone, kept, err := s.Expire()
	if err != nil || len(gone) != 0 || !slices.Equal(kept, []string{"job"}) {
		t.Errorf("Expire = %q, %q, %v; want job kept", gone, kept, err)
	}
	unpushed := s.Unpushed()
	if len(unpushed) != 1 || !strings.Contains(unpushed[0], "job ("+filepath.Join(dir, "job")+"): what was written from ") ||
		!strings.Contains(unpushed[0], "not pushed to gw/job-bucket/run (listing job-bucket/run/: ") ||
		!strings.Contains(unpushed[0], "connection refused") || !strings.HasSuffix(unpushed[0], ": kept on disk for the next boot to push") {
		t.Errorf("Unpushed = %q", unpushed)
	}

	// Boot 2: no endpoint called gw. The volume is kept and refused.
	s, err = Open(dir, []bootcfg.Volume{{Name: "job"}}, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if failed := s.PushEarlier(ctx); len(failed) != 1 || !strings.Contains(failed[0], "volume job ("+filepath.Join(dir, "job")+"): what was written from") ||
		!strings.Contains(failed[0], "this boot has no endpoint called gw; it is kept as it is, for a later boot to push") {
		t.Errorf("PushEarlier without the endpoint: %q", failed)
	}
	if _, err := s.Dir("job"); err == nil || !strings.Contains(err.Error(), "volume job holds what was written from") {
		t.Errorf("Dir of a volume an earlier boot left dirty: %v", err)
	}
	if err := s.At(ctx, "pipeline_end"); err != nil {
		t.Errorf("At(pipeline_end) for a volume of this boot that is not dirty: %v", err)
	}

	// Boot 3: the server is back; the volume is pushed first, then
	// deleted, as it was to expire.
	var log bytes.Buffer
	s, err = Open(dir, nil, nil, Options{Endpoints: []bootcfg.S3{up}, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if failed := s.PushEarlier(ctx); len(failed) != 0 {
		t.Fatalf("PushEarlier: %q", failed)
	}
	if got, err := os.ReadFile(filepath.Join(srv.Dir, "job-bucket", "run", "result")); err != nil || string(got) != "done" {
		t.Errorf("the result on the server: %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(srv.Dir, "job-bucket", "run", "skip.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the excluded file was pushed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "job")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the expiring volume after its push: %v, want deleted", err)
	}
	if !strings.Contains(log.String(), "pushed job to gw/job-bucket/run at boot, what an earlier boot could not push: 1 files copied (4 bytes)") ||
		!strings.Contains(log.String(), "deleted job (expiration=pipeline_end)") {
		t.Errorf("log:\n%s", log.String())
	}
	if u := s.Unpushed(); len(u) != 0 {
		t.Errorf("Unpushed after the push: %q", u)
	}
}

// TestJournalUnreadable checks that a volume whose journal entry is
// damaged is kept as it is: not deleted, not pushed, not handed out.
func TestJournalUnreadable(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, filepath.Join(dir, "job"), map[string]string{"data/result": "done", "expire": "", journalFile: "{cut sh"})
	s, err := Open(dir, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if failed := s.PushEarlier(context.Background()); len(failed) != 1 || !strings.Contains(failed[0], "its journal entry "+filepath.Join(dir, "job", journalFile)+" is unreadable") {
		t.Errorf("PushEarlier: %q", failed)
	}
	if _, err := s.Dir("job"); err == nil || !strings.Contains(err.Error(), "volume job holds what an earlier boot did not push, but its journal entry") {
		t.Errorf("Dir: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "job", "data", "result")); err != nil || string(got) != "done" {
		t.Errorf("the volume's data: %q, %v", got, err)
	}
}

// failing fails its first n requests as a refused connection would, then
// sends them on.
type failing struct {
	n     int32
	count atomic.Int32
}

func (f *failing) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.count.Add(1) <= f.n {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestPushInRAM checks that without a disk a failed push is tried again,
// waiting longer each time, until it goes through or push_timeout is
// over; on a disk it is tried once (the journal keeps it).
func TestPushInRAM(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	ep := bootcfg.S3{Alias: "gw", URL: srv.URL, AccessKey: srv.Access, SecretKey: srv.Secret}
	def := bootcfg.Volume{Name: "job", PushTo: bootcfg.Bucket{Alias: "gw", Bucket: "bkt"}, PushOn: []bootcfg.VolumeEvent{bootcfg.PipelineEnd}}
	ctx := context.Background()
	var s *Set
	push := func(o Options) (*fetchtest.Clock, string, error) {
		t.Helper()
		clock := fetchtest.NewClock()
		var log bytes.Buffer
		o.Endpoints, o.Clock, o.Log, o.PushTimeout = []bootcfg.S3{ep}, clock, &log, time.Minute
		var err error
		s, err = Open(t.TempDir(), []bootcfg.Volume{def}, nil, o)
		if err != nil {
			t.Fatal(err)
		}
		data, err := s.Dir("job")
		if err != nil {
			t.Fatal(err)
		}
		writeFiles(t, data, map[string]string{"f": "x"})
		err = s.At(ctx, "pipeline_end")
		return clock, log.String(), err
	}

	clock, log, err := push(Options{InRAM: true, Transport: &failing{n: 3}})
	if err != nil || len(clock.Sleeps()) != 3 || !strings.Contains(log, "pushing job to gw/bkt failed (try 3): ") ||
		!strings.Contains(log, "connection refused; trying again in ") || !strings.Contains(log, "pushed job to gw/bkt at pipeline_end: 1 files copied") {
		t.Errorf("in RAM, 3 failures: %v, waits %v, log:\n%s", err, clock.Sleeps(), log)
	}
	for i, d := range clock.Sleeps()[1:] {
		if d <= clock.Sleeps()[i] {
			t.Errorf("waits %v: not growing", clock.Sleeps())
		}
	}

	clock, _, err = push(Options{InRAM: true, Transport: &failing{n: 1 << 30}})
	var total time.Duration
	for _, d := range clock.Sleeps() {
		total += d
	}
	if err == nil || len(clock.Sleeps()) < 5 || total > time.Minute {
		t.Errorf("in RAM, the server never back: %v, after waits %v (%v in all, push_timeout 1m)", err, clock.Sleeps(), total)
	}
	if u := s.Unpushed(); len(u) != 1 || !strings.HasSuffix(u[0], ": LOST at power-off, as it is in RAM") {
		t.Errorf("Unpushed in RAM: %q", u)
	}

	clock, _, err = push(Options{Transport: &failing{n: 1}})
	if err == nil || len(clock.Sleeps()) != 0 {
		t.Errorf("on a disk: %v, waits %v; want one try", err, clock.Sleeps())
	}
}
