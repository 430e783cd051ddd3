package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/bootcfg"
	consolepkg "github.com/ociboot/ociboot/internal/console"
	"github.com/ociboot/ociboot/internal/event"
)

func TestReadBaked(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"cmdline":"ociboot.container=busybox","runtime":"/usr/bin/crun","modules":["virtio_net"]}`)
	b, err := readBaked(good)
	if err != nil || b.Runtime != "/usr/bin/crun" || b.Cmdline != "ociboot.container=busybox" || len(b.Modules) != 1 {
		t.Errorf("readBaked(good) = %+v, %v", b, err)
	}
	for _, tc := range []struct {
		path string
		want string
	}{
		{filepath.Join(dir, "missing.json"), "ociboot build"},
		{write("bad.json", `{"runtime":`), "bad.json"},
		{write("noruntime.json", `{"cmdline":"x"}`), "names no OCI runtime"},
	} {
		_, err := readBaked(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("readBaked(%s) error = %v, want it to mention %q", filepath.Base(tc.path), err, tc.want)
		}
	}
}

// TestRun checks the loop of the walk: stages in order, skipped ones
// without a trace, a section line and an end event each, and the first
// error, named by its stage, ending the walk.
func TestRun(t *testing.T) {
	var console bytes.Buffer
	var rec event.Recorder
	s := &state{events: event.New(consolepkg.NewSink(&console), &rec), plan: &bootcfg.Plan{}}
	var ran []string
	step := func(name string, err error) stage {
		return stage{name: name, run: func(context.Context, *state) error {
			ran = append(ran, name)
			return err
		}}
	}
	skipped := step("skipped", nil)
	skipped.skip = func(*state) bool { return true }
	failure := errors.New("no link")
	err := s.run(context.Background(), []stage{step("first", nil), skipped, step("network", failure), step("never", nil)})

	var se *stageError
	if !errors.As(err, &se) || se.stage != "network" || !errors.Is(err, failure) || err.Error() != "network: no link" {
		t.Errorf("run: %v, want the network stage's error, named", err)
	}
	if !slices.Equal(ran, []string{"first", "network"}) {
		t.Errorf("stages run: %q, want first and network", ran)
	}
	var got []string
	for _, e := range rec.Events() {
		switch e := e.(type) {
		case event.StageStart:
			got = append(got, "start "+e.Stage)
		case event.StageEnd:
			got = append(got, fmt.Sprintf("end %s %v", e.Stage, e.Err))
		}
	}
	if want := []string{"start first", "end first <nil>", "start network", "end network no link"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if n := strings.Count(console.String(), "ociboot: ===="); n != 2 || !strings.Contains(console.String(), "ociboot: ==== network ==== ") {
		t.Errorf("console:\n%s\nwant two section lines, the second for network", console.String())
	}
}

// TestStagesRead checks the walk's shape: the stages each mode runs, in
// order.
func TestStagesRead(t *testing.T) {
	for _, tc := range []struct {
		plan bootcfg.Plan
		want []string
	}{
		{bootcfg.Plan{}, []string{"configuration", "modules", "network", "clock", "containers", "end"}},
		{bootcfg.Plan{ExtraArgsURL: "http://x/"}, []string{"configuration", "modules", "network", "clock", "extra_args_url", "containers", "end"}},
		{bootcfg.Plan{Root: "debian"}, []string{"configuration", "modules", "network", "clock", "root"}},
		{bootcfg.Plan{Storage: bootcfg.Storage{CacheDevice: "auto"}}, []string{"configuration", "modules", "network", "clock", "storage", "containers", "end"}},
		{bootcfg.Plan{Root: "debian", Storage: bootcfg.Storage{CacheDevice: "/dev/vda1"}}, []string{"configuration", "modules", "network", "clock", "storage", "root"}},
		{bootcfg.Plan{Volumes: []bootcfg.Volume{{Name: "job"}}}, []string{"configuration", "modules", "network", "clock", "volumes", "containers", "end"}},
		{bootcfg.Plan{Containers: []bootcfg.Container{{Image: "a", Mounts: []bootcfg.Mount{{Type: "volume", Source: "v", Target: "/v"}}}}}, []string{"configuration", "modules", "network", "clock", "volumes", "containers", "end"}},
	} {
		s := &state{plan: &tc.plan}
		var got []string
		for _, st := range stages() {
			if st.skip == nil || !st.skip(s) {
				got = append(got, st.name)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("plan %+v: stages %q, want %q", tc.plan, got, tc.want)
		}
	}
}

// TestBootNeeds checks which devices get their driver before switching
// root: network controllers and device-tree devices always, storage
// controllers when the boot uses a disk, others from the first segment.
func TestBootNeeds(t *testing.T) {
	for alias, want := range map[string]need{
		"pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00": neededAlways,  // e1000
		"pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80": neededStorage, // PIIX IDE
		"pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02": neededStorage, // NVMe
		"pci:v00008086d00007113sv00001AF4sd00001100bc06sc80i00": neededMaybe,   // PIIX4 ACPI, i2c_piix4
		"pci:v00001274d00005000sv00001AF4sd00001100bc04sc01i00": neededMaybe,   // sound
		"of:NethernetT(null)Csnps,dwmac-4.20a":                  neededAlways,
		"platform:pcspkr":                                       neededMaybe,
		"acpi:PNP0C0C:":                                         neededMaybe, // power button
		"serio:ty01pr00id00ex00":                                neededMaybe,
		"pci:v00008086d0000100E":                                neededMaybe, // no class
	} {
		if got := bootNeeds(alias); got != want {
			t.Errorf("bootNeeds(%q) = %d, want %d", alias, got, want)
		}
	}
}
