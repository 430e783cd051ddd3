// Package fetch is ociboot's one HTTP client: TLS verified against the
// system's (in the initramfs, the embedded) roots plus the boot's CA
// certificates, bounded connection set-up and header waits, retries with
// doubling, jittered waits that honour Retry-After, and downloads that
// resume where they broke (Range with If-Range). Registry pulls, rootfs
// tarballs and extra_args_url go through it.
//
// The retry policy (Retry) waits on a Clock, so that tests give it a fake
// one and assert the schedule itself without waiting.
package fetch

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// Clock is what the retry policy reads the time from and waits on.
type Clock interface {
	Now() time.Time
	// Sleep waits for d, or until ctx is done (returning its cause).
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits for d or until ctx is done.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// Defaults of Retry.
const (
	DefaultAttempts  = 5
	DefaultFirstWait = 500 * time.Millisecond
	DefaultMaxAfter  = 60 * time.Second
)

// Retry is the retry policy of every request ociboot makes: up to
// Attempts tries; waits that start at FirstWait and double, each
// lengthened by up to a fifth at random (so that a fleet that booted
// together does not retry together), or longer when the server's
// Retry-After says so (capped at MaxAfter); a wait that would pass the
// context's deadline is not started. The zero value is the default
// policy on the wall clock.
type Retry struct {
	Attempts  int           // 0: DefaultAttempts
	FirstWait time.Duration // 0: DefaultFirstWait
	MaxAfter  time.Duration // 0: DefaultMaxAfter
	Clock     Clock         // nil: RealClock
}

func (r Retry) attempts() int {
	if r.Attempts > 0 {
		return r.Attempts
	}
	return DefaultAttempts
}

func (r Retry) clock() Clock {
	if r.Clock != nil {
		return r.Clock
	}
	return RealClock{}
}

// Start begins the tries of one operation under ctx.
func (r Retry) Start(ctx context.Context) *Backoff {
	first := r.FirstWait
	if first <= 0 {
		first = DefaultFirstWait
	}
	return &Backoff{r: r, ctx: ctx, attempt: 1, next: first}
}

// Backoff is the state of one operation's tries:
//
//	b := policy.Start(ctx)
//	for {
//		err := try()
//		if !retryable(err) || !b.Again(0) {
//			return err
//		}
//		if err := b.Wait(); err != nil {
//			return err
//		}
//	}
type Backoff struct {
	r       Retry
	ctx     context.Context
	attempt int
	next    time.Duration // the base of the next wait
	wait    time.Duration // the wait Again decided on
}

// Attempt is the number of the try under way, from 1.
func (b *Backoff) Attempt() int { return b.attempt }

// Attempts is how many tries the policy allows.
func (b *Backoff) Attempts() int { return b.r.attempts() }

// Again reports whether the failed try is worth another: attempts are
// left, the context is live and the wait (at least after, the server's
// Retry-After) ends before the context's deadline. When it is, Delay
// tells the wait and Wait performs it.
func (b *Backoff) Again(after time.Duration) bool {
	if b.attempt >= b.r.attempts() || b.ctx.Err() != nil {
		return false
	}
	d := b.next + time.Duration(rand.Int64N(int64(b.next)/5+1))
	d = max(d, after)
	if deadline, ok := b.ctx.Deadline(); ok && deadline.Sub(b.r.clock().Now()) < d {
		return false
	}
	b.wait = d
	return true
}

// Delay is the wait that Again decided on.
func (b *Backoff) Delay() time.Duration { return b.wait }

// Wait waits as Again decided and counts the next try; it returns the
// context's cause if the context ends first.
func (b *Backoff) Wait() error {
	if err := b.r.clock().Sleep(b.ctx, b.wait); err != nil {
		return err
	}
	b.attempt++
	b.next *= 2
	return nil
}

// Retryable says whether a request's outcome (a response, or the error
// that replaced it) is worth another try, and the least wait the server
// asked for. Timeouts, refused, reset and cut connections, temporary DNS
// failures, 408, 429, 500, 502, 503 and 504 are; cancelled contexts,
// certificate errors, unknown hosts and other statuses are not.
func (r Retry) Retryable(resp *http.Response, err error) (time.Duration, bool) {
	if err != nil {
		var ne net.Error
		var dns *net.DNSError
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return 0, false
		case errors.As(err, &dns):
			return 0, dns.IsTimeout || dns.IsTemporary
		case errors.As(err, &ne) && ne.Timeout(),
			errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
			errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
			errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return 0, true
		}
		return 0, false
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return r.retryAfter(resp.Header.Get("Retry-After")), true
	}
	return 0, false
}

// retryAfter reads a Retry-After header (seconds or an HTTP date),
// capped at MaxAfter.
func (r Retry) retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.Atoi(v); err == nil {
		d = time.Duration(n) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(r.clock().Now())
	}
	limit := r.MaxAfter
	if limit <= 0 {
		limit = DefaultMaxAfter
	}
	return min(max(d, 0), limit)
}
