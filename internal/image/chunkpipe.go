package image

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// chunkPool hands out buffers of one size, at most capacity of them at a
// time: it is the memory bound of an unpack. Buffers are mapped from the
// kernel (anonymous mmap) on first use, recycled, and unmapped by close:
// outside the Go heap they do not raise the garbage collector's goal, so
// the process's memory is the budget plus a small heap.
//
// The last reserve buffers go only to pipes marked urgent (those of the
// layer being applied), so that look-ahead layers, which fill their pipes
// while nobody reads them, can never take the memory the applied layer
// needs to make progress.
type chunkPool struct {
	size, capacity, reserve int

	mu      sync.Mutex
	inUse   int
	free    [][]byte
	mapped  [][]byte      // every buffer, for close
	changed chan struct{} // closed and replaced whenever a buffer is put back
}

func newChunkPool(size, capacity, reserve int) *chunkPool {
	capacity = max(capacity, reserve+1)
	return &chunkPool{size: size, capacity: capacity, reserve: reserve, changed: make(chan struct{})}
}

// get waits until a buffer may be handed to a pipe (urgent or not) or
// ctx is done.
func (p *chunkPool) get(ctx context.Context, urgent *atomic.Bool) ([]byte, error) {
	for {
		p.mu.Lock()
		limit := p.capacity - p.reserve
		if urgent.Load() {
			limit = p.capacity
		}
		if p.inUse < limit {
			p.inUse++
			var b []byte
			if n := len(p.free); n > 0 {
				b, p.free = p.free[n-1], p.free[:n-1]
			} else {
				var err error
				if b, err = unix.Mmap(-1, 0, p.size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
					p.inUse--
					p.mu.Unlock()
					return nil, fmt.Errorf("allocate a %d kB buffer: %w", p.size>>10, err)
				}
				p.mapped = append(p.mapped, b)
			}
			p.mu.Unlock()
			return b[:p.size], nil
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// put returns a buffer obtained from get.
func (p *chunkPool) put(b []byte) {
	p.mu.Lock()
	p.inUse--
	p.free = append(p.free, b[:cap(b)])
	p.wake()
	p.mu.Unlock()
}

// close unmaps every buffer. Nothing may use them any more: it is called
// once every goroutine of the unpack has ended.
func (p *chunkPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.mapped {
		_ = unix.Munmap(b)
	}
	p.mapped, p.free = nil, nil
}

// notify wakes the waiters, to look again at whether they are urgent.
func (p *chunkPool) notify() {
	p.mu.Lock()
	p.wake()
	p.mu.Unlock()
}

func (p *chunkPool) wake() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// chunkPipe carries a byte stream from one goroutine to another as
// chunks taken from a pool, so that the writer may run ahead of the
// reader by at most what the pool gives it. The writer sends chunks and
// then calls close exactly once; the reader sees the bytes, then close's
// error (io.EOF for nil). The reader calls release when done with it.
type chunkPipe struct {
	ctx    context.Context // a Read fails once it is done
	pool   *chunkPool
	urgent *atomic.Bool // shared by the pipes of one layer
	ch     chan []byte
	// err is written by close before ch is closed and read by the reader
	// after it sees ch closed: the channel close orders the two.
	err error

	cur  []byte // unread part of the chunk being read
	held []byte // the chunk being read, to give back to the pool
	// onRead, if set, is told how many bytes each Read returned.
	onRead func(n int)
}

func newChunkPipe(ctx context.Context, pool *chunkPool, urgent *atomic.Bool) *chunkPipe {
	// Room for every chunk the pool can hand out: send never blocks, the
	// writer waits in pool.get instead.
	return &chunkPipe{ctx: ctx, pool: pool, urgent: urgent, ch: make(chan []byte, pool.capacity)}
}

// close ends the stream; err nil means a clean end (io.EOF).
func (c *chunkPipe) close(err error) {
	c.err = err
	close(c.ch)
}

// Read implements io.Reader.
func (c *chunkPipe) Read(p []byte) (int, error) {
	for len(c.cur) == 0 {
		if c.held != nil {
			c.pool.put(c.held)
			c.held = nil
		}
		if err := c.ctx.Err(); err != nil {
			return 0, err
		}
		b, ok := <-c.ch
		if !ok {
			if c.err != nil {
				return 0, c.err
			}
			return 0, io.EOF
		}
		c.cur, c.held = b, b
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	if c.onRead != nil {
		c.onRead(n)
	}
	return n, nil
}

// release gives back every chunk still held or queued, waiting for the
// writer to close the pipe: the writer must be done, or stopping because
// its context is canceled.
func (c *chunkPipe) release() {
	if c.held != nil {
		c.pool.put(c.held)
		c.held, c.cur = nil, nil
	}
	for b := range c.ch {
		c.pool.put(b)
	}
}

// fill reads r into chunks sent through c until r ends, then closes c
// with r's error (nil at EOF). onChunk, if set, sees the size of every
// chunk before it is sent. It returns the error c was closed with.
func fill(c *chunkPipe, r io.Reader, onChunk func(n int)) error {
	err := func() error {
		for {
			b, err := c.pool.get(c.ctx, c.urgent)
			if err != nil {
				return err
			}
			n, rerr := io.ReadFull(r, b)
			if n > 0 {
				if onChunk != nil {
					onChunk(n)
				}
				c.ch <- b[:n]
			} else {
				c.pool.put(b)
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				return nil
			}
			if rerr != nil {
				return rerr
			}
		}
	}()
	c.close(err)
	return err
}
