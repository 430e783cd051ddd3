#!/usr/bin/env bash
# The demo: boot a VM straight into a container, offline. ociboot serves an
# example image (busybox from this machine) from its own registry on
# 127.0.0.1, and the VM pulls it through QEMU's restricted user network.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ociboot=bin/ociboot
work=$(mktemp -d)
server=
trap '[ -z "$server" ] || kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

echo "== building the initramfs"
$ociboot build -o "$work/initramfs.img"

echo "== serving an example image (busybox from this machine) on 127.0.0.1"
start_example_registry
cat "$work/serve.log"

echo "== booting a VM into the container"
registry=10.0.2.100:$port
$ociboot vm --initramfs "$work/initramfs.img" --forward "$port" --timeout 5m \
	--cmdline "quiet ociboot.insecure_registry=$registry ociboot.container=\"$registry/demo/hello:latest\""
