#!/usr/bin/env bash
# The demo: netboot a VM straight into a container, offline. `ociboot serve`
# is the whole boot server: the VM's firmware (QEMU's iPXE) gets the boot
# script, the kernel, the initramfs and its command line from it over HTTP,
# then pulls an example image (busybox from this machine) from its
# registry, all through QEMU's restricted user network to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

echo "== building the initramfs"
$ociboot build -o "$work/initramfs.img"

echo "== serving the netboot files and an example image on 127.0.0.1"
mkdir "$work/machines"
start_example_registry --initramfs "$work/initramfs.img" --machines "$work/machines"
cat "$work/serve.log"
# Every machine's command line; serve reads it on each boot.
registry=10.0.2.100:$port
echo "console=ttyS0 panic=-1 quiet ociboot.insecure_registry=$registry ociboot.container=$registry/demo/hello:latest" \
	>"$work/machines/default.cmdline"

echo "== netbooting a VM into the container"
$ociboot vm --netboot "http://127.0.0.1:$port/boot.ipxe" --timeout 5m
