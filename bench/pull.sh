#!/usr/bin/env bash
# Pull figures: unpack one realistic image into a tmpfs with
#   ociboot pull,
#   skopeo copy (to an OCI layout) + umoci unpack,
#   crane export | tar -x,
#   and the floor: tar -xzf of the same layer blobs from local disk, one
#   after the other (no registry, no whiteouts),
# ROUNDS times each (default 5), interleaved, and print the median wall
# time, its ratio to ociboot's, and the peak RSS (GNU time's maximum
# resident set size of the largest process).
#
# The image: a Debian bookworm minbase root filesystem (debootstrap, from
# the mirror configured in /etc/apt) as layer 1, then a layer that adds
# and deletes files (whiteouts, an opaque directory) and one that adds
# files with hard links, to the same and to lower layers: 73 MB of gzip,
# 189 MB of tar, a 140 MB tree (bench/pullimage). It is served by the
# distribution registry (/usr/bin/docker-registry) on 127.0.0.1. The
# debootstrap download and the root filesystem tarball are cached in
# $OCIBOOT_BENCH_CACHE (default ~/.cache/ociboot-bench): reruns need no
# network.
#
# Needs root (debootstrap, mount, owners), debootstrap, skopeo, umoci,
# docker-registry and /usr/bin/time; crane is installed with go install
# when missing. Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
cache=${OCIBOOT_BENCH_CACHE:-$HOME/.cache/ociboot-bench}
suite=bookworm
crane_version=v0.22.1

[ "$(id -u)" = 0 ] || { echo "bench/pull.sh needs root (debootstrap, tmpfs, file owners)" >&2; exit 1; }
for tool in debootstrap skopeo umoci docker-registry /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "bench/pull.sh needs $tool" >&2; exit 1; }
done
gobin=$(go env GOPATH)/bin
crane=$(command -v crane || echo "$gobin/crane")
if [ ! -x "$crane" ]; then
	echo "installing crane $crane_version" >&2
	go install "github.com/google/go-containerregistry/cmd/crane@$crane_version"
fi

work=$(mktemp -d /tmp/ociboot-bench-pull.XXXXXX)
registry_pid=
cleanup() {
	[ -z "$registry_pid" ] || kill "$registry_pid" 2>/dev/null || true
	mountpoint -q "$work/tmpfs" && umount "$work/tmpfs"
	rm -rf "$work"
}
trap cleanup EXIT

# The Debian mirror apt uses here (deb822 or one-line sources).
mirror() {
	local uri
	uri=$(sed -n 's/^URIs: *\([^ ]*debian\)\/*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
	[ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 ~ /debian\/?$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
	echo "${uri:-http://deb.debian.org/debian}"
}

# The root filesystem tarball, made once.
rootfs=$cache/$suite-minbase-rootfs.tar.gz
if [ ! -s "$rootfs" ]; then
	mkdir -p "$cache"
	debs=$cache/$suite-minbase-debs.tgz
	if [ ! -s "$debs" ]; then
		echo "downloading $suite minbase packages from $(mirror)" >&2
		debootstrap --variant=minbase --make-tarball="$debs.tmp" "$suite" "$work/dl" "$(mirror)" >"$work/debootstrap.log" 2>&1 ||
			{ cat "$work/debootstrap.log" >&2; exit 1; }
		mv "$debs.tmp" "$debs"
	fi
	echo "installing $suite minbase (debootstrap)" >&2
	debootstrap --variant=minbase --unpack-tarball="$debs" "$suite" "$work/rootfs" "$(mirror)" >"$work/debootstrap.log" 2>&1 ||
		{ cat "$work/debootstrap.log" >&2; exit 1; }
	# As Debian's container images do: no package lists or caches.
	rm -rf "$work/rootfs"/var/lib/apt/lists/* "$work/rootfs"/var/cache/apt/*.bin "$work/rootfs"/var/cache/apt/archives/*.deb
	tar -C "$work/rootfs" --sort=name --numeric-owner --xattrs --format=posix -cf - . | gzip -6 >"$rootfs.tmp"
	mv "$rootfs.tmp" "$rootfs"
	rm -rf "$work/rootfs"
fi

CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$work/ociboot" ./cmd/ociboot
go build -o "$work/pullimage" ./bench/pullimage

# A registry on 127.0.0.1 only, on a free port.
port=
for _ in 1 2 3 4 5; do
	candidate=$((20000 + RANDOM % 20000))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
		port=$candidate
		break
	fi
done
[ -n "$port" ] || { echo "no free port found" >&2; exit 1; }
mkdir -p "$work/registry"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
  secret: bench
EOF
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$work" docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
	sleep 0.1
done
ref=127.0.0.1:$port/bench/debian:1
mkdir -p "$work/layers"
"$work/pullimage" -rootfs "$rootfs" -out "$work/layers" -push "$ref" >&2

mkdir -p "$work/tmpfs"
mount -t tmpfs -o size=4g,mode=0755 tmpfs "$work/tmpfs"
t=$work/tmpfs

# The commands, each unpacking into $t/out (and staging in $t/stage).
names=(ociboot umoci crane floor)
declare -A label cmd
label[ociboot]="ociboot pull"
cmd[ociboot]="'$work/ociboot' pull --progress lines --insecure-registry 127.0.0.1:$port '$ref' '$t/out' 2>'$work/ociboot.log'"
label[umoci]="skopeo copy + umoci unpack"
cmd[umoci]="skopeo copy -q --src-tls-verify=false 'docker://$ref' 'oci:$t/stage/layout:bench' && umoci unpack --image '$t/stage/layout:bench' '$t/stage/bundle' >/dev/null && mv '$t/stage/bundle/rootfs' '$t/out'"
label[crane]="crane export | tar -x"
# crane export flattens the image top-down (mutate.Extract): a hard link to
# a lower layer's file comes before its target, so tar cannot make it and
# exits 2. That is crane's known bug, not a failure of the run: its time is
# still what it takes; the entry count shows what is missing.
cmd[crane]="'$crane' export --insecure '$ref' - | tar --numeric-owner -xf - -C '$t/out' 2>'$work/crane-tar.log'; [ \$? -le 2 ]"
label[floor]="tar -xzf layers (floor)"
cmd[floor]="for l in '$work'/layers/layer-*.tar.gz; do tar --numeric-owner -xzf \"\$l\" -C '$t/out'; done"

declare -A times rss entries
for round in $(seq "$rounds"); do
	for n in "${names[@]}"; do
		rm -rf "$t/out" "$t/stage"
		mkdir -p "$t/stage"
		[ "$n" = ociboot ] || [ "$n" = umoci ] || mkdir "$t/out"
		sync
		/usr/bin/time -f '%e %M' -o "$work/time" bash -c "${cmd[$n]}" || {
			echo "${label[$n]} failed:" >&2
			cat "$work/ociboot.log" >&2 2>/dev/null || true
			exit 1
		}
		read -r secs kb <"$work/time"
		times[$n]+="$secs "
		rss[$n]=$(( ${rss[$n]:-0} > kb ? ${rss[$n]:-0} : kb ))
		entries[$n]=$(find "$t/out" | wc -l)
		echo "round $round: ${label[$n]}: ${secs}s, ${kb} kB" >&2
	done
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A med
for n in "${names[@]}"; do
	med[$n]=$(echo "${times[$n]}" | median)
done

echo
echo "image: $(du -sb "$work/layers" | cut -f1 | awk '{ printf "%.1f MB", $1 / 1e6 }') of gzip layers, $(for l in "$work"/layers/*.tar.gz; do gzip -dc "$l"; done | wc -c | awk '{ printf "%.1f MB", $1 / 1e6 }') of tar; $rounds rounds into a tmpfs; $(nproc) CPUs"
printf '%-28s %10s %14s %14s %10s\n' "" "median s" "x ociboot" "peak RSS MiB" "entries"
for n in "${names[@]}"; do
	printf '%-28s %10.2f %14.2f %14.1f %10s\n' "${label[$n]}" "${med[$n]}" \
		"$(awk -v a="${med[$n]}" -v b="${med[ociboot]}" 'BEGIN { print a / b }')" \
		"$(awk -v k="${rss[$n]}" 'BEGIN { print k / 1024 }')" "${entries[$n]}"
done
echo "(x ociboot: the tool's median over ociboot's; the floor ignores whiteouts, so its entry count differs)"
if [ -s "$work/crane-tar.log" ]; then
	echo "crane export | tar: tar could not create $(grep -c 'Cannot hard link' "$work/crane-tar.log") hard links (mutate.Extract's top-down order)"
fi
echo "ociboot's log of the last round:"
sed 's/^/  /' "$work/ociboot.log"
