package bootcfg

import (
	"os"
	"strings"
	"testing"

	"github.com/ociboot/ociboot/internal/signature"
	"github.com/ociboot/ociboot/internal/trust"
)

func TestVerifyParameter(t *testing.T) {
	data, err := os.ReadFile("../signature/testdata/ecdsa.pub")
	if err != nil {
		t.Fatal(err)
	}
	k, err := signature.ParseKey("release.pub", data)
	if err != nil {
		t.Fatal(err)
	}
	policy := func(mayWarn bool) *trust.Trust {
		tr, err := trust.New([]signature.Key{k}, trust.Policy{
			Default:        &trust.Rule{Mode: trust.Require},
			Scopes:         map[string]trust.Rule{"registry.lan/scratch": {Mode: trust.Warn}},
			CmdlineMayWarn: mayWarn,
		})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	for _, c := range []struct {
		name, cmdline string
		trust         *trust.Trust
		lab, scratch  string // what Registry.Verify says: require, warn or accept
		wantErr       string
	}{
		{name: "nothing baked", cmdline: "ociboot.verify=warn", lab: "accept", scratch: "accept"},
		{name: "policy", trust: policy(false), lab: "require", scratch: "warn"},
		{name: "hardened", cmdline: "ociboot.verify=require", trust: policy(false), lab: "require", scratch: "require"},
		{name: "weakened", cmdline: "ociboot.verify=warn", trust: policy(true), lab: "warn", scratch: "warn"},
		{name: "weakening refused", cmdline: "ociboot.verify=warn", trust: policy(false),
			wantErr: `kernel parameter ociboot.verify="warn": the build's verification policy does not let the command line weaken it`},
		{name: "bad value", cmdline: "ociboot.verify=off", trust: policy(true), wantErr: `kernel parameter ociboot.verify="off": mode "off": want require or warn`},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse(c.cmdline, Baked{Trust: c.trust})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Parse: %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mode := func(repo string) string {
				if p.Registry.Verify == nil {
					return "accept"
				}
				v := p.Registry.Verify("registry.lan", repo)
				switch {
				case v == nil:
					return "accept"
				case v.Warn:
					return "warn"
				}
				return "require"
			}
			if got := mode("lab/app"); got != c.lab {
				t.Errorf("registry.lan/lab/app: %s, want %s", got, c.lab)
			}
			if got := mode("scratch/app"); got != c.scratch {
				t.Errorf("registry.lan/scratch/app: %s, want %s", got, c.scratch)
			}
		})
	}
}
