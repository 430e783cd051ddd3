// Package fetchtest gives tests of code that retries a clock that never
// waits: each Sleep is recorded and moves the clock forward at once, so
// that a test asserts the retry schedule itself, whatever the load on
// the machine.
package fetchtest

import (
	"context"
	"sync"
	"time"
)

// Clock is a fake fetch.Clock. Its time starts at the wall clock's when
// made, and moves only when Sleep is called.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

// NewClock returns a clock at the current wall-clock time.
func NewClock() *Clock { return &Clock{now: time.Now()} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep records d and moves the clock forward by d, at once; it fails
// only when ctx is already done.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

// Sleeps returns the waits asked for so far, in order.
func (c *Clock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}
