package fetch_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/fetch/fetchtest"
)

// inRange reports whether d is base lengthened by at most a fifth, the
// policy's jitter.
func inRange(d, base time.Duration) bool { return d >= base && d <= base+base/5 }

func TestRetrySchedule(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case r.URL.Path == "/after" && n == 1:
			w.Header().Set("Retry-After", "7")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case r.URL.Path == "/after", r.URL.Path == "/flaky" && n > 3:
			fmt.Fprint(w, "ok")
		case r.URL.Path == "/missing":
			http.NotFound(w, r)
		default:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	get := func(t *testing.T, policy fetch.Retry, ctx context.Context, path string) (int, error) {
		t.Helper()
		calls.Store(0)
		var log bytes.Buffer
		tr := &fetch.RetryTransport{Inner: http.DefaultTransport, Retry: policy, Log: &log}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		t.Logf("%s: %s, log:\n%s", path, resp.Status, log.String())
		return resp.StatusCode, nil
	}

	t.Run("waits double", func(t *testing.T) {
		clock := fetchtest.NewClock()
		code, err := get(t, fetch.Retry{Clock: clock}, context.Background(), "/flaky")
		sleeps := clock.Sleeps()
		if err != nil || code != 200 || calls.Load() != 4 || len(sleeps) != 3 {
			t.Fatalf("%d, %v after %d calls and waits %v: want 200 at the fourth call", code, err, calls.Load(), sleeps)
		}
		for i, base := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second} {
			if !inRange(sleeps[i], base) {
				t.Errorf("wait %d: %v, want %v plus up to a fifth", i+1, sleeps[i], base)
			}
		}
	})

	t.Run("Retry-After honoured", func(t *testing.T) {
		clock := fetchtest.NewClock()
		code, err := get(t, fetch.Retry{Clock: clock}, context.Background(), "/after")
		if sleeps := clock.Sleeps(); err != nil || code != 200 || len(sleeps) != 1 || sleeps[0] != 7*time.Second {
			t.Errorf("%d, %v, waits %v: want one wait of 7s (Retry-After), then 200", code, err, sleeps)
		}
	})

	t.Run("attempts bounded", func(t *testing.T) {
		clock := fetchtest.NewClock()
		code, err := get(t, fetch.Retry{Clock: clock, Attempts: 3}, context.Background(), "/broken")
		if err != nil || code != 503 || calls.Load() != 3 || len(clock.Sleeps()) != 2 {
			t.Errorf("%d, %v after %d calls, waits %v: want the last 503 after 3 calls", code, err, calls.Load(), clock.Sleeps())
		}
	})

	t.Run("no wait past the deadline", func(t *testing.T) {
		// The deadline is 4s of the fake clock away: the waits of about
		// 0.5s, 1s and 2s fit, the next (4s) does not.
		clock := fetchtest.NewClock()
		ctx, cancel := context.WithDeadline(context.Background(), clock.Now().Add(4*time.Second))
		defer cancel()
		code, err := get(t, fetch.Retry{Clock: clock, Attempts: 10}, ctx, "/broken")
		var total time.Duration
		for _, d := range clock.Sleeps() {
			total += d
		}
		n := len(clock.Sleeps())
		if err != nil || code != 503 || (n != 2 && n != 3) || total > 4*time.Second || int(calls.Load()) != n+1 {
			t.Errorf("%d, %v after %d calls, waits %v: want the 503 given up before the deadline", code, err, calls.Load(), clock.Sleeps())
		}
	})

	t.Run("permanent failures", func(t *testing.T) {
		clock := fetchtest.NewClock()
		code, err := get(t, fetch.Retry{Clock: clock}, context.Background(), "/missing")
		if err != nil || code != 404 || calls.Load() != 1 || len(clock.Sleeps()) != 0 {
			t.Errorf("%d, %v after %d calls: want one 404", code, err, calls.Load())
		}
	})

	t.Run("refused connections", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		clock := fetchtest.NewClock()
		tr := &fetch.RetryTransport{Inner: http.DefaultTransport, Retry: fetch.Retry{Clock: clock, Attempts: 3}}
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		_, err = tr.RoundTrip(req)
		if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "attempt 3 of 3") || len(clock.Sleeps()) != 2 {
			t.Errorf("error %v, waits %v: want a refusal after 3 attempts", err, clock.Sleeps())
		}
	})
}

// breakingServer serves content, cutting the first answer without a
// Range header after half of it; ranges are served by http.ServeContent.
func breakingServer(t *testing.T, content []byte, stall bool) (*httptest.Server, *[]string) {
	var ranges []string
	var cut atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range")+"|"+r.Header.Get("If-Range"))
		if r.Header.Get("Range") == "" && !cut.Swap(true) {
			w.Header().Set("Content-Length", fmt.Sprint(len(content)))
			w.Header().Set("ETag", `"v1"`)
			w.Write(content[:len(content)/2])
			http.NewResponseController(w).Flush()
			if stall {
				<-r.Context().Done()
			}
			panic(http.ErrAbortHandler)
		}
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(content))
	}))
	t.Cleanup(srv.Close)
	return srv, &ranges
}

func TestResume(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 1<<14)
	for _, stall := range []bool{false, true} {
		t.Run(fmt.Sprintf("stall=%v", stall), func(t *testing.T) {
			srv, ranges := breakingServer(t, content, stall)
			client, err := fetch.New(fetch.Options{Stall: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Get(srv.URL + "/f")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(got, content) {
				t.Fatalf("read %d bytes, %v; want all %d", len(got), err, len(content))
			}
			want := fmt.Sprintf("bytes=%d-|\"v1\"", len(content)/2)
			if len(*ranges) != 2 || (*ranges)[1] != want {
				t.Errorf("requests (Range|If-Range) %q, want a second one %q", *ranges, want)
			}
		})
	}
}

func TestParseCACerts(t *testing.T) {
	if _, err := fetch.ParseCACerts([]byte("not a certificate")); err == nil || !strings.Contains(err.Error(), "no PEM CERTIFICATE block") {
		t.Errorf("garbage: %v", err)
	}
	key := "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
	if _, err := fetch.ParseCACerts([]byte(key)); err == nil || !strings.Contains(err.Error(), `"PRIVATE KEY"`) {
		t.Errorf("a key: %v", err)
	}
	if _, err := fetch.NewTransport(fetch.TransportOptions{CACerts: []byte("x")}); err == nil || !strings.Contains(err.Error(), "extra CA certificates") {
		t.Errorf("NewTransport: %v", err)
	}
}
