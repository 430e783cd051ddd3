package xz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
)

// Blocks whose headers give both their sizes, as the blocks of
// multi-threaded xz (xz -T0) and of pixz do, can be decoded apart from
// each other. A Reader made by NewParallelReader
// reads such blocks ahead, whole, in a goroutine of its own, has
// workers decode them into buffers of their known size, and gives the
// buffers back in order. A block without its sizes is decoded in the
// reader's goroutine, as NewReader's Reader does, and so is a block too
// big for the memory it was given.

var errClosed = errors.New("xz: read after Close")

// job is one block, read whole, that a worker decodes.
type job struct {
	start int64  // where the block began in the input
	data  []byte // its header, compressed data, padding and check
	hdr   blockHeader
	check byte
	out   []byte
	err   error
	ready chan struct{} // closed once out or err is set
}

// parallel is the state of a run of blocks being decoded in parallel.
type parallel struct {
	order chan *job     // the blocks, in order; closed when the run ends
	slots chan struct{} // a slot per block being read, decoded or given out
	quit  chan struct{} // closed by Close
	err   error         // why the run ended, when not for a block it leaves to the reader; set before order is closed
	// freeIn and freeOut hold the buffers of blocks given out (read,
	// and decoded), for the next: blocks are of one size but the last,
	// and garbage would grow the heap by as much as the blocks in flight
	// take.
	freeIn, freeOut chan []byte
}

// buffer returns a buffer of n bytes, one of free if it is big enough.
// Its bytes are not cleared: they are all written before being read.
func buffer(free chan []byte, n int64) []byte {
	select {
	case b := <-free:
		if int64(cap(b)) >= n {
			return b[:n]
		}
	default:
	}
	return make([]byte, n)
}

// release keeps b in free for another block, or lets it go.
func release(free chan []byte, b []byte) {
	select {
	case free <- b:
	default:
	}
}

// NewParallelReader is NewReader, decoding blocks that give their
// sizes with up to workers goroutines, with at most memory bytes of
// blocks (compressed and decoded) in flight. Close must be called once
// the Reader is no longer read. With fewer than two workers, it is
// NewReader: on one CPU, a worker would only move the decoding to
// another goroutine, with blocks whole in memory (in a 1-CPU VM, the
// memory in use rose by 170.7 MiB unpacking the e2e Debian root so,
// 138.4 MiB without).
func NewParallelReader(r io.Reader, workers int, memory int64) (*Reader, error) {
	z, err := NewReader(r)
	if err != nil || workers < 2 {
		return z, err
	}
	z.workers, z.memory, z.quit = workers, memory, make(chan struct{})
	return z, nil
}

// ParallelBlocks says how many blocks were decoded in parallel so far.
func (z *Reader) ParallelBlocks() int { return z.parBlocks }

// Close stops the goroutines of a Reader from NewParallelReader. It
// does not close the input.
func (z *Reader) Close() error {
	if z.quit != nil {
		select {
		case <-z.quit:
		default:
			close(z.quit)
		}
	}
	return nil
}

// startParallel starts a run of parallel blocks at the input's current
// position, a block header.
func (z *Reader) startParallel() {
	p := &parallel{quit: z.quit}
	z.par = p
	// The first block sets how many blocks are in flight: one for the
	// reader to give out, one for each worker, within the memory. Fewer
	// than two, and no block could be decoded while another is given
	// out: the run ends at once.
	var inflight int64
	if first, ok := z.peekBlock(z.offset()); ok {
		inflight = min(int64(z.workers)+1, z.memory/max(first.memory(), 1))
	}
	if inflight < 2 {
		p.order = make(chan *job)
		close(p.order)
		return
	}
	p.order = make(chan *job, inflight)
	p.slots = make(chan struct{}, inflight)
	p.freeIn, p.freeOut = make(chan []byte, inflight), make(chan []byte, inflight)
	work := make(chan *job)
	for range min(z.workers, int(inflight)-1) {
		go p.worker(work)
	}
	go z.dispatch(p, work, z.memory/inflight)
}

// peekBlock reads the block header at the input's position, without
// taking it, and says whether it gives both sizes.
func (z *Reader) peekBlock(start int64) (blockHeader, bool) {
	b, err := z.in.Peek(1)
	if err != nil || b[0] == 0 {
		return blockHeader{}, false
	}
	h, err := z.in.Peek(int(b[0])*4 + 4)
	if err != nil {
		return blockHeader{}, false
	}
	hdr, err := parseBlockHeader(h, start)
	if err != nil || hdr.compressed < 0 || hdr.uncompressed < 0 {
		return blockHeader{}, false
	}
	return hdr, true
}

// memory is what a block takes in flight, compressed and decoded; the
// sizes a corrupt header gives may be anything up to 2^63.
func (hdr blockHeader) memory() int64 {
	if hdr.compressed > 1<<40 || hdr.uncompressed > 1<<40 {
		return math.MaxInt64
	}
	return hdr.compressed + hdr.uncompressed
}

// dispatch reads blocks, while they give their sizes and are no bigger
// than size (compressed and decoded), for the workers and the reader.
// It owns the input until it closes p.order.
func (z *Reader) dispatch(p *parallel, work chan<- *job, size int64) {
	defer close(p.order)
	defer close(work)
	for {
		start := z.offset()
		hdr, ok := z.peekBlock(start)
		if !ok || hdr.memory() > size {
			return // the reader goes on from here
		}
		select {
		case p.slots <- struct{}{}:
		case <-p.quit:
			return
		}
		j := &job{start: start, hdr: hdr, check: z.check, ready: make(chan struct{})}
		j.data = buffer(p.freeIn, hdr.size+hdr.compressed+padding(hdr.compressed)+int64(checkSize(z.check)))
		if _, err := io.ReadFull(z.in, j.data); err != nil {
			p.err = fmt.Errorf("xz: block at byte %d: %w", start, unexpected(err))
			return
		}
		p.order <- j // never blocks: a slot was taken
		select {
		case work <- j:
		case <-p.quit:
			return
		}
	}
}

// worker decodes the blocks it is given.
func (p *parallel) worker(work <-chan *job) {
	var r lzma2Reader
	for j := range work {
		j.out = buffer(p.freeOut, j.hdr.uncompressed)
		j.err = j.decode(&r)
		close(j.ready)
	}
}

// decode decodes j's block into j.out, and checks its sizes and check.
func (j *job) decode(r *lzma2Reader) error {
	body := j.data[j.hdr.size:]
	in := bytes.NewReader(body[:j.hdr.compressed])
	if err := r.decodeAll(in, j.hdr.dict, j.out); err != nil {
		return fmt.Errorf("xz: corrupt block at byte %d: %w", j.start, err)
	}
	if in.Len() != 0 {
		return fmt.Errorf("xz: corrupt block (compressed size) at byte %d", j.start)
	}
	if j.hdr.x86 {
		x := x86Reader{pos: j.hdr.x86Start, prevPos: j.hdr.x86Start - 5}
		x.convert(j.out) // the last four bytes stay as they are
	}
	pad := body[j.hdr.compressed : int64(len(body))-int64(checkSize(j.check))]
	if !bytes.Equal(pad, make([]byte, len(pad))) {
		return fmt.Errorf("xz: corrupt block padding at byte %d", j.start)
	}
	h := newCheck(j.check)
	h.Write(j.out)
	if !checkMatches(j.check, h, body[int64(len(body))-int64(checkSize(j.check)):]) {
		return fmt.Errorf("xz: block at byte %d: the data does not match its check", j.start)
	}
	return nil
}

// readParallel gives out the run's blocks, in order. At the run's end,
// it returns 0 and no error, and the reader goes on alone.
func (z *Reader) readParallel(p []byte) (int, error) {
	par := z.par
	for {
		if z.cur == nil {
			j, ok := <-par.order
			if !ok {
				z.par = nil
				return 0, par.err
			}
			select {
			case <-j.ready:
			case <-par.quit:
				return 0, errClosed
			}
			if j.err != nil {
				return 0, j.err
			}
			z.cur, z.curOff = j, 0
		}
		if z.curOff < len(z.cur.out) {
			n := copy(p, z.cur.out[z.curOff:])
			z.curOff += n
			return n, nil
		}
		j := z.cur
		z.blocks = append(z.blocks, record{
			unpadded:     j.hdr.size + j.hdr.compressed + int64(checkSize(j.check)),
			uncompressed: j.hdr.uncompressed,
		})
		z.cur = nil
		z.parBlocks++
		release(par.freeIn, j.data)
		release(par.freeOut, j.out)
		<-par.slots
	}
}
