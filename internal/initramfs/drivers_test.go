package initramfs

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDriverPresets builds with driver presets from the host's kernel
// tree: each preset brings its families with their dependencies and
// leaves the rest out, the report gives each preset's size, and an
// unknown preset is refused, naming the known ones.
func TestDriverPresets(t *testing.T) {
	opts := Options{Output: filepath.Join(t.TempDir(), "d.img"), InitBinary: smallInit(t), Runtime: "none", Compression: None,
		ModulesDir: hostModules, Drivers: []string{"net", "usb", "virt"}}
	rep, _ := build(t, opts)
	var got []string
	for _, m := range rep.Modules {
		got = append(got, m.Name)
	}
	for _, want := range []string{"e1000", "e1000e", "igb", "r8169", "8139too", "tg3", "bnxt_en", "mlx5_core", "vmxnet3", "virtio_net",
		"xhci_pci", "usb_storage", "cdc_ether", "r8152", "usbhid", "virtio_pci", "libphy", "mii"} {
		if !slices.Contains(got, want) {
			t.Errorf("the modules lack %s", want)
		}
	}
	for _, unwanted := range []string{"cxgb4", "qede", "nvme", "ahci", "ext4", "xfs", "lpfc"} {
		if slices.Contains(got, unwanted) {
			t.Errorf("the modules hold %s, of no preset asked for", unwanted)
		}
	}
	if len(rep.Presets) != 3 || rep.Presets[0].Name != "net" || rep.Presets[0].Size <= 0 || len(rep.Presets[0].Modules) < 20 {
		t.Errorf("presets reported: %+v", rep.Presets)
	}

	opts.Drivers = []string{"storage", "fs"}
	rep, _ = build(t, opts)
	got = got[:0]
	for _, m := range rep.Modules {
		got = append(got, m.Name)
	}
	for _, want := range []string{"nvme", "ahci", "sd_mod", "megaraid_sas", "mpt3sas", "sdhci_pci", "ext4", "vfat", "overlay", "virtiofs", "xfs", "btrfs", "nfs"} {
		if !slices.Contains(got, want) {
			t.Errorf("storage,fs lacks %s", want)
		}
	}
	if slices.Contains(got, "pata_via") || slices.Contains(got, "lpfc") {
		t.Errorf("storage holds parallel ATA or Fibre Channel: %v", got)
	}

	opts.Drivers = []string{"net", "wifi"}
	if _, err := Build(opts); err == nil || !strings.Contains(err.Error(), `driver preset "wifi": expected one of fs, net, storage, usb, virt`) {
		t.Errorf("an unknown preset: %v", err)
	}
}
