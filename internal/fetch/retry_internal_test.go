package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/fetch/fetchtest"
)

func TestRetryable(t *testing.T) {
	timeout := &net.OpError{Op: "dial", Err: &timeoutErr{}}
	for _, tc := range []struct {
		resp  *http.Response
		err   error
		retry bool
		after time.Duration
	}{
		{nil, timeout, true, 0},
		{nil, fmt.Errorf("read: %w", syscall.ECONNRESET), true, 0},
		{nil, io.ErrUnexpectedEOF, true, 0},
		{nil, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true, 0},
		{nil, &net.DNSError{Err: "no such host", IsNotFound: true}, false, 0},
		{nil, &net.DNSError{Err: "server misbehaving", IsTemporary: true}, true, 0},
		{nil, context.Canceled, false, 0},
		{nil, fmt.Errorf("x: %w", context.DeadlineExceeded), false, 0},
		{nil, errors.New("x509: certificate signed by unknown authority"), false, 0},
		{&http.Response{StatusCode: 503, Header: http.Header{}}, nil, true, 0},
		{&http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"7"}}}, nil, true, 7 * time.Second},
		{&http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"86400"}}}, nil, true, DefaultMaxAfter},
		{&http.Response{StatusCode: 502, Header: http.Header{"Retry-After": {"soon"}}}, nil, true, 0},
		{&http.Response{StatusCode: 408, Header: http.Header{}}, nil, true, 0},
		{&http.Response{StatusCode: 404, Header: http.Header{}}, nil, false, 0},
		{&http.Response{StatusCode: 401, Header: http.Header{}}, nil, false, 0},
		{&http.Response{StatusCode: 501, Header: http.Header{}}, nil, false, 0},
	} {
		after, retry := Retry{}.Retryable(tc.resp, tc.err)
		if retry != tc.retry || after != tc.after {
			t.Errorf("retryable(%v, %v) = %v, %v; want %v, %v", tc.resp, tc.err, after, retry, tc.after, tc.retry)
		}
	}
	// An HTTP date is read against the policy's clock; one in the past
	// means no wait.
	clock := fetchtest.NewClock()
	r := Retry{Clock: clock}
	if d := r.retryAfter(clock.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)); d != 0 {
		t.Errorf("Retry-After in the past: wait %v, want 0", d)
	}
	at := clock.Now().Add(10 * time.Second).Truncate(time.Second)
	if d, want := r.retryAfter(at.UTC().Format(http.TimeFormat)), at.Sub(clock.Now()); d != want {
		t.Errorf("Retry-After in 10s: wait %v, want %v", d, want)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 100-199/200", 100, 199, 200, true},
		{"bytes 0-0/1", 0, 0, 1, true},
		{"bytes 5-9/*", 5, 9, -1, true},
		{"bytes 5-9/9", 0, 0, 0, false},
		{"bytes 9-5/10", 0, 0, 0, false},
		{"bytes -1-5/10", 0, 0, 0, false},
		{"bytes */10", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"bytes 0-1", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		s, e, n, ok := parseContentRange(tc.in)
		if s != tc.start || e != tc.end || n != tc.total || ok != tc.ok {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v", tc.in, s, e, n, ok)
		}
	}
}
