package boot

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/fetch/fetchtest"
)

func TestFetchExtraArgs(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch r.URL.Path {
		case "/flaky":
			if n <= 2 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte("b2c.container=alpine ociboot.registry_auth=r,u,secret-value\n"))
		case "/big":
			w.Write(bytes.Repeat([]byte("x"), extraMaxLength+1))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	clock := fetchtest.NewClock()
	o := fetch.Options{Retry: fetch.Retry{Clock: clock}}

	var log bytes.Buffer
	got, err := fetchExtra(ctx, srv.URL+"/flaky", o, &log)
	if err != nil || !strings.Contains(got, "b2c.container=alpine") {
		t.Fatalf("flaky server: %q, %v", got, err)
	}
	if calls.Load() != 3 || strings.Count(log.String(), "503 Service Unavailable") != 2 || len(clock.Sleeps()) != 2 {
		t.Errorf("%d calls, waits %v, log %q: want two retried 503s", calls.Load(), clock.Sleeps(), log.String())
	}
	if strings.Contains(log.String(), "secret-value") {
		t.Error("the log shows the content")
	}

	calls.Store(0)
	_, err = fetchExtra(ctx, srv.URL+"/missing", o, &log)
	if err == nil || !strings.Contains(err.Error(), srv.URL+"/missing") || !strings.Contains(err.Error(), "404 Not Found") || calls.Load() != 1 {
		t.Errorf("missing: %v after %d calls, want one 404 naming the URL", err, calls.Load())
	}
	if _, err := fetchExtra(ctx, srv.URL+"/big", o, &log); err == nil || !strings.Contains(err.Error(), "longer than 1 MiB") {
		t.Errorf("big: %v", err)
	}
	if _, err := fetchExtra(ctx, srv.URL+"/x", fetch.Options{CACerts: []byte("not a certificate")}, &log); err == nil || !strings.Contains(err.Error(), "extra CA certificates") {
		t.Errorf("bad CA: %v", err)
	}
}
