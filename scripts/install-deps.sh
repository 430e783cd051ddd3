#!/usr/bin/env bash
# Installs what building, testing and the demo need on a Debian machine:
# Debian packages (only the missing ones) and pinned Go tools.
set -euo pipefail

packages=(
	qemu-system-x86   # ociboot vm and the end-to-end tests
	linux-image-amd64 # the kernel the VMs boot, and its modules
	kmod              # modprobe, which the alias matching is checked against
	crun              # the OCI runtime put into the initramfs
	docker-registry   # the CNCF distribution registry the tests push to
	busybox-static    # the example and test images
	e2fsprogs         # mke2fs, bundled to format cache disks; debugfs, dumpe2fs in the tests
	squashfs-tools    # mksquashfs: the module and firmware images of ociboot build --modules-all
	util-linux        # partx, blkid, mkswap, swaplabel: the storage tests check disks with them
	cpio              # tests read archives back with it
	dnsmasq-base      # the DHCP server of the network tests
	iproute2          # network namespaces for the network tests
	umoci             # the image engine's differential test
	apache2-utils     # htpasswd, for the registry auth tests
	skopeo            # bench/pull.sh peers
	debootstrap       # bench/pull.sh's realistic image, the switch-root tests' Debian
	xz-utils          # the switch-root tests' rootfs.tar.xz; xz(1) is the tarball size reader's reference
	zstd              # tests read zstd archives back with it
	time              # bench/pull.sh's peak RSS figures
	rclone            # the volume mirror's peer in make bench
	kbd               # loadkeys -b, for ociboot build --keymaps
	console-data      # the text keymaps it converts
	systemd-boot-efi  # linuxx64.efi.stub, for ociboot build --uki
	ovmf              # the UEFI firmware of ociboot vm --uefi and --uki
	sbsigntool        # sbsign and sbverify: signed unified kernel images in the tests
	openssl           # the test's Secure Boot key and certificate
	binutils          # objdump reads the unified kernel images back
	intel-microcode   # ociboot build --early-microcode's Intel microcode (non-free-firmware)
	amd64-microcode   # and AMD's
	ca-certificates   # system roots, which TLS on the host uses before the embedded ones
	chromium          # the fleet page's browser test, driven by chromedp
)
STATICCHECK_VERSION=0.8.2 # honnef.co/go/tools v0.8.2 = staticcheck 2026.2.2
VERSITYGW_VERSION=1.8.0   # the S3 server of the volume tests
COSIGN_VERSION=3.1.3      # signs the images and tarballs of the signature tests (both of its formats)
# The OCI distribution-spec conformance suite, run against serve's registry.
CONFORMANCE_VERSION=v0.0.0-20260831232431-97274622c111

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
	sudo=
	[ "$(id -u)" = 0 ] || sudo=sudo
	# The CPU microcode packages are in Debian's non-free-firmware
	# component, which a minimal machine's sources may leave out.
	nff=/etc/apt/sources.list.d/ociboot-non-free-firmware.sources
	if [ ! -e "$nff" ] && ! apt-cache policy intel-microcode 2>/dev/null | grep -q 'Candidate: [0-9]'; then
		echo "adding Debian's non-free-firmware component ($nff)"
		printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s %s-updates\nComponents: non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
			"$(. /etc/os-release && echo "$VERSION_CODENAME")" "$(. /etc/os-release && echo "$VERSION_CODENAME")" | $sudo tee "$nff" >/dev/null
	fi
	echo "installing: ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

gobin=$(go env GOPATH)/bin
if ! "$gobin/staticcheck" -version 2>/dev/null | grep -qF "($STATICCHECK_VERSION)"; then
	echo "installing staticcheck $STATICCHECK_VERSION"
	go install "honnef.co/go/tools/cmd/staticcheck@v$STATICCHECK_VERSION"
fi
# versitygw --version names no version: a stamp file records the one installed.
if [ ! -x "$gobin/versitygw" ] || [ ! -f "$gobin/.versitygw-$VERSITYGW_VERSION" ]; then
	echo "installing versitygw $VERSITYGW_VERSION"
	go install "github.com/versity/versitygw/cmd/versitygw@v$VERSITYGW_VERSION"
	touch "$gobin/.versitygw-$VERSITYGW_VERSION"
fi
# The real cosign CLI, which the signature tests hold ociboot's verifier to.
# It builds some 300 modules: a few minutes on a fresh machine, once.
if ! "$gobin/cosign" version 2>/dev/null | grep -q "GitVersion: *v$COSIGN_VERSION\$"; then
	echo "installing cosign $COSIGN_VERSION"
	go install "github.com/sigstore/cosign/v3/cmd/cosign@v$COSIGN_VERSION"
fi
# conformance names no version either.
if [ ! -x "$gobin/conformance" ] || [ ! -f "$gobin/.conformance-$CONFORMANCE_VERSION" ]; then
	echo "installing the distribution-spec conformance suite $CONFORMANCE_VERSION"
	go install "github.com/opencontainers/distribution-spec/conformance@$CONFORMANCE_VERSION"
	touch "$gobin/.conformance-$CONFORMANCE_VERSION"
fi
