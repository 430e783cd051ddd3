#!/usr/bin/env bash
# What signature checking costs: the size the verifier's code adds to the
# init and to the default initramfs (this tree against the commit before
# signatures came, both built the same way, SOURCE_DATE_EPOCH=0), then
# BenchmarkVerify (test/e2e): the time the check adds to a pull on the
# host and in a VM, and the size the keys add. Needs root (VMs), git
# history, and what `make deps` installs.
set -euo pipefail
cd "$(dirname "$0")/.."
before=${BEFORE:-7c549ff} # the last commit without internal/signature
work=$(mktemp -d)
trap 'git worktree remove --force "$work/before" 2>/dev/null || true; rm -rf "$work"' EXIT
git worktree add -q --detach "$work/before" "$before"
build() { # build DIR OUT: the static binary of the tree in DIR
	(cd "$1" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$2" ./cmd/ociboot)
}
build "$work/before" "$work/ociboot-before"
build . "$work/ociboot-now"
export SOURCE_DATE_EPOCH=0
for v in before now; do
	"$work/ociboot-$v" build -o "$work/initramfs-$v.img" >/dev/null
done
size() { stat -c %s "$1"; }
printf '%-28s %12s %12s %10s\n' "" "before ($before)" "now" "added"
for f in ociboot initramfs; do
	ext=; [ "$f" = initramfs ] && ext=.img
	a=$(size "$work/$f-before$ext"); b=$(size "$work/$f-now$ext")
	awk -v f="$f (bytes)" -v a="$a" -v b="$b" 'BEGIN { printf "%-28s %12d %12d %+10d (%+.1f%%)\n", f, a, b, b - a, 100 * (b - a) / a }'
done
go test -run '^$' -bench 'Verify$' ${VERBOSE:+-v} -benchtime "${ROUNDS:-9}x" -timeout 60m ./test/e2e
