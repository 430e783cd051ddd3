package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
)

// probeSize is how much of a device Probe reads: up to btrfs's
// superblock, at 64 KiB.
const probeSize = 0x10000 + 0x1000

// Probe recognises the filesystem at the start of r, a partition or a
// disk, and reads its label: ext2/3/4, xfs, btrfs, vfat, swap and
// iso9660. A device with none of them gives FS{}, and no error: it is
// blank, or holds what a cache may overwrite.
func Probe(r io.ReaderAt) (FS, error) {
	b := make([]byte, probeSize)
	n, err := r.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return FS{}, err
	}
	b = b[:n]
	at := func(off int, magic string) bool {
		return len(b) >= off+len(magic) && string(b[off:off+len(magic)]) == magic
	}
	label := func(off, size int) string {
		if len(b) < off+size {
			return ""
		}
		l, _, _ := bytes.Cut(b[off:off+size], []byte{0})
		return strings.TrimSpace(string(l))
	}
	const ext = 1024 // the ext superblock
	switch {
	case len(b) >= ext+0x80 && binary.LittleEndian.Uint16(b[ext+0x38:]) == 0xEF53:
		compat := binary.LittleEndian.Uint32(b[ext+0x5c:])
		incompat := binary.LittleEndian.Uint32(b[ext+0x60:])
		t := "ext2"
		switch {
		case incompat&(0x40|0x80|0x200) != 0: // extents, 64bit, flex_bg
			t = "ext4"
		case compat&0x4 != 0: // a journal
			t = "ext3"
		}
		return FS{Type: t, Label: label(ext+0x78, 16)}, nil
	case at(0, "XFSB"):
		return FS{Type: "xfs", Label: label(0x6c, 12)}, nil
	case at(0x10040, "_BHRfS_M"):
		return FS{Type: "btrfs", Label: label(0x1012b, 256)}, nil
	case at(4086, "SWAPSPACE2"), at(4086, "SWAP-SPACE"):
		return FS{Type: "swap", Label: label(1052, 16)}, nil
	case at(0x8001, "CD001"):
		return FS{Type: "iso9660", Label: label(0x8028, 32)}, nil
	case at(510, "\x55\xaa") && at(0x52, "FAT32   "):
		return FS{Type: "vfat", Label: fatLabel(label(0x47, 11))}, nil
	case at(510, "\x55\xaa") && (at(0x36, "FAT12") || at(0x36, "FAT16")):
		return FS{Type: "vfat", Label: fatLabel(label(0x2b, 11))}, nil
	}
	return FS{}, nil
}

// fatLabel drops FAT's placeholder for no label.
func fatLabel(l string) string {
	if l == "NO NAME" {
		return ""
	}
	return l
}
