// Package depshold pins the modules named in DESIGN.md in go.mod while the
// packages that use them are being written. It is deleted once they exist.
package depshold

import (
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/google/go-containerregistry/pkg/registry"
	_ "github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/opencontainers/runtime-spec/specs-go"
	_ "github.com/u-root/u-root/pkg/cpio"
	_ "github.com/ulikunitz/xz"
	_ "github.com/vishvananda/netlink"
	_ "golang.org/x/sys/unix"
)
