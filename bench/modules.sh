#!/usr/bin/env bash
# What the whole module tree costs a switch-root boot, beside the default
# initramfs and dracut's (bench/dracut.sh), on the dracut container-root
# README's own command line with a tiny root: runs BenchmarkModulesAll
# (test/e2e) and prints its table. Needs root (dracut, VMs) and what
# `make deps` installs.
set -euo pipefail
cd "$(dirname "$0")/.."
# dracut's initramfs, built once into bin/ (bench/dracut.sh keeps it).
./bench/dracut.sh bin/dracut.img
dracut=$PWD/bin/dracut.img # the tests run in test/e2e
OCIBOOT_BENCH_DRACUT="$dracut" go test -run '^$' -bench ModulesAll ${VERBOSE:+-v} -benchtime "${ROUNDS:-3}x" -timeout 60m ./test/e2e
