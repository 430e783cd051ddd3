package kmod

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ociboot/ociboot/internal/hosttest"
)

// TestAliasesAgainstModprobe is a differential test of alias matching
// against kmod's own modprobe, on the Debian kernel the VMs boot: for
// each real modalias in testdata/modaliases.txt, and for a modalias made
// to match each of a sample of the kernel's alias patterns (every 16th
// line of modules.alias without a bracket expression: '*' made empty,
// '?' made 'Z'), Lookup must give the modules that
// `modprobe -C /dev/null -S KVER --resolve-alias` gives.
func TestAliasesAgainstModprobe(t *testing.T) {
	modprobe := hosttest.Path(t, "modprobe")
	ix := hostIndex(t)
	kver := filepath.Base(hostModules)
	aliases := readLines(t, "testdata/modaliases.txt")
	real := len(aliases)
	for i, line := range readLines(t, filepath.Join(hostModules, "modules.alias")) {
		f := strings.Fields(line)
		if i%16 != 0 || len(f) != 3 || f[0] != "alias" || strings.Contains(f[1], "[") {
			continue
		}
		aliases = append(aliases, strings.NewReplacer("*", "", "?", "Z").Replace(f[1]))
	}
	if real < 125 || len(aliases) < 1000 {
		t.Fatalf("%d real modaliases and %d in all: the test data is missing", real, len(aliases))
	}

	want := make([][]string, len(aliases))
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				out, _ := exec.Command(modprobe, "-C", "/dev/null", "-S", kver, "--resolve-alias", aliases[i]).Output()
				for _, m := range strings.Fields(string(out)) {
					if m = NormalizeName(m); !slices.Contains(want[i], m) {
						want[i] = append(want[i], m)
					}
				}
			}
		}()
	}
	for i := range aliases {
		work <- i
	}
	close(work)
	wg.Wait()

	matched, bad := 0, 0
	for i, a := range aliases {
		got := names(ix.Lookup(a))
		if len(want[i]) > 0 {
			matched++
		}
		if !sameSet(got, want[i]) {
			if bad++; bad <= 20 {
				t.Errorf("Lookup(%q) = %v, modprobe resolves it to %v", a, got, want[i])
			}
		}
	}
	t.Logf("%d modaliases (%d real), %d resolved to modules, %d differ", len(aliases), real, matched, bad)
}

// readLines returns the lines of file that are neither empty nor
// comments.
func readLines(t testing.TB, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		if line := strings.TrimSpace(s.Text()); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestModinfoAgainstModinfo is a differential test of Modinfo against
// kmod's modinfo: the firmware files of modules that declare some (and
// of one that declares none) must be those `modinfo -F firmware` lists.
func TestModinfoAgainstModinfo(t *testing.T) {
	modinfo := hosttest.Path(t, "modinfo")
	ix := hostIndex(t)
	declaring := 0
	for _, name := range []string{"r8169", "e100", "tg3", "bnx2", "e1000"} {
		mods := ix.Lookup(name)
		if len(mods) != 1 || mods[0].Builtin {
			t.Fatalf("module %s: %v", name, mods)
		}
		file := filepath.Join(hostModules, mods[0].Path)
		image, err := ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Modinfo(image, "firmware")
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(modinfo, "-F", "firmware", file).Output()
		if err != nil {
			t.Fatalf("modinfo %s: %v", file, err)
		}
		if want := strings.Fields(string(out)); !slices.Equal(got, want) {
			t.Errorf("Modinfo(%s, firmware) = %q, modinfo says %q", name, got, want)
		}
		if len(got) > 0 {
			declaring++
		}
	}
	if declaring < 4 {
		t.Errorf("%d modules declare firmware: the test asserts little", declaring)
	}
	if _, err := Modinfo([]byte("not an ELF file"), "firmware"); err == nil || !strings.Contains(err.Error(), "ELF") {
		t.Errorf("Modinfo of a non-ELF file: %v", err)
	}
}
