package xz

import "io"

// maxDictSize bounds the dictionary a file may ask for (xz -9e uses
// 64 MiB; the format allows 4 GiB).
const maxDictSize = 1536 << 20

// dictSize reads an LZMA2 filter's property byte.
func dictSize(b byte) (int, error) {
	if b > 40 {
		return 0, errCorrupt
	}
	if b == 40 {
		return maxDictSize, nil
	}
	return min(int(2|b&1)<<(b/2+11), maxDictSize), nil
}

// byteReader is what LZMA2 data is read from.
type byteReader interface {
	io.Reader
	io.ByteReader
}

// lzma2Reader decodes one LZMA2 stream (a block's data) from in.
type lzma2Reader struct {
	in    byteReader
	w     window
	z     lzma
	rc    rangeDecoder
	chunk *chunkBuf // compressed bytes of the current chunk, and room for the range decoder's padding

	left         int  // uncompressed bytes left in the current chunk
	uncompressed bool // whether the current chunk is stored
	props        bool // whether properties were given
	started      bool // whether the dictionary was reset once
	eof          bool
}

func (r *lzma2Reader) reset(in byteReader, dict int) {
	r.in = in
	r.w.reset(dict)
	r.left, r.uncompressed, r.props, r.started, r.eof = 0, false, false, false, false
}

func (r *lzma2Reader) Read(p []byte) (int, error) {
	for {
		w := &r.w
		if w.start < w.pos {
			n := copy(p, w.buf[w.start:w.pos])
			w.start += n
			return n, nil
		}
		if r.eof {
			return 0, io.EOF
		}
		w.wrap()
		if r.left == 0 {
			if err := r.nextChunk(); err != nil {
				return 0, err
			}
			continue
		}
		if err := r.step(); err != nil {
			return 0, err
		}
	}
}

// decodeAll decodes a whole LZMA2 stream from in into out, whose size
// is what the stream must decode to, used as the window.
func (r *lzma2Reader) decodeAll(in byteReader, dict int, out []byte) error {
	r.in = in
	r.w = window{buf: out, flat: true}
	r.w.reset(dict)
	r.left, r.uncompressed, r.props, r.started, r.eof = 0, false, false, false, false
	for {
		if r.left == 0 {
			if err := r.nextChunk(); err != nil {
				return err
			}
			if r.eof {
				break
			}
			continue
		}
		if r.w.pos == len(r.w.buf) {
			return errCorrupt // more data than said
		}
		if err := r.step(); err != nil {
			return err
		}
	}
	if r.w.pos != len(r.w.buf) {
		return errCorrupt // less data than said
	}
	return nil
}

// step decodes the current chunk's data up to the window's end.
func (r *lzma2Reader) step() error {
	w := &r.w
	limit := min(len(w.buf), w.pos+r.left)
	before := w.pos
	if r.uncompressed {
		if _, err := io.ReadFull(r.in, w.buf[w.pos:limit]); err != nil {
			return unexpected(err)
		}
		w.uncompressed(w.buf[w.pos:limit])
	} else if err := r.z.decode(&r.rc, w, limit); err != nil {
		return err
	}
	r.left -= w.pos - before
	if r.left == 0 && !r.uncompressed && (!r.rc.finished() || r.z.pending != 0) {
		return errCorrupt
	}
	return nil
}

// nextChunk reads a chunk's header, and a compressed chunk's bytes.
func (r *lzma2Reader) nextChunk() error {
	control, err := r.in.ReadByte()
	if err != nil {
		return unexpected(err)
	}
	if control == 0 {
		r.eof = true
		return nil
	}
	var hdr [5]byte
	switch {
	case control == 1 || control == 2:
		if _, err := io.ReadFull(r.in, hdr[:2]); err != nil {
			return unexpected(err)
		}
		if control == 1 {
			// As liblzma: after a dictionary reset, the next LZMA chunk
			// sets new properties, and so resets the state, whose
			// distances point into the dictionary that went.
			r.w.reset(r.w.size)
			r.started, r.props = true, false
		} else if !r.started {
			return errCorrupt
		}
		r.uncompressed, r.left = true, int(hdr[0])<<8|int(hdr[1])+1
		return nil
	case control < 0x80:
		return errCorrupt
	}
	reset := control >> 5 & 3
	n := 4
	if reset >= 2 {
		n = 5
	}
	if _, err := io.ReadFull(r.in, hdr[:n]); err != nil {
		return unexpected(err)
	}
	switch {
	case reset == 3:
		r.w.reset(r.w.size)
		r.started = true
	case !r.started:
		return errCorrupt
	}
	if reset >= 2 {
		if err := r.z.setProps(hdr[4]); err != nil {
			return err
		}
		r.props = true
	} else if !r.props {
		return errCorrupt
	}
	if reset >= 1 {
		r.z.reset()
	}
	r.uncompressed = false
	r.left = int(control&0x1F)<<16 | int(hdr[0])<<8 | int(hdr[1]) + 1
	packed := int(hdr[2])<<8 | int(hdr[3]) + 1
	if r.chunk == nil {
		r.chunk = new(chunkBuf)
	}
	if _, err := io.ReadFull(r.in, r.chunk[:packed]); err != nil {
		return unexpected(err)
	}
	clear(r.chunk[packed : packed+rcPadding])
	return r.rc.init(r.chunk, packed)
}

// unexpected turns the end of the input inside a structure into
// io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
