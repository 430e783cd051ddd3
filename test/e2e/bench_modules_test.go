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
// from the VM's start to the kernel running /init and to the root's init, the
// floor's time to its line (an init that prints a line), and what the
// root finds: the modules it can load, and MemAvailable. The default
// initramfs (driver presets, no whole tree) boots beside it, and, with
// $OCIBOOT_BENCH_DRACUT naming dracut's (bench/dracut.sh), dracut on the
// same line. Run it with bench/modules.sh.
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
	cmdline := fmt.Sprintf("%shttp://%s:%d/root.tar.xz ociboot.poweroff_delay=0", readmeCmdline, vm.GuestHost, port)

	// first is the kernel starting the initramfs's /init, whichever.
	const first, rootLine = "Run /init as init process", "TINY-ROOT-INIT"
	found := regexp.MustCompile(`TINY-ROOT-INIT modules=(\d+) MemAvailable: +(\d+) kB`)
	type figures struct{ first, root, mem, modules float64 }
	type row struct{ name, file string }
	initramfses := []row{{"default (driver presets)", presets}, {"--modules-all --firmware /lib/firmware", all}}
	if img := os.Getenv("OCIBOOT_BENCH_DRACUT"); img != "" {
		initramfses = append(initramfses, row{"dracut --no-hostonly (bench/dracut.sh)", img})
	}
	// boot boots initramfs, and with -v logs the console of the last
	// round's boot.
	boot := func(name, initramfs string, last bool) figures {
		st := newStamper(first, rootLine)
		res, err := vm.Run(context.Background(), vm.Config{Initramfs: initramfs, Cmdline: cmdline, Forwards: []int{port}, Timeout: rootBootTimeout, Console: st})
		m := found.FindStringSubmatch(st.String())
		if (err != nil && !res.Started) || m == nil {
			b.Fatalf("vm.Run: %v; no %q line:\n%s", err, rootLine, st)
		}
		if last && testing.Verbose() {
			b.Logf("%s, console:\n%s", name, st)
		}
		modules, _ := strconv.ParseFloat(m[1], 64)
		mem, _ := strconv.ParseFloat(m[2], 64)
		return figures{st.at(first).Seconds(), st.at(rootLine).Seconds(), mem / 1024, modules}
	}
	floorLine := "trivial init: first line"
	var floor float64
	sums := make([]figures, len(initramfses))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st := newStamper(floorLine)
		if _, err := vm.Run(context.Background(), vm.Config{Initramfs: trivial, Timeout: bootTimeout, Console: st}); err != nil && st.at(floorLine) == 0 {
			b.Fatalf("the floor: %v\n%s", err, st)
		}
		floor += st.at(floorLine).Seconds()
		for k, in := range initramfses {
			f := boot(in.name, in.file, i == b.N-1)
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
	fmt.Printf("%-44s %10s %14s %14s %16s %18s\n", "initramfs", "size", "/init runs", "root's init", "init - floor", "in the root")
	for k, in := range initramfses {
		st, err := os.Stat(in.file)
		if err != nil {
			b.Fatal(err)
		}
		s := sums[k]
		fmt.Printf("%-44s %7.1f MB %13.2fs %13.2fs %15.2fs %6.0f modules, %5.0f MiB available\n",
			in.name, float64(st.Size())/1e6, s.first/n, s.root/n, (s.root-floor)/n, s.modules/n, s.mem/n)
	}
	b.ReportMetric((sums[1].root-floor)/n, "all-init-minus-floor-s")
	b.ReportMetric(sums[1].mem/n, "all-memavailable-MiB")
}
