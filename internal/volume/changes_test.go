package volume

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/fetch/fetchtest"
	"github.com/ociboot/ociboot/internal/volume/s3test"
)

// lines sends each line written to it on a channel.
type lines struct {
	mu   sync.Mutex
	part []byte
	c    chan string
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.c <- string(l.part[:i])
		l.part = l.part[i+1:]
	}
}

// TestPushOnChanges watches a volume from pipeline_start: each change is
// pushed, but not a file still being written, which goes once closed; a
// directory made during the watch is watched too; pipeline_end stops the
// watch and pushes a last time.
func TestPushOnChanges(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	ep := bootcfg.S3{Alias: "gw", URL: srv.URL, AccessKey: srv.Access, SecretKey: srv.Secret}
	def := bootcfg.Volume{Name: "job", PushTo: bootcfg.Bucket{Alias: "gw", Bucket: "bkt"},
		PushOn: []bootcfg.VolumeEvent{bootcfg.Changes}, Overwrite: true, Remove: true}
	log := &lines{c: make(chan string, 1000)}
	clock := fetchtest.NewClock()
	s, err := Open(t.TempDir(), []bootcfg.Volume{def}, nil, Options{Endpoints: []bootcfg.S3{ep}, Log: log, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.At(ctx, "pipeline_start"); err != nil {
		t.Fatal(err)
	}
	dir, err := s.Dir("job")
	if err != nil {
		t.Fatal(err)
	}
	object := func(key string) string {
		data, err := os.ReadFile(filepath.Join(srv.Dir, "bkt", filepath.FromSlash(key)))
		if errors.Is(err, os.ErrNotExist) {
			return "(none)"
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	// pushedUntil waits for pushes on changes until ok says the bucket
	// is as wanted.
	pushedUntil := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			line := <-log.c
			if !strings.HasPrefix(line, "pushed job to gw/bkt on changes: ") {
				t.Fatalf("waiting for %s: %s", what, line)
			}
		}
	}

	partial, err := os.Create(filepath.Join(dir, "partial"))
	if err != nil {
		t.Fatal(err)
	}
	defer partial.Close()
	if _, err := partial.WriteString("half "); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"done": "done"})
	pushedUntil("the closed file", func() bool { return object("done") == "done" })
	if got := object("partial"); got != "(none)" {
		t.Errorf("a file being written was pushed: %q", got)
	}
	if _, err := partial.WriteString("and whole"); err != nil {
		t.Fatal(err)
	}
	if err := partial.Close(); err != nil {
		t.Fatal(err)
	}
	pushedUntil("the file once closed", func() bool { return object("partial") == "half and whole" })

	// A directory made during the watch: once a push shows its event
	// was read, its files are watched as any other.
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	pushedUntil("the new directory's watch", func() bool {
		s.mu.Lock()
		w := s.watches["job"].w
		s.mu.Unlock()
		w.mu.Lock()
		defer w.mu.Unlock()
		for _, d := range w.dirs {
			if d == "sub" {
				return true
			}
		}
		return false
	})
	writeFiles(t, dir, map[string]string{"sub/new": "new"})
	pushedUntil("a file of the new directory", func() bool { return object("sub/new") == "new" })
	for _, d := range clock.Sleeps() {
		if d != changeQuiet {
			t.Errorf("waits %v, want %v each", clock.Sleeps(), changeQuiet)
			break
		}
	}

	if err := os.Remove(filepath.Join(dir, "done")); err != nil {
		t.Fatal(err)
	}
	if err := s.At(ctx, "pipeline_end"); err != nil {
		t.Fatal(err)
	}
	if got := object("done"); got != "(none)" {
		t.Errorf("after the push at pipeline_end, the removed file's object: %q", got)
	}
	for {
		line := <-log.c
		if strings.HasPrefix(line, "pushed job to gw/bkt at pipeline_end: ") {
			break
		}
	}
	if len(s.watches) != 0 {
		t.Error("the watch is still there after pipeline_end")
	}
	if u := s.Unpushed(); len(u) != 0 {
		t.Errorf("Unpushed: %q", u)
	}
}

// TestWatcherUnsure checks that the files of a directory moved into a
// watched tree, whose first events came before the watch, count as being
// written while a process holds them open for writing.
func TestWatcherUnsure(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	w, err := watch(root)
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, outside, map[string]string{"d/open": "x", "d/closed": "y", "d/read": "z"})
	f, err := os.OpenFile(filepath.Join(outside, "d/open"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := os.Open(filepath.Join(outside, "d/read"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := os.Rename(filepath.Join(outside, "d"), filepath.Join(root, "d")); err != nil {
		t.Fatal(err)
	}
	for {
		w.mu.Lock()
		n := len(w.unsure)
		w.mu.Unlock()
		if n == 3 {
			break
		}
		<-w.changed
	}
	writing := w.writers()
	if !writing("d/open") || writing("d/closed") || writing("d/read") {
		t.Errorf("being written: open %v, closed %v, open for reading %v; want only the first", writing("d/open"), writing("d/closed"), writing("d/read"))
	}
	if _, err := f.WriteString("more"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for w.writers()("d/open") {
		<-w.changed
	}
	if err := w.stop(); err != nil {
		t.Fatal(err)
	}
}
