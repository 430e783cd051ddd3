package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/rootfstest"
	"github.com/ociboot/ociboot/internal/vm"
)

// sideMarkerUnit prints a line once multi-user.target is reached and
// powers off: the container, or the machine.
const sideMarkerUnit = "[Unit]\nDescription=ociboot side-by-side marker\nAfter=multi-user.target\n\n" +
	"[Service]\nType=oneshot\nStandardOutput=journal+console\n" +
	"ExecStart=/bin/sh -c 'echo SIDE-MARKER target=$(systemctl is-active multi-user.target)'\n" +
	"ExecStart=/bin/systemctl --no-block poweroff\n\n" +
	"[Install]\nWantedBy=multi-user.target\n"

// BenchmarkSystemdContainer prints, side by side in one run, the time
// from the VM's start to multi-user.target of one Debian bookworm
// systemd image (the switch-root tests'), run as a container in systemd
// mode (ociboot.container=IMAGE) and booted as the OS (ociboot.root=IMAGE),
// with the same initramfs, 1 CPU: go test -run '^$' -bench
// SystemdContainer -benchtime 3x ./test/e2e.
func BenchmarkSystemdContainer(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "ociboot")
	goBuild(b, bin, "github.com/ociboot/ociboot/cmd/ociboot")
	initramfs := filepath.Join(dir, "initramfs.img")
	run(b, bin, "build", "-o", initramfs)

	base := rootfstest.Debian(b, "bookworm", systemdPackages...)
	tarPath := rootfstest.WithFiles(b, base,
		rootfstest.File{Path: "etc/systemd/system/ociboot-side.service", Body: sideMarkerUnit},
		rootfstest.File{Path: "etc/systemd/system/multi-user.target.wants/ociboot-side.service", Linkname: "/etc/systemd/system/ociboot-side.service"},
	)
	reg := registrytest.Start(b)
	ref := guestRef(registrytest.Push(b, reg, "bench/debian-systemd:12", registrytest.Image(b, v1.Config{Cmd: []string{"/sbin/init"}}, rootfstest.Layer(b, tarPath))))
	const marker = "SIDE-MARKER target=active"
	forms := []struct{ name, param string }{{"container", "ociboot.container"}, {"root", "ociboot.root"}}
	sums := make([]float64, len(forms))
	for b.Loop() {
		for i, form := range forms {
			stamps := newStamper(marker)
			res, err := vm.Run(context.Background(), vm.Config{
				Initramfs: initramfs,
				Cmdline:   fmt.Sprintf("ociboot.insecure_registry=%s:%d ociboot.poweroff_delay=0 %s=%s", vm.GuestHost, reg.Port, form.param, ref),
				Forwards:  []int{reg.Port},
				Timeout:   rootBootTimeout,
				Console:   stamps,
			})
			at := stamps.at(marker)
			if at == 0 {
				b.Fatalf("%s: no %q on the console (%v):\n%s", form.name, marker, err, stamps.String())
			}
			if form.name == "container" && (!res.StatusSeen || res.Status != 0) {
				b.Fatalf("container: pipeline status seen %v, %d: want 0, what systemctl poweroff in the container gives", res.StatusSeen, res.Status)
			}
			sums[i] += at.Seconds()
		}
	}
	n := float64(b.N)
	for i, form := range forms {
		b.ReportMetric(sums[i]/n, form.name+"-marker-s")
	}
}
