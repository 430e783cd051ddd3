package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ociboot/ociboot/internal/atomicfile"
	"github.com/ociboot/ociboot/internal/fleet"
	"github.com/ociboot/ociboot/internal/vm"
)

func newVMCmd() *cobra.Command {
	var (
		cfg      vm.Config
		forwards []int
		disks    []string
		usbImage string
		report   string
	)
	cmd := &cobra.Command{
		Use:   "vm",
		Short: "Boot an initramfs in a QEMU VM and exit with its pipeline status",
		Long: fmt.Sprintf(`Boot an initramfs in a QEMU virtual machine with the serial console on
this terminal, and exit with the pipeline status the VM reports.

The guest's network reaches only the forwarded ports: host 127.0.0.1:PORT
is %s:PORT in the guest.

Exit status: the pipeline status; %d when the VM reported none (it stopped
early, timed out or was interrupted).`, vm.GuestHost, vm.NoStatusExit),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, p := range forwards {
				if p < 1 || p > 65535 {
					return fmt.Errorf("--forward %d: want a port number 1..65535", p)
				}
			}
			for _, d := range disks {
				disk, err := vm.ParseDisk(d)
				if err != nil {
					return fmt.Errorf("--disk %w", err)
				}
				if _, err := os.Stat(disk.Path); err != nil {
					return fmt.Errorf("--disk: %w", err)
				}
				cfg.Disks = append(cfg.Disks, disk)
			}
			if cfg.Netboot != "" {
				if cfg.UKI != "" || usbImage != "" || cmd.Flags().Changed("initramfs") || cfg.Cmdline != "" || cfg.UEFI {
					return fmt.Errorf("--netboot boots what the server says: give none of --uki, --usb-image, --initramfs, --cmdline and --uefi")
				}
				cfg.Initramfs = ""
			} else if usbImage != "" {
				if cfg.UKI != "" || cmd.Flags().Changed("initramfs") || cfg.Cmdline != "" {
					return fmt.Errorf("--usb-image boots the stick's own kernel, initramfs and command line: give none of --uki, --initramfs and --cmdline")
				}
				if _, err := os.Stat(usbImage); err != nil {
					return fmt.Errorf("--usb-image: %w (build one with `ociboot build --usb-image`)", err)
				}
				cfg.UEFI, cfg.Initramfs = true, ""
				cfg.Disks = append([]vm.Disk{{Path: usbImage, Bus: "usb"}}, cfg.Disks...)
			} else if cfg.UKI != "" {
				if cmd.Flags().Changed("initramfs") {
					return fmt.Errorf("--uki holds its initramfs: give --uki or --initramfs, not both")
				}
				cfg.Initramfs = ""
				if _, err := os.Stat(cfg.UKI); err != nil {
					return fmt.Errorf("--uki: %w (build one with `ociboot build --uki`)", err)
				}
			} else if _, err := os.Stat(cfg.Initramfs); err != nil {
				return fmt.Errorf("--initramfs: %w (build one with `ociboot build`)", err)
			}
			cfg.Forwards = forwards
			if report != "" {
				if cfg.Netboot != "" || usbImage != "" || cfg.UKI != "" && cfg.Cmdline == "" {
					return fmt.Errorf("--report adds ociboot.report= to --cmdline: give --initramfs, or --uki with --cmdline")
				}
				stop, err := receiveEvents(&cfg, report)
				if err != nil {
					return err
				}
				defer func() {
					if err := stop(); err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "ociboot: --report: %v\n", err)
					}
				}()
			}
			cfg.Console = cmd.OutOrStdout()
			cfg.Stdin = os.Stdin
			cfg.Log = cmd.ErrOrStderr()

			// Ctrl-C reaches QEMU too; catching it here lets Run stop QEMU
			// and report instead of this process dying first.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := vm.Run(ctx, cfg)
			code := vm.ExitStatus(res, err)
			switch {
			case err != nil:
				return &exitError{code: code, msg: err.Error()}
			case code != 0:
				return &exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Kernel, "kernel", "", "kernel image (default: the newest /boot/vmlinuz-*)")
	f.StringVar(&cfg.Initramfs, "initramfs", "initramfs.img", "initramfs image, as written by 'ociboot build'")
	f.StringVar(&cfg.Cmdline, "cmdline", "", `kernel command line, after "console=ttyS0 panic=-1" (with --uki, in place of the image's own)`)
	f.StringVar(&cfg.UKI, "uki", "", "a unified kernel image (ociboot build --uki) to boot under UEFI, in place of --kernel and --initramfs")
	f.StringVar(&usbImage, "usb-image", "", "a USB stick image (ociboot build --usb-image) to boot under UEFI, as a usb-storage disk, the first")
	f.StringVar(&cfg.Netboot, "netboot", "", "boot from the network: the firmware's iPXE chains this http://127.0.0.1:PORT/ script (ociboot serve's /boot.ipxe), PORT forwarded")
	f.StringVar(&cfg.MAC, "mac", "", "MAC address of the first NIC (default QEMU's 52:54:00:12:34:56)")
	f.BoolVar(&cfg.UEFI, "uefi", false, "boot through UEFI firmware (OVMF, package ovmf) rather than the BIOS")
	f.IntVar(&cfg.MemoryMB, "memory", vm.DefaultMemoryMB, "guest memory in MiB (container roots live in RAM)")
	f.IntVar(&cfg.SMP, "smp", vm.DefaultSMP, "virtual CPUs")
	f.IntSliceVar(&forwards, "forward", nil, fmt.Sprintf("host port on 127.0.0.1 to make reachable in the guest at %s:PORT (repeatable)", vm.GuestHost))
	f.StringArrayVar(&disks, "disk", nil, "PATH[,if=virtio|nvme|ahci|scsi|lsi|usb]: a raw disk image or block device to attach, on that bus (default virtio; repeatable)")
	f.StringVar(&report, "report", "", "have the boot send its events (ociboot.report) to this command, and write them to this file (JSON lines, for ociboot analyze) when the VM stops")
	f.StringArrayVar(&cfg.NICs, "nic", nil, "NIC model ("+vm.NICModels+"), repeatable; the first carries the network and the forwards (default: one virtio NIC)")
	f.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, fmt.Sprintf("stop the VM after this long and exit %d (0: no limit)", vm.NoStatusExit))
	f.StringVar(&cfg.Accel, "accel", vm.AccelAuto, "accelerator: auto (KVM if a probe shows it works, else TCG), tcg or kvm")
	return cmd
}

// receiveEvents makes the VM's boot report its events to a receiver of
// this process's, on 127.0.0.1 and forwarded, and returns the function
// that, once the VM has stopped, writes them to file and stops the
// receiver.
func receiveEvents(cfg *vm.Config, file string) (func() error, error) {
	events, err := fleet.New(fleet.Options{})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("--report: %w", err)
	}
	srv := &http.Server{Handler: events, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	port := ln.Addr().(*net.TCPAddr).Port
	cfg.Forwards = append(cfg.Forwards, port)
	cfg.Cmdline = strings.TrimSpace(fmt.Sprintf("%s ociboot.report=http://%s:%d/v1/events", cfg.Cmdline, vm.GuestHost, port))
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		return atomicfile.Write(file, 0o644, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			for _, m := range events.Machines() {
				for i := len(m.Boots) - 1; i >= 0; i-- { // oldest first
					_, recs, _ := events.Events(m.Boots[i].ID)
					for _, r := range recs {
						if err := enc.Encode(r); err != nil {
							return err
						}
					}
				}
			}
			return nil
		})
	}, nil
}
