// Package inflate decompresses gzip streams (RFC 1952 members holding
// RFC 1951 DEFLATE data) faster than compress/flate and
// klauspost/compress/flate, which are what bound the speed of unpacking
// gzip image layers.
//
// The speed comes from the techniques of libdeflate: a 64-bit bit buffer
// refilled eight bytes at a time without branches, decode tables whose
// entries carry the length or distance base and extra-bit count, so a
// match costs two table lookups, and an output buffer that holds the
// 32 KiB window and a megabyte of new output in one slice, so matches are
// copied with word moves and no ring-buffer arithmetic.
package inflate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

const (
	windowSize = 32 << 10
	outSize    = windowSize + 1<<20
	maxMatch   = 258
	// outLimit is where the Huffman loop stops: a match and the 8-byte
	// overrun of the word copy fit after it.
	outLimit = outSize - maxMatch - 8
	inSize   = 64 << 10
	// keepBehind bytes of input are kept before the read position when
	// the input buffer is compacted: the bit buffer may hold them unread.
	keepBehind = 8
)

// The errors do not say "gzip": callers wrap them with what was read.
var (
	// ErrHeader is returned for data that is not a gzip member.
	ErrHeader = errors.New("invalid header")
	// ErrChecksum is returned when a member's CRC-32 or size does not
	// match its data.
	ErrChecksum = errors.New("the CRC-32 or size in the trailer does not match the data")
)

// CorruptError is returned for invalid DEFLATE data: it says what was
// wrong and at which byte of the input. A stream that ends too soon
// fails with io.ErrUnexpectedEOF instead.
type CorruptError struct {
	Offset int64
	What   string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt data at byte %d: %s", e.Offset, e.What)
}

type state int

const (
	stateMember  state = iota // a gzip header comes next
	stateBlock                // a block header comes next
	stateStored               // inside a stored block
	stateHuffman              // inside a Huffman-coded block
	stateTrailer              // the member's trailer comes next
	stateEnd                  // the stream ended
)

// Reader decompresses a gzip stream of one or more members. Its zero
// value is not usable: use NewReader or Reset.
type Reader struct {
	src    io.Reader
	srcErr error // the error src returned, io.EOF at its end

	in        []byte
	ip, inEnd int   // next byte to load into bitbuf; end of valid input
	inBase    int64 // offset in the stream of in[0]
	bitbuf    uint64
	bitsLeft  uint
	pad       uint // zero bytes in bitbuf that are past the end of the input

	out    []byte
	op, rp int // write position; next byte to hand out

	state   state
	final   bool // the current block is the member's last
	stored  int  // bytes left in a stored block
	lit     table
	dist    table
	lens    [288 + 32]uint8
	crc     uint32
	size    uint32 // the member's size modulo 2^32, as the trailer has it
	total   int64  // the member's size
	err     error
	members int
}

// NewReader returns a Reader of the gzip stream r. Like compress/gzip's,
// it reads the first member's header at once, so a stream that is not
// gzip fails here.
func NewReader(r io.Reader) (*Reader, error) {
	z := &Reader{in: make([]byte, inSize), out: make([]byte, outSize)}
	if err := z.Reset(r); err != nil {
		return nil, err
	}
	return z, nil
}

// Reset makes z read the gzip stream r, keeping its buffers.
func (z *Reader) Reset(r io.Reader) error {
	*z = Reader{src: r, in: z.in, out: z.out, lit: table{entries: z.lit.entries}, dist: table{entries: z.dist.entries}}
	if z.in == nil {
		z.in, z.out = make([]byte, inSize), make([]byte, outSize)
	}
	z.op, z.rp = windowSize, windowSize
	if err := z.member(); err != nil {
		z.err = err
		return err
	}
	return nil
}

// Read implements io.Reader.
func (z *Reader) Read(p []byte) (int, error) {
	if err := z.fillOut(); err != nil {
		return 0, err
	}
	n := copy(p, z.out[z.rp:z.op])
	z.rp += n
	return n, nil
}

// WriteTo implements io.WriterTo: it hands out the output buffer, with
// no copy.
func (z *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if err := z.fillOut(); err == io.EOF {
			return total, nil
		} else if err != nil {
			return total, err
		}
		n, err := w.Write(z.out[z.rp:z.op])
		total += int64(n)
		z.rp += n
		if err != nil {
			return total, err
		}
	}
}

// fillOut decodes until there is output not yet handed out, and returns
// io.EOF at the end of the stream or the error that stopped decoding.
func (z *Reader) fillOut() error {
	for z.rp == z.op {
		if z.err != nil {
			return z.err
		}
		if z.state == stateEnd {
			return io.EOF
		}
		if z.op >= outLimit {
			// Keep the window, drop the rest.
			copy(z.out, z.out[z.op-windowSize:z.op])
			z.op, z.rp = windowSize, windowSize
		}
		z.err = z.step()
	}
	return nil
}

// step decodes until the output buffer is nearly full or something other
// than decompressed data comes next.
func (z *Reader) step() error {
	switch z.state {
	case stateMember:
		return z.member()
	case stateBlock:
		return z.blockHeader()
	case stateStored:
		return z.storedData()
	case stateHuffman:
		return z.huffman()
	case stateTrailer:
		return z.trailer()
	}
	return nil
}

// corrupt returns a CorruptError at the current bit position, or the
// end-of-input error if the bits that made no sense were past the end.
func (z *Reader) corrupt(what string) error {
	if z.overread() {
		return z.inputErr()
	}
	return &CorruptError{Offset: z.inBase + int64(z.ip) - int64(z.bitsLeft/8), What: what}
}

// fill reads more input, keeping what is unread. It returns false when
// the input has ended (or failed) with no byte added.
func (z *Reader) fill() bool {
	if z.srcErr != nil {
		return false
	}
	if z.ip > keepBehind {
		drop := z.ip - keepBehind
		copy(z.in, z.in[drop:z.inEnd])
		z.inBase += int64(drop)
		z.ip -= drop
		z.inEnd -= drop
	}
	added := false
	for z.inEnd < len(z.in) && z.srcErr == nil {
		n, err := z.src.Read(z.in[z.inEnd:])
		z.inEnd += n
		if n > 0 {
			added = true
		}
		if err != nil {
			z.srcErr = err
		}
		if z.inEnd-z.ip >= 8 {
			break
		}
	}
	return added
}

// refillSlow fills the bit buffer when fewer than 8 bytes of input are
// buffered: from more input, or past the end with zero bytes counted in
// pad (reading them is an error that the callers detect with overread).
func (z *Reader) refillSlow() {
	if z.inEnd-z.ip < 8 {
		z.fill()
	}
	if z.inEnd-z.ip >= 8 && z.pad == 0 {
		z.bitbuf |= binary.LittleEndian.Uint64(z.in[z.ip:]) << z.bitsLeft
		z.ip += int(63-z.bitsLeft) >> 3
		z.bitsLeft |= 56
		return
	}
	for z.bitsLeft <= 56 {
		if z.ip < z.inEnd && z.pad == 0 {
			z.bitbuf |= uint64(z.in[z.ip]) << z.bitsLeft
			z.ip++
		} else {
			z.pad++
		}
		z.bitsLeft += 8
	}
}

// overread tells whether bits past the end of the input were consumed.
func (z *Reader) overread() bool { return z.bitsLeft < z.pad*8 }

// inputErr is the error for input that ended too soon.
func (z *Reader) inputErr() error {
	if z.srcErr != nil && z.srcErr != io.EOF {
		return z.srcErr
	}
	return io.ErrUnexpectedEOF
}

// bits consumes and returns the next n (at most 32) bits.
func (z *Reader) bits(n uint) (uint32, error) {
	if z.bitsLeft < n+z.pad*8 || z.bitsLeft < 32 {
		z.refillSlow()
		if z.bitsLeft < n+z.pad*8 {
			return 0, z.inputErr()
		}
	}
	v := uint32(z.bitbuf & (1<<n - 1))
	z.bitbuf >>= n
	z.bitsLeft -= n
	return v, nil
}

// alignedBytes drops the bits up to the next byte boundary and gives the
// whole bytes still in the bit buffer back to the input, so that byte
// reads start there.
func (z *Reader) alignedBytes() error {
	if z.overread() {
		return z.inputErr()
	}
	z.bitsLeft -= z.bitsLeft % 8
	back := int(z.bitsLeft/8) - int(z.pad)
	z.ip -= back
	z.bitbuf, z.bitsLeft, z.pad = 0, 0, 0
	return nil
}

// readBytes reads len(p) bytes at the byte position; the bit buffer must
// be empty (after alignedBytes).
func (z *Reader) readBytes(p []byte) error {
	for len(p) > 0 {
		if z.ip == z.inEnd && !z.fill() && z.ip == z.inEnd {
			return z.inputErr()
		}
		n := copy(p, z.in[z.ip:z.inEnd])
		z.ip += n
		p = p[n:]
	}
	return nil
}

// member reads a gzip member header (RFC 1952 2.3); at the end of the
// input after at least one member, the stream ends.
func (z *Reader) member() error {
	if err := z.alignedBytes(); err != nil {
		return err
	}
	if z.members > 0 && z.ip == z.inEnd && !z.fill() && z.ip == z.inEnd {
		if z.srcErr != io.EOF {
			return z.srcErr
		}
		z.state = stateEnd
		return nil
	}
	var h [10]byte
	if err := z.readBytes(h[:]); err != nil {
		if z.members == 0 && err == io.ErrUnexpectedEOF && z.inBase+int64(z.ip) == 0 {
			return io.EOF
		}
		return err
	}
	if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 {
		return ErrHeader
	}
	// As compress/gzip (and klauspost's gzip) read it: reserved flag bits
	// are ignored (GNU gzip refuses them), a name or comment is at most
	// 511 bytes, and the header CRC, when there is one, must match.
	hcrc := crc32.Update(0, crc32.IEEETable, h[:])
	read := func(p []byte) error {
		if err := z.readBytes(p); err != nil {
			return err
		}
		hcrc = crc32.Update(hcrc, crc32.IEEETable, p)
		return nil
	}
	flags := h[3]
	if flags&0x04 != 0 { // FEXTRA
		var l [2]byte
		if err := read(l[:]); err != nil {
			return err
		}
		extra := make([]byte, binary.LittleEndian.Uint16(l[:]))
		if err := read(extra); err != nil {
			return err
		}
	}
	for _, f := range []byte{0x08, 0x10} { // FNAME, FCOMMENT: zero-terminated
		if flags&f == 0 {
			continue
		}
		var b [1]byte
		for n := 0; ; n++ {
			if n == 512 {
				return ErrHeader
			}
			if err := read(b[:]); err != nil {
				return err
			}
			if b[0] == 0 {
				break
			}
		}
	}
	if flags&0x02 != 0 { // FHCRC
		var c [2]byte
		if err := z.readBytes(c[:]); err != nil {
			return err
		}
		if binary.LittleEndian.Uint16(c[:]) != uint16(hcrc) {
			return ErrHeader
		}
	}
	z.members++
	z.crc, z.size, z.total = 0, 0, 0
	z.state = stateBlock
	return nil
}

// trailer checks the member's CRC-32 and size.
func (z *Reader) trailer() error {
	if err := z.alignedBytes(); err != nil {
		return err
	}
	var t [8]byte
	if err := z.readBytes(t[:]); err != nil {
		return err
	}
	if binary.LittleEndian.Uint32(t[:4]) != z.crc || binary.LittleEndian.Uint32(t[4:]) != z.size {
		return ErrChecksum
	}
	z.state = stateMember
	return nil
}

// produced accounts for output written from start to z.op.
func (z *Reader) produced(start int) {
	z.crc = crc32.Update(z.crc, crc32.IEEETable, z.out[start:z.op])
	z.size += uint32(z.op - start)
	z.total += int64(z.op - start)
}

// blockHeader reads a block's header and, for a dynamic block, its codes.
func (z *Reader) blockHeader() error {
	h, err := z.bits(3)
	if err != nil {
		return err
	}
	z.final = h&1 != 0
	switch h >> 1 {
	case 0:
		if err := z.alignedBytes(); err != nil {
			return err
		}
		var l [4]byte
		if err := z.readBytes(l[:]); err != nil {
			return err
		}
		n, nn := binary.LittleEndian.Uint16(l[:2]), binary.LittleEndian.Uint16(l[2:])
		if n != ^nn {
			return z.corrupt("stored block length does not match its complement")
		}
		z.stored = int(n)
		z.state = stateStored
		return nil
	case 1:
		z.fixedCodes()
	case 2:
		if err := z.dynamicCodes(); err != nil {
			return err
		}
	default:
		return z.corrupt("reserved block type")
	}
	z.state = stateHuffman
	return nil
}

// endBlock moves on after a block.
func (z *Reader) endBlock() {
	if z.final {
		z.state = stateTrailer
	} else {
		z.state = stateBlock
	}
}

func (z *Reader) storedData() error {
	for z.stored > 0 && z.op < outLimit {
		if z.ip == z.inEnd && !z.fill() && z.ip == z.inEnd {
			return z.inputErr()
		}
		n := copy(z.out[z.op:min(z.op+z.stored, outLimit)], z.in[z.ip:z.inEnd])
		start := z.op
		z.op += n
		z.ip += n
		z.stored -= n
		z.produced(start)
	}
	if z.stored == 0 {
		z.endBlock()
	}
	return nil
}

func (z *Reader) fixedCodes() {
	l := z.lens[:288+32]
	for i := range 144 {
		l[i] = 8
	}
	for i := 144; i < 256; i++ {
		l[i] = 9
	}
	for i := 256; i < 280; i++ {
		l[i] = 7
	}
	for i := 280; i < 288; i++ {
		l[i] = 8
	}
	for i := 288; i < 288+32; i++ {
		l[i] = 5
	}
	// The fixed codes are complete: building them cannot fail.
	_ = z.lit.build(l[:288], litLenSyms, litBits)
	_ = z.dist.build(l[288:], distSyms, distBits)
}

// The order of the code length code lengths (RFC 1951 3.2.7).
var codeLenOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

func (z *Reader) dynamicCodes() error {
	h, err := z.bits(14)
	if err != nil {
		return err
	}
	nlit, ndist, nclen := int(h&31)+257, int(h>>5&31)+1, int(h>>10)+4
	if nlit > 286 {
		return z.corrupt(fmt.Sprintf("%d literal/length codes (at most 286)", nlit))
	}
	if ndist > 30 {
		return z.corrupt(fmt.Sprintf("%d distance codes (at most 30)", ndist))
	}
	var clens [19]uint8
	for i := range nclen {
		v, err := z.bits(3)
		if err != nil {
			return err
		}
		clens[codeLenOrder[i]] = uint8(v)
	}
	var cl table
	if err := cl.build(clens[:], codeLenSyms, 7); err != nil {
		return z.corrupt("code length code: " + err.Error())
	}
	lens := z.lens[:nlit+ndist]
	for i := 0; i < len(lens); {
		if z.bitsLeft < 32 {
			z.refillSlow()
		}
		e := cl.entries[z.bitbuf&(1<<cl.bits-1)]
		if e&kindMask == kindInvalid {
			return z.corrupt("invalid code length code")
		}
		n := uint(e & 31)
		z.bitbuf >>= n
		z.bitsLeft -= n
		if z.overread() {
			return z.inputErr()
		}
		sym := e >> 16
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		var rep uint32
		var val uint8
		switch sym {
		case 16:
			if i == 0 {
				return z.corrupt("code length repeat with no previous length")
			}
			r, err := z.bits(2)
			if err != nil {
				return err
			}
			rep, val = 3+r, lens[i-1]
		case 17:
			r, err := z.bits(3)
			if err != nil {
				return err
			}
			rep = 3 + r
		default:
			r, err := z.bits(7)
			if err != nil {
				return err
			}
			rep = 11 + r
		}
		if i+int(rep) > len(lens) {
			return z.corrupt("code lengths overflow the codes")
		}
		for range rep {
			lens[i] = val
			i++
		}
	}
	if lens[256] == 0 {
		return z.corrupt("no end-of-block code")
	}
	if err := z.lit.build(lens[:nlit], litLenSyms, litBits); err != nil {
		return z.corrupt("literal/length code: " + err.Error())
	}
	if err := z.dist.build(lens[nlit:], distSyms, distBits); err != nil {
		return z.corrupt("distance code: " + err.Error())
	}
	return nil
}

// huffman decodes the current block until it ends or the output buffer
// is nearly full. It works on local copies of the hot state.
func (z *Reader) huffman() error {
	var (
		in       = z.in
		ip       = z.ip
		inEnd    = z.inEnd
		out      = z.out
		op       = z.op
		start    = op
		bitbuf   = z.bitbuf
		bitsLeft = z.bitsLeft
		lit      = z.lit.entries
		dist     = z.dist.entries
		litMask  = uint64(1)<<z.lit.bits - 1
		distMask = uint64(1)<<z.dist.bits - 1
	)
	save := func() {
		z.ip, z.op, z.bitbuf, z.bitsLeft = ip, op, bitbuf, bitsLeft
		z.produced(start)
	}
	for op < outLimit {
		// Refill: at least 56 bits, enough for a length and a distance
		// with their extra bits (15+5+15+13), or five short literals.
		if ip+8 <= inEnd && z.pad == 0 {
			bitbuf |= binary.LittleEndian.Uint64(in[ip:]) << bitsLeft
			ip += int(63-bitsLeft) >> 3
			bitsLeft |= 56
		} else {
			z.ip, z.bitbuf, z.bitsLeft = ip, bitbuf, bitsLeft
			z.refillSlow()
			in, ip, inEnd, bitbuf, bitsLeft = z.in, z.ip, z.inEnd, z.bitbuf, z.bitsLeft
			if bitsLeft < z.pad*8 {
				// The last symbol was made of bits past the end.
				return z.inputErr()
			}
		}
		e := lit[bitbuf&litMask]
		if e&kindMask == kindLiteral {
			// Literals whose codes fit the primary table take at most
			// 11 bits: four of them and a look-up fit in 56 bits.
			for range 4 {
				n := uint(e & 31)
				bitbuf >>= n
				bitsLeft -= n
				out[op] = byte(e >> 16)
				op++
				e = lit[bitbuf&litMask]
				if e&kindMask != kindLiteral {
					break
				}
			}
			continue
		}
		if e&kindMask == kindLink {
			bitbuf >>= litBits
			bitsLeft -= litBits
			e = lit[e>>16+uint32(bitbuf&(1<<(e>>5&15)-1))]
		}
		n := uint(e & 31)
		bitbuf >>= n
		bitsLeft -= n
		switch e & kindMask {
		case kindLiteral:
			out[op] = byte(e >> 16)
			op++
			continue
		case kindLength:
		case kindEnd:
			save()
			if z.overread() {
				return z.inputErr()
			}
			z.endBlock()
			return nil
		default:
			save()
			return z.corrupt("invalid literal/length code")
		}
		extra := uint(e >> 5 & 15)
		length := int(e>>16) + int(bitbuf&(1<<extra-1))
		bitbuf >>= extra
		bitsLeft -= extra

		e = dist[bitbuf&distMask]
		if e&kindMask == kindLink {
			bitbuf >>= distBits
			bitsLeft -= distBits
			e = dist[e>>16+uint32(bitbuf&(1<<(e>>5&15)-1))]
		}
		if e&kindMask != kindDist {
			save()
			return z.corrupt("invalid distance code")
		}
		n = uint(e & 31)
		bitbuf >>= n
		bitsLeft -= n
		extra = uint(e >> 5 & 15)
		d := int(e>>16) + int(bitbuf&(1<<extra-1))
		bitbuf >>= extra
		bitsLeft -= extra
		if int64(d) > z.total+int64(op-start) {
			save()
			return z.corrupt(fmt.Sprintf("distance %d reaches before the start of the data", d))
		}
		src := op - d
		if d >= 8 {
			// Word copies: each reads only bytes already written, and
			// the output buffer has room for the overrun.
			binary.LittleEndian.PutUint64(out[op:], binary.LittleEndian.Uint64(out[src:]))
			for i := 8; i < length; i += 8 {
				binary.LittleEndian.PutUint64(out[op+i:], binary.LittleEndian.Uint64(out[src+i:]))
			}
		} else {
			for i := range length {
				out[op+i] = out[src+i]
			}
		}
		op += length
	}
	save()
	if z.overread() {
		return z.inputErr()
	}
	return nil
}
