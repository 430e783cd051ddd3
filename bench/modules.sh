#!/usr/bin/env bash
# What the whole module tree costs a switch-root boot, beside the default
# initramfs and dracut's (bench/dracut.sh), on the dracut container-root
# README's own command line with a tiny root: runs BenchmarkModulesAll
# (test/e2e) and prints its table. Needs root (dracut, VMs) and what
# `make deps` installs.
set -euo pipefail
cd "$(dirname "$0")/.."
# dracut's initramfs: $OCIBOOT_BENCH_DRACUT's (make bench builds it once),
# else one built now.
dracut=${OCIBOOT_BENCH_DRACUT:-}
if [ -z "$dracut" ]; then
	dracut=$(mktemp --suffix=.img)
	trap 'rm -f "$dracut"' EXIT
	./bench/dracut.sh "$dracut"
fi
dracut=$(realpath "$dracut") # the tests run in test/e2e
OCIBOOT_BENCH_DRACUT="$dracut" go test -run '^$' -bench ModulesAll ${VERBOSE:+-v} -benchtime "${ROUNDS:-3}x" -timeout 60m ./test/e2e
