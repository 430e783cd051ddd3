package xz

import "encoding/binary"

// window is the LZ77 dictionary: the last bytes decoded, in a circular
// buffer, from which the bytes of the current stretch (start to pos) are
// yet to be read out.
type window struct {
	buf   []byte
	pos   int // where the next byte goes
	start int // the first byte not yet read out
	full  int // how many bytes back from pos are history (up to len(buf))
	size  int // the dictionary's size, which buf grows to
	// flat is set when buf is a whole block's output, which decodeAll
	// fills from its start and never wraps around.
	flat bool
}

// initialWindow is the buffer a window starts with: it grows, doubling,
// up to the dictionary's size, so that small files of `xz -9` do not
// take 64 MiB.
const initialWindow = 1 << 16

// reset empties the window for a dictionary of size bytes (rounded up
// to a multiple of 16, as liblzma's, so that positions modulo 16, which
// the model uses, are the same).
func (w *window) reset(size int) {
	w.size = (max(size, 4096) + 15) &^ 15
	if w.flat {
		// What follows starts afresh where the output is.
		w.buf = w.buf[w.pos:]
		w.pos, w.start, w.full = 0, 0, 0
		return
	}
	n := min(w.size, initialWindow)
	if cap(w.buf) < n {
		w.buf = make([]byte, n)
	}
	w.buf = w.buf[:min(cap(w.buf), w.size)]
	w.pos, w.start, w.full = 0, 0, 0
}

// byteAt is the byte dist+1 bytes back.
func (w *window) byteAt(dist int) byte {
	i := w.pos - dist - 1
	if i < 0 {
		i += len(w.buf)
	}
	return w.buf[i]
}

func (w *window) put(b byte) {
	w.buf[w.pos] = b
	w.pos++
	if w.full < w.pos {
		w.full = w.pos
	}
}

// repeat copies n bytes from dist+1 bytes back, stopping at limit (at
// most the buffer's end); it returns how many are left.
func (w *window) repeat(dist, n, limit int) int {
	todo := min(n, limit-w.pos)
	src := w.pos - dist - 1
	if src >= 0 && todo <= 16 {
		// Short, not wrapping: most matches. Two loads that may
		// overlap, then two stores, when the source ends before the
		// copy starts; else a byte loop, which also repeats an
		// overlapping pattern.
		d := dist + 1
		buf := w.buf[src : w.pos+todo]
		switch {
		case d >= todo && todo >= 8:
			a, b := binary.LittleEndian.Uint64(buf), binary.LittleEndian.Uint64(buf[todo-8:])
			binary.LittleEndian.PutUint64(buf[d:], a)
			binary.LittleEndian.PutUint64(buf[d+todo-8:], b)
		case d >= todo && todo >= 4:
			a, b := binary.LittleEndian.Uint32(buf), binary.LittleEndian.Uint32(buf[todo-4:])
			binary.LittleEndian.PutUint32(buf[d:], a)
			binary.LittleEndian.PutUint32(buf[d+todo-4:], b)
		default:
			for i := range todo {
				buf[d+i] = buf[i]
			}
		}
		w.pos += todo
		w.full = max(w.full, w.pos)
		return n - todo
	}
	if src < 0 {
		src += len(w.buf)
	}
	left := todo
	for left > 0 {
		chunk := min(left, len(w.buf)-src)
		if dist+1 >= chunk {
			copy(w.buf[w.pos:w.pos+chunk], w.buf[src:src+chunk])
		} else {
			// Overlapping: the copy repeats the pattern it makes.
			for i := range chunk {
				w.buf[w.pos+i] = w.buf[src+i]
			}
		}
		w.pos += chunk
		left -= chunk
		src += chunk
		if src == len(w.buf) {
			src = 0
		}
	}
	if w.full < w.pos {
		w.full = w.pos
	}
	return n - todo
}

// uncompressed copies b, which fits before the buffer's end, in.
func (w *window) uncompressed(b []byte) {
	copy(w.buf[w.pos:], b)
	w.pos += len(b)
	if w.full < w.pos {
		w.full = w.pos
	}
}

// wrap makes room once everything before pos was read out and pos
// reached the buffer's end: the buffer grows while it is smaller than
// the dictionary (it has not wrapped yet), then pos starts again at its
// beginning.
func (w *window) wrap() {
	if w.pos < len(w.buf) || w.start < w.pos {
		return
	}
	if len(w.buf) < w.size {
		n := min(2*len(w.buf), w.size)
		if cap(w.buf) >= n {
			w.buf = w.buf[:n]
		} else {
			grown := make([]byte, n)
			copy(grown, w.buf)
			w.buf = grown
		}
		return
	}
	w.pos, w.start = 0, 0
}
