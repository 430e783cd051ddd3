package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ociboot/ociboot/internal/fetch"
	"golang.org/x/sys/unix"
)

// DefaultWait is how long FindCache waits for disks that appear late
// (NVMe, SATA, USB and MMC disks are probed asynchronously) before it
// takes a blank disk, or gives up on a named one.
const DefaultWait = 10 * time.Second

// pollEvery is how often the disks are listed again while waiting.
const pollEvery = 100 * time.Millisecond

// Runner starts a command and returns a function that waits for its end
// and gives its exit status (PID 1's reaper: exec.Cmd's own Wait cannot
// be used next to it).
type Runner interface {
	Start(cmd *exec.Cmd) (wait func() int, err error)
}

// CacheOptions say which cache FindCache looks for, and how.
type CacheOptions struct {
	// Device is cache_device=: auto, reset, or a /dev/ path (a partition
	// or a whole disk). Filesystem names are the caller's.
	Device string
	// Wait bounds the wait for disks; 0 means DefaultWait.
	Wait time.Duration
	// Mkfs is the mke2fs program; Runner runs it.
	Mkfs   string
	Runner Runner
	// Sys and Dev are where sysfs and the device nodes are; "" means
	// /sys and /dev.
	Sys, Dev string
	// Clock paces the waits; nil is the wall clock.
	Clock fetch.Clock
	// Added, when set, returns a channel closed when a device is next
	// added (hotplug.Listener.Added): the disks are then looked at again
	// at once, not at the next poll.
	Added func() <-chan struct{}
	// Log gets what is found, and what is wiped before it is.
	Log io.Writer
}

// Cache is the partition FindCache chose.
type Cache struct {
	Device    string // its node: /dev/vda1
	FS        FS
	Formatted bool // formatted by this boot
}

// choice is what decide made of the disks.
type choice struct {
	part      string // the partition (or whole disk) to use, formatted or not
	fs        FS     // what it holds
	format    bool   // format part
	partition *Disk  // partition this disk, then format its first partition
}

// FindCache waits for the disks, chooses the cache as o.Device says, as
// boot2container does, and partitions and formats what must be:
//
//   - auto: the partition whose filesystem is labelled B2C_CACHE, on any
//     disk; when none shows up within the wait, the first disk that is
//     neither removable nor optical nor read-only gets a GPT with one
//     partition, formatted ext4 with that label. What the disk held is
//     said first.
//   - reset: the B2C_CACHE partition is formatted again; without one, as
//     auto.
//   - /dev/X: a partition is used as it is, and formatted only when it
//     holds no known filesystem; a disk's B2C_CACHE partition is used, and
//     a disk without one is partitioned.
//
// No disk, or a named one that never shows up, gives a nil Cache and a
// warning in the log: a boot without a cache still boots.
func FindCache(ctx context.Context, o CacheOptions) (*Cache, error) {
	sys, dev := cmp.Or(o.Sys, "/sys"), cmp.Or(o.Dev, "/dev")
	clock := o.Clock
	if clock == nil {
		clock = fetch.RealClock{}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	deadline := clock.Now().Add(cmp.Or(o.Wait, DefaultWait))
	var c choice
	for {
		added := o.nextAdded()
		disks, err := Scan(sys, dev)
		if err != nil {
			return nil, err
		}
		final := !clock.Now().Before(deadline)
		var ok bool
		if c, ok, err = decide(o.Device, disks, final); err != nil {
			return nil, err
		}
		if ok {
			break
		}
		if err := sleepUnless(ctx, clock, pollEvery, added); err != nil {
			return nil, err
		}
	}
	switch {
	case c.partition != nil:
		d := c.partition
		fmt.Fprintf(o.Log, "cache: no %s partition: formatting %s, which held %s; all of it is lost\n", CacheLabel, d, d.Holds())
		if err := repartition(ctx, filepath.Join(dev, d.Name), *d, clock); err != nil {
			return nil, err
		}
		c.part, c.format = partitionName(d.Name, 1), true
	case c.part == "":
		fmt.Fprintf(o.Log, "WARNING: cache: %s; booting without a cache\n", missing(o.Device))
		return nil, nil
	}
	path := filepath.Join(dev, c.part)
	if c.format {
		if err := mkfs(ctx, o, path); err != nil {
			return nil, err
		}
		c.fs = probePath(path)
		if c.fs.Label != CacheLabel {
			return nil, fmt.Errorf("cache: %s holds %q after %s, want an ext4 filesystem labelled %s", path, c.fs, o.Mkfs, CacheLabel)
		}
	}
	return &Cache{Device: path, FS: c.fs, Formatted: c.format}, nil
}

// nextAdded is the channel closed when a device is next added; nil
// (never ready) without o.Added.
func (o CacheOptions) nextAdded() <-chan struct{} {
	if o.Added == nil {
		return nil
	}
	return o.Added()
}

// sleepUnless sleeps for d on clock, unless wake is closed first; its
// error is ctx's.
func sleepUnless(ctx context.Context, clock fetch.Clock, d time.Duration, wake <-chan struct{}) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-wake:
			cancel()
		case <-sctx.Done():
		}
	}()
	if clock.Sleep(sctx, d) != nil {
		return ctx.Err()
	}
	return nil
}

// missing says what FindCache did not find.
func missing(device string) string {
	if strings.HasPrefix(device, "/dev/") {
		return device + " did not show up"
	}
	return "no disk to keep it on"
}

// decide chooses the cache among disks, as FindCache says. ok is false
// while it should wait for more disks: final says the wait is over.
func decide(device string, disks []Disk, final bool) (c choice, ok bool, err error) {
	labelled := func(d Disk) (choice, bool) {
		for _, p := range d.Partitions {
			if p.FS.Label == CacheLabel {
				return choice{part: p.Name, fs: p.FS}, true
			}
		}
		if d.FS.Label == CacheLabel {
			return choice{part: d.Name, fs: d.FS}, true
		}
		return choice{}, false
	}
	switch device {
	case "auto", "reset":
		for _, d := range disks {
			if c, ok := labelled(d); ok {
				c.format = device == "reset"
				return c, true, nil
			}
		}
		if !final {
			return choice{}, false, nil
		}
		for i, d := range disks {
			if !d.Removable && !d.Optical && !d.ReadOnly && d.Size >= minDisk {
				return choice{partition: &disks[i]}, true, nil
			}
		}
		return choice{}, true, nil // no disk
	}
	name, isDev := strings.CutPrefix(device, "/dev/")
	if !isDev || name == "" || strings.Contains(name, "/") {
		return choice{}, false, fmt.Errorf("cache_device=%s: expected none, auto, reset, /dev/NAME or the name of a filesystem= mount", device)
	}
	for i, d := range disks {
		for _, p := range d.Partitions {
			if p.Name == name {
				return choice{part: p.Name, fs: p.FS, format: p.FS.Type == ""}, true, nil
			}
		}
		if d.Name != name {
			continue
		}
		if c, ok := labelled(d); ok {
			return c, true, nil
		}
		if d.Optical || d.ReadOnly {
			return choice{}, false, fmt.Errorf("cache_device=%s: the disk is %s, it cannot hold a cache", device, map[bool]string{true: "optical", false: "read-only"}[d.Optical])
		}
		return choice{partition: &disks[i]}, true, nil
	}
	return choice{}, final, nil
}

// repartition gives the disk at path a GPT with one partition (see
// partitionDisk) and waits for the kernel to make its node.
func repartition(ctx context.Context, path string, d Disk, clock fetch.Clock) error {
	// O_EXCL: the kernel refuses a disk that is mounted or in use.
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_EXCL, 0)
	if err != nil {
		return fmt.Errorf("cache: opening %s to partition it: %w", path, err)
	}
	err = partitionDisk(f, d.Size, d.SectorSize)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	part := filepath.Join(filepath.Dir(path), partitionName(d.Name, 1))
	deadline := clock.Now().Add(DefaultWait)
	for {
		if st, err := os.Stat(part); err == nil && st.Mode()&os.ModeDevice != 0 {
			return nil
		}
		if !clock.Now().Before(deadline) {
			return fmt.Errorf("cache: %s was partitioned, but %s did not show up within %s", path, part, DefaultWait)
		}
		if err := clock.Sleep(ctx, pollEvery); err != nil {
			return err
		}
	}
}

// mkfs formats the partition at path as boot2container does: ext4 with
// encryption support (for fscrypt volumes), labelled CacheLabel.
// CacheMkfsArgs are mke2fs's options for a cache, before its device: ext4
// labelled CacheLabel, with the encrypt feature fscrypt volumes need.
// Every cache is made with them, at boot or on a USB stick at build.
func CacheMkfsArgs() []string {
	return []string{"-q", "-F", "-t", "ext4", "-O", "encrypt", "-L", CacheLabel}
}

func mkfs(ctx context.Context, o CacheOptions, path string) error {
	if o.Mkfs == "" {
		return fmt.Errorf("cache: %s needs formatting, but this initramfs has no mke2fs (ociboot build --mkfs)", path)
	}
	fmt.Fprintf(o.Log, "cache: formatting %s (ext4, label %s)\n", path, CacheLabel)
	var out strings.Builder
	cmd := exec.Command(o.Mkfs, append(CacheMkfsArgs(), path)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	wait, err := o.Runner.Start(cmd)
	pw.Close()
	if err != nil {
		pr.Close()
		return fmt.Errorf("cache: %s: %w", o.Mkfs, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	_, _ = io.Copy(&out, io.LimitReader(pr, 4<<10))
	_, _ = io.Copy(io.Discard, pr)
	pr.Close()
	code := wait()
	if !stop() {
		return fmt.Errorf("cache: %s %s: %w", o.Mkfs, path, context.Cause(ctx))
	}
	if code != 0 {
		return fmt.Errorf("cache: %s %s failed with status %d: %s", o.Mkfs, path, code, strings.TrimSpace(out.String()))
	}
	return nil
}

// Mount mounts the cache at dir, created when missing.
func (c *Cache) Mount(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	t := c.FS.Type
	if strings.HasPrefix(t, "ext") {
		t = "ext4" // the ext4 driver mounts ext2 and ext3 too
	}
	if err := unix.Mount(c.Device, dir, t, unix.MS_NOATIME, ""); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("cache: mounting %s (%s) on %s: %w (is the %s module in this initramfs?)", c.Device, c.FS, dir, err, t)
		}
		return fmt.Errorf("cache: mounting %s (%s) on %s: %w", c.Device, c.FS, dir, err)
	}
	return nil
}
