package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// probeWait bounds the KVM probe. A working KVM finishes it in about 0.1 s.
const probeWait = 2 * time.Second

// chooseAccel returns the accelerator to use for cfg and logs it.
//
// TCG always works; KVM is used when it works. /dev/kvm existing is not
// enough: on some hosts QEMU's KVM hangs as soon as the guest leaves real
// mode, so for AccelAuto a probe must run 64-bit guest code under KVM first.
func chooseAccel(ctx context.Context, cfg Config) string {
	log := cfg.Log
	if log == nil {
		log = io.Discard
	}
	if cfg.Accel != AccelAuto {
		fmt.Fprintf(log, "vm: using %s (as asked)\n", cfg.Accel)
		return cfg.Accel
	}
	start := time.Now()
	if err := probeKVM(ctx, cfg.QEMU, AccelKVM, probeWait); err != nil {
		fmt.Fprintf(log, "vm: using tcg: KVM unusable: %v\n", err)
		return AccelTCG
	}
	fmt.Fprintf(log, "vm: using kvm (probe passed in %s)\n", time.Since(start).Round(time.Millisecond))
	return AccelKVM
}

// probeKVM returns nil when QEMU with the given accelerator runs probeImage
// to its end within wait. accel is a parameter so that the probe itself can
// be checked under TCG.
func probeKVM(ctx context.Context, qemu, accel string, wait time.Duration) error {
	if accel == AccelKVM {
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
		if err != nil {
			return err
		}
		f.Close()
	}
	img, err := os.CreateTemp("", "ociboot-kvm-probe-*.bin")
	if err != nil {
		return fmt.Errorf("writing the probe image: %w", err)
	}
	defer os.Remove(img.Name())
	_, err = img.Write(probeImage())
	if cerr := img.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the probe image %s: %w", img.Name(), err)
	}

	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	out := &tailBuffer{max: 512}
	cmd := exec.CommandContext(ctx, qemu, "-accel", accel,
		"-nodefaults", "-display", "none", "-no-reboot",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
		"-bios", img.Name())
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("the probe guest did not finish within %s", wait)
	case errors.As(err, &exitErr) && exitErr.ExitCode() == probeExit:
		return nil
	case err == nil:
		return fmt.Errorf("the probe guest stopped without finishing (a triple fault?)%s", out.note())
	case exitErr != nil:
		return fmt.Errorf("qemu %s%s", exitErr.ProcessState, out.note())
	}
	return fmt.Errorf("running %s: %w", qemu, err)
}

// probeExit is QEMU's exit status when the probe writes 1 to isa-debug-exit:
// (1 << 1) | 1.
const probeExit = 3

// Probe image layout: a 64 KiB BIOS, mapped by QEMU at 0xF0000 and below
// 4 GiB, so that the CPU's first instruction is at offset 0xFFF0.
const (
	probeSize   = 64 << 10
	probeCode16 = 0x00   // real-mode code
	probeCode32 = 0x1d   // protected-mode code; the far jump in code16 targets it
	probeCode64 = 0x72   // long-mode code; the far jump in code32 targets it
	probeGDT    = 0x78   // four descriptors
	probeGDTR   = 0x98   // limit and base of the GDT, loaded by code16
	probeReset  = 0xFFF0 // reset vector
)

// probeImage returns the KVM probe BIOS. From the reset vector it goes from
// real mode through protected mode to long mode, as a kernel does, then
// writes 1 to isa-debug-exit. Its source is the disassembly beside the bytes.
func probeImage() []byte {
	// Real mode: load the GDT, enable protection, jump to the 32-bit code.
	code16 := []byte{
		0xb8, 0x00, 0xf0, // mov ax, 0xf000
		0x8e, 0xd8, // mov ds, ax
		0x66, 0x0f, 0x01, 0x16, 0x98, 0x00, // lgdt dword [0x98] (probeGDTR)
		0x0f, 0x20, 0xc0, // mov eax, cr0
		0x66, 0x83, 0xc8, 0x01, // or eax, 1 (PE)
		0x0f, 0x22, 0xc0, // mov cr0, eax
		0x66, 0xea, 0x1d, 0x00, 0x0f, 0x00, 0x08, 0x00, // jmp dword 0x08:0xf001d (code32)
	}
	// 32-bit protected mode: identity-map the first 2 MiB with page tables
	// at 0x1000..0x3fff, enable PAE, long mode and paging, jump to the
	// 64-bit code.
	code32 := []byte{
		0x66, 0xb8, 0x10, 0x00, // mov ax, 0x10
		0x8e, 0xd8, // mov ds, ax
		0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00, 0x00, // mov dword [0x1000], 0x2003 (PML4[0])
		0xc7, 0x05, 0x00, 0x20, 0x00, 0x00, 0x03, 0x30, 0x00, 0x00, // mov dword [0x2000], 0x3003 (PDPT[0])
		0xc7, 0x05, 0x00, 0x30, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00, // mov dword [0x3000], 0x83 (2 MiB page)
		0xb8, 0x00, 0x10, 0x00, 0x00, // mov eax, 0x1000
		0x0f, 0x22, 0xd8, // mov cr3, eax
		0x0f, 0x20, 0xe0, // mov eax, cr4
		0x83, 0xc8, 0x20, // or eax, 0x20 (PAE)
		0x0f, 0x22, 0xe0, // mov cr4, eax
		0xb9, 0x80, 0x00, 0x00, 0xc0, // mov ecx, 0xc0000080 (EFER)
		0x0f, 0x32, // rdmsr
		0x0d, 0x00, 0x01, 0x00, 0x00, // or eax, 0x100 (LME)
		0x0f, 0x30, // wrmsr
		0x0f, 0x20, 0xc0, // mov eax, cr0
		0x0d, 0x00, 0x00, 0x00, 0x80, // or eax, 0x80000000 (PG)
		0x0f, 0x22, 0xc0, // mov cr0, eax
		0xea, 0x72, 0x00, 0x0f, 0x00, 0x18, 0x00, // jmp 0x18:0xf0072 (code64)
	}
	// 64-bit long mode: report success.
	code64 := []byte{
		0xb0, 0x01, // mov al, 1
		0xe6, 0xf4, // out 0xf4, al
		0xf4, // hlt
	}
	// Null, 32-bit code (0x08), data (0x10), 64-bit code (0x18); flat.
	gdt := []byte{
		0, 0, 0, 0, 0, 0, 0, 0,
		0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00,
		0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00,
		0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xaf, 0x00,
	}
	gdtBase := 0xF0000 + probeGDT
	gdtr := []byte{
		byte(len(gdt) - 1), 0, // limit
		byte(gdtBase), byte(gdtBase >> 8), byte(gdtBase >> 16), 0, // base
	}

	img := make([]byte, probeSize)
	copy(img[probeCode16:], code16)
	copy(img[probeCode32:], code32)
	copy(img[probeCode64:], code64)
	copy(img[probeGDT:], gdt)
	copy(img[probeGDTR:], gdtr)
	copy(img[probeReset:], []byte{0xea, 0x00, 0x00, 0x00, 0xf0}) // jmp 0xf000:0x0000 (code16)
	return img
}
