#!/usr/bin/env bash
# Prints the modaliases of a q35 VM full of the devices QEMU emulates, one a
# line, sorted, as modaliases.txt holds them: it boots an initramfs with
# every module (so that coldplug and hotplug load the drivers that bring
# child devices: USB interfaces, SCSI disks, input devices), fails the boot
# on purpose to get the shell, and lists every modalias under /sys/devices.
# The VM has no network: its NICs have no peer. Needs bin/ociboot (make
# build) and takes a few minutes under TCG. Usage, from the repository:
#   internal/kmod/testdata/capture-modaliases.sh > /tmp/aliases
set -euo pipefail
cd "$(dirname "$0")/../../.."
kernel=${KERNEL:-$(ls /boot/vmlinuz-* | sort -V | tail -1)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin/ociboot build -o "$work/all.img" --modules-all --shell >/dev/null
for i in 1 2 3 4 5 6 7 8; do truncate -s 64M "$work/d$i.raw"; done
disk() { echo "file=$work/d$1.raw,format=raw,if=none,id=d$1"; }
{
	sleep "${WAIT:-120}" # the boot, and the drivers hotplug loads
	echo 'for f in $(find /sys/devices -name modalias); do echo "MODALIAS=$(cat $f)"; done 2>/dev/null; poweroff -f'
	sleep 60
} | timeout 600 qemu-system-x86_64 -machine q35 -cpu max -accel tcg -nodefaults -no-reboot -display none -m 2048 \
	-chardev stdio,id=c -serial chardev:c -audiodev none,id=snd0 \
	-device e1000 -device e1000e -device rtl8139 -device vmxnet3 -device i82551 -device i82559er -device pcnet -device ne2k_pci -device virtio-net-pci \
	-device qemu-xhci,id=xhci -device usb-net,bus=xhci.0 -device usb-kbd,bus=xhci.0 -device usb-mouse,bus=xhci.0 -device usb-tablet,bus=xhci.0 \
	-device usb-audio,bus=xhci.0,audiodev=snd0 -device usb-wacom-tablet,bus=xhci.0 -device usb-hub,bus=xhci.0 -device usb-ccid,bus=xhci.0 \
	-drive "$(disk 1)" -device usb-storage,drive=d1,bus=xhci.0 \
	-device ich9-usb-ehci1 -device ich9-usb-uhci1 -device pci-ohci \
	-drive "$(disk 2)" -device nvme,drive=d2,serial=capture \
	-drive "$(disk 3)" -device ide-hd,drive=d3,bus=ide.0 \
	-drive "$(disk 4)" -device virtio-blk-pci,drive=d4 \
	-device virtio-scsi-pci,id=vs -drive "$(disk 5)" -device scsi-hd,drive=d5,bus=vs.0 \
	-device lsi53c895a,id=lsi -drive "$(disk 6)" -device scsi-hd,drive=d6,bus=lsi.0 \
	-device megasas,id=mega -drive "$(disk 7)" -device scsi-hd,drive=d7,bus=mega.0 \
	-device mptsas1068 -device am53c974 -device dc390 \
	-device sdhci-pci -drive "$(disk 8)" -device sd-card,drive=d8 \
	-device pci-bridge,id=br1,chassis_nr=1 -device intel-hda -device hda-duplex,audiodev=snd0 \
	-device AC97,audiodev=snd0,bus=br1,addr=1 -device ES1370,audiodev=snd0,bus=br1,addr=2 \
	-device virtio-balloon-pci -device virtio-serial-pci -device virtio-rng-pci \
	-device virtio-keyboard-pci,bus=br1,addr=3 -device virtio-mouse-pci,bus=br1,addr=4 -device virtio-tablet-pci,bus=br1,addr=5 -device virtio-gpu-pci,bus=br1,addr=6 \
	-device i6300esb,bus=br1,addr=7 -device pvpanic -device pci-serial,bus=br1,addr=8 -device edu,bus=br1,addr=9 \
	-device ipmi-bmc-sim,id=bmc -device isa-ipmi-kcs,bmc=bmc \
	-kernel "$kernel" -initrd "$work/all.img" \
	-append "console=ttyS0 panic=-1 ip=off ociboot.extra_args_url=http://127.0.0.1:1/fail ociboot.on_failure=shell" 2>/dev/null |
	tr -d '\r' | sed -n 's/^.*MODALIAS=\([a-z0-9]*:.*\)$/\1/p' | sort -u
