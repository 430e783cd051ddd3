#!/usr/bin/env bash
# Boot-time figures, same kernel, same machine, same accelerator, side by
# side, ROUNDS times (default 3): a VM whose init only prints a line and
# powers off; the greeting demo with the default initramfs (driver presets
# net,storage,usb,virt, coldplug); and the same with a virtio-only
# initramfs (--drivers=, the modules named by default alone). Prints, per
# run, the host wall time of `ociboot vm`, the time from its start to the
# first line that matters (the container's greeting; the trivial init's
# line) and the guest's coldplug time, then the means, the medians (the
# figure to quote on a noisy host) and the ratios. With BASE set to
# another ociboot binary (an older build, say), its default initramfs is
# booted too in every round, beside this one's.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
rounds=${ROUNDS:-3}
accel=${ACCEL:-tcg}

CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/trivialinit" ./bench/trivialinit
$ociboot build -o "$work/trivial.img" --init-binary "$work/trivialinit" --runtime none --modules "" --storage-modules "" --fscrypt-modules "" --drivers "" --mkfs none >/dev/null
$ociboot build -o "$work/ociboot.img" >"$work/build.log"
$ociboot build -o "$work/virtio.img" --drivers "" >/dev/null
[ -z "${BASE:-}" ] || "$BASE" build -o "$work/base.img" >/dev/null
size=$(stat -c %s "$work/ociboot.img")
vsize=$(stat -c %s "$work/virtio.img")
start_example_registry
registry=10.0.2.100:$port

printf 'initramfs (zstd): default %d bytes (%.1f MiB), virtio-only (--drivers=) %d bytes (%.1f MiB)\n' \
	"$size" "$(echo "$size" | awk '{print $1/1048576}')" "$vsize" "$(echo "$vsize" | awk '{print $1/1048576}')"
printf '%-6s %-28s %10s %14s %14s\n' round side "wall (s)" "first line (s)" "coldplug (s)"
results=$work/results
demo() {
	timed "Hello from a container" --initramfs "$1" --forward "$port" \
		--cmdline "quiet ociboot.insecure_registry=$registry ociboot.container=\"$registry/demo/hello:latest\""
}
for r in $(seq "$rounds"); do
	read -r w f c < <(timed "trivial init: first line" --initramfs "$work/trivial.img" --cmdline quiet)
	printf '%-6s %-28s %10s %14s %14s\n' "$r" "trivial init" "$w" "$f" "$c"
	echo "trivial $w $f 0" >>"$results"
	read -r w f c < <(demo "$work/ociboot.img")
	printf '%-6s %-28s %10s %14s %14s\n' "$r" "demo, default initramfs" "$w" "$f" "$c"
	echo "ociboot $w $f $c" >>"$results"
	read -r w f c < <(demo "$work/virtio.img")
	printf '%-6s %-28s %10s %14s %14s\n' "$r" "demo, virtio-only initramfs" "$w" "$f" "$c"
	echo "virtio $w $f $c" >>"$results"
	if [ -n "${BASE:-}" ]; then
		read -r w f c < <(demo "$work/base.img")
		printf '%-6s %-28s %10s %14s %14s\n' "$r" "demo, BASE's initramfs" "$w" "$f" "$c"
		echo "base $w $f $c" >>"$results"
	fi
done
for side in trivial ociboot virtio base; do
	grep -q "^$side " "$results" || continue
	printf 'median %s: first line %s s\n' "$side" "$(awk -v s="$side" '$1 == s { print $3 }' "$results" | sort -n |
		awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
done
awk '
	{ wall[$1] += $2; first[$1] += $3; cold[$1] += $4; n[$1]++ }
	END {
		tw = wall["trivial"] / n["trivial"]; tf = first["trivial"] / n["trivial"]
		ow = wall["ociboot"] / n["ociboot"]; of = first["ociboot"] / n["ociboot"]; oc = cold["ociboot"] / n["ociboot"]
		vw = wall["virtio"] / n["virtio"]; vf = first["virtio"] / n["virtio"]; vc = cold["virtio"] / n["virtio"]
		printf "mean   trivial init: wall %.2f s, first line %.2f s\n", tw, tf
		printf "mean   demo, default initramfs: wall %.2f s, first container line %.2f s, coldplug %.2f s\n", ow, of, oc
		printf "mean   demo, virtio-only initramfs: wall %.2f s, first container line %.2f s, coldplug %.2f s\n", vw, vf, vc
		printf "ratio  default/trivial: wall %.2fx, first line %.2fx (+%.2f s)\n", ow / tw, of / tf, of - tf
		printf "ratio  default/virtio-only: wall %.2fx, first line %.2fx (+%.2f s)\n", ow / vw, of / vf, of - vf
	}' "$results"
