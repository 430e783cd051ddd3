# Shared by scripts/demo.sh, bench/boot.sh and bench/netboot.sh: the
# example image, the local registry serving it, and timed VM runs. Source
# it from the repository's root: it sets $ociboot, a scratch directory
# $work, and $server (the registry's pid once started), both cleaned up
# on exit.
ociboot=bin/ociboot
work=$(mktemp -d)
server=
trap '[ -z "$server" ] || kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

# start_example_registry makes a busybox image from this machine's
# /bin/busybox, serves it as demo/hello:latest from ociboot's own registry
# on 127.0.0.1, and sets $port and $server (the registry's pid). Its
# arguments are more options of ociboot serve.
start_example_registry() {
	local root=$work/rootfs
	mkdir -p "$root/bin" "$root/etc"
	cp /bin/busybox "$root/bin/busybox"
	local applet
	for applet in $("$root/bin/busybox" --list); do
		[ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
	echo 'root:x:0:' >"$root/etc/group"
	printf 'NAME="ociboot demo"\nID=ociboot-demo\n' >"$root/etc/os-release"

	$ociboot serve --listen 127.0.0.1:0 --image demo/hello:latest="$root" \
		--cmd /bin/sh --cmd -c \
		--cmd 'echo "Hello from a container booted by ociboot! kernel $(uname -r) on $(uname -m), $(grep -c ^processor /proc/cpuinfo) CPU(s)"' \
		"$@" >"$work/serve.log" 2>&1 &
	server=$!
	# serve prints its address once the image is pushed.
	port=
	local _
	for _ in $(seq 300); do
		port=$(sed -n 's/^registry listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/serve.log")
		[ -n "$port" ] && break
		kill -0 "$server" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$port" ]; then
		echo "the example registry did not start:" >&2
		cat "$work/serve.log" >&2
		return 1
	fi
}

# timed MARKER ARGS...: runs `$ociboot vm --accel $accel ARGS`, prints "wall first
# coldplug" in seconds, the second being when a console line containing
# MARKER came, the third what the guest's coldplug line says ("-" when
# there is none).
timed() {
	local marker=$1
	shift
	local t0 first="" line cold=-
	t0=$EPOCHREALTIME
	while IFS= read -r line; do
		if [ -z "$first" ] && [[ $line == *"$marker"* ]]; then
			first=$EPOCHREALTIME
		fi
		if [[ $line == *"ociboot: modules: coldplug: loaded "* ]]; then
			cold=${line##* in }
			cold=${cold%$'\r'}
			case $cold in
			*ms) cold=$(echo "${cold%ms}" | awk '{ printf "%.3f", $1 / 1000 }') ;;
			*s) cold=${cold%s} ;;
			esac
		fi
	done < <($ociboot vm --accel "$accel" --timeout 5m "$@" 2>&1)
	local t1=$EPOCHREALTIME
	[ -n "$first" ] || { echo "no line with \"$marker\"" >&2; return 1; }
	echo "$t0 $first $t1 $cold" | awk '{ printf "%.2f %.2f %s\n", $3 - $1, $2 - $1, $4 }'
}
