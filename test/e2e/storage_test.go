package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/hosttest"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/vm"
	"github.com/ociboot/ociboot/internal/volume"
	"github.com/ociboot/ociboot/internal/volume/s3test"
)

// storageTests registers the cache-disk subtests of TestBoot: real disk
// images, formatted by the guest, checked from the host with util-linux
// and e2fsprogs, and a registry proxy that counts blob requests and can
// play a registry that is down.
func (f *fixture) storageTests(t *testing.T) {
	f.powerCutTests(t)
	f.s3Tests(t)
	t.Run("nics", func(t *testing.T) {
		// The default initramfs, no module named: the image comes over
		// an e1000, the other NICs and a virtio-scsi disk get their
		// drivers, and the disk becomes the cache. The e100 of the
		// i82551 asks for its microcode, which the kernel reads from
		// the initramfs, xz-compressed.
		t.Parallel()
		c := f.cacheProxy(t)
		res, console := c.bootOn(t, "ociboot.cache_device=auto ociboot.cache_wait=1 "+
			`ociboot.container="`+c.img+` sh -c 'for n in /sys/class/net/eth*; do echo nic-driver-$(basename $(readlink $n/device/driver)); done'"`,
			machine{nics: []string{"e1000", "rtl8139", "vmxnet3", "e1000e", "virtio", "e100"}, disks: []vm.Disk{{Path: blankDisk(t, 64<<20), Bus: "scsi"}}})
		if !res.StatusSeen || res.Status != 0 {
			t.Errorf("pipeline status: seen %v, %d; want 0", res.StatusSeen, res.Status)
		}
		// QEMU's rtl8139 is a C+, which 8139cp drives (8139too would too).
		lined := strings.ReplaceAll(console, "\r", "\n")
		for _, d := range []string{"e1000", "8139cp", "vmxnet3", "e1000e", "virtio_net"} {
			if !strings.Contains(lined, "nic-driver-"+d+"\n") {
				t.Errorf("no NIC driven by %s", d)
			}
		}
		if by := loadedBy(console, "e1000"); by != "coldplug" {
			t.Errorf("e1000 loaded by %q, want coldplug", by)
		}
		// Debian's kernel says each firmware file it loads; the image has
		// the file as NAME.xz only.
		if want := "firmware: direct-loading firmware " + e100Firmware; !strings.Contains(console, want) || strings.Contains(console, "has wrong size") {
			t.Errorf("the console lacks %q, or says the file has the wrong size: the kernel did not read e100's firmware from the initramfs", want)
		}
		// The e1000 alone has the user network: the lease is its.
		inOrder(t, console, "10.0.2.15/24, lease", `ociboot: storage: /dev/sda1 (ext4 "B2C_CACHE") mounted on /storage`)
	})

	t.Run("usb", func(t *testing.T) {
		// A USB NIC, the only NIC, and a usb-storage disk, labelled as
		// the cache, behind one xHCI: their drivers are loaded as the
		// devices appear, after coldplug has loaded the xHCI's
		// (hotplug). The NIC gets the lease, the USB disk becomes the
		// cache as soon as it shows up, and an AHCI disk gets its driver
		// too. The screen is /dev/console (console=tty0 last), and the
		// serial line gets ociboot's lines as well: the container writes
		// to the serial line itself, then what the screen shows, where
		// no line is twice.
		t.Parallel()
		c := f.cacheProxy(t)
		usbDisk := blankDisk(t, 64<<20)
		hostTool(t, "mke2fs", "-q", "-F", "-t", "ext4", "-L", "B2C_CACHE", usbDisk)
		res, console := c.bootOn(t, "ociboot.cache_device=auto ociboot.cache_wait=600 console=tty0 "+
			`ociboot.container="--device /dev/ttyS0 --device /dev/vcs1 `+c.img+` sh -c 'exec >/dev/ttyS0 2>&1; `+
			`for n in /sys/class/net/*/device; do echo nic-$(basename $(dirname $n))-$(basename $(readlink $n/driver)); done; `+
			`for b in /sys/block/sd*; do echo disk-$(basename $b) $(readlink -f $b); done; fold -w 80 /dev/vcs1 | grep -e ociboot: | sed s/^/screen:/'"`,
			machine{nics: []string{"usb"}, disks: []vm.Disk{{Path: blankDisk(t, 16<<20), Bus: "ahci"}, {Path: usbDisk, Bus: "usb"}}})
		if !res.StatusSeen || res.Status != 0 {
			t.Errorf("pipeline status: seen %v, %d; want 0", res.StatusSeen, res.Status)
		}
		for mod, want := range map[string]string{"xhci_pci": "coldplug", "ahci": backgroundColdplug, "usbnet": "hotplug", "usb_storage": "hotplug"} {
			if by := loadedBy(console, mod); by != want {
				t.Errorf("%s loaded by %q, want %s", mod, by, want)
			}
		}
		inOrder(t, console, "ociboot: network: usb0: 10.0.2.15/24, lease")
		// QEMU's usb-net is a Linux USB gadget, which cdc_ether and
		// cdc_subset both claim (as with modprobe, the first loaded wins).
		if nic := lineWith(console, "nic-usb0-"); !strings.Contains(nic, "nic-usb0-cdc_ether") && !strings.Contains(nic, "nic-usb0-cdc_subset") {
			t.Errorf("usb0: %q, want it driven by cdc_ether or cdc_subset", nic)
		}
		cache := lineWith(console, `(ext4 "B2C_CACHE") mounted on /storage`)
		dev := strings.TrimPrefix(strings.Fields(strings.TrimPrefix(cache, "ociboot: storage: "))[0], "/dev/")
		if usb := lineWith(console, "disk-"+dev+" "); !strings.Contains(usb, "/usb") {
			t.Errorf("the cache is %s (%q), whose device is %q: want the USB disk", dev, cache, usb)
		}
		if ahci := lineWith(console, "/ata"); !strings.HasPrefix(ahci, "disk-sd") {
			t.Errorf("no disk behind the AHCI controller: %q", ahci)
		}
		if n := strings.Count(console, "screen:ociboot: ==== containers ===="); n != 1 {
			t.Errorf("the screen shows the containers' section line %d times, want once", n)
		}
	})

	t.Run("coldplug", func(t *testing.T) {
		// The drivers of the devices present are loaded at the modules
		// stage, but the one blacklisted: the e1000 stays without a
		// driver while the virtio NIC comes up. The NVMe controller's
		// loads in the background, and the storage stage waits for it:
		// the disk named as the cache is partitioned and formatted. Two
		// consoles, as a machine with a screen and a serial line boots:
		// /dev/console is the serial one, the last named, and ociboot's
		// lines are on the screen too, as a container reading its text
		// (/dev/vcs1) shows.
		t.Parallel()
		c := f.cacheProxy(t)
		res, console := c.bootOn(t, "console=tty0 console=ttyS0 modprobe.blacklist=e1000 ociboot.cache_device=/dev/nvme0n1 ociboot.cache_wait=600 "+
			`ociboot.container="--device /dev/vcs1 `+c.img+` sh -c 'for n in /sys/class/net/*/device; do echo nic-$(basename $(dirname $n))-$(basename $(readlink $n/driver)); done; `+
			`test -d /sys/module/e1000 && echo e1000-$((1+1))-loaded || echo e1000-$((1+1))-absent; fold -w 80 /dev/vcs1 | grep -e ociboot: -e container | sed s/^/screen:/'"`,
			machine{nics: []string{"virtio", "e1000"}, disks: []vm.Disk{{Path: blankDisk(t, 64<<20), Bus: "nvme"}}})
		if !res.StatusSeen || res.Status != 0 {
			t.Errorf("pipeline status: seen %v, %d; want 0", res.StatusSeen, res.Status)
		}
		if by := loadedBy(console, "nvme"); by != backgroundColdplug {
			t.Errorf("nvme loaded by %q, want %s", by, backgroundColdplug)
		}
		for _, l := range strings.Split(console, "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "nic-") && strings.HasSuffix(l, "-e1000") {
				t.Errorf("%s: a NIC driven by the blacklisted e1000", l)
			}
		}
		inOrder(t, console, "ociboot: network: eth0: 10.0.2.15/24, lease",
			`ociboot: storage: /dev/nvme0n1p1 (ext4 "B2C_CACHE") mounted on /storage`, "nic-eth0-virtio", "e1000-2-absent")
		inOrder(t, console, "ociboot: modules: "+backgroundColdplug+": loaded ", `ociboot: storage: /dev/nvme0n1p1 (ext4 "B2C_CACHE") mounted on /storage`)
		// The screen's last lines: the pull, then the container's start.
		inOrder(t, console, "screen:ociboot: ==== containers ====", "screen:ociboot: container 1/1", "starting container-1")
	})

	t.Run("volume-fscrypt", func(t *testing.T) {
		// fscrypt_key= encrypts a volume on the cache: its names and
		// content are not on the disk in clear; the next boot with the
		// key reads it; another key is refused, or with
		// fscrypt_reset_key, starts afresh.
		t.Parallel()
		c := f.cacheProxy(t)
		disk := blankDisk(t, 256<<20)
		k1 := base64.StdEncoding.EncodeToString([]byte("fscrypt key one, of 32 bytes....")) // 32 bytes, stretched
		k2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("two!"), 16))           // 64 bytes, as they are
		cache := `ociboot.cache_device=auto ociboot.cache_wait=1 `
		res, console := c.boot(t, cache+fmt.Sprintf(`b2c.volume=sec,fscrypt_key=%[2]s b2c.volume=reset,fscrypt_key=%[2]s b2c.volume=wrong,fscrypt_key=%[2]s `+
			`ociboot.container="-v sec:/sec -v reset:/reset -v wrong:/wrong %[1]s sh -c 'echo plain-$((6*7))-text > /sec/secret-name.txt; `+
			`echo r > /reset/r; echo w > /wrong/w; echo written-$((1+1))'"`, c.img, k1), disk)
		if !res.StatusSeen || res.Status != 0 {
			t.Fatalf("first boot: status seen %v, %d", res.StatusSeen, res.Status)
		}
		inOrder(t, console, "written-2")
		raw, err := os.ReadFile(disk)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("plain-42-text")) || bytes.Contains(raw, []byte("secret-name.txt")) {
			t.Error("the disk image holds the volume's content or file name in clear")
		}
		part := disk + "?offset=1048576"
		if ls := hostTool(t, "debugfs", "-R", "ls /ociboot/volumes/sec/data", part); strings.Contains(ls, "secret-name") {
			t.Errorf("the volume's directory on the disk lists its names in clear:\n%s", ls)
		}

		res, console = c.boot(t, cache+fmt.Sprintf(`b2c.volume=sec,fscrypt_key=%[2]s b2c.volume=reset,fscrypt_key=%[3]s,fscrypt_reset_key b2c.volume=wrong,fscrypt_key=%[3]s `+
			`ociboot.container="-v sec:/sec -v reset:/reset %[1]s sh -c 'cat /sec/secret-name.txt; echo reset holds $(ls /reset | wc -l) files'" `+
			`ociboot.container="-v wrong:/wrong %[1]s cat /wrong/w"`, c.img, k1, k2), disk)
		if !res.StatusSeen || res.Status == 0 {
			t.Errorf("second boot: status seen %v, %d; want the failure of the container given the wrong key", res.StatusSeen, res.Status)
		}
		inOrder(t, console,
			"ociboot: volumes: volume reset: fscrypt_reset_key: /storage/ociboot/volumes/reset/data emptied, to be encrypted with the given key",
			"plain-42-text", "reset holds 0 files",
			"volume wrong: fscrypt_key=: /storage/ociboot/volumes/wrong/data is encrypted with another key")
	})

	t.Run("volumes", func(t *testing.T) {
		// Named volumes on the cache: shared by the containers of a
		// boot, deleted at the pipeline's end or kept for the next boot.
		// The cache is on a SATA disk (AHCI).
		t.Parallel()
		c := f.cacheProxy(t)
		disk := blankDisk(t, 256<<20)
		sata := disk + ",if=ahci"
		res, console := c.boot(t, fmt.Sprintf(`ociboot.cache_device=auto ociboot.cache_wait=1 b2c.volume=job,expiration=pipeline_end b2c.volume=keep `+
			`ociboot.container="-v job:/job -v keep:/keep %[1]s sh -c 'echo in-$((1+1))-job > /job/f; echo kept-$((2+2)) > /keep/f'" `+
			`ociboot.container="-v job:/j:ro --mount type=volume,src=keep,dst=/k %[1]s sh -c 'cat /j/f /k/f; touch /j/x 2>/dev/null || echo job-read-only'"`, c.img), sata)
		if !res.StatusSeen || res.Status != 0 {
			t.Errorf("pipeline status: seen %v, %d; want 0", res.StatusSeen, res.Status)
		}
		inOrder(t, console, `ociboot: storage: /dev/sda1 (ext4 "B2C_CACHE") mounted on /storage`,
			"ociboot: ==== volumes ====", "in-2-job", "kept-4", "job-read-only", "ociboot: volumes: deleted job (expiration=pipeline_end)")
		part := disk + "?offset=1048576"
		if vols := hostTool(t, "debugfs", "-R", "ls -p /ociboot/volumes", part); !strings.Contains(vols, "/keep/") || strings.Contains(vols, "/job/") {
			t.Errorf("the volumes on the cache after the pipeline:\n%s", vols)
		}
		res, console = c.boot(t, fmt.Sprintf(`ociboot.cache_device=auto ociboot.container="-v keep:/k %s sh -c 'cat /k/f'"`, c.img), sata)
		if !res.StatusSeen || res.Status != 0 {
			t.Errorf("second boot: pipeline status: seen %v, %d; want 0", res.StatusSeen, res.Status)
		}
		inOrder(t, console, "kept-4", "Execution is over, pipeline status: 0")
	})
	t.Run("cache-disk", func(t *testing.T) {
		// One disk through its life: blank, partitioned and formatted;
		// warm; the registry down; reset.
		t.Parallel()
		c := f.cacheProxy(t)
		img, via, down, blobGets, boot := c.img, c.via, &c.down, c.blobGets, c.boot
		disk := blankDisk(t, 512<<20)
		warm := fmt.Sprintf(`ociboot.cache_device=auto ociboot.cache_wait=1 ociboot.swap=32M ociboot.container="%s sh -c 'echo swaps: $(tail -n +2 /proc/swaps)'"`, img)
		res, console := boot(t, warm, disk)
		if !res.StatusSeen || res.Status != 0 {
			t.Fatalf("blank disk: pipeline status seen %v, %d; want 0", res.StatusSeen, res.Status)
		}
		inOrder(t, console,
			"ociboot: ==== storage ====",
			"ociboot: storage: cache: no B2C_CACHE partition: formatting vda (512.0 MiB), which held no partition and no known filesystem; all of it is lost",
			"ociboot: storage: cache: formatting /dev/vda1 (ext4, label B2C_CACHE)",
			`ociboot: storage: /dev/vda1 (ext4 "B2C_CACHE") mounted on /storage`,
			"ociboot: storage: swapping to /storage/swapfile (32.0 MiB)",
			"swaps: /storage/swapfile file",
			"Execution is over, pipeline status: 0")
		if got := strings.Fields(hostTool(t, "partx", "-g", "-o", "NR,START,NAME", disk)); strings.Join(got, " ") != "1 2048 B2C_CACHE" {
			t.Errorf("partx after the first boot: %q, want one partition at 1 MiB named B2C_CACHE", got)
		}
		part := disk + "?offset=1048576"
		if out := hostTool(t, "blkid", "-p", "-O", "1048576", "-o", "export", disk); !strings.Contains(out, "LABEL=B2C_CACHE") || !strings.Contains(out, "TYPE=ext4") {
			t.Errorf("blkid of the partition: %s", out)
		}
		if out := hostTool(t, "dumpe2fs", "-h", part); !strings.Contains(out, "Filesystem state:         clean") || !strings.Contains(out, "encrypt") {
			t.Errorf("the cache after power-off is not a clean ext4 with the encrypt feature:\n%s", out)
		}
		uuid := fsUUID(t, disk)

		gets := blobGets()
		res, console = boot(t, warm, disk)
		if !res.StatusSeen || res.Status != 0 || strings.Contains(console, "formatting") || fsUUID(t, disk) != uuid {
			t.Errorf("warm boot: status seen %v, %d; formatted again: %v; want 0, the cache as it was", res.StatusSeen, res.Status, strings.Contains(console, "formatting"))
		}
		if n := blobGets() - gets; n != 0 {
			t.Errorf("warm boot: %d blob GETs, want none", n)
		}
		// The container starts on the layers unpacked by the first boot.
		inOrder(t, console, ": unpacked in the store", "ociboot: container 1/1 ("+img+"): starting", "swaps: /storage/swapfile file")
		if strings.Contains(console, ": fetching") {
			t.Error("warm boot: a layer was fetched and unpacked again")
		}

		down.Store(true)
		absent := via + "/e2e/absent:1"
		res, console = boot(t, fmt.Sprintf(`ociboot.cache_device=auto ociboot.container="%s sh -c 'echo offline run'" ociboot.container="--pull never %s true"`, img, absent), disk)
		down.Store(false)
		inOrder(t, console,
			"WARNING: the registry is out of reach: using the stored copy of "+img+" (linux/amd64, sha256:",
			"offline run",
			"pull "+absent+" (linux/amd64): --pull never, and it is not in the image store")
		if !res.StatusSeen || res.Status == 0 {
			t.Errorf("registry down, --pull never of an absent image: status seen %v, %d; want a failure", res.StatusSeen, res.Status)
		}

		gets = blobGets()
		res, console = boot(t, fmt.Sprintf(`b2c.cache_device=reset ociboot.container="%s true"`, img), disk)
		inOrder(t, console, "ociboot: storage: cache: formatting /dev/vda1 (ext4, label B2C_CACHE)", "Execution is over, pipeline status: 0")
		if fsUUID(t, disk) == uuid || blobGets() == gets {
			t.Errorf("reset: the filesystem UUID is unchanged, or nothing was fetched (%d blob GETs)", blobGets()-gets)
		}

		// A quota too small for two images: the one this boot does not
		// use goes, the one it uses stays.
		layered := via + "/e2e/layered:1"
		res, console = boot(t, fmt.Sprintf(`b2c.cache_device=auto ociboot.cache_quota=1M ociboot.container="%s true"`, layered), disk)
		if !res.StatusSeen || res.Status != 0 {
			t.Errorf("quota: pipeline status seen %v, %d; want 0", res.StatusSeen, res.Status)
		}
		inOrder(t, console, "ociboot: storage: evicted the least recently used images: "+img+" linux/amd64", "ociboot: storage: the image store takes")
		if refs := hostTool(t, "debugfs", "-R", "ls -p /ociboot/store/refs", disk+"?offset=1048576"); strings.Count(refs, "/100600/") != 1 {
			t.Errorf("after eviction the store holds these refs, want one:\n%s", refs)
		}
	})

	t.Run("cache-prepared", func(t *testing.T) {
		// A partition the host formatted as boot2container does, on the
		// second disk, a SATA one: auto uses it as it is and leaves the
		// blank first disk, an NVMe one, alone.
		t.Parallel()
		c := f.cacheProxy(t)
		img, boot := c.img, c.boot
		blank := blankDisk(t, 256<<20)
		prepared := blankDisk(t, 256<<20)
		f, err := os.OpenFile(prepared, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		table := &gpt.Table{ProtectiveMBR: true, LogicalSectorSize: 512, PhysicalSectorSize: 512, Partitions: []*gpt.Partition{
			{Start: 2048, Size: 64 << 20, Type: gpt.LinuxFilesystem, Name: "data"},
			{Start: 2048 + 64<<20/512, Size: 128 << 20, Type: gpt.LinuxFilesystem, Name: "cache"},
		}}
		if err := table.Write(f, 256<<20); err != nil {
			t.Fatal(err)
		}
		f.Close()
		offset := fmt.Sprint(1<<20 + 64<<20)
		hostTool(t, "mke2fs", "-q", "-F", "-t", "ext4", "-L", "B2C_CACHE", "-E", "offset="+offset, prepared, "128M")
		before := hostTool(t, "blkid", "-p", "-O", offset, "-s", "UUID", "-o", "value", prepared)
		res, console := boot(t, fmt.Sprintf(`b2c.cache_device=auto ociboot.container="%s sh -c 'echo PARTITIONS; cat /proc/partitions'"`, img), blank+",if=nvme", prepared+",if=ahci")
		if !res.StatusSeen || res.Status != 0 {
			t.Errorf("pipeline status: seen %v, %d; want 0", res.StatusSeen, res.Status)
		}
		inOrder(t, console, `ociboot: storage: /dev/sda2 (ext4 "B2C_CACHE") mounted on /storage`)
		if strings.Contains(console, "formatting") {
			t.Error("a disk was formatted although one had a B2C_CACHE partition")
		}
		// Both disks were found, each on its bus.
		_, parts, _ := strings.Cut(console, "\nPARTITIONS")
		for _, name := range []string{" nvme0n1\n", " sda2\n"} {
			if !strings.Contains(strings.ReplaceAll(parts, "\r", ""), name) {
				t.Errorf("the guest's /proc/partitions lacks%s", strings.TrimSuffix(name, "\n"))
			}
		}
		if after := hostTool(t, "blkid", "-p", "-O", offset, "-s", "UUID", "-o", "value", prepared); after != before {
			t.Errorf("the prepared filesystem changed: UUID %q, was %q", after, before)
		}
		if out, _ := exec.Command("blkid", "-p", blank).CombinedOutput(); len(out) != 0 {
			t.Errorf("the blank disk was written: blkid says %s", out)
		}
	})

	t.Run("cache-filesystem", func(t *testing.T) {
		// A named filesystem= mount as the cache: the store lands on it.
		t.Parallel()
		c := f.cacheProxy(t)
		img, boot := c.img, c.boot
		disk := blankDisk(t, 128<<20)
		hostTool(t, "mke2fs", "-q", "-F", "-t", "ext4", disk)
		res, console := boot(t, fmt.Sprintf(`b2c.filesystem=scratch,type=ext4,src=/dev/vda,opts=noatime|nodiratime b2c.cache_device=scratch ociboot.container="%s true"`, img), disk)
		if !res.StatusSeen || res.Status != 0 {
			t.Errorf("pipeline status: seen %v, %d; want 0", res.StatusSeen, res.Status)
		}
		inOrder(t, console, "ociboot: storage: filesystem scratch (ext4 /dev/vda) mounted on /storage")
		if out := hostTool(t, "debugfs", "-R", "ls /ociboot/store/refs", disk); !strings.Contains(out, " ") || strings.Contains(out, "File not found") {
			t.Errorf("the store's refs on the filesystem: %s", out)
		}
	})
}

// cacheRootTests checks switch-root from the cache: the root image is
// stored by a first boot and boots again with the registry down, its
// layers read from the store; the cache is left clean by the hand-over.
func (f *fixture) cacheRootTests(t *testing.T, rootRepoTag string) {
	t.Run("cache-root", func(t *testing.T) {
		t.Parallel()
		c := f.cacheProxy(t)
		root := c.via + "/" + rootRepoTag
		disk := blankDisk(t, 256<<20)
		cmdline := fmt.Sprintf(`ociboot.root=%s ociboot.cache_device=auto ociboot.cache_wait=1`, root)
		res, console := c.bootRoot(t, cmdline, disk)
		inOrder(t, console, `ociboot: storage: /dev/vda1 (ext4 "B2C_CACHE") mounted on /storage`, "ociboot: root: starting /sbin/init", "ROOT-INIT-DONE")
		if !res.HandedOver || vm.ExitStatus(res, nil) != 0 {
			t.Errorf("cold: hand-over seen %v, exit status %d", res.HandedOver, vm.ExitStatus(res, nil))
		}
		if out := hostTool(t, "dumpe2fs", "-h", disk+"?offset=1048576"); !strings.Contains(out, "Filesystem state:         clean") {
			t.Errorf("the cache after the hand-over is not clean:\n%s", out)
		}
		c.down.Store(true)
		res, console = c.bootRoot(t, cmdline, disk)
		c.down.Store(false)
		inOrder(t, console, "WARNING: the registry is out of reach: using the stored copy of "+root,
			": reading it from the image store", ": reading it from the image store", "ociboot: root: starting /sbin/init", "ROOT-INIT-DONE")
		if strings.Contains(console, ": fetching") {
			t.Error("registry down: a layer was fetched")
		}
		if !res.HandedOver || vm.ExitStatus(res, nil) != 0 {
			t.Errorf("registry down: hand-over seen %v, exit status %d", res.HandedOver, vm.ExitStatus(res, nil))
		}
	})
}

// treeDriverTest checks a switch-root boot with the whole module tree
// (the big initramfs) whose cache disk is on a controller no driver
// preset drives, QEMU's LSI 53C895A (sym53c8xx): coldplug reads the
// tree's index for it alone and loads its driver from the tree, mounted
// apart until the hand-over moves it into the new root.
func (f *fixture) treeDriverTest(t *testing.T, rootRepoTag string) {
	t.Run("cache-root-tree-driver", func(t *testing.T) {
		t.Parallel()
		disk := cacheDisk(t, 64<<20)
		root := fmt.Sprintf("%s:%d/%s", vm.GuestHost, f.reg.Port, rootRepoTag)
		cmdline := "ociboot.root=" + root + " ociboot.cache_device=auto ociboot.cache_wait=1m"
		res, console := f.bootRootOn(t, f.bigInitramfs(t), cmdline, machine{disks: []vm.Disk{{Path: disk, Bus: "lsi"}}})
		inOrder(t, console,
			"ociboot: modules: mounted /lib/ociboot/modules.squashfs at /lib/ociboot/modules through /dev/loop",
			treeIndexRead,
			`ociboot: storage: /dev/sda1 (ext4 "B2C_CACHE") mounted on /storage`,
			"ociboot: root: modules: /lib/modules/"+kernelRelease(t)+" of the initramfs handed over (",
			" modules, its image mount moved)",
			"ociboot: root: starting /sbin/init", "ROOT-INIT-DONE")
		if by := loadedBy(console, "sym53c8xx"); by != backgroundColdplug {
			t.Errorf("sym53c8xx loaded by %q, want %q", by, backgroundColdplug)
		}
		if !res.HandedOver || vm.ExitStatus(res, nil) != 0 {
			t.Errorf("hand-over seen %v, exit status %d", res.HandedOver, vm.ExitStatus(res, nil))
		}
	})
}

// cacheProxy is a registry proxy of a cache test's own: it counts blob
// requests and can play a registry that is down.
type cacheProxy struct {
	via  string // the proxy as the guest reaches it, HOST:PORT
	port int    // its port on 127.0.0.1
	img  string // the busybox image through it
	down atomic.Bool
	// cut, when set, holds the download of a blob once it has sent part
	// of it, and says so.
	cut atomic.Pointer[cut]
	// blobGets counts the blob GETs so far; boot boots with the proxy
	// forwarded and trusted, and the disks attached.
	blobGets func() int
	// Disks are PATH[,if=BUS], as vm.ParseDisk reads them; bootRoot boots
	// an image as the OS.
	boot, bootRoot func(t *testing.T, cmdline string, disks ...string) (vm.Result, string)
	// bootOn boots as boot does on machine m, the proxy's port added to
	// its forwards.
	bootOn func(t *testing.T, cmdline string, m machine) (vm.Result, string)
}

func (f *fixture) cacheProxy(t *testing.T) *cacheProxy {
	t.Helper()
	c := &cacheProxy{}
	proxy := registrytest.NewProxy(t, f.reg, registrytest.ProxyOptions{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c.down.Load() {
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					conn.Close()
				}
				return
			}
			if cut := c.cut.Load(); cut != nil && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+cut.blob.String()) {
				w = &cutWriter{ResponseWriter: w, cut: cut, ctx: r.Context()}
			}
			next.ServeHTTP(w, r)
		})
	}})
	port := portOf(t, proxy.Addr)
	c.port = port
	c.via = fmt.Sprintf("%s:%d", vm.GuestHost, port)
	c.img = c.via + "/e2e/busybox:1"
	c.blobGets = func() int {
		return proxy.Count(func(r registrytest.ProxyRequest) bool { return r.Method == http.MethodGet && r.IsBlob() })
	}
	on := func(disks []string) machine {
		m := machine{ports: []int{port}}
		for _, d := range disks {
			disk, err := vm.ParseDisk(d)
			if err != nil {
				t.Fatal(err)
			}
			m.disks = append(m.disks, disk)
		}
		return m
	}
	c.bootOn = func(t *testing.T, cmdline string, m machine) (vm.Result, string) {
		t.Helper()
		m.ports = append([]int{port}, m.ports...)
		res, console, err := f.bootWith(t, "ociboot.insecure_registry="+c.via+" "+cmdline, m)
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		return res, console
	}
	c.boot = func(t *testing.T, cmdline string, disks ...string) (vm.Result, string) {
		t.Helper()
		m := on(disks)
		m.ports = nil // bootOn adds the proxy's
		return c.bootOn(t, cmdline, m)
	}
	c.bootRoot = func(t *testing.T, cmdline string, disks ...string) (vm.Result, string) {
		t.Helper()
		return f.bootRootOn(t, f.initramfs, "ociboot.insecure_registry="+c.via+" "+cmdline, on(disks))
	}
	return c
}

// cut is where a blob download is held: after its first after bytes.
// reached is closed then.
type cut struct {
	blob    v1.Hash
	after   int64
	reached chan struct{}
	once    sync.Once
}

// cutWriter passes a blob's first bytes, up to the cut, then waits for
// the client to go away.
type cutWriter struct {
	http.ResponseWriter
	cut  *cut
	ctx  context.Context
	sent int64
}

func (w *cutWriter) Write(p []byte) (int, error) {
	if left := w.cut.after - w.sent; int64(len(p)) > left {
		n, err := w.ResponseWriter.Write(p[:left])
		w.sent += int64(n)
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		w.cut.once.Do(func() { close(w.cut.reached) })
		<-w.ctx.Done()
		if err == nil {
			err = w.ctx.Err()
		}
		return n, err
	}
	n, err := w.ResponseWriter.Write(p)
	w.sent += int64(n)
	return n, err
}

// powerCutTests checks that a machine whose power is cut in the middle
// of a large layer's download, then in the middle of its unpack, boots
// next with a store that is whole: what was cut short is discarded, the
// layer is fetched again and the container runs.
func (f *fixture) powerCutTests(t *testing.T) {
	t.Run("cache-power-cut", func(t *testing.T) {
		t.Parallel()
		c := f.cacheProxy(t)
		data := make([]byte, 16<<20)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		big := registrytest.LayerFromFiles(t, map[string]string{"big": string(data)})
		blob, err := big.Digest()
		if err != nil {
			t.Fatal(err)
		}
		size, err := big.Size()
		if err != nil {
			t.Fatal(err)
		}
		registrytest.Push(t, f.reg, "e2e/big:1", registrytest.BusyboxImage(t, big))
		ref := c.via + "/e2e/big:1"
		disk := blankDisk(t, 256<<20)
		cmdline := fmt.Sprintf(`ociboot.cache_device=auto ociboot.cache_wait=1 ociboot.container="%s sh -c 'echo big has $(wc -c < /big) bytes'"`, ref)
		for _, after := range []int64{size / 2, size - 1} {
			k := &cut{blob: blob, after: after, reached: make(chan struct{})}
			c.cut.Store(k)
			_, console, err := f.bootWith(t, "ociboot.insecure_registry="+c.via+" "+cmdline, machine{ports: []int{c.port}, disks: []vm.Disk{{Path: disk}}, kill: k.reached})
			c.cut.Store(nil)
			if err == nil || !strings.Contains(err.Error(), "the VM was stopped") || strings.Contains(console, fmt.Sprintf("big has %d bytes", len(data))) {
				t.Fatalf("cut after %d of %d bytes: %v; want the VM stopped before the container ran", after, size, err)
			}
			inOrder(t, console, "layer 2/2 "+blob.String()[:19]+" ")
		}
		res, console := c.boot(t, cmdline, disk)
		if !res.StatusSeen || res.Status != 0 {
			t.Errorf("after the cuts: pipeline status seen %v, %d; want 0", res.StatusSeen, res.Status)
		}
		inOrder(t, console, fmt.Sprintf("big has %d bytes", len(data)))
		part := disk + "?offset=1048576"
		hostTool(t, "e2fsck", "-fn", part) // fails the test on any error it finds
		// tmp/ holds "." and ".." only; layers/sha256 the two layers.
		tmp := hostTool(t, "debugfs", "-R", "ls -p /ociboot/store/tmp", part)
		layers := hostTool(t, "debugfs", "-R", "ls -p /ociboot/store/layers/sha256", part)
		if strings.Count(tmp, "\n/") != 2 || strings.Count(layers, "/040755/") != 2 {
			t.Errorf("the store after the cuts and a whole boot: tmp holds\n%s\nlayers:\n%s", tmp, layers)
		}
	})
}

// portOf is the port of a 127.0.0.1:PORT address.
func portOf(t testing.TB, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// blankDisk makes a sparse disk image of size bytes.
func blankDisk(t testing.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, size); err != nil {
		t.Fatal(err)
	}
	return p
}

// backgroundColdplug is what loads the drivers of storage controllers
// while the network comes up, by the console's lines.
const backgroundColdplug = "coldplug, in the background"

// loadedBy says what loaded module mod, by the console's "modules:"
// lines: "coldplug", backgroundColdplug, "hotplug", or "" when none says.
func loadedBy(console, mod string) string {
	for _, l := range strings.Split(strings.ReplaceAll(console, "\r", ""), "\n") {
		rest, ok := strings.CutPrefix(l, "ociboot: modules: ")
		if !ok {
			continue
		}
		how, rest, _ := strings.Cut(rest, ": loaded ")
		names, _, _ := strings.Cut(rest, " ")
		if slices.Contains([]string{"coldplug", backgroundColdplug, "hotplug"}, how) && slices.Contains(strings.Split(names, ","), mod) {
			return how
		}
	}
	return ""
}

// hostTool runs a host tool (CI installs them) and returns its output,
// trimmed.
func hostTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	return strings.TrimSpace(hosttest.Run(t, name, args...))
}

// fsUUID is the UUID of the filesystem at 1 MiB into disk.
func fsUUID(t *testing.T, disk string) string {
	t.Helper()
	return hostTool(t, "blkid", "-p", "-O", "1048576", "-s", "UUID", "-o", "value", disk)
}

// seededS3 starts versitygw with two buckets, job-bucket, holding
// "seeded input\n" at key, mode 640 kept in its metadata, and
// opt-bucket, empty; it returns the server and its port.
func seededS3(t *testing.T, key string) (*s3test.Server, int) {
	t.Helper()
	srv := s3test.Start(t, "job-bucket", "opt-bucket")
	seed := t.TempDir()
	p := filepath.Join(seed, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("seeded input\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	ep := bootcfg.S3{Alias: "gw", URL: srv.URL, AccessKey: srv.Access, SecretKey: srv.Secret}
	m, err := volume.NewMirror(ep, bootcfg.Bucket{Alias: "gw", Bucket: "job-bucket"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Push(context.Background(), seed, volume.SyncOptions{Preserve: true}); err != nil {
		t.Fatal(err)
	}
	return srv, portOf(t, srv.Addr)
}

// s3Tests checks volumes mirrored to a real S3 server (versitygw on
// 127.0.0.1, forwarded to the guest): boot2container's production line,
// but push_on=changes, which is not built yet; and a server that goes
// down before the final push, then comes back for the next boot.
func (f *fixture) s3Tests(t *testing.T) {
	t.Run("volume-journal", func(t *testing.T) {
		t.Parallel()
		srv, port := seededS3(t, "input")
		c := f.cacheProxy(t)
		disk := blankDisk(t, 256<<20)
		params := fmt.Sprintf(`ociboot.cache_device=auto ociboot.cache_wait=1 b2c.minio="gw,http://%s:%d,%s,%s" `+
			`b2c.volume="job,mirror=gw/job-bucket,pull_on=pipeline_start,push_on=pipeline_end,overwrite,remove,expiration=pipeline_end" `,
			vm.GuestHost, port, srv.Access, srv.Secret)
		// Boot 1: the container writes its result, says so, and runs on;
		// then the server goes down and ctrl-alt-del is pressed. The
		// container is stopped, the final push fails.
		written := newSighting("result-42 written")
		monitor := filepath.Join(t.TempDir(), "monitor")
		pressed := make(chan error, 1)
		go func() {
			select {
			case <-written.seen:
				srv.Stop()
				_, err := vm.MonitorCommand(t.Context(), monitor, "sendkey ctrl-alt-delete")
				pressed <- err
			case <-t.Context().Done():
			}
		}()
		res, console := c.bootOn(t, params+
			fmt.Sprintf(`b2c.container="-v job:/job %s sh -c 'cat /job/input; echo result-$((6*7)) > /job/result; trap exit TERM; `+
				`echo result-$((6*7)) written; while :; do sleep 0.2; done'"`, c.img),
			machine{ports: []int{port}, disks: []vm.Disk{{Path: disk}}, watch: written, monitor: monitor})
		if err := <-pressed; err != nil {
			t.Fatalf("pressing ctrl-alt-del: %v", err)
		}
		if !res.StatusSeen || res.Status == 0 {
			t.Errorf("pipeline status with the final push failed: seen %v, %d; want a failure", res.StatusSeen, res.Status)
		}
		inOrder(t, console,
			"ociboot: volumes: pulled job from gw/job-bucket at pipeline_start: 1 files copied",
			"seeded input", "result-42 written",
			"ociboot: reboot requested: stopping the containers",
			"ociboot: volumes: pipeline_end: volume job: push to gw/job-bucket: ",
			"ociboot: volumes: kept job, which expire but are not pushed",
			"ociboot: volumes: NOT PUSHED: job (/storage/ociboot/volumes/job): what was written from ",
			" on, not pushed to gw/job-bucket (listing job-bucket/: ", "): kept on disk for the next boot to push")
		if _, err := os.Stat(filepath.Join(srv.Dir, "job-bucket", "result")); err == nil {
			t.Fatal("the result reached the bucket, though the server was down")
		}

		// Boot 2: the server is back. The result is pushed before the
		// pipeline starts, and so comes back down with the inputs.
		srv.Restart(t)
		res, console = c.bootOn(t, params+`b2c.container="-v job:/job `+c.img+` cat /job/result"`,
			machine{ports: []int{port}, disks: []vm.Disk{{Path: disk}}})
		if !res.StatusSeen || res.Status != 0 {
			t.Errorf("pipeline status after the server came back: seen %v, %d; want 0", res.StatusSeen, res.Status)
		}
		inOrder(t, console,
			"ociboot: volumes: pushed job to gw/job-bucket at boot, what an earlier boot could not push: 1 files copied (10 bytes), 1 the same",
			"ociboot: volumes: deleted job (expiration=pipeline_end)",
			"ociboot: volumes: pulled job from gw/job-bucket at pipeline_start: 2 files copied",
			"result-42",
			"ociboot: volumes: pushed job to gw/job-bucket at pipeline_end: 0 files copied")
		if got, err := os.ReadFile(filepath.Join(srv.Dir, "job-bucket", "result")); err != nil || string(got) != "result-42\n" {
			t.Errorf("the bucket's result: %q, %v", got, err)
		}
	})

	t.Run("volume-s3", func(t *testing.T) {
		t.Parallel()
		srv, port := seededS3(t, "input/data")
		// The container waits at this gate until the bucket holds its
		// result: a push on changes, while the pipeline runs.
		result := filepath.Join(srv.Dir, "job-bucket", "out", "result")
		gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if got, _ := os.ReadFile(result); string(got) != "result-42\n" {
				http.Error(w, "not yet", http.StatusNotFound)
			}
		}))
		defer gate.Close()
		gatePort := portOf(t, gate.Listener.Addr().String())
		// A second volume, without overwrite nor remove, with excludes,
		// seeded as another tool would.
		client, err := minio.New(srv.Addr, &minio.Options{Creds: credentials.NewStaticV4(srv.Access, srv.Secret, "")})
		if err != nil {
			t.Fatal(err)
		}
		for key, body := range map[string]string{"keep.txt": "kept\n", "changed.txt": "bucket\n", "gone.txt": "gone\n"} {
			if _, err := client.PutObject(context.Background(), "opt-bucket", key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		c := f.cacheProxy(t)
		cmdline := fmt.Sprintf(`b2c.minio="gw,http://%s:%d,%s,%s" `+
			`b2c.volume="job,mirror=gw/job-bucket,pull_on=pipeline_start,push_on=changes,overwrite,preserve,remove,expiration=pipeline_end" `+
			`b2c.volume="opts,mirror=gw/opt-bucket,pull_on=pipeline_start,push_on=pipeline_end,exclude=*.tmp,exclude=cache/*" `+
			`b2c.container="-v opts:/opts %[5]s sh -c 'cat /opts/keep.txt; echo local > /opts/changed.txt; echo t > /opts/scratch.tmp; `+
			`mkdir /opts/cache; echo c > /opts/cache/x; echo n > /opts/new.txt; rm /opts/gone.txt'" `+
			`b2c.container="-v job:/job %[5]s sh -c 'cat /job/input/data; stat -c %%a /job/input/data; rm -r /job/input; `+
			`mkdir /job/out; echo result-$((6*7)) > /job/out/result; chmod 750 /job/out/result; touch -d @1577934245 /job/out/result; `+
			`until wget -q -O /dev/null http://%[1]s:%[6]d/; do sleep 0.2; done; echo the bucket has the result'"`,
			vm.GuestHost, port, srv.Access, srv.Secret, c.img, gatePort)
		res, console := c.bootOn(t, cmdline, machine{ports: []int{port, gatePort}})
		if !res.StatusSeen || res.Status != 0 {
			t.Errorf("pipeline status: seen %v, %d; want 0", res.StatusSeen, res.Status)
		}
		inOrder(t, console,
			"ociboot: volumes: pulled job from gw/job-bucket at pipeline_start: 1 files copied",
			"ociboot: volumes: pulled opts from gw/opt-bucket at pipeline_start: 3 files copied",
			"kept",
			"seeded input", "640",
			"the bucket has the result",
			"ociboot: volumes: pushed job to gw/job-bucket at pipeline_end: ",
			"ociboot: volumes: pushed opts to gw/opt-bucket at pipeline_end: 1 files copied (2 bytes), 1 the same, 1 left alone, 0 removed",
			"ociboot: volumes: deleted job (expiration=pipeline_end)")
		// The container may see the bucket hold its result before
		// ociboot says the push is over.
		inOrder(t, console, "ociboot: volumes: pushed job to gw/job-bucket on changes: ", "ociboot: volumes: pushed job to gw/job-bucket at pipeline_end: ")
		if strings.Contains(console, srv.Secret) && strings.Count(console, srv.Secret) > strings.Count(console, "ommand line:") {
			t.Error("the console shows the S3 secret outside the kernel's echo of its command line")
		}
		// The bucket holds the result alone (the input the container
		// removed is removed), its mode and time kept.
		keys := func(bucket string) []string {
			var out []string
			for obj := range client.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
				if obj.Err != nil {
					t.Fatal(obj.Err)
				}
				out = append(out, obj.Key)
			}
			return out
		}
		if got := keys("job-bucket"); !slices.Equal(got, []string{"out/result"}) {
			t.Errorf("the bucket holds %q, want out/result alone", got)
		}
		// Without overwrite, the changed object is left alone; without
		// remove, the removed file's object stays; excluded files are
		// not pushed.
		if got := keys("opt-bucket"); !slices.Equal(got, []string{"changed.txt", "gone.txt", "keep.txt", "new.txt"}) {
			t.Errorf("opt-bucket holds %q, want changed.txt, gone.txt, keep.txt and new.txt", got)
		}
		if got, err := os.ReadFile(filepath.Join(srv.Dir, "opt-bucket", "changed.txt")); err != nil || string(got) != "bucket\n" {
			t.Errorf("opt-bucket's changed.txt: %q, %v; want it left alone", got, err)
		}
		info, err := client.StatObject(context.Background(), "job-bucket", "out/result", minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if info.UserMetadata["Ociboot-Mode"] != "750" || info.UserMetadata["Ociboot-Mtime"] != "1577934245000000000" {
			t.Errorf("the result's metadata: %v; want mode 750 and mtime 2020-01-02T03:04:05Z", info.UserMetadata)
		}
	})
}
