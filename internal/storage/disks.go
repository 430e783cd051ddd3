// Package storage prepares a machine's local storage at boot, as
// boot2container does: it finds the disks, picks the cache partition (the
// one whose filesystem is labelled B2C_CACHE) or makes one (a GPT with
// one partition, formatted with mke2fs), and mounts it; it mounts named
// filesystems and adds a swap file. It never installs anything: the
// disk is a cache.
package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Disk is a whole block device and what it holds.
type Disk struct {
	Name       string // as in /dev: vda, nvme0n1, sda
	Size       int64  // bytes
	SectorSize int    // logical block size, bytes
	Removable  bool   // a USB stick or card reader: never taken by auto
	Optical    bool   // a CD/DVD drive: never taken
	ReadOnly   bool
	Model      string // the device's model, when it says
	FS         FS     // a filesystem on the whole disk, without partitions
	Partitions []Partition
}

// Partition is one partition of a disk.
type Partition struct {
	Name   string // as in /dev: vda1, nvme0n1p1
	Number int
	Size   int64 // bytes
	FS     FS
}

// FS is what a probe found at the start of a device.
type FS struct {
	Type  string // ext4 (ext2 and ext3 too), xfs, btrfs, vfat, swap, iso9660; "" for none known
	Label string
}

// String describes d for the console: name, size, model and partitions.
func (d Disk) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s", d.Name, formatSize(d.Size))
	if d.Model != "" {
		fmt.Fprintf(&b, ", %s", d.Model)
	}
	b.WriteString(")")
	return b.String()
}

// Holds describes what d holds, for the warning before it is wiped.
func (d Disk) Holds() string {
	if len(d.Partitions) == 0 {
		if d.FS.Type != "" {
			return "a " + d.FS.String() + " filesystem on the whole disk"
		}
		return "no partition and no known filesystem"
	}
	parts := make([]string, len(d.Partitions))
	for i, p := range d.Partitions {
		parts[i] = p.Name + " " + formatSize(p.Size)
		if p.FS.Type != "" {
			parts[i] += " " + p.FS.String()
		}
	}
	n := "partitions"
	if len(parts) == 1 {
		n = "partition"
	}
	return fmt.Sprintf("%d %s: %s", len(parts), n, strings.Join(parts, ", "))
}

// String is the type and, when there is one, the label.
func (f FS) String() string {
	if f.Label == "" {
		return f.Type
	}
	return fmt.Sprintf("%s %q", f.Type, f.Label)
}

// formatSize writes n bytes with a binary unit.
func formatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n), 0
	for v >= unit && u < 4 {
		v /= unit
		u++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[u-1])
}

// notDisks are the prefixes of block devices that are not disks a cache
// may live on: virtual devices and floppies.
var notDisks = []string{"loop", "ram", "zram", "nbd", "dm-", "md", "fd", "mtdblock"}

// Scan lists the disks the kernel knows, from sys (/sys), probing their
// filesystems through dev (/dev), sorted by name. A device that cannot
// be read is listed without a filesystem.
func Scan(sys, dev string) ([]Disk, error) {
	entries, err := os.ReadDir(filepath.Join(sys, "block"))
	if err != nil {
		return nil, fmt.Errorf("listing disks: %w", err)
	}
	var disks []Disk
	for _, e := range entries {
		name := e.Name()
		if hasAnyPrefix(name, notDisks) || strings.HasPrefix(name, "mmcblk") && (strings.Contains(name, "boot") || strings.HasSuffix(name, "rpmb")) {
			continue // eMMC boot and RPMB areas are not for data
		}
		dir := filepath.Join(sys, "block", name)
		d := Disk{Name: name}
		d.Size = readInt(filepath.Join(dir, "size")) * 512
		d.SectorSize = int(readInt(filepath.Join(dir, "queue", "logical_block_size")))
		if d.SectorSize == 0 {
			d.SectorSize = 512
		}
		d.Removable = readInt(filepath.Join(dir, "removable")) == 1
		d.ReadOnly = readInt(filepath.Join(dir, "ro")) == 1
		d.Optical = strings.HasPrefix(name, "sr") || readInt(filepath.Join(dir, "device", "type")) == 5
		d.Model = readString(filepath.Join(dir, "device", "model"))
		parts, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("listing the partitions of %s: %w", name, err)
		}
		for _, p := range parts {
			pdir := filepath.Join(dir, p.Name())
			if _, err := os.Stat(filepath.Join(pdir, "partition")); err != nil {
				continue
			}
			d.Partitions = append(d.Partitions, Partition{
				Name:   p.Name(),
				Number: int(readInt(filepath.Join(pdir, "partition"))),
				Size:   readInt(filepath.Join(pdir, "size")) * 512,
				FS:     probePath(filepath.Join(dev, p.Name())),
			})
		}
		sort.Slice(d.Partitions, func(i, j int) bool { return d.Partitions[i].Number < d.Partitions[j].Number })
		if len(d.Partitions) == 0 && !d.Optical && d.Size > 0 {
			d.FS = probePath(filepath.Join(dev, name))
		}
		disks = append(disks, d)
	}
	sort.Slice(disks, func(i, j int) bool { return disks[i].Name < disks[j].Name })
	return disks, nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// readInt reads a sysfs number; a missing or odd file reads as 0.
func readInt(path string) int64 {
	n, _ := strconv.ParseInt(readString(path), 10, 64)
	return n
}

// readString reads a sysfs value, trimmed; a missing file reads as "".
func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// probePath probes the device at path; one that cannot be read has no
// known filesystem.
func probePath(path string) FS {
	f, err := os.Open(path)
	if err != nil {
		return FS{}
	}
	defer f.Close()
	fsys, err := Probe(f)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return FS{}
	}
	return fsys
}

// partitionName is the name of partition n of the disk called disk:
// vda1, sda1, but nvme0n1p1 and mmcblk0p1 for names ending in a digit.
func partitionName(disk string, n int) string {
	if last := disk[len(disk)-1]; last >= '0' && last <= '9' {
		return fmt.Sprintf("%sp%d", disk, n)
	}
	return fmt.Sprintf("%s%d", disk, n)
}
