#!/usr/bin/env bash
# Boot-time figures: the greeting demo against a VM whose init only prints a
# line and powers off, same kernel, same machine, same accelerator, side by
# side, ROUNDS times (default 3). Prints, per run, the host wall time of
# `ociboot vm` and the time from its start to the first line that matters
# (the container's greeting; the trivial init's line), then the means and
# the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
rounds=${ROUNDS:-3}
accel=${ACCEL:-tcg}
ociboot=bin/ociboot
work=$(mktemp -d)
server=
trap '[ -z "$server" ] || kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/trivialinit" ./bench/trivialinit
$ociboot build -o "$work/trivial.img" --init-binary "$work/trivialinit" --runtime none --modules "" --storage-modules "" --fscrypt-modules "" --drivers "" --mkfs none >/dev/null
$ociboot build -o "$work/ociboot.img" >"$work/build.log"
size=$(stat -c %s "$work/ociboot.img")
start_example_registry
registry=10.0.2.100:$port

# timed LABEL MARKER ARGS...: runs `ociboot vm ARGS`, prints "wall first"
# in seconds, the second being when a console line containing MARKER came.
timed() {
	local marker=$1
	shift
	local t0 first="" line
	t0=$EPOCHREALTIME
	while IFS= read -r line; do
		if [ -z "$first" ] && [[ $line == *"$marker"* ]]; then
			first=$EPOCHREALTIME
		fi
	done < <($ociboot vm --accel "$accel" --timeout 5m "$@" 2>&1)
	local t1=$EPOCHREALTIME
	[ -n "$first" ] || { echo "no line with \"$marker\"" >&2; return 1; }
	echo "$t0 $first $t1" | awk '{ printf "%.2f %.2f\n", $3 - $1, $2 - $1 }'
}

printf 'initramfs (zstd, crun + virtio_pci,virtio_net,virtio_rng): %d bytes (%.1f MiB)\n' "$size" "$(echo "$size" | awk '{print $1/1048576}')"
printf '%-6s %-28s %10s %14s\n' round side "wall (s)" "first line (s)"
results=$work/results
for r in $(seq "$rounds"); do
	read -r w f < <(timed "trivial init: first line" --initramfs "$work/trivial.img" --cmdline quiet)
	printf '%-6s %-28s %10s %14s\n' "$r" "trivial init" "$w" "$f"
	echo "trivial $w $f" >>"$results"
	read -r w f < <(timed "Hello from a container" --initramfs "$work/ociboot.img" --forward "$port" \
		--cmdline "quiet ociboot.insecure_registry=$registry ociboot.container=\"$registry/demo/hello:latest\"")
	printf '%-6s %-28s %10s %14s\n' "$r" "ociboot greeting demo" "$w" "$f"
	echo "ociboot $w $f" >>"$results"
done
awk '
	{ wall[$1] += $2; first[$1] += $3; n[$1]++ }
	END {
		tw = wall["trivial"] / n["trivial"]; tf = first["trivial"] / n["trivial"]
		ow = wall["ociboot"] / n["ociboot"]; of = first["ociboot"] / n["ociboot"]
		printf "mean   trivial init: wall %.2f s, first line %.2f s\n", tw, tf
		printf "mean   ociboot demo: wall %.2f s, first container line %.2f s\n", ow, of
		printf "ratio  ociboot/trivial: wall %.2fx, first line %.2fx (+%.2f s)\n", ow / tw, of / tf, of - tf
	}' "$results"
