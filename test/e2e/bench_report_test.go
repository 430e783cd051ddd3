package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/timeline"
	"github.com/ociboot/ociboot/internal/vm"
)

// BenchmarkReport prints the cost of ociboot.report on a boot, without
// and with the events sent to `ociboot serve`, side by side in one run
// (their order alternating; medians, and the median of the pairs'
// differences): the time from the VM's start to the container's first
// line, and the init's own time from its first stage to its end stage by
// the guest's clock (the kernel's boot, which reporting cannot change,
// left out); and what a boot sends (means): go test -run '^$' -bench
// Report -benchtime 9x ./test/e2e.
func BenchmarkReport(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "ociboot")
	goBuild(b, bin, "github.com/ociboot/ociboot/cmd/ociboot")
	initramfs := filepath.Join(dir, "initramfs.img")
	run(b, bin, "build", "-o", initramfs)
	reg := registrytest.Start(b)
	ref := guestRef(registrytest.Push(b, reg, "bench/busybox:1", registrytest.BusyboxImage(b)))
	port, _ := startServe(b, bin)
	const marker = "REPORT-BENCH-MARKER"
	base := fmt.Sprintf(`ociboot.insecure_registry=%s:%d ociboot.container="%s sh -c 'echo %s'"`, vm.GuestHost, reg.Port, ref, marker)
	forms := []struct{ name, cmdline string }{
		{"without", base},
		{"with", fmt.Sprintf("%s ociboot.report=http://%s:%d/v1/events", base, vm.GuestHost, port)},
	}
	times := make([][]float64, len(forms))
	inits := make([][]float64, len(forms)) // the init's own time, by the guest's clock
	var events, requests, bytes, raw float64
	i := 0
	for b.Loop() {
		for k := range forms {
			form := forms[(k+i)%len(forms)]
			stamps := newStamper(marker)
			res, err := vm.Run(context.Background(), vm.Config{
				Initramfs: initramfs,
				Cmdline:   form.cmdline,
				Forwards:  []int{reg.Port, port},
				Timeout:   bootTimeout,
				Console:   stamps,
			})
			at := stamps.at(marker)
			if at == 0 || err != nil || res.Status != 0 {
				b.Fatalf("%s: no %q on the console (%v, status %d):\n%s", form.name, marker, err, res.Status, stamps.String())
			}
			times[(k+i)%len(forms)] = append(times[(k+i)%len(forms)], at.Seconds())
			tl, err := timeline.FromConsole(strings.NewReader(stamps.String()))
			if err != nil {
				b.Fatal(err)
			}
			stages := tl.Spans[1:] // after the kernel
			last := stages[len(stages)-1]
			if last.Name != "end" {
				b.Fatalf("the last stage is %s, not end", last.Name)
			}
			inits[(k+i)%len(forms)] = append(inits[(k+i)%len(forms)], last.Start-stages[0].Start)
			if form.name == "with" {
				var e, q, n, r int
				out := stamps.String()
				line := out[strings.LastIndex(out, "ociboot: report: ")+len("ociboot: report: "):]
				if _, err := fmt.Sscanf(line, "%d events sent in %d requests, %d bytes (%d before compression)", &e, &q, &n, &r); err != nil {
					b.Fatalf("no report figures on the console: %v\n%s", err, stamps.String())
				}
				events, requests, bytes, raw = events+float64(e), requests+float64(q), bytes+float64(n), raw+float64(r)
			}
		}
		i++
	}
	n := float64(b.N)
	b.Logf("VM start to the container's line: without %.2f s; with %.2f s", times[0], times[1])
	b.Logf("the init's first stage to its end stage, guest clock: without %.2f s; with %.2f s", inits[0], inits[1])
	b.ReportMetric(median(times[0]), "without-median-s")
	b.ReportMetric(median(times[1]), "with-median-s")
	b.ReportMetric(median(diffs(times[1], times[0])), "overhead-paired-median-s")
	b.ReportMetric(median(inits[0]), "init-without-median-s")
	b.ReportMetric(median(inits[1]), "init-with-median-s")
	b.ReportMetric(median(diffs(inits[1], inits[0])), "init-overhead-paired-median-s")
	b.ReportMetric(events/n, "events/boot")
	b.ReportMetric(requests/n, "requests/boot")
	b.ReportMetric(bytes/n, "bytes/boot")
	b.ReportMetric(raw/n, "json-bytes/boot")
}

// diffs returns a[i]-b[i].
func diffs(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// median is the middle value of xs (the mean of the two middle ones).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	return (s[(len(s)-1)/2] + s[len(s)/2]) / 2
}
