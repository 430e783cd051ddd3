package e2e

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/rootfstest"
	"github.com/ociboot/ociboot/internal/vm"
)

// tinyRootInit is the tiny root's /sbin/init in BenchmarkModulesAll: it
// says what modules it finds and the memory available, and powers off.
const tinyRootInit = `#!/bin/sh
echo "TINY-ROOT-INIT modules=$(busybox find /lib/modules/$(uname -r) -name '*.ko*' | wc -l) $(grep MemAvailable: /proc/meminfo)"
poweroff -f
`

// BenchmarkModulesAll prints, side by side in one run, what the whole
// module tree (ociboot build --modules-all) costs a switch-root boot on
// the dracut container-root README's own command line, with a tiny root
// (busybox as a rootfs.tar.xz over HTTP): the initramfs's size, the time
// from the VM's start to ociboot's first line and to the root's init, the
// floor's time to its line (an init that prints a line), and what the
// root finds: the modules it can load, and MemAvailable. The default
// initramfs (driver presets, no whole tree) boots beside it. Run it with
// `go test -run '^$' -bench ModulesAll -benchtime 3x ./test/e2e`.
func BenchmarkModulesAll(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "ociboot")
	goBuild(b, bin, "github.com/ociboot/ociboot/cmd/ociboot")
	trivialInit := filepath.Join(dir, "trivialinit")
	goBuild(b, trivialInit, "github.com/ociboot/ociboot/bench/trivialinit")
	trivial := filepath.Join(dir, "trivial.img")
	run(b, bin, "build", "-o", trivial, "--init-binary", trivialInit, "--runtime", "none", "--modules=", "--storage-modules=", "--fscrypt-modules=", "--drivers=", "--mkfs", "none")
	presets := filepath.Join(dir, "presets.img")
	run(b, bin, "build", "-o", presets)
	all := filepath.Join(dir, "all.img")
	run(b, bin, "build", "-o", all, "--modules-all", "--firmware", "/lib/firmware")

	img := registrytest.BusyboxImage(b, registrytest.Layer(b,
		registrytest.Entry{Name: "sbin/", Typeflag: tar.TypeDir},
		registrytest.Entry{Name: "sbin/init", Mode: 0o755, Body: tinyRootInit},
		registrytest.Entry{Name: "run/", Typeflag: tar.TypeDir},
	))
	web := filepath.Join(dir, "web")
	if err := os.Mkdir(web, 0o755); err != nil {
		b.Fatal(err)
	}
	tarPath := filepath.Join(dir, "root.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		b.Fatal(err)
	}
	rc := mutate.Extract(img)
	_, err = io.Copy(f, rc)
	rc.Close()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(rootfstest.XZ(b, tarPath), filepath.Join(web, "root.tar.xz")); err != nil {
		b.Fatal(err)
	}
	port := serveDir(b, web)
	// The dracut container-root README's parameters.
	cmdline := fmt.Sprintf("rd.shell=1 ip=dhcp rd.neednet=1 rd.tmpfs.size=3G selinux=0 rd.container.rootfs=http://%s:%d/root.tar.xz ociboot.poweroff_delay=0", vm.GuestHost, port)

	const first, rootLine = "ociboot: ==== configuration", "TINY-ROOT-INIT"
	found := regexp.MustCompile(`TINY-ROOT-INIT modules=(\d+) MemAvailable: +(\d+) kB`)
	type figures struct{ first, root, mem, modules float64 }
	boot := func(initramfs string) figures {
		st := newStamper(first, rootLine)
		res, err := vm.Run(context.Background(), vm.Config{Initramfs: initramfs, Cmdline: cmdline, Forwards: []int{port}, Timeout: rootBootTimeout, Console: st})
		m := found.FindStringSubmatch(st.String())
		if (err != nil && !res.Started) || m == nil {
			b.Fatalf("vm.Run: %v; no %q line:\n%s", err, rootLine, st)
		}
		modules, _ := strconv.ParseFloat(m[1], 64)
		mem, _ := strconv.ParseFloat(m[2], 64)
		return figures{st.at(first).Seconds(), st.at(rootLine).Seconds(), mem / 1024, modules}
	}
	floorLine := "trivial init: first line"
	var floor float64
	var sums [2]figures
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st := newStamper(floorLine)
		if _, err := vm.Run(context.Background(), vm.Config{Initramfs: trivial, Timeout: bootTimeout, Console: st}); err != nil && st.at(floorLine) == 0 {
			b.Fatalf("the floor: %v\n%s", err, st)
		}
		floor += st.at(floorLine).Seconds()
		for k, initramfs := range []string{presets, all} {
			f := boot(initramfs)
			sums[k].first += f.first
			sums[k].root += f.root
			sums[k].mem += f.mem
			sums[k].modules += f.modules
		}
	}
	b.StopTimer()
	n := float64(b.N)
	fmt.Printf("\ndracut container-root's README command line, busybox root as rootfs.tar.xz, TCG, mean of %d rounds, from the VM's start:\n", b.N)
	fmt.Printf("floor (an init that prints a line): %.2fs\n", floor/n)
	fmt.Printf("%-44s %10s %14s %14s %16s %18s\n", "initramfs", "size", "ociboot runs", "root's init", "init - floor", "in the root")
	for k, name := range []string{"default (driver presets)", "--modules-all --firmware /lib/firmware"} {
		st, err := os.Stat([]string{presets, all}[k])
		if err != nil {
			b.Fatal(err)
		}
		s := sums[k]
		fmt.Printf("%-44s %7.1f MB %13.2fs %13.2fs %15.2fs %6.0f modules, %5.0f MiB available\n",
			name, float64(st.Size())/1e6, s.first/n, s.root/n, (s.root-floor)/n, s.modules/n, s.mem/n)
	}
	b.ReportMetric((sums[1].root-floor)/n, "all-init-minus-floor-s")
	b.ReportMetric(sums[1].mem/n, "all-memavailable-MiB")
}
