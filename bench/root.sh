#!/usr/bin/env bash
# Switch-root figures: boots Debian bookworm with systemd (debootstrap
# minbase + systemd, udev, kmod; cached in $OCIBOOT_TEST_CACHE, default
# ~/.cache/ociboot-test) as an OCI image and as a rootfs tarball served
# over HTTP, compressed with xz -T0 -3, zstd -T0 -3 and gzip -6, one after
# the other under TCG, through the VM tests that check them
# (test/e2e, TestBoot/root-systemd-*). The .tar.xz also boots on the
# dracut container-root README's own command line, on 2 CPUs (its blocks
# decoded in parallel) and on 1, by ociboot and by dracut
# (bench/dracut.sh's initramfs), side by side. It prints what they
# measured:
# - the initramfs's two segments and the images of the second (ociboot
#   build --modules-all --firmware), and dracut's initramfs;
# - from the VM's start (host clock) to the root's systemd starting and to
#   the unit that marks multi-user.target, and MemAvailable there;
# - inside the guest: the unpacked tree against how much the memory in use
#   (MemTotal - MemAvailable) rose at its peak while unpacking.
# Needs root (debootstrap, VMs, dracut) and what `make deps` installs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/root.sh needs root (debootstrap)" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# dracut's initramfs, built once into bin/ (bench/dracut.sh keeps it).
./bench/dracut.sh bin/dracut.img
dracut=$PWD/bin/dracut.img # the tests run in test/e2e
if ! OCIBOOT_BENCH_FORMS=1 OCIBOOT_BENCH_DRACUT="$dracut" go test -count=1 -parallel 1 -timeout 40m -v -run 'TestBoot/root-systemd' ./test/e2e/ >"$log" 2>&1; then
	tail -60 "$log" >&2
	echo "bench/root.sh: the switch-root VM tests failed" >&2
	exit 1
fi
echo "initramfs (ociboot build --modules-all --firmware):"
grep -o 'image: .*\|segments: .*' "$log" | sort -u | sed 's/^/  /'
echo "boots (one at a time, TCG):"
grep -o 'FIGURE .*' "$log" | sed 's/^FIGURE /  /'
