package uki

import "fmt"

// DefaultStub is systemd's EFI stub as Debian's systemd-boot-efi installs
// it.
const DefaultStub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

// osRelease is what the image's .osrel says, for boot menus.
const osRelease = "NAME=ociboot\nID=ociboot\nPRETTY_NAME=\"ociboot: boots into OCI containers\"\n"

// Parts are what a unified kernel image holds besides the stub.
type Parts struct {
	Kernel  []byte // an x86 bzImage
	Initrd  []byte // the initramfs, early microcode first when there is some
	Cmdline string // the command line when the boot loader gives none
}

// Image returns the unified kernel image of parts on stub, and the
// kernel's release. Its sections are in ukify's order: .osrel, .cmdline
// (when not empty), .uname, .initrd, and .linux last, as the kernel may
// use memory past its end.
func Image(stub []byte, p Parts) ([]byte, string, error) {
	release, err := KernelRelease(p.Kernel)
	if err != nil {
		return nil, "", fmt.Errorf("uki: the kernel: %w", err)
	}
	sections := []Section{{".osrel", []byte(osRelease)}}
	if p.Cmdline != "" {
		sections = append(sections, Section{".cmdline", []byte(p.Cmdline)})
	}
	sections = append(sections,
		Section{".uname", []byte(release)},
		Section{".initrd", p.Initrd},
		Section{".linux", p.Kernel})
	img, err := Build(stub, sections)
	return img, release, err
}
