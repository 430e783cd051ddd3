package initramfs

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ociboot/ociboot/internal/kmod"
)

// DriverPresets returns the families of modules `ociboot build
// --drivers` takes from the kernel's tree, by path under its modules
// directory: a directory (ending in "/") or a module file's path without
// its compression suffix. Their dependencies come with them. At boot,
// coldplug loads those the machine's devices match.
func DriverPresets() map[string][]string {
	return map[string][]string{
		// Ethernet from the vendors of servers, desktops and clouds; not the
		// datacenter-only families (Chelsio, QLogic, Netronome, Solarflare…),
		// which --modules names when needed.
		"net": prefixed("kernel/drivers/net/ethernet/",
			"intel/", "realtek/", "broadcom/", "mellanox/", "amd/", "aquantia/", "atheros/",
			"marvell/", "nvidia/", "via/", "8390/", "dec/", "amazon/", "google/", "microsoft/"),
		// Disks, and the filesystems of the cache and of VMs' shared
		// folders: NVMe, SATA (not the parallel ATA of old boards), SAS/RAID
		// HBAs of servers (not Fibre Channel), SD/MMC; ext4, vfat, overlayfs,
		// virtiofs, 9p.
		"storage": slices.Concat(
			prefixed("kernel/drivers/", "nvme/host/", "ata/ahci.ko", "ata/ata_piix.ko", "ata/ata_generic.ko", "ata/sata_", "mmc/",
				"scsi/sd_mod.ko", "scsi/sr_mod.ko", "scsi/megaraid/", "scsi/mpt3sas/", "scsi/hpsa.ko",
				"scsi/smartpqi/", "scsi/aacraid/"),
			prefixed("kernel/fs/", "ext4/", "fat/", "overlayfs/", "fuse/", "9p/")),
		// The other filesystems filesystem= mounts: XFS, btrfs, NFS (12 MiB
		// of modules, so not in the default set).
		"fs": prefixed("kernel/fs/", "xfs/", "btrfs/", "nfs/"),
		// USB host controllers, USB disks and network adapters, keyboards.
		"usb": prefixed("kernel/drivers/",
			"usb/host/", "usb/storage/", "net/usb/", "hid/usbhid/", "hid/hid-generic.ko"),
		// What hypervisors give guests: virtio, VMware, Hyper-V.
		"virt": prefixed("kernel/",
			"drivers/virtio/", "drivers/net/virtio_net.ko", "drivers/block/virtio_blk.ko",
			"drivers/scsi/virtio_scsi.ko", "drivers/char/hw_random/virtio-rng.ko", "drivers/net/vmxnet3/",
			"drivers/scsi/vmw_pvscsi.ko", "drivers/hv/", "drivers/net/hyperv/", "drivers/scsi/hv_storvsc.ko",
			"net/9p/"),
	}
}

// prefixed returns the paths with prefix in front of each.
func prefixed(prefix string, paths ...string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = prefix + p
	}
	return out
}

// DriverPreset is what one preset took from the kernel's tree.
type DriverPreset struct {
	Name    string
	Modules []string // its modules, without their dependencies
	Size    int64    // their files' size
}

// presetModules returns the modules of the presets named, each preset's
// own listed in presets.
func presetModules(ix *kmod.Index, names []string) (mods []string, presets []DriverPreset, err error) {
	all := DriverPresets()
	for _, n := range names {
		paths, ok := all[n]
		if !ok {
			return nil, nil, fmt.Errorf("initramfs: driver preset %q: expected one of %s", n, strings.Join(slices.Sorted(maps.Keys(all)), ", "))
		}
		p := DriverPreset{Name: n, Modules: ix.Under(paths)}
		mods = append(mods, p.Modules...)
		presets = append(presets, p)
	}
	return mods, presets, nil
}

// addCompressedModule adds the module file src as name, compressed by
// enc.
func addCompressedModule(t *tree, enc *zstd.Encoder, name, src, from string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return t.addData(name, enc.EncodeAll(data, nil), 0o644, from)
}

// renamePaths rewrites the module paths of an index file (modules.dep,
// modules.order) that renamed gives new names to.
func renamePaths(data []byte, renamed map[string]string) []byte {
	var b strings.Builder
	for line := range strings.Lines(string(data)) {
		body := strings.TrimRight(line, "\n")
		head, deps, hasDeps := strings.Cut(body, ":")
		if n, ok := renamed[strings.TrimSpace(head)]; ok {
			head = n
		}
		b.WriteString(head)
		if hasDeps {
			b.WriteString(":")
			for _, d := range strings.Fields(deps) {
				if n, ok := renamed[d]; ok {
					d = n
				}
				b.WriteString(" " + d)
			}
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}
