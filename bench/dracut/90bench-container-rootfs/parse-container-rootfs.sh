#!/bin/sh
# rd.container.rootfs=URL makes the root a tarball to fetch: dracut's init
# then needs no root= and runs the mount hook.
if [ -n "$(getarg rd.container.rootfs=)" ]; then
    root=container-rootfs
    rootok=1
fi
