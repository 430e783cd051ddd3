package inflate

import "errors"

// A decode table maps the next bits of the stream (LSB first,
// as DEFLATE packs them) to an entry. Codes longer than the primary
// table's bits go through a subtable, linked from the primary entry.
//
// An entry is a uint32:
//
//	bits  0-4   bits to consume for the code (for a link: the primary bits)
//	bits  5-8   extra bits that follow the code (lengths and distances)
//	bits  9-11  kind
//	bits 16-31  value: the literal byte, the length or distance base, or
//	            for a link the subtable's first index
//
// For a link, bits 5-8 hold the subtable's index bits instead.
type entry = uint32

const (
	kindLiteral = iota << 9
	kindLength
	kindEnd
	kindLink
	kindInvalid
	kindDist
)

const (
	kindMask   = 7 << 9
	litBits    = 11 // primary bits of literal/length tables
	distBits   = 8  // primary bits of distance tables
	maxCodeLen = 15
)

func mkEntry(codeLen, extra, kind, value uint32) entry {
	return codeLen | extra<<5 | kind | value<<16
}

// table is one decode table: primary entries then subtables.
type table struct {
	bits    uint
	entries []entry
	subBits [1 << litBits]uint8 // scratch for build
	codes   [288]uint32         // scratch for build
}

// symbol describes what a code means, for building a table.
type symbol struct {
	kind, extra, value uint32
}

var (
	errOversubscribed = errors.New("invalid Huffman code: oversubscribed")
	errIncomplete     = errors.New("invalid Huffman code: incomplete")
)

// build fills t for the code lengths lens (0: symbol unused) with what
// each symbol means. Unused table slots decode as invalid.
func (t *table) build(lens []uint8, syms []symbol, primary uint) error {
	var count [maxCodeLen + 1]int
	maxLen := 0
	for _, l := range lens {
		count[l]++
		maxLen = max(maxLen, int(l))
	}
	used := len(lens) - count[0]
	count[0] = 0
	left := 1
	for l := 1; l <= maxCodeLen; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return errOversubscribed
		}
	}
	// As compress/flate: a code must be complete, except an empty one
	// and a single code of length 1.
	if left > 0 && used > 0 && !(used == 1 && maxLen == 1) {
		return errIncomplete
	}
	bits := min(primary, uint(max(maxLen, 1)))
	t.bits = bits
	size := uint32(1) << bits
	var next [maxCodeLen + 1]uint32
	code := uint32(0)
	for l := 1; l <= maxCodeLen; l++ {
		code = (code + uint32(count[l-1])) << 1
		next[l] = code
	}
	// The codes, bit-reversed as they appear in the stream.
	codes := t.codes[:len(lens)]
	for s, l := range lens {
		if l != 0 {
			codes[s] = reverse(next[l], uint(l))
			next[l]++
		}
	}
	// Subtable index bits per primary slot: set by the longest code
	// whose low bits are that slot.
	subBits := t.subBits[:size]
	clear(subBits)
	for s, l := range lens {
		if uint(l) > bits {
			p := codes[s] & (size - 1)
			subBits[p] = max(subBits[p], l-uint8(bits))
		}
	}
	total := size
	for _, b := range subBits {
		if b != 0 {
			total += 1 << b
		}
	}
	if uint32(cap(t.entries)) >= total {
		t.entries = t.entries[:total]
	} else {
		t.entries = make([]entry, total)
	}
	invalid := mkEntry(uint32(bits), 0, kindInvalid, 0)
	for i := range t.entries[:size] {
		t.entries[i] = invalid
	}
	off := size
	for p, b := range subBits {
		if b == 0 {
			continue
		}
		t.entries[p] = mkEntry(uint32(bits), uint32(b), kindLink, off)
		sub := mkEntry(uint32(b), 0, kindInvalid, 0)
		for i := off; i < off+1<<b; i++ {
			t.entries[i] = sub
		}
		off += 1 << b
	}
	for s, l := range lens {
		if l == 0 {
			continue
		}
		rev := codes[s]
		sym := syms[s]
		if uint(l) <= bits {
			e := mkEntry(uint32(l), sym.extra, sym.kind, sym.value)
			for i := rev; i < size; i += 1 << l {
				t.entries[i] = e
			}
			continue
		}
		link := t.entries[rev&(size-1)]
		b := (link >> 5) & 15
		start := link >> 16
		sl := uint32(l) - uint32(bits)
		e := mkEntry(sl, sym.extra, sym.kind, sym.value)
		for i := rev >> bits; i < 1<<b; i += 1 << sl {
			t.entries[start+i] = e
		}
	}
	return nil
}

// reverse returns the low n bits of c in reverse order.
func reverse(c uint32, n uint) uint32 {
	var r uint32
	for i := uint(0); i < n; i++ {
		r = r<<1 | c&1
		c >>= 1
	}
	return r
}

// The meaning of the literal/length and distance symbols (RFC 1951 3.2.5).
var (
	litLenSyms = func() []symbol {
		s := make([]symbol, 288)
		for i := 0; i < 256; i++ {
			s[i] = symbol{kind: kindLiteral, value: uint32(i)}
		}
		s[256] = symbol{kind: kindEnd}
		base := []uint32{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
		extra := []uint32{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
		for i := range base {
			s[257+i] = symbol{kind: kindLength, extra: extra[i], value: base[i]}
		}
		s[286] = symbol{kind: kindInvalid}
		s[287] = symbol{kind: kindInvalid}
		return s
	}()
	distSyms = func() []symbol {
		s := make([]symbol, 32)
		base := []uint32{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
		for i := range base {
			extra := uint32(0)
			if i >= 4 {
				extra = uint32(i/2 - 1)
			}
			s[i] = symbol{kind: kindDist, extra: extra, value: base[i]}
		}
		s[30] = symbol{kind: kindInvalid}
		s[31] = symbol{kind: kindInvalid}
		return s
	}()
	codeLenSyms = func() []symbol {
		s := make([]symbol, 19)
		for i := range s {
			s[i] = symbol{kind: kindLiteral, value: uint32(i)}
		}
		return s
	}()
)
