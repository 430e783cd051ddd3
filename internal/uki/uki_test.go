package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/hosttest"
)

// readStub reads systemd's EFI stub (scripts/install-deps.sh installs
// it).
func readStub(t *testing.T) []byte {
	t.Helper()
	stub, err := os.ReadFile(DefaultStub)
	if err != nil {
		t.Fatalf("systemd's EFI stub: %v (install systemd-boot-efi: scripts/install-deps.sh does)", err)
	}
	return stub
}

// TestBuild adds sections to the real stub and reads the result back
// with Go's PE reader and binutils' objdump: the stub's sections are as
// they were, the new ones follow in order, page-aligned, without
// overlapping, with their contents; SizeOfImage covers them; the same
// inputs give the same bytes; and sbsign signs it, which sbverify then
// checks with the certificate.
func TestBuild(t *testing.T) {
	stub := readStub(t)
	sections := []Section{
		{".osrel", []byte("ID=ociboot\n")},
		{".cmdline", []byte("console=ttyS0")},
		{".uname", []byte("6.1.0-57-amd64")},
		{".initrd", bytes.Repeat([]byte("initrd"), 100000)},
		{".linux", bytes.Repeat([]byte{0xeb}, 5000)},
	}
	img, err := Build(stub, sections)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Build(stub, sections)
	if err != nil || !bytes.Equal(img, again) {
		t.Errorf("two builds differ (%v)", err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "uki.efi")
	if err := os.WriteFile(file, img, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := pe.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	orig, err := pe.NewFile(bytes.NewReader(stub))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Sections) != len(orig.Sections)+len(sections) {
		t.Fatalf("%d sections, want %d", len(f.Sections), len(orig.Sections)+len(sections))
	}
	for i, s := range orig.Sections {
		if got := f.Sections[i].SectionHeader; got != s.SectionHeader {
			t.Errorf("the stub's section %d: %+v, was %+v", i, got, s.SectionHeader)
		}
	}
	prevEnd := uint32(0)
	for _, s := range f.Sections {
		prevEnd = max(prevEnd, s.VirtualAddress+s.VirtualSize)
	}
	opt := f.OptionalHeader.(*pe.OptionalHeader64)
	if opt.SizeOfImage < prevEnd {
		t.Errorf("SizeOfImage %#x does not cover the sections, which end at %#x", opt.SizeOfImage, prevEnd)
	}
	end := uint32(0)
	for i, want := range sections {
		s := f.Sections[len(orig.Sections)+i]
		data, err := s.Data()
		if err != nil {
			t.Fatal(err)
		}
		if s.Name != want.Name || s.VirtualSize != uint32(len(want.Data)) || !bytes.Equal(data[:s.VirtualSize], want.Data) {
			t.Errorf("section %d: %s, %d bytes; want %s, %d bytes, as given", i, s.Name, s.VirtualSize, want.Name, len(want.Data))
		}
		if s.VirtualAddress%pageSize != 0 || s.VirtualAddress < end {
			t.Errorf("section %s at %#x: want page-aligned, after %#x", s.Name, s.VirtualAddress, end)
		}
		end = s.VirtualAddress + s.VirtualSize
	}
	if out := hosttest.Run(t, "objdump", "-h", file); !strings.Contains(out, ".initrd") || !strings.Contains(out, ".linux") {
		t.Errorf("objdump -h does not list the sections:\n%s", out)
	}

	// Signed for Secure Boot with sbsigntool, and checked.
	key, cert := filepath.Join(dir, "db.key"), filepath.Join(dir, "db.crt")
	hosttest.Run(t, "openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ociboot test/",
		"-keyout", key, "-out", cert)
	signed := filepath.Join(dir, "signed.efi")
	hosttest.Run(t, "sbsign", "--key", key, "--cert", cert, "--output", signed, file)
	if out := hosttest.Run(t, "sbverify", "--cert", cert, signed); !strings.Contains(out, "Signature verification OK") {
		t.Errorf("sbverify: %s", out)
	}
}

func TestBuildErrors(t *testing.T) {
	stub := readStub(t)
	many := make([]Section, 20)
	for i := range many {
		many[i] = Section{".s", []byte{1}}
	}
	signed := bytes.Clone(stub)
	peOff := binary.LittleEndian.Uint32(signed[0x3c:])
	opt := int(peOff) + peSigSize + coffHeaderSize
	binary.LittleEndian.PutUint32(signed[opt+optDataDirectories+8*securityDirectory+4:], 16)
	for _, tt := range []struct {
		name     string
		stub     []byte
		sections []Section
		want     string
	}{
		{"not PE", []byte("#!/bin/sh\necho not a PE file\n" + strings.Repeat(" ", 64)), nil, "no MZ header"},
		{"too many sections", stub, many, "no room for 20 more section headers"},
		{"long name", stub, []Section{{".initramfs", []byte{1}}}, `section name ".initramfs"`},
		{"signed stub", signed, []Section{{".linux", []byte{1}}}, "the stub is signed"},
		{"truncated", stub[:0x800], []Section{{".linux", []byte{1}}}, "truncated"},
	} {
		if _, err := Build(tt.stub, tt.sections); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.want)
		}
	}
}

// TestKernelRelease reads the release of the kernel the VMs boot, which
// its file name also says, and refuses what is not a bzImage.
func TestKernelRelease(t *testing.T) {
	files, err := filepath.Glob("/boot/vmlinuz-*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no kernel in /boot: %v (install linux-image-amd64)", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := KernelRelease(data)
		if want := strings.TrimPrefix(filepath.Base(f), "vmlinuz-"); err != nil || got != want {
			t.Errorf("KernelRelease(%s) = %q, %v; want %q", f, got, err, want)
		}
	}
	if _, err := KernelRelease(readStub(t)); err == nil || !strings.Contains(err.Error(), "not an x86 bzImage") {
		t.Errorf("KernelRelease of the EFI stub: %v", err)
	}
}
