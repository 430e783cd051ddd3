package storage

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/fetch/fetchtest"
	"github.com/ociboot/ociboot/internal/hosttest"
	"golang.org/x/sys/unix"
)

// execRunner runs commands with exec.Cmd's own Wait, as a test is not
// PID 1.
type execRunner struct{}

func (execRunner) Start(cmd *exec.Cmd) (func() int, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() int {
		_ = cmd.Wait()
		return cmd.ProcessState.ExitCode()
	}, nil
}

// image makes a sparse file of size bytes.
func image(t *testing.T, path string, size int64) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestProbe checks the filesystems and labels Probe reads against what
// the real tools wrote, and that a blank device holds nothing known.
func TestProbe(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		make func(path string)
		want FS
	}{
		{"blank", func(string) {}, FS{}},
		{"ext4 labelled", func(p string) {
			hosttest.Run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-O", "encrypt", "-L", CacheLabel, p)
		}, FS{"ext4", CacheLabel}},
		{"ext2", func(p string) { hosttest.Run(t, "mke2fs", "-q", "-F", "-t", "ext2", p) }, FS{"ext2", ""}},
		{"ext3 labelled", func(p string) { hosttest.Run(t, "mke2fs", "-q", "-F", "-t", "ext3", "-L", "data", p) }, FS{"ext3", "data"}},
		{"swap", func(p string) { hosttest.Run(t, "mkswap", "-L", "sw", p) }, FS{"swap", "sw"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := image(t, filepath.Join(dir, tc.name), 16<<20)
			tc.make(p)
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := Probe(f)
			if err != nil || got != tc.want {
				t.Errorf("Probe = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("tiny"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := probePath(short); got != (FS{}) {
		t.Errorf("a 4-byte device probes as %+v", got)
	}
}

// fakeDisk adds a disk to a fake sysfs, with its node (a sparse file) in
// dev, and partitions of the given sizes, whose nodes are files too.
func fakeDisk(t *testing.T, sys, dev, name string, size int64, attrs map[string]string, parts ...int64) {
	t.Helper()
	dir := filepath.Join(sys, "block", name)
	files := map[string]string{"size": strconv.FormatInt(size/512, 10), "removable": "0", "ro": "0", "queue/logical_block_size": "512"}
	for k, v := range attrs {
		files[k] = v
	}
	for i, ps := range parts {
		pn := partitionName(name, i+1)
		files[pn+"/partition"] = strconv.Itoa(i + 1)
		files[pn+"/size"] = strconv.FormatInt(ps/512, 10)
		image(t, filepath.Join(dev, pn), ps)
	}
	for k, v := range files {
		p := filepath.Join(dir, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	image(t, filepath.Join(dev, name), size)
}

// TestScan checks what Scan reads of a fake sysfs: sizes, flags, models,
// partitions in order with their filesystems, virtual devices left out.
func TestScan(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	fakeDisk(t, sys, dev, "vda", 256<<20, nil, 64<<20, 32<<20)
	hosttest.Run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-L", CacheLabel, filepath.Join(dev, "vda2"))
	fakeDisk(t, sys, dev, "nvme0n1", 512<<20, map[string]string{"queue/logical_block_size": "4096", "device/model": "QEMU NVMe Ctrl"})
	fakeDisk(t, sys, dev, "sda", 128<<20, map[string]string{"removable": "1"}, 128<<20-1<<20)
	fakeDisk(t, sys, dev, "sr0", 4<<20, map[string]string{"ro": "1"})
	fakeDisk(t, sys, dev, "loop0", 4<<20, nil)
	fakeDisk(t, sys, dev, "mmcblk0boot0", 4<<20, nil)
	disks, err := Scan(sys, dev)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range disks {
		names = append(names, d.Name)
	}
	if got := strings.Join(names, " "); got != "nvme0n1 sda sr0 vda" {
		t.Fatalf("disks %q, want nvme0n1 sda sr0 vda", got)
	}
	nvme, sda, sr0, vda := disks[0], disks[1], disks[2], disks[3]
	if nvme.Size != 512<<20 || nvme.SectorSize != 4096 || nvme.Model != "QEMU NVMe Ctrl" || len(nvme.Partitions) != 0 || nvme.Removable {
		t.Errorf("nvme0n1: %+v", nvme)
	}
	if !sda.Removable || len(sda.Partitions) != 1 || sda.Partitions[0].Name != "sda1" {
		t.Errorf("sda: %+v", sda)
	}
	if !sr0.Optical || !sr0.ReadOnly {
		t.Errorf("sr0: %+v", sr0)
	}
	if len(vda.Partitions) != 2 || vda.Partitions[1] != (Partition{Name: "vda2", Number: 2, Size: 32 << 20, FS: FS{"ext4", CacheLabel}}) {
		t.Errorf("vda: %+v", vda)
	}
	if got, want := vda.Holds(), `2 partitions: vda1 64.0 MiB, vda2 32.0 MiB ext4 "B2C_CACHE"`; got != want {
		t.Errorf("Holds = %q, want %q", got, want)
	}
	if got, want := nvme.String(), "nvme0n1 (512.0 MiB, QEMU NVMe Ctrl)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

// TestDecide checks the choice of the cache among disks, as
// boot2container makes it.
func TestDecide(t *testing.T) {
	blank := Disk{Name: "vda", Size: 1 << 30}
	labelled := Disk{Name: "nvme0n1", Size: 1 << 30, Partitions: []Partition{
		{Name: "nvme0n1p1", Number: 1, FS: FS{"vfat", "ESP"}},
		{Name: "nvme0n1p2", Number: 2, FS: FS{"ext4", CacheLabel}},
	}}
	usb := Disk{Name: "sda", Size: 1 << 30, Removable: true}
	data := Disk{Name: "sdb", Size: 1 << 30, Partitions: []Partition{{Name: "sdb1", Number: 1, FS: FS{"xfs", "data"}}, {Name: "sdb2", Number: 2}}}
	tiny := Disk{Name: "vdb", Size: 1 << 20}
	cases := []struct {
		device string
		disks  []Disk
		final  bool
		want   string // part[+format] | partition:DISK | wait | none
	}{
		{"auto", []Disk{blank, labelled}, false, "nvme0n1p2"},
		{"reset", []Disk{blank, labelled}, false, "nvme0n1p2+format"},
		{"auto", []Disk{usb, blank}, false, "wait"},
		{"auto", []Disk{usb, tiny, blank}, true, "partition:vda"},
		{"reset", []Disk{blank}, true, "partition:vda"},
		{"auto", []Disk{usb, tiny}, true, "none"},
		{"auto", nil, true, "none"},
		{"/dev/sdb1", []Disk{data}, false, "sdb1"},
		{"/dev/sdb2", []Disk{data}, false, "sdb2+format"},
		{"/dev/sdb", []Disk{data}, false, "partition:sdb"},
		{"/dev/nvme0n1", []Disk{labelled}, false, "nvme0n1p2"},
		{"/dev/sda", []Disk{usb}, false, "partition:sda"},
		{"/dev/vdz", []Disk{blank}, false, "wait"},
		{"/dev/vdz", []Disk{blank}, true, "none"},
	}
	for _, tc := range cases {
		c, ok, err := decide(tc.device, tc.disks, tc.final)
		got := "wait"
		switch {
		case err != nil:
			got = "error: " + err.Error()
		case !ok:
		case c.partition != nil:
			got = "partition:" + c.partition.Name
		case c.part == "":
			got = "none"
		default:
			got = c.part
			if c.format {
				got += "+format"
			}
		}
		if got != tc.want {
			t.Errorf("decide(%s, final %v) = %s, want %s", tc.device, tc.final, got, tc.want)
		}
	}
	for _, bad := range []string{"/dev/", "/dev/disk/by-label/x", "sometimes"} {
		if _, _, err := decide(bad, []Disk{blank}, true); err == nil || !strings.Contains(err.Error(), "cache_device="+bad) {
			t.Errorf("decide(%s): %v, want an error naming cache_device", bad, err)
		}
	}
	if _, _, err := decide("/dev/sr0", []Disk{{Name: "sr0", Optical: true, ReadOnly: true}}, true); err == nil || !strings.Contains(err.Error(), "optical") {
		t.Errorf("decide(/dev/sr0): %v, want a refusal", err)
	}
}

// TestPartitionDisk checks the GPT partitionDisk writes with util-linux:
// one partition from 1 MiB to the end, named B2C_CACHE, and nothing left
// of the filesystem the disk held.
func TestPartitionDisk(t *testing.T) {
	p := image(t, filepath.Join(t.TempDir(), "disk"), 128<<20)
	hosttest.Run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-L", "old", p)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := partitionDisk(f, 128<<20, 512); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got := strings.Fields(hosttest.Run(t, "partx", "-g", "-o", "NR,START,END,NAME,TYPE", p))
	want := []string{"1", "2048", strconv.Itoa(128<<20/512 - 34), CacheLabel, "0fc63daf-8483-4772-8e79-3d69d8477de4"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("partx: %q, want %q", got, want)
	}
	if out := hosttest.Run(t, "blkid", "-p", "-o", "export", p); !strings.Contains(out, "PTTYPE=gpt") || strings.Contains(out, "ext4") {
		t.Errorf("blkid after partitioning: %s; want a GPT and no ext4", out)
	}
	small := image(t, filepath.Join(t.TempDir(), "small"), 8<<20)
	sf, err := os.OpenFile(small, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	if err := partitionDisk(sf, 8<<20, 512); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("partitioning 8 MiB: %v, want a refusal", err)
	}
}

// TestFindCache runs FindCache on a fake sysfs whose device nodes are
// files: a labelled partition is used as it is, a blank named partition
// is formatted, a missing disk is waited for, then gives no cache and a
// warning.
func TestFindCache(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	fakeDisk(t, sys, dev, "vda", 256<<20, nil, 64<<20, 64<<20)
	clock := fetchtest.NewClock()
	var log strings.Builder
	o := CacheOptions{Sys: sys, Dev: dev, Mkfs: hosttest.Path(t, "mke2fs"), Runner: execRunner{}, Clock: clock, Log: &log}

	o.Device = "/dev/vda2"
	c, err := FindCache(context.Background(), o)
	if err != nil || c == nil || !c.Formatted || c.Device != filepath.Join(dev, "vda2") || c.FS != (FS{"ext4", CacheLabel}) {
		t.Fatalf("blank /dev/vda2: %+v, %v", c, err)
	}
	if out := hosttest.Run(t, "blkid", "-p", "-o", "export", c.Device); !strings.Contains(out, "LABEL="+CacheLabel) {
		t.Errorf("blkid of the formatted partition: %s", out)
	}
	if !strings.Contains(log.String(), "cache: formatting "+c.Device) {
		t.Errorf("log %q does not say what is formatted", log.String())
	}

	o.Device = "auto"
	log.Reset()
	c, err = FindCache(context.Background(), o)
	if err != nil || c == nil || c.Formatted || c.Device != filepath.Join(dev, "vda2") || len(clock.Sleeps()) != 0 {
		t.Errorf("auto with a labelled partition: %+v, %v, %d waits; want it used at once, unformatted", c, err, len(clock.Sleeps()))
	}

	o.Device, o.Wait = "/dev/vdb", 2*time.Second
	log.Reset()
	start := clock.Now()
	c, err = FindCache(context.Background(), o)
	if err != nil || c != nil || !strings.Contains(log.String(), "WARNING: cache: /dev/vdb did not show up") {
		t.Errorf("a missing disk: %+v, %v, log %q; want no cache and a warning", c, err, log.String())
	}
	if waited := clock.Now().Sub(start); waited < 2*time.Second || waited > 2*time.Second+pollEvery {
		t.Errorf("waited %s for the missing disk, want 2s", waited)
	}

	o.Mkfs = ""
	o.Device = "/dev/vda1"
	if _, err := FindCache(context.Background(), o); err == nil || !strings.Contains(err.Error(), "no mke2fs") {
		t.Errorf("formatting without mke2fs: %v", err)
	}
}

// stillClock is a clock whose sleeps last until their context ends, as
// if no poll ever came; the first calls first.
type stillClock struct {
	now   time.Time
	first func()
	slept int
}

func (c *stillClock) Now() time.Time { return c.now }

func (c *stillClock) Sleep(ctx context.Context, _ time.Duration) error {
	if c.slept++; c.slept == 1 {
		c.first()
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestFindCacheWokenByHotplug checks that a disk added while FindCache
// waits is looked at as soon as hotplug says a device came: with a clock
// whose polls never come, only the wake can end the wait.
func TestFindCacheWokenByHotplug(t *testing.T) {
	sys, dev := t.TempDir(), t.TempDir()
	fakeDisk(t, sys, dev, "vda", 256<<20, nil, 64<<20)
	added := make(chan struct{})
	clock := &stillClock{now: time.Now(), first: func() {
		fakeDisk(t, sys, dev, "sda", 128<<20, nil, 64<<20)
		hosttest.Run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-L", CacheLabel, filepath.Join(dev, "sda1"))
		close(added)
	}}
	o := CacheOptions{Device: "auto", Sys: sys, Dev: dev, Runner: execRunner{}, Clock: clock, Log: io.Discard,
		Added: func() <-chan struct{} { return added }}
	c, err := FindCache(context.Background(), o)
	if err != nil || c == nil || c.Device != filepath.Join(dev, "sda1") || c.Formatted || clock.slept != 1 {
		t.Errorf("FindCache = %+v, %v after %d sleeps; want sda1, found after one wake", c, err, clock.slept)
	}
}

// TestMakeSwap checks the swap file against util-linux's reading of it,
// and that a whole one is kept from boot to boot.
func TestMakeSwap(t *testing.T) {
	p := filepath.Join(t.TempDir(), "swapfile")
	if err := MakeSwap(p, 8<<20+100); err != nil {
		t.Fatal(err)
	}
	if out := hosttest.Run(t, "blkid", "-p", "-o", "export", p); !strings.Contains(out, "TYPE=swap") {
		t.Errorf("blkid: %s, want a swap signature", out)
	}
	if out := hosttest.Run(t, "swaplabel", p); !strings.Contains(out, "UUID:") {
		t.Errorf("swaplabel: %s, want a UUID", out)
	}
	before, err := os.Stat(p)
	if err != nil || before.Size() != 8<<20 || before.Mode().Perm() != 0o600 {
		t.Fatalf("swap file: %v, %v; want 8 MiB, mode 0600", before, err)
	}
	if err := MakeSwap(p, 8<<20); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(p)
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Error("a whole swap file of the right size was made again")
	}
	if err := os.WriteFile(p, make([]byte, 8<<20), 0o600); err != nil { // cut before its header
		t.Fatal(err)
	}
	if err := MakeSwap(p, 8<<20); err != nil || probePath(p).Type != "swap" {
		t.Errorf("a swap file without its header was not made again: %v", err)
	}
	if err := MakeSwap(p, 4096); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("a 4 KiB swap file: %v, want a refusal", err)
	}
}

func TestMountFlags(t *testing.T) {
	for opts, want := range map[string]struct {
		flags uintptr
		data  string
	}{
		"":                                    {0, ""},
		"noatime,nodiratime":                  {unix.MS_NOATIME | unix.MS_NODIRATIME, ""},
		"ro,vers=4,nolock,addr=10.0.2.2":      {unix.MS_RDONLY, "vers=4,nolock,addr=10.0.2.2"},
		"ro,rw,nosuid,trans=virtio,defaults,": {unix.MS_NOSUID, "trans=virtio"},
	} {
		flags, data := mountFlags(opts)
		if flags != want.flags || data != want.data {
			t.Errorf("mountFlags(%q) = %#x, %q; want %#x, %q", opts, flags, data, want.flags, want.data)
		}
	}
}
