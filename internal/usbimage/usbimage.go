// Package usbimage writes the disk image of a bootable USB stick: a GPT
// with an EFI system partition (FAT32) holding a unified kernel image as
// \EFI\BOOT\BOOTX64.EFI, the path UEFI firmware boots removable media
// from, and, when asked, a partition formatted as ociboot's cache
// (B2C_CACHE), for machines without a disk of their own.
package usbimage

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/ociboot/ociboot/internal/storage"
)

// Options describe the image.
type Options struct {
	// UKI is the unified kernel image to boot.
	UKI []byte
	// Size is the image's size in bytes; 0 makes it as small as its
	// partitions allow.
	Size int64
	// CacheSize, when not 0, adds a partition of that many bytes after the
	// EFI system partition, formatted ext4 and labelled B2C_CACHE with Mkfs
	// (mke2fs), as ociboot formats a cache at boot.
	CacheSize int64
	Mkfs      string
}

// Layout of the image.
const (
	sector   = 512
	mib      = 1 << 20
	first    = mib      // where the first partition starts
	backup   = mib      // room left at the end for the backup GPT
	espExtra = 16 * mib // the ESP's room besides the UKI: FAT32's tables, and a spare
	minESP   = 64 * mib // FAT32 wants 65525 clusters at least
	minCache = 64 * mib // as storage's smallest cache
)

// Layout is where Write put the partitions, in bytes.
type Layout struct {
	Size                  int64
	ESPStart, ESPSize     int64
	CacheStart, CacheSize int64 // 0 without a cache
}

// Write writes the image to w (a new, empty file) and returns its layout.
func Write(w *os.File, o Options) (Layout, error) {
	var l Layout
	l.ESPStart = first
	l.ESPSize = max(minESP, alignUp(int64(len(o.UKI))+int64(len(o.UKI))/8+espExtra, mib))
	end := l.ESPStart + l.ESPSize
	if o.CacheSize != 0 {
		if o.CacheSize < minCache {
			return l, fmt.Errorf("usbimage: a cache of %d MiB is too small: want %d MiB at least", o.CacheSize/mib, minCache/mib)
		}
		l.CacheStart, l.CacheSize = end, alignUp(o.CacheSize, mib)
		end += l.CacheSize
	}
	l.Size = end + backup
	if o.Size != 0 {
		if o.Size < l.Size {
			return l, fmt.Errorf("usbimage: %d MiB is too small: the partitions need %d MiB", o.Size/mib, alignUp(l.Size, mib)/mib)
		}
		l.Size = o.Size
	}
	if err := w.Truncate(l.Size); err != nil {
		return l, fmt.Errorf("usbimage: %w", err)
	}
	parts := []*gpt.Partition{{
		Start: uint64(l.ESPStart / sector), End: uint64((l.ESPStart+l.ESPSize)/sector - 1),
		Type: gpt.EFISystemPartition, Name: "EFI system partition",
		GUID: "0C1B0075-0000-4000-8000-000000000001",
	}}
	if l.CacheSize != 0 {
		parts = append(parts, &gpt.Partition{
			Start: uint64(l.CacheStart / sector), End: uint64((l.CacheStart+l.CacheSize)/sector - 1),
			Type: gpt.LinuxFilesystem, Name: storage.CacheLabel,
			GUID: "0C1B0075-0000-4000-8000-000000000002",
		})
	}
	// Fixed GUIDs: the same inputs give the same table.
	table := &gpt.Table{LogicalSectorSize: sector, PhysicalSectorSize: sector, ProtectiveMBR: true,
		GUID: "0C1B0075-0000-4000-8000-000000000000", Partitions: parts}
	if err := table.Write(w, l.Size); err != nil {
		return l, fmt.Errorf("usbimage: writing the partition table: %w", err)
	}
	fs, err := fat32.Create(file.New(w, false), l.ESPSize, l.ESPStart, sector, "OCIBOOT")
	if err != nil {
		return l, fmt.Errorf("usbimage: formatting the EFI system partition: %w", err)
	}
	if err := fs.Mkdir("/EFI/BOOT"); err != nil {
		return l, fmt.Errorf("usbimage: %w", err)
	}
	f, err := fs.OpenFile("/EFI/BOOT/BOOTX64.EFI", os.O_CREATE|os.O_RDWR)
	if err != nil {
		return l, fmt.Errorf("usbimage: %w", err)
	}
	if _, err := f.Write(o.UKI); err != nil {
		return l, fmt.Errorf("usbimage: writing BOOTX64.EFI: %w", err)
	}
	if err := f.Close(); err != nil {
		return l, fmt.Errorf("usbimage: writing BOOTX64.EFI: %w", err)
	}
	if l.CacheSize != 0 {
		if err := formatCache(w.Name(), o.Mkfs, l); err != nil {
			return l, err
		}
	}
	return l, w.Sync()
}

// formatCache formats the cache partition of the image at path with
// mke2fs, which writes at the partition's offset.
func formatCache(path, mkfs string, l Layout) error {
	if mkfs == "" {
		return fmt.Errorf("usbimage: a cache partition needs mke2fs (package e2fsprogs)")
	}
	args := append(storage.CacheMkfsArgs(), "-E", "offset="+strconv.FormatInt(l.CacheStart, 10), path, strconv.FormatInt(l.CacheSize/1024, 10)+"k")
	cmd := exec.Command(mkfs, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("usbimage: formatting the cache partition with %s: %v: %s", mkfs, err, out)
	}
	return nil
}

// alignUp rounds n up to a multiple of align.
func alignUp(n, align int64) int64 { return (n + align - 1) / align * align }
