package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/klauspost/compress/zstd"
)

// TarballSize is what is known of a rootfs tarball's size before it is
// unpacked.
type TarballSize struct {
	// Compression is "gzip", "xz", "zstd", or "tar" for none.
	Compression string
	// File is the file's size; -1 when the server does not say.
	File int64
	// Tar is the size of the tar inside, as the format records it: the
	// whole file for a plain tar, the xz index's sum (read with one
	// range request of the file's end), a zstd frame's content size,
	// gzip's ISIZE (of the last member, modulo 4 GiB). -1 when unknown:
	// the size, or a range request, is not available, or the format
	// leaves it out (a zstd frame written from a pipe).
	Tar int64
}

// xzTail is how much of an xz file's end is fetched to read its index:
// the footer and, unless the file has thousands of blocks, the index.
const xzTail = 64 << 10

// tarSize reads the tar's size as the format records it (see
// TarballSize.Tar): head is the file's first bytes, tail(n) returns its
// last n bytes, size is its size (-1 unknown). -1 when it cannot be told.
func tarSize(kind string, head []byte, size int64, tail func(n int64) ([]byte, error)) int64 {
	if size < 0 && kind != "zstd" {
		return -1
	}
	switch kind {
	case "tar":
		return size
	case "zstd":
		var h zstd.Header
		if h.Decode(head) != nil || !h.HasFCS {
			return -1
		}
		return int64(h.FrameContentSize)
	case "gzip":
		b, err := tail(4)
		if err != nil || len(b) != 4 {
			return -1
		}
		// ISIZE is the last member's size modulo 4 GiB: one smaller than
		// the file (give or take stored blocks' overhead) says there are
		// several members, or that it wrapped.
		n := int64(binary.LittleEndian.Uint32(b))
		if n < size-size/64-64 {
			return -1
		}
		return n
	case "xz":
		b, err := tail(min(size, xzTail))
		if err != nil {
			return -1
		}
		n, err := xzUncompressedSize(b, size)
		var more needMore
		if errors.As(err, &more) && int64(more) <= size {
			if b, err = tail(int64(more)); err == nil {
				n, err = xzUncompressedSize(b, size)
			}
		}
		if err != nil {
			return -1
		}
		return n
	}
	return -1
}

// needMore says how many bytes of the file's end the index needs.
type needMore int64

func (n needMore) Error() string {
	return fmt.Sprintf("the xz index needs the last %d bytes", int64(n))
}

// xzUncompressedSize reads the uncompressed size of an xz file from its
// end, tail (the last bytes of a file of size bytes): the stream footer
// gives the index's size, the index each block's sizes. The file must be
// one stream (as xz(1), xz -T0 and pixz write), trailing stream padding
// allowed; the stream's parts must add up to the file.
func xzUncompressedSize(tail []byte, size int64) (int64, error) {
	end := len(tail)
	for end >= 4 && bytes.Equal(tail[end-4:end], []byte{0, 0, 0, 0}) {
		end -= 4 // stream padding
	}
	if end < 12 {
		return 0, errors.New("xz: no stream footer")
	}
	footer := tail[end-12 : end]
	if string(footer[10:]) != "YZ" || crc32.ChecksumIEEE(footer[4:10]) != binary.LittleEndian.Uint32(footer[:4]) {
		return 0, errors.New("xz: bad stream footer")
	}
	indexSize := (int64(binary.LittleEndian.Uint32(footer[4:8])) + 1) * 4
	if indexSize < 8 {
		// Indicator, record count, CRC32: an index has 8 bytes at least.
		return 0, errors.New("xz: bad index size")
	}
	padding := int64(len(tail) - end)
	if indexSize+12 > int64(end) {
		return 0, needMore(indexSize + 12 + padding)
	}
	index := tail[end-12-int(indexSize) : end-12]
	if index[0] != 0 || crc32.ChecksumIEEE(index[:len(index)-4]) != binary.LittleEndian.Uint32(index[len(index)-4:]) {
		return 0, errors.New("xz: bad index")
	}
	r := index[1 : len(index)-4]
	records, err := readMBI(&r)
	if err != nil {
		return 0, err
	}
	var blocks, total int64
	for range records {
		unpadded, err := readMBI(&r)
		if err != nil {
			return 0, err
		}
		uncompressed, err := readMBI(&r)
		if err != nil {
			return 0, err
		}
		if unpadded > 1<<62 || uncompressed > 1<<62 || total > 1<<62 || blocks > 1<<62 {
			return 0, errors.New("xz: index sizes out of range")
		}
		blocks += (int64(unpadded) + 3) &^ 3
		total += int64(uncompressed)
	}
	if len(r) > 3 || !bytes.Equal(r, make([]byte, len(r))) {
		return 0, errors.New("xz: bad index padding")
	}
	// Stream header, blocks, index, footer, padding: the whole file, or
	// the file holds more than one stream.
	if 12+blocks+indexSize+12+padding != size {
		return 0, errors.New("xz: more than one stream")
	}
	return total, nil
}

// readMBI reads one of xz's multibyte integers off the front of b.
func readMBI(b *[]byte) (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		if i >= len(*b) {
			return 0, errors.New("xz: index cut short")
		}
		c := (*b)[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if i > 0 && c == 0 {
				return 0, errors.New("xz: index integer not in its shortest form")
			}
			*b = (*b)[i+1:]
			return v, nil
		}
	}
	return 0, errors.New("xz: index integer too long")
}
