#!/usr/bin/env bash
# Netboot figures, same kernel, initramfs, image and accelerator, side by
# side, ROUNDS times (default 3): the greeting demo booted by QEMU's
# -kernel/-initrd, and netbooted from `ociboot serve` (QEMU's iPXE ROM,
# slirp's TFTP script, boot.ipxe, the machine's script, kernel and
# initramfs over HTTP). Prints, per run, the host wall time of `ociboot vm`
# and the time from its start to the container's greeting, then the means
# and the ratio; and the sizes of the unified kernel image and USB stick
# image built from the same initramfs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
rounds=${ROUNDS:-3}
accel=${ACCEL:-tcg}

$ociboot build -o "$work/ociboot.img" --uki "$work/ociboot.efi" --usb-image "$work/stick.img" >/dev/null
$ociboot build -o "$work/cached.img" --usb-image "$work/stick-cache.img" --usb-cache 1G >/dev/null
mib() { awk -v b="$1" 'BEGIN { printf "%d bytes (%.1f MiB)", b, b / 1048576 }'; }
echo "initramfs (zstd): $(mib "$(stat -c %s "$work/ociboot.img")")"
echo "kernel: $(mib "$(stat -c %s "$(ls -v /boot/vmlinuz-* | tail -1)")")"
echo "unified kernel image: $(mib "$(stat -c %s "$work/ociboot.efi")")"
echo "USB stick image: $(mib "$(stat -c %s "$work/stick.img")") long, $(mib "$(du -B1 "$work/stick.img" | cut -f1)") allocated"
echo "USB stick image with a 1 GiB cache partition: $(mib "$(stat -c %s "$work/stick-cache.img")") long, $(mib "$(du -B1 "$work/stick-cache.img" | cut -f1)") allocated"

mkdir "$work/machines"
start_example_registry --initramfs "$work/ociboot.img" --machines "$work/machines"
registry=10.0.2.100:$port
cmdline="quiet ociboot.insecure_registry=$registry ociboot.container=\"$registry/demo/hello:latest\""
echo "console=ttyS0 panic=-1 $cmdline" >"$work/machines/default.cmdline"

printf '%-6s %-24s %10s %14s\n' round side "wall (s)" "greeting (s)"
results=$work/results
for r in $(seq "$rounds"); do
	read -r w f _ < <(timed "Hello from a container" --initramfs "$work/ociboot.img" --forward "$port" --cmdline "$cmdline")
	printf '%-6s %-24s %10s %14s\n' "$r" "-kernel/-initrd" "$w" "$f"
	echo "direct $w $f" >>"$results"
	read -r w f _ < <(timed "Hello from a container" --netboot "http://127.0.0.1:$port/boot.ipxe")
	printf '%-6s %-24s %10s %14s\n' "$r" "netboot (ociboot serve)" "$w" "$f"
	echo "netboot $w $f" >>"$results"
done
awk '
	{ wall[$1] += $2; first[$1] += $3; n[$1]++ }
	END {
		dw = wall["direct"] / n["direct"]; df = first["direct"] / n["direct"]
		nw = wall["netboot"] / n["netboot"]; nf = first["netboot"] / n["netboot"]
		printf "mean   -kernel/-initrd: wall %.2f s, greeting %.2f s\n", dw, df
		printf "mean   netboot: wall %.2f s, greeting %.2f s\n", nw, nf
		printf "ratio  netboot/-kernel: wall %.2fx, greeting %.2fx (+%.2f s)\n", nw / dw, nf / df, nf - df
	}' "$results"
