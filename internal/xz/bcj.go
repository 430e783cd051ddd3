package xz

import "io"

// x86Reader undoes the BCJ x86 filter on what r gives: the relative
// addresses of CALL and JMP instructions, which the filter made absolute
// so that LZMA2 finds them alike, are made relative again.
type x86Reader struct {
	r        io.Reader
	buf      []byte
	conv     int // buf[:conv] is converted, for the reader
	n        int // buf[:n] holds data
	pos      uint32
	prevMask uint32
	prevPos  uint32
	eof      bool
}

func newX86Reader(r io.Reader, start uint32) *x86Reader {
	return &x86Reader{r: r, buf: make([]byte, 1<<16), pos: start, prevPos: start - 5}
}

func (x *x86Reader) Read(p []byte) (int, error) {
	for x.conv == 0 {
		if x.eof {
			if x.n == 0 {
				return 0, io.EOF
			}
			x.conv = x.n // the last bytes, too short to convert, as they are
			break
		}
		m, err := x.r.Read(x.buf[x.n:])
		x.n += m
		if err == io.EOF {
			x.eof = true
		} else if err != nil {
			return 0, err
		}
		x.conv = x.convert(x.buf[:x.n])
	}
	n := copy(p, x.buf[:x.conv])
	copy(x.buf, x.buf[n:x.n])
	x.conv -= n
	x.n -= n
	return n, nil
}

// test86 says whether b is the high byte of a near address.
func test86(b byte) bool { return b == 0 || b == 0xFF }

// convert decodes the instructions of b it can, and returns how many
// bytes are done: an instruction that may go on past b waits for more.
func (x *x86Reader) convert(b []byte) int {
	allowed := [8]bool{true, true, true, false, true, false, false, false}
	bitNumber := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	if len(b) < 5 {
		return 0
	}
	prevMask, prevPos := x.prevMask, x.prevPos
	if x.pos-prevPos > 5 {
		prevPos = x.pos - 5
	}
	limit := len(b) - 5
	i := 0
	for i <= limit {
		if b[i] != 0xE8 && b[i] != 0xE9 {
			i++
			continue
		}
		offset := x.pos + uint32(i) - prevPos
		prevPos = x.pos + uint32(i)
		if offset > 5 {
			prevMask = 0
		} else {
			for range offset {
				prevMask &= 0x77
				prevMask <<= 1
			}
		}
		c := b[i+4]
		if test86(c) && allowed[prevMask>>1&7] && prevMask>>1 < 0x10 {
			src := uint32(c)<<24 | uint32(b[i+3])<<16 | uint32(b[i+2])<<8 | uint32(b[i+1])
			var dest uint32
			for {
				dest = src - (x.pos + uint32(i) + 5)
				if prevMask == 0 {
					break
				}
				j := bitNumber[prevMask>>1]
				if !test86(byte(dest >> (24 - j*8))) {
					break
				}
				src = dest ^ (1<<(32-j*8) - 1)
			}
			b[i+4] = ^byte(dest>>24&1 - 1)
			b[i+3] = byte(dest >> 16)
			b[i+2] = byte(dest >> 8)
			b[i+1] = byte(dest)
			i += 5
			prevMask = 0
		} else {
			i++
			prevMask |= 1
			if test86(c) {
				prevMask |= 0x10
			}
		}
	}
	x.prevMask, x.prevPos = prevMask, prevPos
	x.pos += uint32(i)
	return i
}
