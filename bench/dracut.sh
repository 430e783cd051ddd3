#!/usr/bin/env bash
# Builds the initramfs of dracut's container-root README, for
# bench/root.sh to boot beside ociboot's: Debian's dracut 059
# (dracut-network, installed when missing; it adds no kernel hooks, so the
# machine's initramfs-tools stays in charge), for the kernel the VMs boot
# (the newest /boot/vmlinuz-*, as test/e2e's),
# --no-hostonly, with bench/dracut/90bench-container-rootfs added, which
# boots rd.container.rootfs= the way container-root is documented to
# (../shared/reference/container-root.md). It runs dracut's shell init
# (systemd is left out of the initramfs: fewer processes to start) and
# network-legacy (dhclient) for ip=dhcp.
# Usage: bench/dracut.sh OUT; prints OUT's size. An OUT newer than this
# script, the module and the kernels in /boot is kept as it is.
set -euo pipefail
out=${1:?usage: bench/dracut.sh OUT}
here=$(cd "$(dirname "$0")" && pwd)
if [ -s "$out" ] && [ -z "$(find "$here/dracut.sh" "$here/dracut" /boot -maxdepth 2 -newer "$out")" ]; then
	echo "dracut --no-hostonly -a container-rootfs: $(stat -c %s "$out") bytes (kept from an earlier build)"
	exit 0
fi
[ "$(id -u)" = 0 ] || { echo "bench/dracut.sh needs root (apt-get, dracut)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
if ! command -v dracut >/dev/null || ! command -v dhclient >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dracut-network >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kver=$(find /boot -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -1)
[ -n "$kver" ] || { echo "bench/dracut.sh: no /boot/vmlinuz-*" >&2; exit 1; }
# A copy of dracut's modules with ours added: nothing is installed into
# /usr/lib/dracut.
cp -a /usr/lib/dracut "$work/base"
cp -a "$here/dracut/90bench-container-rootfs" "$work/base/modules.d/"
mkdir "$work/conf.d"
if ! dracutbasedir="$work/base" dracut --conf /dev/null --confdir "$work/conf.d" --no-hostonly \
	--omit "systemd crypt" --add "bench-container-rootfs network-legacy" \
	--kver "$kver" --force "$out" >"$work/log" 2>&1; then
	tail -30 "$work/log" >&2
	echo "bench/dracut.sh: dracut failed" >&2
	exit 1
fi
echo "dracut $(dracut --version | cut -d' ' -f2) --no-hostonly -a container-rootfs: $(stat -c %s "$out") bytes ($(grep -o "compression method '[a-z]*'" "$work/log"))"
