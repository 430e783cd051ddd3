#!/bin/bash
# A dracut module for bench/dracut.sh that boots a rootfs tarball the way
# dracut's container-root module is documented to (see
# shared/reference/container-root.md): rd.container.rootfs=URL is
# downloaded whole into one tmpfs of rd.tmpfs.size, unpacked into a second
# tmpfs of that size mounted as the new root, and dracut switches root into
# it. Written for the comparison from that description, not from the
# module's code.

check() {
    require_binaries curl tar xz || return 1
    # Only when asked for (-a).
    return 255
}

depends() {
    echo network url-lib
}

install() {
    inst_multiple curl tar xz gzip
    inst_hook cmdline 90 "$moddir/parse-container-rootfs.sh"
    inst_hook mount 90 "$moddir/mount-container-rootfs.sh"
}
