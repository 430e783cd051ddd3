package storage

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// minSwap is the smallest swap file AddSwap makes: the kernel wants ten
// pages at least.
const minSwap = 1 << 20

// MakeSwap makes the swap file path of size bytes, as mkswap(8) would:
// fully allocated (a swap file may have no holes), with a version-1 swap
// header for the page size of this machine, written last. A file already
// there with that size and a swap header is kept; one cut short by a
// power cut has no header, and is made again.
func MakeSwap(path string, size int64) error {
	page := int64(os.Getpagesize())
	size -= size % page
	if size < minSwap {
		return fmt.Errorf("swap: %s is too small, want %s at least", formatSize(size), formatSize(minSwap))
	}
	if st, err := os.Stat(path); err == nil && st.Size() == size && probePath(path).Type == "swap" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("swap: %w", err)
	}
	err = writeSwap(f, size, page)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("swap: %s: %w", path, err)
	}
	return nil
}

// writeSwap allocates f and writes the swap header in its first page.
func writeSwap(f *os.File, size, page int64) error {
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		return fmt.Errorf("allocating %s: %w", formatSize(size), err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	hdr := make([]byte, page)
	// After 1024 bytes left for a boot loader: version, last page,
	// number of bad pages, UUID, label; the signature ends the page.
	binary.LittleEndian.PutUint32(hdr[1024:], 1)
	binary.LittleEndian.PutUint32(hdr[1028:], uint32(size/page-1))
	if _, err := rand.Read(hdr[1036:1052]); err != nil {
		return err
	}
	hdr[1036+6] = hdr[1036+6]&0x0f | 0x40 // a version-4 UUID
	hdr[1036+8] = hdr[1036+8]&0x3f | 0x80
	copy(hdr[page-10:], "SWAPSPACE2")
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return err
	}
	return f.Sync()
}

// EnableSwap starts swapping to the file or device at path.
func EnableSwap(path string) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	if _, _, errno := unix.Syscall(unix.SYS_SWAPON, uintptr(unsafe.Pointer(p)), 0, 0); errno != 0 {
		return fmt.Errorf("swap: swapon %s: %w", path, errno)
	}
	return nil
}
