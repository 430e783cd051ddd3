package xz

import "errors"

// errCorrupt is what corrupt LZMA data gets; the container reader adds
// where it was found.
var errCorrupt = errors.New("corrupt LZMA2 data")

// The LZMA model's sizes.
const (
	states         = 12
	posStatesMax   = 1 << 4
	lenLowSymbols  = 8
	lenMidSymbols  = 8
	lenHighSymbols = 256
	lenStates      = 4
	distSlots      = 64
	endPosModel    = 14
	fullDistances  = 128
	alignBits      = 4
	matchMinLen    = 2
	probInit       = 1 << 10
	probBits       = 11
	moveBits       = 5
	topValue       = 1 << 24
	literalCoders  = 0x300
)

// rangeDecoder reads one LZMA chunk's compressed bytes, all in memory,
// followed by rcPadding zero bytes. A decoding step takes one byte per
// bit at most, and decode starts a step only within the chunk's bytes,
// so that the padding is all a corrupt chunk reads past its end.
type rangeDecoder struct {
	in   *chunkBuf // the chunk, then the padding
	end  int       // the chunk's length
	i    int
	rng  uint32
	code uint32
}

// chunkBuf holds a chunk's compressed bytes (at most 64 KiB) and the
// padding; its size, a power of two, lets the range decoder index it
// with a mask in place of a bounds check.
type chunkBuf [1 << 17]byte

const chunkMask = len(chunkBuf{}) - 1

// rcPadding is more than the bits of any one step of the decoder (a
// match with the longest distance takes fewer than 64).
const rcPadding = 128

// init starts on a chunk, in[:end] (in holding the padding after):
// a zero byte, then the code's four bytes.
func (rc *rangeDecoder) init(in *chunkBuf, end int) error {
	if end < 5 || in[0] != 0 {
		return errCorrupt
	}
	rc.in, rc.end, rc.i = in, end, 5
	rc.rng = 0xFFFFFFFF
	rc.code = uint32(in[1])<<24 | uint32(in[2])<<16 | uint32(in[3])<<8 | uint32(in[4])
	return nil
}

// finished says whether the chunk's bytes were used exactly, as a sound
// chunk's are.
func (rc *rangeDecoder) finished() bool { return rc.i == rc.end && rc.code == 0 }

// The decoding functions below take the range decoder's registers (rng,
// code, and i, the next byte's index in the chunk, in) as arguments and
// return them, so that the compiler keeps them in CPU registers from
// one bit to the next, where methods on *rangeDecoder would load and
// store them at every bit.

// decodeBit decodes one bit of probability prob, read from p, and
// updates p. It returns a mask, all ones when the bit is 0, and no
// branch depends on the bit's value: no predictor guesses the bits of
// compressed data, and a mispredicted branch costs more than the few
// operations that compute both ways.
func decodeBit(p *uint16, prob uint32, in *chunkBuf, rng, code uint32, i int) (uint32, uint32, uint32, int) {
	bound := (rng >> probBits) * prob
	zero := uint32((uint64(code) - uint64(bound)) >> 32)
	// On a 0, prob += (1<<probBits - prob) >> moveBits; on a 1,
	// prob -= prob >> moveBits. Both are prob -= (prob - t) >> moveBits
	// with t = 0 on a 1 and t = 1<<probBits - 31 on a 0: the shift of
	// the negative prob - t, rounding down, is then minus the shift of
	// 1<<probBits - prob. Shifted as a uint32 and kept to 16 bits, it
	// is the same as shifted signed.
	*p = uint16(prob - (prob-zero&(1<<probBits-31))>>moveBits)
	rng = bound&zero | (rng-bound)&^zero
	code -= bound &^ zero
	if rng < topValue {
		rng <<= 8
		code = code<<8 | uint32(in[i&chunkMask])
		i++
	}
	return zero, rng, code, i
}

// bit decodes one bit of probability *p, and returns it.
func bit(p *uint16, in *chunkBuf, rng, code uint32, i int) (uint32, uint32, uint32, int) {
	zero, rng, code, i := decodeBit(p, uint32(*p), in, rng, code, i)
	return zero + 1, rng, code, i
}

// tree decodes a bits-bit symbol, most significant bit first.
func tree(probs []uint16, bits uint, in *chunkBuf, rng, code uint32, i int) (uint32, uint32, uint32, int) {
	m := uint32(1)
	for range bits {
		var zero uint32
		p := &probs[m]
		zero, rng, code, i = decodeBit(p, uint32(*p), in, rng, code, i)
		m = m<<1 | (zero + 1)
	}
	return m - 1<<bits, rng, code, i
}

// reverse decodes a bits-bit symbol, least significant bit first.
func reverse(probs []uint16, bits uint, in *chunkBuf, rng, code uint32, i int) (uint32, uint32, uint32, int) {
	m, sym := uint32(1), uint32(0)
	for k := range bits {
		var zero uint32
		p := &probs[m]
		zero, rng, code, i = decodeBit(p, uint32(*p), in, rng, code, i)
		m = m<<1 | (zero + 1)
		sym |= (zero + 1) << k
	}
	return sym, rng, code, i
}

// direct decodes bits bits of equal probability.
func direct(bits uint, in *chunkBuf, rng, code uint32, i int) (uint32, uint32, uint32, int) {
	var v uint32
	for range bits {
		rng >>= 1
		// code >= rng: subtract, and set the bit, without a branch.
		t := (code - rng) >> 31 // 1 when code < rng
		code -= rng & (t - 1)
		v = v<<1 | (1 - t)
		if rng < topValue {
			rng <<= 8
			code = code<<8 | uint32(in[i&chunkMask])
			i++
		}
	}
	return v, rng, code, i
}

// literal decodes a literal with probs; match, when the literal follows
// a match, is the byte at the last match's distance, with bit 8 set.
// It is a function of its own so that the compiler keeps its few
// values in registers.
func literal(probs *[literalCoders]uint16, match uint32, in *chunkBuf, rng, code uint32, i int) (uint32, uint32, uint32, int) {
	sym := uint32(1)
	var b uint32
	if match != 0 {
		for sym < 0x100 {
			mbit := match >> 7 & 1
			match <<= 1
			b, rng, code, i = bit(&probs[(1+mbit)<<8+sym], in, rng, code, i)
			sym = sym<<1 | b
			if mbit != b {
				break
			}
		}
	}
	for sym < 0x100 {
		var zero uint32
		p := &probs[sym]
		zero, rng, code, i = decodeBit(p, uint32(*p), in, rng, code, i)
		sym = sym<<1 | (zero + 1)
	}
	return sym, rng, code, i
}

// lenDecoder decodes match lengths, less matchMinLen.
type lenDecoder struct {
	choice, choice2 uint16
	low             [posStatesMax][lenLowSymbols]uint16
	mid             [posStatesMax][lenMidSymbols]uint16
	high            [lenHighSymbols]uint16
}

func (l *lenDecoder) reset() {
	l.choice, l.choice2 = probInit, probInit
	for i := range l.low {
		for j := range l.low[i] {
			l.low[i][j], l.mid[i][j] = probInit, probInit
		}
	}
	for i := range l.high {
		l.high[i] = probInit
	}
}

func (l *lenDecoder) decode(posState uint32, in *chunkBuf, rng, code uint32, i int) (uint32, uint32, uint32, int) {
	var b uint32
	if b, rng, code, i = bit(&l.choice, in, rng, code, i); b == 0 {
		return tree(l.low[posState][:], 3, in, rng, code, i)
	}
	var n uint32
	if b, rng, code, i = bit(&l.choice2, in, rng, code, i); b == 0 {
		n, rng, code, i = tree(l.mid[posState][:], 3, in, rng, code, i)
		return lenLowSymbols + n, rng, code, i
	}
	n, rng, code, i = tree(l.high[:], 8, in, rng, code, i)
	return lenLowSymbols + lenMidSymbols + n, rng, code, i
}

// lzma is the LZMA decoder's state, kept from chunk to chunk of an
// LZMA2 stream unless a chunk resets it.
type lzma struct {
	lc, lp, pb uint
	state      uint32
	rep        [4]uint32
	// pending is what is left of a match the window's limit cut.
	pending int

	isMatch     [states][posStatesMax]uint16
	isRep       [states]uint16
	isRepG0     [states]uint16
	isRepG1     [states]uint16
	isRepG2     [states]uint16
	isRep0Long  [states][posStatesMax]uint16
	distSlot    [lenStates][distSlots]uint16
	distSpecial [fullDistances - endPosModel + 1]uint16
	align       [1 << alignBits]uint16
	matchLen    lenDecoder
	repLen      lenDecoder
	literal     []uint16
}

// setProps sets lc, lp and pb from an LZMA2 properties byte.
func (z *lzma) setProps(b byte) error {
	if b >= 9*5*5 {
		return errCorrupt
	}
	z.lc, z.lp, z.pb = uint(b%9), uint(b/9%5), uint(b/45)
	if z.lc+z.lp > 4 {
		return errCorrupt
	}
	if n := literalCoders << (z.lc + z.lp); cap(z.literal) >= n {
		z.literal = z.literal[:n]
	} else {
		z.literal = make([]uint16, n)
	}
	return nil
}

// reset starts the model afresh.
func (z *lzma) reset() {
	z.state, z.rep, z.pending = 0, [4]uint32{}, 0
	for i := range z.isMatch {
		for j := range z.isMatch[i] {
			z.isMatch[i][j], z.isRep0Long[i][j] = probInit, probInit
		}
		z.isRep[i], z.isRepG0[i], z.isRepG1[i], z.isRepG2[i] = probInit, probInit, probInit, probInit
	}
	for i := range z.distSlot {
		for j := range z.distSlot[i] {
			z.distSlot[i][j] = probInit
		}
	}
	for i := range z.distSpecial {
		z.distSpecial[i] = probInit
	}
	for i := range z.align {
		z.align[i] = probInit
	}
	for i := range z.literal {
		z.literal[i] = probInit
	}
	z.matchLen.reset()
	z.repLen.reset()
}

// decode decodes into w until its position reaches limit or the range
// decoder's chunk is used up (the caller bounds limit by the chunk's
// uncompressed size).
func (z *lzma) decode(rc *rangeDecoder, w *window, limit int) error {
	if z.pending > 0 {
		z.pending = w.repeat(int(z.rep[0]), z.pending, limit)
	}
	pbMask := uint32(1)<<z.pb - 1
	lpMask := uint32(1)<<z.lp - 1
	lc := z.lc
	in, end := rc.in, rc.end
	rng, code, i := rc.rng, rc.code, rc.i
	state := z.state
	var b uint32
	var err error
loop:
	for w.pos < limit {
		if i > end {
			break
		}
		posState := uint32(w.pos) & pbMask
		if b, rng, code, i = bit(&z.isMatch[state][posState], in, rng, code, i); b == 0 {
			var prev uint32
			if w.full > 0 {
				prev = uint32(w.byteAt(0))
			}
			base := literalCoders * ((uint32(w.pos)&lpMask)<<lc + prev>>(8-lc))
			probs := (*[literalCoders]uint16)(z.literal[base : base+literalCoders])
			var match uint32
			if state >= 7 {
				match = uint32(w.byteAt(int(z.rep[0]))) | 0x100
			}
			var sym uint32
			sym, rng, code, i = literal(probs, match, in, rng, code, i)
			w.put(byte(sym))
			switch {
			case state < 4:
				state = 0
			case state < 10:
				state -= 3
			default:
				state -= 6
			}
			continue
		}
		var n uint32
		if b, rng, code, i = bit(&z.isRep[state], in, rng, code, i); b != 0 {
			if w.full == 0 {
				err = errCorrupt
				break loop
			}
			if b, rng, code, i = bit(&z.isRepG0[state], in, rng, code, i); b == 0 {
				if b, rng, code, i = bit(&z.isRep0Long[state][posState], in, rng, code, i); b == 0 {
					if int(z.rep[0]) >= w.full {
						err = errCorrupt
						break loop
					}
					state = 9 + state/7*2 // 9, or 11 after a match
					w.put(w.byteAt(int(z.rep[0])))
					continue
				}
			} else {
				var dist uint32
				if b, rng, code, i = bit(&z.isRepG1[state], in, rng, code, i); b == 0 {
					dist = z.rep[1]
				} else {
					if b, rng, code, i = bit(&z.isRepG2[state], in, rng, code, i); b == 0 {
						dist = z.rep[2]
					} else {
						dist = z.rep[3]
						z.rep[3] = z.rep[2]
					}
					z.rep[2] = z.rep[1]
				}
				z.rep[1] = z.rep[0]
				z.rep[0] = dist
			}
			n, rng, code, i = z.repLen.decode(posState, in, rng, code, i)
			state = 8 + state/7*3 // 8, or 11 after a match
		} else {
			z.rep[3], z.rep[2], z.rep[1] = z.rep[2], z.rep[1], z.rep[0]
			n, rng, code, i = z.matchLen.decode(posState, in, rng, code, i)
			state = 7 + state/7*3 // 7, or 10 after a match
			var dist uint32
			dist, rng, code, i = z.distance(n, in, rng, code, i)
			// An end marker, which LZMA2 has no use for, or a
			// distance past the dictionary (which a flat window
			// would hold).
			if dist == 0xFFFFFFFF || int(dist) >= w.size {
				err = errCorrupt
				break
			}
			z.rep[0] = dist
		}
		if int(z.rep[0]) >= w.full {
			err = errCorrupt
			break
		}
		z.pending = w.repeat(int(z.rep[0]), int(n)+matchMinLen, limit)
	}
	rc.rng, rc.code, rc.i = rng, code, i
	z.state = state
	if i > end {
		return errCorrupt
	}
	return err
}

// distance decodes a match's distance (less one) for a match of length
// n+matchMinLen.
func (z *lzma) distance(n uint32, in *chunkBuf, rng, code uint32, i int) (uint32, uint32, uint32, int) {
	var slot uint32
	slot, rng, code, i = tree(z.distSlot[min(n, lenStates-1)][:], 6, in, rng, code, i)
	if slot < 4 {
		return slot, rng, code, i
	}
	bits := uint(slot>>1) - 1
	dist := (2 | slot&1) << bits
	var v uint32
	if slot < endPosModel {
		v, rng, code, i = reverse(z.distSpecial[dist-slot:][:1<<bits], bits, in, rng, code, i)
		return dist + v, rng, code, i
	}
	v, rng, code, i = direct(bits-alignBits, in, rng, code, i)
	dist += v << alignBits
	v, rng, code, i = reverse(z.align[:], alignBits, in, rng, code, i)
	return dist + v, rng, code, i
}
