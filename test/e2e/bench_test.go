package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/rootfstest"
	"github.com/ociboot/ociboot/internal/vm"
)

// BenchmarkCacheBoot prints, side by side in one run, the time from the
// VM's start (host clock) to the first line that matters: an init that
// only prints a line (the floor: kernel and QEMU), then ociboot running
// a container from a busybox image and from a 100+ MiB one, with a cold
// cache (a B2C_CACHE partition formatted on the host, as boot2container
// leaves it, with an empty store) and a warm one (the same disk, booted
// again); and the bytes a warm boot fetches from the registry. Run it
// with `go test -run '^$' -bench CacheBoot -benchtime 3x ./test/e2e`
// (make bench does); each round boots five VMs, one after the other.
func BenchmarkCacheBoot(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "ociboot")
	goBuild(b, bin, "github.com/ociboot/ociboot/cmd/ociboot")
	initramfs := filepath.Join(dir, "initramfs.img")
	run(b, bin, "build", "-o", initramfs)
	trivialInit := filepath.Join(dir, "trivialinit")
	goBuild(b, trivialInit, "github.com/ociboot/ociboot/bench/trivialinit")
	trivial := filepath.Join(dir, "trivial.img")
	run(b, bin, "build", "-o", trivial, "--init-binary", trivialInit, "--runtime", "none", "--modules=", "--storage-modules=", "--fscrypt-modules=", "--drivers=", "--mkfs", "none")

	reg := registrytest.Start(b)
	var sent atomic.Int64
	proxy := registrytest.NewProxy(b, reg, registrytest.ProxyOptions{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(&countingWriter{ResponseWriter: w, n: &sent}, r)
		})
	}})
	port := portOf(b, proxy.Addr)
	via := fmt.Sprintf("%s:%d", vm.GuestHost, port)
	registrytest.Push(b, reg, "bench/small:1", registrytest.BusyboxImage(b))
	big, bigSize := bigLayer(b, 112<<20)
	registrytest.Push(b, reg, "bench/big:1", registrytest.BusyboxImage(b, big))

	const marker = "FIRST-2-LINE" // the kernel's echo of the command line shows $((1+1))
	var console string            // the last boot's
	boot := func(initramfs, cmdline, marker string, disks ...vm.Disk) time.Duration {
		b.Helper()
		st := newStamper(marker)
		defer func() { console = st.String() }()
		res, err := vm.Run(context.Background(), vm.Config{
			Initramfs: initramfs, Cmdline: cmdline, Forwards: []int{port}, Disks: disks,
			Timeout: bootTimeout, Console: st,
		})
		if err != nil && !(res.Started && st.at(marker) > 0) {
			b.Fatalf("vm.Run: %v\n%s", err, st)
		}
		if st.at(marker) == 0 {
			b.Fatalf("no %q on the console:\n%s", marker, st)
		}
		return st.at(marker)
	}
	type row struct{ floor, cold, warm, warmBytes, warmModules [2]float64 }
	var sum row
	images := []string{via + "/bench/small:1", via + "/bench/big:1"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k, img := range images {
			floor := boot(trivial, "", "trivial init: first line")
			disk := cacheDisk(b, 1<<30)
			cmdline := fmt.Sprintf(`ociboot.insecure_registry=%s ociboot.cache_device=auto ociboot.container="%s sh -c 'echo FIRST-$((1+1))-LINE'"`, via, img)
			cold := boot(initramfs, cmdline, marker, vm.Disk{Path: disk})
			before := sent.Load()
			warm := boot(initramfs, cmdline, marker, vm.Disk{Path: disk})
			sum.warmBytes[k] += float64(sent.Load() - before)
			sum.warmModules[k] += modulesStage(console).Seconds()
			sum.floor[k] += floor.Seconds()
			sum.cold[k] += cold.Seconds()
			sum.warm[k] += warm.Seconds()
			os.Remove(disk)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	fmt.Printf("\nfrom the VM's start to the first line, TCG, mean of %d rounds:\n", b.N)
	fmt.Printf("%-38s %8s %8s %8s %10s %16s %14s\n", "image", "floor", "cold", "warm", "warm-floor", "warm fetched", "warm modules")
	for k, name := range []string{"busybox (1.1 MB of gzip)", fmt.Sprintf("busybox + %d MiB layer (%d MB of gzip)", 112, bigSize/1e6)} {
		fmt.Printf("%-38s %7.2fs %7.2fs %7.2fs %9.2fs %13.0f B %13.2fs\n", name, sum.floor[k]/n, sum.cold[k]/n, sum.warm[k]/n, (sum.warm[k]-sum.floor[k])/n, sum.warmBytes[k]/n, sum.warmModules[k]/n)
	}
	fmt.Println("(warm modules: the warm boot's modules stage, its drivers loaded for the VM's devices, which the floor does not do)")
	b.ReportMetric((sum.warm[1]-sum.floor[1])/n, "big-warm-minus-floor-s")
	b.ReportMetric(sum.warmBytes[1]/n, "big-warm-fetched-B")
}

// modulesStage is how long the console says the boot's modules stage
// took: from its section line to the next one's ("ociboot: ==== NAME ====
// S s since boot").
func modulesStage(console string) time.Duration {
	var from, to float64
	for _, l := range strings.Split(strings.ReplaceAll(console, "\r", ""), "\n") {
		var name string
		var at float64
		if n, _ := fmt.Sscanf(l, "ociboot: ==== %s ==== %f s since boot", &name, &at); n != 2 {
			continue
		}
		switch {
		case name == "modules":
			from = at
		case from > 0 && to == 0:
			to = at
		}
	}
	if to < from {
		return 0
	}
	return time.Duration((to - from) * float64(time.Second))
}

// countingWriter counts the bytes of the answers it writes.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

// bigLayer is a layer of size bytes spread over files of 8 MiB, half
// random bytes and half text, as real trees mix binaries and text; it
// returns the layer and its compressed size.
func bigLayer(t testing.TB, size int) (v1.Layer, int64) {
	t.Helper()
	files := map[string]string{}
	for i := 0; i < size/(8<<20); i++ {
		buf := make([]byte, 4<<20)
		if _, err := rand.Read(buf); err != nil {
			t.Fatal(err)
		}
		text := strings.Repeat(fmt.Sprintf("line %d of a text file that compresses well enough\n", i), (4<<20)/52)
		files[fmt.Sprintf("data/file%02d", i)] = string(buf) + text
	}
	l := registrytest.LayerFromFiles(t, files)
	n, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}
	return l, n
}

// cacheDisk makes a disk of size bytes with a GPT and one partition
// formatted ext4 with the label B2C_CACHE, as boot2container leaves it.
func cacheDisk(t testing.TB, size int64) string {
	t.Helper()
	p := blankDisk(t, size)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	table := &gpt.Table{ProtectiveMBR: true, LogicalSectorSize: 512, PhysicalSectorSize: 512, Partitions: []*gpt.Partition{
		{Start: 2048, Size: uint64(size - 2<<20), Type: gpt.LinuxFilesystem, Name: "B2C_CACHE"},
	}}
	err = table.Write(f, size)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	hostTool(t, "mke2fs", "-q", "-F", "-t", "ext4", "-O", "encrypt", "-L", "B2C_CACHE", "-E", "offset=1048576", p, fmt.Sprint((size-2<<20)>>10)+"k")
	return p
}

// run runs ociboot (or another program) and fails on error.
func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// BenchmarkBootStorm plays fifty machines booting at once against a lab's
// registry cache: fifty `ociboot pull --store` clients, each with its own
// store and directory, pull one image at the same time from a registry
// cache in front of the origin registry, all on 127.0.0.1. The caches,
// side by side: a CNCF distribution registry in pull-through mode, and
// `ociboot serve --upstream`, each in front of its own counting proxy to
// the origin, each cold at the first round. It prints, for each, how many
// times the origin served each blob (goal: once), the clients' p50 and
// p99 pull times and their failures (goal: none). Run it with
// `go test -run '^$' -bench BootStorm -benchtime 1x ./test/e2e`.
func BenchmarkBootStorm(b *testing.B) {
	const clients = 50
	dir := b.TempDir()
	bin := filepath.Join(dir, "ociboot")
	goBuild(b, bin, "github.com/ociboot/ociboot/cmd/ociboot")
	origin := registrytest.Start(b)
	big, _ := bigLayer(b, 16<<20)
	registrytest.Push(b, origin, "bench/storm:1", registrytest.BusyboxImage(b, big))

	type cache struct {
		name     string
		addr     string
		counter  *registrytest.Proxy
		failures int
		times    []time.Duration
	}
	cncfCounter := registrytest.NewProxy(b, origin, registrytest.ProxyOptions{})
	serveCounter := registrytest.NewProxy(b, origin, registrytest.ProxyOptions{})
	port, _ := startServe(b, bin, "--upstream", serveCounter.URL, "--upstream-dir", filepath.Join(dir, "upstream"))
	caches := []*cache{
		{name: "CNCF distribution, pull-through", addr: registrytest.StartWith(b, registrytest.Options{PullThrough: cncfCounter.URL}).Addr, counter: cncfCounter},
		{name: "ociboot serve --upstream", addr: fmt.Sprintf("127.0.0.1:%d", port), counter: serveCounter},
	}

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range caches {
			type result struct {
				took time.Duration
				err  error
				out  []byte
			}
			results := make(chan result, clients)
			start := make(chan struct{})
			round := filepath.Join(dir, fmt.Sprintf("round%d", i))
			for k := 0; k < clients; k++ {
				work := filepath.Join(round, fmt.Sprint(k))
				go func() {
					<-start
					t0 := time.Now()
					cmd := exec.Command(bin, "pull", "--progress", "none", "--insecure-registry", c.addr,
						"--store", filepath.Join(work, "store"), c.addr+"/bench/storm:1", filepath.Join(work, "root"))
					out, err := cmd.CombinedOutput()
					results <- result{time.Since(t0), err, out}
				}()
			}
			close(start)
			for k := 0; k < clients; k++ {
				r := <-results
				c.times = append(c.times, r.took)
				if r.err != nil {
					c.failures++
					b.Logf("a client of %s failed: %v\n%s", c.name, r.err, r.out)
				}
			}
			b.StopTimer()
			os.RemoveAll(round)
			b.StartTimer()
		}
	}
	b.StopTimer()
	fmt.Printf("\n%d rounds of %d concurrent `ociboot pull --store` through a registry cache, the first round cold:\n", b.N, clients)
	for _, c := range caches {
		perBlob := map[string]int{}
		for _, r := range c.counter.Requests() {
			if r.Method == http.MethodGet && r.IsBlob() {
				perBlob[r.Path[strings.LastIndex(r.Path, "/")+1:]]++
			}
		}
		slices.Sort(c.times)
		pct := func(p float64) time.Duration { return c.times[min(len(c.times)-1, int(p*float64(len(c.times))))] }
		fmt.Printf("%s: pull time p50 %.2fs, p99 %.2fs, max %.2fs; failures %d of %d; blob GETs the origin served:\n",
			c.name, pct(0.5).Seconds(), pct(0.99).Seconds(), c.times[len(c.times)-1].Seconds(), c.failures, len(c.times))
		blobs := slices.Sorted(maps.Keys(perBlob))
		for _, blob := range blobs {
			fmt.Printf("  %.19s  %d\n", blob, perBlob[blob])
		}
		metric := strings.Fields(c.name)[0]
		b.ReportMetric(pct(0.99).Seconds(), metric+"-p99-s")
		b.ReportMetric(float64(c.failures), metric+"-failures")
	}
}

// BenchmarkRootCache prints what the cache does for switch-root: the
// Debian bookworm image with systemd (debootstrap, cached as the
// switch-root tests cache it) booted as the OS without a cache, with a
// cold cache and with a warm one (its layer read from the store, nothing
// fetched), side by side: the time from the VM's start to the image's
// init, and to multi-user.target. Run it with
// `go test -run '^$' -bench RootCache -benchtime 1x -timeout 60m ./test/e2e`.
func BenchmarkRootCache(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "ociboot")
	goBuild(b, bin, "github.com/ociboot/ociboot/cmd/ociboot")
	initramfs := filepath.Join(dir, "big.img")
	run(b, bin, "build", "-o", initramfs, "--modules-all")
	base := rootfstest.Debian(b, "bookworm", systemdPackages...)
	tarPath := rootfstest.WithFiles(b, base,
		rootfstest.File{Path: "etc/systemd/system/ociboot-marker.service", Body: markerUnit},
		rootfstest.File{Path: "etc/systemd/system/multi-user.target.wants/ociboot-marker.service", Linkname: "/etc/systemd/system/ociboot-marker.service"},
	)
	reg := registrytest.Start(b)
	layer := rootfstest.Layer(b, tarPath)
	size, err := layer.Size()
	if err != nil {
		b.Fatal(err)
	}
	ref := guestRef(registrytest.Push(b, reg, "bench/debian-systemd:12", registrytest.Image(b, v1.Config{Cmd: []string{"/sbin/init"}}, layer)))

	const handover, marker = "ociboot: root: starting /sbin/init", "SYSTEMD-MARKER target="
	boot := func(cmdline string, disks ...vm.Disk) (toInit, toTarget time.Duration) {
		con := newStamper(handover, marker)
		res, err := vm.Run(context.Background(), vm.Config{
			Initramfs: initramfs,
			Cmdline:   fmt.Sprintf("ociboot.insecure_registry=%s:%d ociboot.poweroff_delay=0 ociboot.root=%s %s", vm.GuestHost, reg.Port, ref, cmdline),
			Forwards:  []int{reg.Port}, Disks: disks, Timeout: rootBootTimeout, Console: con,
		})
		if (err != nil && (!res.Started || res.ExitCode != 0)) || con.at(marker) == 0 {
			b.Fatalf("vm.Run: %v\n%s", err, con)
		}
		return con.at(handover), con.at(marker)
	}
	var sums [3][2]float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		disk := cacheDisk(b, 2<<30)
		for k, cmdline := range []string{"", "ociboot.cache_device=auto", "ociboot.cache_device=auto"} {
			var disks []vm.Disk
			if cmdline != "" {
				disks = []vm.Disk{{Path: disk}}
			}
			toInit, toTarget := boot(cmdline, disks...)
			sums[k][0] += toInit.Seconds()
			sums[k][1] += toTarget.Seconds()
		}
		os.Remove(disk)
	}
	b.StopTimer()
	n := float64(b.N)
	fmt.Printf("\nDebian bookworm + systemd as the OS (%d MB of gzip), TCG, mean of %d rounds, from the VM's start:\n", size/1e6, b.N)
	fmt.Printf("%-12s %10s %22s\n", "", "to init", "to multi-user.target")
	for k, name := range []string{"no cache", "cold cache", "warm cache"} {
		fmt.Printf("%-12s %9.1fs %21.1fs\n", name, sums[k][0]/n, sums[k][1]/n)
	}
	b.ReportMetric(sums[2][0]/n, "warm-to-init-s")
}
