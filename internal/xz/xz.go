// Package xz decodes the .xz format of xz-utils: streams of blocks of
// LZMA2 data, optionally behind the BCJ x86 filter, with every check type
// (none, CRC32, CRC64, SHA-256), concatenated streams and stream padding.
// Every block's check, its sizes and the index are verified: a Reader
// returns an error rather than data that does not match them. A Reader
// from NewParallelReader decodes blocks that give their sizes, as
// xz -T0 writes them, in parallel.
package xz

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"slices"
)

// Format constants.
var (
	headerMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0}
	footerMagic = []byte{'Y', 'Z'}
)

// Check types and filter IDs.
const (
	checkNone   = 0
	checkCRC32  = 1
	checkCRC64  = 4
	checkSHA256 = 10

	filterX86   = 0x04
	filterLZMA2 = 0x21
)

// Reader decodes an xz file. Its memory is a block's LZMA2 window,
// which grows with the output up to the dictionary's size (8 MiB for
// xz -6, 64 MiB for xz -9), and 256 KiB of buffers; in parallel, the
// memory it was given for blocks in flight, and 128 KiB per worker.
type Reader struct {
	in     *bufio.Reader
	count  int64 // bytes read from in
	check  byte
	hash   hash.Hash
	out    io.Reader // the current block's data; nil between blocks
	lzma2  lzma2Reader
	block  blockInfo
	blocks []record // the stream's blocks so far, for its index
	err    error

	// For NewParallelReader's Reader: how many workers, and how much
	// memory, runs of parallel blocks take; the current run, and its
	// block being given out.
	workers int
	memory  int64
	quit    chan struct{}
	par     *parallel
	cur     *job
	curOff  int
	// parBlocks counts the blocks decoded in parallel.
	parBlocks int
	alone     bool // the next block is the reader's, the last run having stopped at it
}

// blockInfo is what a block's header said and what was read of it.
type blockInfo struct {
	start         int64 // where its header began
	headerSize    int64
	compressed    int64 // -1 when the header does not say
	uncompressed  int64 // -1 when the header does not say
	uncompressedN int64 // what was read
}

// record is a block as the index lists it.
type record struct{ unpadded, uncompressed int64 }

// NewReader reads the first stream header of r and returns a Reader of
// the decompressed data.
func NewReader(r io.Reader) (*Reader, error) {
	z := &Reader{}
	z.in = bufio.NewReaderSize(countingReader{r, &z.count}, 1<<16)
	if err := z.streamHeader(nil); err != nil {
		return nil, err
	}
	return z, nil
}

// Read reads decompressed data. Once the input ends, after a whole
// stream, it returns io.EOF.
func (z *Reader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := z.read(p)
	if err != nil && err != io.EOF {
		z.err = err
	} else if err == io.EOF {
		z.err = io.EOF
	}
	return n, err
}

func (z *Reader) read(p []byte) (int, error) {
	for {
		if z.out != nil {
			n, err := z.out.Read(p)
			if n > 0 {
				z.hash.Write(p[:n])
				z.block.uncompressedN += int64(n)
				return n, nil
			}
			if err != io.EOF {
				return 0, z.corrupt("block", err)
			}
			if err := z.endBlock(); err != nil {
				return 0, err
			}
			continue
		}
		if z.par != nil {
			n, err := z.readParallel(p)
			if n > 0 || err != nil {
				return n, err
			}
			z.alone = true
			continue
		}
		if z.quit != nil && !z.alone {
			z.startParallel()
			continue
		}
		z.alone = false
		start := z.offset()
		b, err := z.in.ReadByte()
		if err != nil {
			return 0, z.corrupt("block header", unexpected(err))
		}
		if b == 0 {
			if err := z.index(start); err != nil {
				return 0, err
			}
			more, err := z.nextStream()
			if err != nil || !more {
				return 0, cmp.Or(err, io.EOF)
			}
			continue
		}
		if err := z.blockHeader(start, int64(b)*4+4); err != nil {
			return 0, err
		}
	}
}

// offset is where in the input the next byte is.
func (z *Reader) offset() int64 { return z.count - int64(z.in.Buffered()) }

// corrupt says what was wrong, and where.
func (z *Reader) corrupt(what string, err error) error {
	if errors.Is(err, errCorrupt) || err == nil {
		return fmt.Errorf("xz: corrupt %s at byte %d", what, z.offset())
	}
	return fmt.Errorf("xz: %s at byte %d: %w", what, z.offset(), err)
}

// countingReader counts what the Reader's buffer reads.
type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// streamHeader reads a stream header, whose first bytes, when read
// already, are read.
func (z *Reader) streamHeader(read []byte) error {
	var h [12]byte
	copy(h[:], read)
	if _, err := io.ReadFull(z.in, h[len(read):]); err != nil {
		return fmt.Errorf("xz: reading the stream header: %w", unexpected(err))
	}
	if !bytes.Equal(h[:6], headerMagic) {
		return errors.New("xz: not an xz file (bad magic)")
	}
	if crc32.ChecksumIEEE(h[6:8]) != binary.LittleEndian.Uint32(h[8:]) {
		return errors.New("xz: corrupt stream header (CRC32)")
	}
	if h[6] != 0 || h[7]&0xF0 != 0 {
		return errors.New("xz: unsupported stream flags")
	}
	z.check = h[7]
	z.hash = newCheck(z.check)
	if z.hash == nil {
		return fmt.Errorf("xz: unsupported check type %d", z.check)
	}
	z.blocks = z.blocks[:0]
	return nil
}

// newCheck returns a hash of the check type, or nil for a type this
// package does not know.
func newCheck(check byte) hash.Hash {
	switch check {
	case checkNone:
		return nopHash{}
	case checkCRC32:
		return crc32.NewIEEE()
	case checkCRC64:
		return crc64.New(crc64.MakeTable(crc64.ECMA)) // the table is built once
	case checkSHA256:
		return sha256.New()
	}
	return nil
}

// checkSize is the size in bytes of a check of type check.
func checkSize(check byte) int {
	switch check {
	case checkCRC32:
		return 4
	case checkCRC64:
		return 8
	case checkSHA256:
		return 32
	}
	return 0
}

func (z *Reader) blockHeader(start, size int64) error {
	h := make([]byte, size)
	h[0] = byte(size/4 - 1)
	if _, err := io.ReadFull(z.in, h[1:]); err != nil {
		return z.corrupt("block header", unexpected(err))
	}
	hdr, err := parseBlockHeader(h, start)
	if err != nil {
		return err
	}
	z.block = blockInfo{start: start, headerSize: size, compressed: hdr.compressed, uncompressed: hdr.uncompressed}
	z.lzma2.reset(z.in, hdr.dict)
	z.out = &z.lzma2
	if hdr.x86 {
		z.out = newX86Reader(&z.lzma2, hdr.x86Start)
	}
	z.hash.Reset()
	return nil
}

// blockHeader is what a block header says.
type blockHeader struct {
	size         int64 // the header's own
	compressed   int64 // -1 when it does not say
	uncompressed int64 // -1 when it does not say
	dict         int
	x86          bool
	x86Start     uint32
}

// parseBlockHeader reads the block header h, whole, found at start.
func parseBlockHeader(h []byte, start int64) (blockHeader, error) {
	size := len(h)
	bad := func(what string) (blockHeader, error) {
		return blockHeader{}, fmt.Errorf("xz: corrupt block header (%s) at byte %d", what, start)
	}
	if crc32.ChecksumIEEE(h[:size-4]) != binary.LittleEndian.Uint32(h[size-4:]) {
		return bad("CRC32")
	}
	flags := h[1]
	if flags&0x3C != 0 {
		return bad("reserved flags")
	}
	b := h[2 : size-4]
	hdr := blockHeader{size: int64(size), compressed: -1, uncompressed: -1, dict: -1}
	var ok bool
	if flags&0x40 != 0 {
		if hdr.compressed, b, ok = vli(b); !ok || hdr.compressed == 0 {
			return bad("compressed size")
		}
	}
	if flags&0x80 != 0 {
		if hdr.uncompressed, b, ok = vli(b); !ok {
			return bad("uncompressed size")
		}
	}
	filters := int(flags&3) + 1
	for i := range filters {
		var id, n int64
		if id, b, ok = vli(b); !ok {
			return bad("filter")
		}
		if n, b, ok = vli(b); !ok || n > int64(len(b)) {
			return bad("filter properties")
		}
		props := b[:n]
		b = b[n:]
		last := i == filters-1
		switch {
		case id == filterLZMA2 && last && n == 1:
			d, err := dictSize(props[0])
			if err != nil {
				return bad("LZMA2 dictionary size")
			}
			hdr.dict = d
		case id == filterX86 && !last && !hdr.x86 && (n == 0 || n == 4):
			hdr.x86 = true
			if n == 4 {
				hdr.x86Start = binary.LittleEndian.Uint32(props)
			}
		default:
			return blockHeader{}, fmt.Errorf("xz: block at byte %d: unsupported filter 0x%x (LZMA2, behind BCJ x86 or not, is)", start, id)
		}
	}
	if hdr.dict < 0 {
		return blockHeader{}, fmt.Errorf("xz: block at byte %d: no LZMA2 filter last", start)
	}
	for _, c := range b {
		if c != 0 {
			return bad("padding")
		}
	}
	return hdr, nil
}

// endBlock reads a block's padding and check, and checks its sizes.
func (z *Reader) endBlock() error {
	z.out = nil
	compressed := z.offset() - z.block.start - z.block.headerSize
	if z.block.compressed >= 0 && compressed != z.block.compressed {
		return z.corrupt("block (compressed size)", nil)
	}
	if z.block.uncompressed >= 0 && z.block.uncompressedN != z.block.uncompressed {
		return z.corrupt("block (uncompressed size)", nil)
	}
	var pad [3]byte
	if _, err := io.ReadFull(z.in, pad[:padding(compressed)]); err != nil {
		return z.corrupt("block padding", unexpected(err))
	}
	if pad != [3]byte{} {
		return z.corrupt("block padding", nil)
	}
	sum := make([]byte, checkSize(z.check))
	if _, err := io.ReadFull(z.in, sum); err != nil {
		return z.corrupt("block check", unexpected(err))
	}
	if !checkMatches(z.check, z.hash, sum) {
		return fmt.Errorf("xz: block at byte %d: the data does not match its check", z.block.start)
	}
	z.blocks = append(z.blocks, record{unpadded: z.block.headerSize + compressed + int64(len(sum)), uncompressed: z.block.uncompressedN})
	return nil
}

// padding is the size of the zeros after a block's n bytes of
// compressed data, up to a multiple of four.
func padding(n int64) int64 { return (4 - n%4) % 4 }

// checkMatches says whether sum, a block's check of type check, is the
// one h made.
func checkMatches(check byte, h hash.Hash, sum []byte) bool {
	if len(sum) == 0 {
		return true
	}
	want := h.Sum(nil)
	if check != checkSHA256 {
		// CRC32 and CRC64 are stored little-endian.
		slices.Reverse(want)
	}
	return bytes.Equal(sum, want)
}

// index reads the stream's index (its indicator byte, at start, read)
// and footer, and checks them against the blocks read.
func (z *Reader) index(start int64) error {
	crc := crc32.NewIEEE()
	crc.Write([]byte{0})
	r := &crcByteReader{r: z.in, crc: crc}
	n, err := readVLI(r)
	if err != nil || n != int64(len(z.blocks)) {
		return z.corrupt("index (number of records)", err)
	}
	for _, b := range z.blocks {
		u, err := readVLI(r)
		if err != nil || u != b.unpadded {
			return z.corrupt("index (a block's size)", err)
		}
		if u, err = readVLI(r); err != nil || u != b.uncompressed {
			return z.corrupt("index (a block's uncompressed size)", err)
		}
	}
	for (z.offset()-start)%4 != 0 {
		c, err := r.ReadByte()
		if err != nil || c != 0 {
			return z.corrupt("index padding", unexpected(err))
		}
	}
	size := z.offset() - start
	var sum [4]byte
	if _, err := io.ReadFull(z.in, sum[:]); err != nil {
		return z.corrupt("index", unexpected(err))
	}
	if binary.LittleEndian.Uint32(sum[:]) != crc.Sum32() {
		return z.corrupt("index (CRC32)", nil)
	}
	var f [12]byte
	if _, err := io.ReadFull(z.in, f[:]); err != nil {
		return z.corrupt("stream footer", unexpected(err))
	}
	if !bytes.Equal(f[10:], footerMagic) || crc32.ChecksumIEEE(f[4:10]) != binary.LittleEndian.Uint32(f[:4]) ||
		f[8] != 0 || f[9] != z.check || (int64(binary.LittleEndian.Uint32(f[4:8]))+1)*4 != size+4 {
		return z.corrupt("stream footer", nil)
	}
	return nil
}

// nextStream skips stream padding and reads the next stream's header;
// it reports false at the input's end.
func (z *Reader) nextStream() (bool, error) {
	for {
		var pad [4]byte
		n, err := io.ReadFull(z.in, pad[:])
		if n == 0 && err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, z.corrupt("stream padding", unexpected(err))
		}
		if pad != [4]byte{} {
			if !bytes.Equal(pad[:], headerMagic[:4]) {
				return false, z.corrupt("stream padding", nil)
			}
			return true, z.streamHeader(pad[:])
		}
	}
}

// vli reads a variable-length integer from b.
func vli(b []byte) (int64, []byte, bool) {
	var v int64
	for i := 0; i < len(b) && i < 9; i++ {
		v |= int64(b[i]&0x7F) << (7 * i)
		if b[i]&0x80 == 0 {
			if b[i] == 0 && i > 0 {
				return 0, nil, false // not the shortest form
			}
			return v, b[i+1:], true
		}
	}
	return 0, nil, false
}

// readVLI reads a variable-length integer from r.
func readVLI(r io.ByteReader) (int64, error) {
	var v int64
	for i := range 9 {
		c, err := r.ReadByte()
		if err != nil {
			return 0, unexpected(err)
		}
		v |= int64(c&0x7F) << (7 * i)
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, errCorrupt
			}
			return v, nil
		}
	}
	return 0, errCorrupt
}

// crcByteReader reads bytes into a CRC.
type crcByteReader struct {
	r   io.ByteReader
	crc hash.Hash32
}

func (c *crcByteReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.crc.Write([]byte{b})
	}
	return b, err
}

// nopHash is the check of type None.
type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }
func (nopHash) Sum(b []byte) []byte         { return b }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return 0 }
func (nopHash) BlockSize() int              { return 1 }
