#!/usr/bin/env bash
# The demo: boot a VM straight into a container, offline. ociboot serves an
# example image (busybox from this machine) from its own registry on
# 127.0.0.1, and the VM pulls it through QEMU's restricted user network.
set -euo pipefail
cd "$(dirname "$0")/.."
ociboot=bin/ociboot
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== building the initramfs"
$ociboot build -o "$work/initramfs.img"

echo "== making the example image from /bin/busybox"
root=$work/rootfs
mkdir -p "$root/bin" "$root/etc"
cp /bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
	[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
printf 'NAME="ociboot demo"\nID=ociboot-demo\n' >"$root/etc/os-release"

echo "== serving it from a local registry on 127.0.0.1"
$ociboot serve --listen 127.0.0.1:0 --image demo/hello:latest="$root" \
	--cmd /bin/sh --cmd -c \
	--cmd 'echo "Hello from a container booted by ociboot! kernel $(uname -r) on $(uname -m), $(grep -c ^processor /proc/cpuinfo) CPU(s)"' \
	>"$work/serve.log" 2>&1 &
server=$!
# serve prints its address once the image is pushed.
port=
for _ in $(seq 300); do
	port=$(sed -n 's/^registry listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/serve.log")
	[ -n "$port" ] && break
	kill -0 $server 2>/dev/null || { cat "$work/serve.log"; exit 1; }
	sleep 0.1
done
[ -n "$port" ] || { echo "the registry did not start:"; cat "$work/serve.log"; exit 1; }
cat "$work/serve.log"

echo "== booting a VM into the container"
registry=10.0.2.100:$port
$ociboot vm --initramfs "$work/initramfs.img" --forward "$port" --timeout 5m \
	--cmdline "ociboot.insecure_registry=$registry ociboot.container=\"$registry/demo/hello:latest\""
