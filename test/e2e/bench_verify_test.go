package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/cosigntest"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/signature"
	"github.com/ociboot/ociboot/internal/timeline"
	"github.com/ociboot/ociboot/internal/vm"
)

// BenchmarkVerify prints what checking cosign signatures adds to a pull,
// side by side in one run (orders alternating; medians, and the median of
// the pairs' differences), on the host and in a VM: one busybox image,
// signed as cosign 2.x does (the .sig tag) and as 3.x does (a bundle
// referrer, through the referrers tag of the CNCF registry). On the host,
// the puller's pull and unpack of it, unchecked and checked; in the VM,
// the init's time from its first stage to its end stage by the guest's
// clock, with an initramfs without keys and one built with --verify-key;
// `ociboot verify` and its peer `cosign verify` timed as commands; and
// the size the keys add to the initramfs archive: go test -run '^$' -bench
// Verify -benchtime 9x ./test/e2e.
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "ociboot")
	goBuild(b, bin, "github.com/ociboot/ociboot/cmd/ociboot")
	cosign := cosigntest.New(b)
	k := cosign.GenerateKeyPair(b, dir, "release")
	reg := registrytest.Start(b)
	img := registrytest.BusyboxImage(b)
	d, err := img.Digest()
	if err != nil {
		b.Fatal(err)
	}
	refs := map[string]string{}
	for _, f := range []cosigntest.Format{cosigntest.SigTag, cosigntest.Bundle} {
		refs[f.String()] = registrytest.Push(b, reg, "bench/"+f.String()+":1", img)
		cosign.Sign(b, cosigntest.ByDigest(refs[f.String()], d), k, f)
	}
	b.Setenv("SOURCE_DATE_EPOCH", "0") // builds that differ only by the key
	plain := filepath.Join(dir, "plain.img")
	run(b, bin, "build", "-o", plain)
	keyed := filepath.Join(dir, "keyed.img")
	run(b, bin, "build", "-o", keyed, "--verify-key", k.Pub)
	// What the keys and policy add to the archive itself (compressed,
	// the difference drowns in how zstd's blocks fall).
	sizes := [2]int64{}
	for i, extra := range [][]string{nil, {"--verify-key", k.Pub}} {
		f := filepath.Join(dir, fmt.Sprintf("size-%d.img", i))
		run(b, bin, append([]string{"build", "-o", f, "--compress", "none"}, extra...)...)
		st, err := os.Stat(f)
		if err != nil {
			b.Fatal(err)
		}
		sizes[i] = st.Size()
	}
	pub, err := os.ReadFile(k.Pub)
	if err != nil {
		b.Fatal(err)
	}
	key, err := signature.ParseKey("release.pub", pub)
	if err != nil {
		b.Fatal(err)
	}

	type form struct {
		name, ref string
		verify    bool
	}
	forms := []form{{"unchecked", refs["bundle"], false}, {"sig-tag", refs["sig-tag"], true}, {"bundle", refs["bundle"], true}}
	host := make([][]float64, len(forms))
	// The peer: `cosign verify` beside `ociboot verify`, both as the
	// command a pipeline runs.
	cli := map[string][]float64{}
	guest := make([][]float64, len(forms))
	const marker = "VERIFY-BENCH-MARKER"
	i := 0
	for b.Loop() {
		for j := range forms {
			n := (j + i) % len(forms)
			fm := forms[n]
			o := image.PullOptions{}
			if fm.verify {
				o.Verify = func(string, string) *image.Verification {
					return &image.Verification{Keys: []signature.Key{key}, Policy: "bench"}
				}
			}
			start := time.Now()
			p, err := image.NewPuller(o)
			if err != nil {
				b.Fatal(err)
			}
			pulled, err := p.Pull(context.Background(), fm.ref, image.Request{})
			if err == nil {
				err = image.Unpack(context.Background(), pulled, b.TempDir(), nil)
			}
			if err != nil {
				b.Fatalf("%s: %v", fm.name, err)
			}
			host[n] = append(host[n], time.Since(start).Seconds())
			if fm.verify {
				format := cosigntest.SigTag
				if fm.name == "bundle" {
					format = cosigntest.Bundle
				}
				start = time.Now()
				if ok, out := cosign.Verify(fm.ref, k.Pub, format); !ok {
					b.Fatalf("cosign verify %s:\n%s", fm.ref, out)
				}
				cli["cosign-"+fm.name] = append(cli["cosign-"+fm.name], time.Since(start).Seconds())
				start = time.Now()
				run(b, bin, "verify", "--verify-key", k.Pub, fm.ref)
				cli["ociboot-"+fm.name] = append(cli["ociboot-"+fm.name], time.Since(start).Seconds())
			}

			initramfs := plain
			if fm.verify {
				initramfs = keyed
			}
			stamps := newStamper(marker)
			res, err := vm.Run(context.Background(), vm.Config{
				Initramfs: initramfs,
				Cmdline:   fmt.Sprintf(`ociboot.insecure_registry=%s:%d ociboot.container="%s sh -c 'echo %s'"`, vm.GuestHost, reg.Port, guestRef(fm.ref), marker),
				Forwards:  []int{reg.Port},
				Timeout:   bootTimeout,
				Console:   stamps,
			})
			console := stamps.String()
			if stamps.at(marker) == 0 || err != nil || res.Status != 0 {
				b.Fatalf("%s: no %q on the console (%v, status %d):\n%s", fm.name, marker, err, res.Status, console)
			}
			if fm.verify != strings.Contains(console, ": signed by release.pub") {
				b.Fatalf("%s: verified %v, want %v:\n%s", fm.name, !fm.verify, fm.verify, console)
			}
			tl, err := timeline.FromConsole(strings.NewReader(console))
			if err != nil {
				b.Fatal(err)
			}
			stages := tl.Spans[1:] // after the kernel
			guest[n] = append(guest[n], stages[len(stages)-1].Start-stages[0].Start)
		}
		i++
	}
	for n, fm := range forms {
		b.Logf("%s: host pull+unpack %.3f s; guest init %.2f s", fm.name, host[n], guest[n])
		b.ReportMetric(median(host[n])*1e3, "host-"+fm.name+"-median-ms")
		b.ReportMetric(median(guest[n]), "vm-"+fm.name+"-median-s")
		if n > 0 {
			b.ReportMetric(median(diffs(host[n], host[0]))*1e3, "host-"+fm.name+"-added-paired-median-ms")
			b.ReportMetric(median(diffs(guest[n], guest[0])), "vm-"+fm.name+"-added-paired-median-s")
		}
	}
	for _, f := range []string{"sig-tag", "bundle"} {
		b.Logf("verify %s: ociboot %.3f s; cosign %.3f s", f, cli["ociboot-"+f], cli["cosign-"+f])
		b.ReportMetric(median(cli["ociboot-"+f])*1e3, "cli-ociboot-verify-"+f+"-median-ms")
		b.ReportMetric(median(cli["cosign-"+f])*1e3, "cli-cosign-verify-"+f+"-median-ms")
	}
	b.ReportMetric(float64(sizes[1]-sizes[0]), "initramfs-key-uncompressed-bytes")
}
