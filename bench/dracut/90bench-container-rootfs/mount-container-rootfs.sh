#!/bin/sh
# Downloads rd.container.rootfs= whole into a tmpfs, unpacks it into a
# second tmpfs at $NEWROOT, and frees the first.
url=$(getarg rd.container.rootfs=)
size=$(getarg rd.tmpfs.size=)
if [ -n "$url" ] && ! ismounted "$NEWROOT"; then
    info "container-rootfs: fetching $url"
    mkdir -p /run/container-rootfs
    mount -t tmpfs -o "size=${size:-50%}" tmpfs /run/container-rootfs || die "container-rootfs: cannot mount the download tmpfs"
    curl -fsS --retry 3 -o /run/container-rootfs/rootfs.tar "$url" || die "container-rootfs: cannot download $url"
    mount -t tmpfs -o "size=${size:-50%},mode=0755" tmpfs "$NEWROOT" || die "container-rootfs: cannot mount $NEWROOT"
    tar -xpf /run/container-rootfs/rootfs.tar -C "$NEWROOT" || die "container-rootfs: cannot unpack $url"
    umount /run/container-rootfs
    info "container-rootfs: unpacked into $NEWROOT"
fi
