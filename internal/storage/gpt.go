package storage

import (
	"fmt"
	"os"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"golang.org/x/sys/unix"
)

// CacheLabel names the cache: boot2container's filesystem label, which
// ociboot keeps so that the disks it formatted are used as they are.
const CacheLabel = "B2C_CACHE"

// minDisk is the smallest disk partitioned for a cache.
const minDisk = 64 << 20

// wipeSize is how much of each end of a disk partitionDisk zeroes: the
// old partition tables (MBR, both GPTs) and filesystem signatures.
const wipeSize = 1 << 20

// partitionDisk writes a GPT with one Linux partition, named CacheLabel,
// over the whole disk in f, of size bytes and sectorSize-byte sectors,
// after zeroing the disk's first and last MiB so that nothing of what it
// held is recognised again; the partition starts at 1 MiB. A block
// device is then re-read by the kernel, which makes the partition's
// device node.
func partitionDisk(f *os.File, size int64, sectorSize int) error {
	if size < minDisk {
		return fmt.Errorf("%s: %s is too small for a cache (want %s at least)", f.Name(), formatSize(size), formatSize(minDisk))
	}
	if sectorSize < 512 || wipeSize%sectorSize != 0 {
		return fmt.Errorf("%s: odd sector size %d", f.Name(), sectorSize)
	}
	zero := make([]byte, wipeSize)
	for _, off := range []int64{0, size - wipeSize} {
		if _, err := f.WriteAt(zero, off); err != nil {
			return fmt.Errorf("%s: wiping: %w", f.Name(), err)
		}
	}
	ss := int64(sectorSize)
	sectors := size / ss
	entries := int64(128 * 128) // the partition array: 128 entries of 128 bytes
	table := &gpt.Table{
		LogicalSectorSize:  sectorSize,
		PhysicalSectorSize: sectorSize,
		ProtectiveMBR:      true,
		Partitions: []*gpt.Partition{{
			Start: uint64(wipeSize / ss),
			// The backup array and header take the end of the disk.
			End:  uint64(sectors - 1 - entries/ss - 1),
			Type: gpt.LinuxFilesystem,
			Name: CacheLabel,
		}},
	}
	if err := table.Write(f, size); err != nil {
		return fmt.Errorf("%s: writing the partition table: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", f.Name(), err)
	}
	if st.Mode()&os.ModeDevice != 0 {
		if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0); err != nil {
			return fmt.Errorf("%s: having the kernel read the new partition table: %w", f.Name(), err)
		}
	}
	return nil
}
