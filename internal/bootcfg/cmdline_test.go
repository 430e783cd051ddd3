package bootcfg

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitKernelCmdline(t *testing.T) {
	kv := func(k, v string) Param { return Param{Key: k, Value: v, HasValue: true} }
	flag := func(k string) Param { return Param{Key: k} }
	tests := []struct {
		name string
		in   string
		want []Param
	}{
		{"empty", "", nil},
		{"spaces only", " \t\n", nil},
		{
			"proc cmdline of a b2c machine",
			"BOOT_IMAGE=/vmlinuz-6.1.0-18-amd64 console=ttyS0,115200 quiet b2c.container=\"-ti docker://alpine:latest\" b2c.run=\"alpine sh -c 'echo hi; exit 3'\" b2c.poweroff_delay=15\n",
			[]Param{
				kv("BOOT_IMAGE", "/vmlinuz-6.1.0-18-amd64"), kv("console", "ttyS0,115200"), flag("quiet"),
				kv("b2c.container", "-ti docker://alpine:latest"),
				kv("b2c.run", "alpine sh -c 'echo hi; exit 3'"),
				kv("b2c.poweroff_delay", "15"),
			},
		},
		{"several spaces and tabs", "  a=1 \t\t b  ", []Param{kv("a", "1"), flag("b")}},
		{"empty value", "a= b", []Param{kv("a", ""), flag("b")}},
		{"first equals splits", "a=b=c", []Param{kv("a", "b=c")}},
		{"equals at start is not a separator", "=a=b", []Param{kv("=a", "b")}},
		{"lone equals", "=", []Param{flag("=")}},
		{"quote inside value kept unless leading", `a=b"c d"`, []Param{kv("a", `b"c d"`)}},
		{"leading quote stripped, no closing at end", `a="b c"d`, []Param{kv("a", `b c"d`)}},
		{"lone quote value", `a="`, []Param{kv("a", "")}},
		{"empty quoted value", `a="" b`, []Param{kv("a", ""), flag("b")}},
		{"unterminated quote runs to the end", `a="b c d`, []Param{kv("a", "b c d")}},
		{"whole parameter quoted", `"a=b c" d`, []Param{kv("a", "b c"), flag("d")}},
		{"quoted flag", `"a b"`, []Param{flag("a b")}},
		{"lone quote", `"`, []Param{flag("")}},
		{"two quotes", `""`, []Param{flag("")}},
		{"quotes in the key", `a"b c"=d e`, []Param{kv(`a"b c"`, "d"), flag("e")}},
		{"latin-1 no-break space separates", "a=1\xa0b=2", []Param{kv("a", "1"), kv("b", "2")}},
		{"stops at NUL", "a=1\x00b=2", []Param{kv("a", "1")}},
		{"double dash is a parameter", "a -- b", []Param{flag("a"), flag("--"), flag("b")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitKernelCmdline(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("SplitKernelCmdline(%q)\n got %#v\nwant %#v", tt.in, got, tt.want)
			}
			if c := referenceNextArgs(tt.in); !reflect.DeepEqual(c, tt.want) {
				t.Errorf("the C transliteration gives %#v: the test table is wrong", c)
			}
		})
	}
}

// referenceNextArgs is a line-by-line transliteration of the kernel's
// parse_args()/next_arg() loop (kernel/params.c, lib/cmdline.c) working on a
// NUL-terminated byte array, used as an oracle.
func referenceNextArgs(s string) []Param {
	buf := append([]byte(s), 0)
	str := func(at int) string { // C string starting at at
		end := at
		for buf[end] != 0 {
			end++
		}
		return string(buf[at:end])
	}
	var out []Param
	args := 0
	for isSpace(buf[args]) {
		args++
	}
	for buf[args] != 0 {
		var i, equals int
		inQuote, quoted := false, false
		if buf[args] == '"' {
			args++
			inQuote, quoted = true, true
		}
		for i = 0; buf[args+i] != 0; i++ {
			if isSpace(buf[args+i]) && !inQuote {
				break
			}
			if equals == 0 {
				if buf[args+i] == '=' {
					equals = i
				}
			}
			if buf[args+i] == '"' {
				inQuote = !inQuote
			}
		}
		param, val := args, -1
		if equals != 0 {
			buf[args+equals] = 0
			val = args + equals + 1
			if buf[val] == '"' {
				val++
				if buf[args+i-1] == '"' {
					buf[args+i-1] = 0
				}
			}
		}
		if quoted && i > 0 && buf[args+i-1] == '"' {
			buf[args+i-1] = 0
		}
		next := args + i
		if buf[next] != 0 {
			buf[next] = 0
			next++
		}
		if val < 0 {
			out = append(out, Param{Key: str(param)})
		} else {
			out = append(out, Param{Key: str(param), Value: str(val), HasValue: true})
		}
		args = next
		for isSpace(buf[args]) {
			args++
		}
	}
	return out
}

func FuzzSplitKernelCmdline(f *testing.F) {
	for _, s := range []string{
		`console=ttyS0 b2c.container="-ti docker://alpine:latest" quiet`,
		`"a=b c" d`, `a="`, `a="b c"d`, `""`, "a\xa0b", `x="y" "z`, "=a=b", "a=\"\"\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SplitKernelCmdline(s)
		want := referenceNextArgs(s)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("SplitKernelCmdline(%q)\n got %#v\nwant %#v (C transliteration)", s, got, want)
		}
		for _, p := range got {
			if !p.HasValue && p.Value != "" {
				t.Fatalf("parameter %#v has a value but HasValue is false", p)
			}
			if strings.IndexByte(p.Key+p.Value, 0) >= 0 {
				t.Fatalf("parameter %#v holds a NUL", p)
			}
		}
	})
}

func TestMaskSecrets(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`console=ttyS0  ociboot.registry_auth=r.lan,bob,s3cr3t quiet`, `console=ttyS0 ociboot.registry_auth="r.lan,bob,***" quiet`},
		{`a="x y" ociboot.registry_auth="r:5000,bob,pass word" b2c.container="alpine sh -c 'echo hi'"`,
			`a="x y" ociboot.registry_auth="r:5000,bob,***" b2c.container="alpine sh -c 'echo hi'"`},
		{`ociboot.registry_auth`, `ociboot.registry_auth`},
		{"ociboot.registry_auth=r,u,p\x00hidden", `ociboot.registry_auth="r,u,***"`},
		{``, ``},
	} {
		if got := MaskSecrets(tt.in); got != tt.want {
			t.Errorf("MaskSecrets(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}
}

// FuzzMaskSecrets checks that masking keeps every parameter but the
// secrets, and leaves no password in the result.
func FuzzMaskSecrets(f *testing.F) {
	f.Add(`console=ttyS0 ociboot.registry_auth="r,u,SECRET" x="a b"`)
	f.Fuzz(func(t *testing.T, s string) {
		masked := MaskSecrets(s)
		before, after := SplitKernelCmdline(s), SplitKernelCmdline(masked)
		if len(before) != len(after) {
			t.Fatalf("%d parameters became %d: %q -> %q", len(before), len(after), s, masked)
		}
		for i := range before {
			if before[i].Key != after[i].Key {
				t.Fatalf("parameter %d: key %q became %q", i, before[i].Key, after[i].Key)
			}
			if before[i].Key == "ociboot.registry_auth" && before[i].HasValue {
				if v := after[i].Value; v != "***" && !strings.HasSuffix(v, ",***") {
					t.Fatalf("registry_auth value %q not masked", after[i].Value)
				}
				continue
			}
			if before[i] != after[i] {
				t.Fatalf("parameter %d changed: %+v -> %+v", i, before[i], after[i])
			}
		}
	})
}
