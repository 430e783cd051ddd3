// Package uki assembles unified kernel images: systemd's EFI stub
// (linuxx64.efi.stub) with the OS release, the command line, the kernel
// release, the initramfs and the kernel added as PE sections after the
// stub's own, each page-aligned, as ukify lays them out. The result is a
// single EFI application that firmware boots and Secure Boot can sign.
package uki

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Section is a PE section to add: its name (".linux", at most 8 bytes)
// and contents.
type Section struct {
	Name string
	Data []byte
}

// pageSize is the alignment of the added sections' addresses: each
// starts on a page of its own, as the firmware maps them.
const pageSize = 4096

// Offsets in the PE headers (PE32+).
const (
	peSigSize        = 4
	coffHeaderSize   = 20
	sectionHeaderLen = 40
	pe32PlusMagic    = 0x20b
	machineAMD64     = 0x8664

	optSizeOfInitializedData = 8
	optSectionAlignment      = 32
	optFileAlignment         = 36
	optSizeOfImage           = 56
	optSizeOfHeaders         = 60
	optCheckSum              = 64
	optNumberOfRvaAndSizes   = 108
	optDataDirectories       = 112
	securityDirectory        = 4 // the certificate table: a signed stub

	// initialized data, readable
	dataCharacteristics = 0x00000040 | 0x40000000
)

// Build returns stub with sections appended in order, after the stub's
// own, and without its COFF symbol table. The stub must be an unsigned x86-64 PE32+ image with room in its
// headers for the new section headers (systemd's has room for seven).
// The same inputs give the same bytes.
func Build(stub []byte, sections []Section) ([]byte, error) {
	le := binary.LittleEndian
	if len(stub) < 0x40 || stub[0] != 'M' || stub[1] != 'Z' {
		return nil, fmt.Errorf("uki: the stub is not a PE image (no MZ header)")
	}
	pe := int(le.Uint32(stub[0x3c:]))
	if pe < 0 || pe+peSigSize+coffHeaderSize > len(stub) || !bytes.Equal(stub[pe:pe+4], []byte("PE\x00\x00")) {
		return nil, fmt.Errorf("uki: the stub is not a PE image (no PE signature at %#x)", pe)
	}
	coff := pe + peSigSize
	if m := le.Uint16(stub[coff:]); m != machineAMD64 {
		return nil, fmt.Errorf("uki: the stub is for machine %#x, want x86-64 (%#x)", m, machineAMD64)
	}
	nsec := int(le.Uint16(stub[coff+2:]))
	optSize := int(le.Uint16(stub[coff+16:]))
	opt := coff + coffHeaderSize
	if opt+optSize > len(stub) || optSize < optDataDirectories || le.Uint16(stub[opt:]) != pe32PlusMagic {
		return nil, fmt.Errorf("uki: the stub has no PE32+ optional header")
	}
	if n := int(le.Uint32(stub[opt+optNumberOfRvaAndSizes:])); n > securityDirectory &&
		optDataDirectories+8*(securityDirectory+1) <= optSize &&
		le.Uint32(stub[opt+optDataDirectories+8*securityDirectory+4:]) != 0 {
		return nil, fmt.Errorf("uki: the stub is signed: add sections to an unsigned stub, then sign the result")
	}
	secAlign := le.Uint32(stub[opt+optSectionAlignment:])
	fileAlign := le.Uint32(stub[opt+optFileAlignment:])
	headersSize := int(le.Uint32(stub[opt+optSizeOfHeaders:]))
	if secAlign == 0 || fileAlign == 0 || secAlign&(secAlign-1) != 0 || fileAlign&(fileAlign-1) != 0 {
		return nil, fmt.Errorf("uki: the stub's alignments (%#x, %#x) are not powers of two", secAlign, fileAlign)
	}
	table := opt + optSize
	end := table + sectionHeaderLen*(nsec+len(sections))
	if end > headersSize || headersSize > len(stub) {
		return nil, fmt.Errorf("uki: the stub's headers (%d bytes) have no room for %d more section headers", headersSize, len(sections))
	}

	// Where the stub's sections end, in memory and in the file.
	var vend, fend uint64
	for i := range nsec {
		h := stub[table+sectionHeaderLen*i:]
		va, vs := uint64(le.Uint32(h[12:])), uint64(le.Uint32(h[8:]))
		size, ptr := uint64(le.Uint32(h[16:])), uint64(le.Uint32(h[20:]))
		vend = max(vend, va+vs)
		fend = max(fend, ptr+size)
	}
	if fend > uint64(len(stub)) {
		return nil, fmt.Errorf("uki: the stub is truncated: its sections end at %d, the file at %d", fend, len(stub))
	}

	out := bytes.NewBuffer(make([]byte, 0, len(stub)+totalSize(sections)+len(sections)*pageSize))
	out.Write(stub[:fend])
	pad(out, uint64(fileAlign))
	va := alignUp(vend, pageSize)
	headers := make([]byte, 0, sectionHeaderLen*len(sections))
	initialized := uint64(le.Uint32(stub[opt+optSizeOfInitializedData:]))
	for _, s := range sections {
		if len(s.Name) == 0 || len(s.Name) > 8 {
			return nil, fmt.Errorf("uki: section name %q: want 1 to 8 bytes", s.Name)
		}
		ptr := uint64(out.Len())
		raw := alignUp(uint64(len(s.Data)), uint64(fileAlign))
		if va+uint64(len(s.Data)) > 1<<32-1 || ptr+raw > 1<<32-1 {
			return nil, fmt.Errorf("uki: section %s: the image would pass 4 GiB", s.Name)
		}
		var h [sectionHeaderLen]byte
		copy(h[:8], s.Name)
		le.PutUint32(h[8:], uint32(len(s.Data))) // VirtualSize
		le.PutUint32(h[12:], uint32(va))         // VirtualAddress
		le.PutUint32(h[16:], uint32(raw))        // SizeOfRawData
		le.PutUint32(h[20:], uint32(ptr))        // PointerToRawData
		le.PutUint32(h[36:], dataCharacteristics)
		headers = append(headers, h[:]...)
		out.Write(s.Data)
		pad(out, uint64(fileAlign))
		initialized += raw
		va = alignUp(va+uint64(len(s.Data)), pageSize)
	}
	b := out.Bytes()
	// The COFF symbol table, after the stub's sections (debugging
	// symbols: images need none), is left out with its pointer.
	le.PutUint32(b[coff+8:], 0)
	le.PutUint32(b[coff+12:], 0)
	copy(b[table+sectionHeaderLen*nsec:], headers)
	le.PutUint16(b[coff+2:], uint16(nsec+len(sections)))
	le.PutUint32(b[opt+optSizeOfInitializedData:], uint32(min(initialized, 1<<32-1)))
	le.PutUint32(b[opt+optSizeOfImage:], uint32(alignUp(va, uint64(secAlign))))
	le.PutUint32(b[opt+optCheckSum:], 0) // firmware does not check it; signing tools set what they need
	return b, nil
}

// totalSize is the sum of the sections' sizes.
func totalSize(sections []Section) int {
	n := 0
	for _, s := range sections {
		n += len(s.Data)
	}
	return n
}

// pad writes zeros to b up to a multiple of align.
func pad(b *bytes.Buffer, align uint64) {
	n := uint64(b.Len())
	b.Write(make([]byte, alignUp(n, align)-n))
}

// alignUp rounds n up to a multiple of align (a power of two).
func alignUp(n, align uint64) uint64 { return (n + align - 1) &^ (align - 1) }
