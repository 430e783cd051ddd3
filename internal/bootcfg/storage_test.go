package bootcfg

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ociboot/ociboot/internal/storage"
)

func TestQuota(t *testing.T) {
	for _, tc := range []struct {
		q    Quota
		want int64
	}{{Quota{}, 800}, {Quota{Percent: 50}, 500}, {Quota{Bytes: 42}, 42}} {
		if got := tc.q.Of(1000); got != tc.want {
			t.Errorf("%+v.Of(1000) = %d, want %d", tc.q, got, tc.want)
		}
	}
}

func TestStorageParameters(t *testing.T) {
	good := []struct {
		cmdline string
		want    Storage
	}{
		{"", Storage{}},
		{"b2c.cache_device=auto b2c.swap=4G", Storage{CacheDevice: "auto", Swap: 4 << 30}},
		{"ociboot.cache_device=none", Storage{}},
		{"ociboot.cache_device=/dev/nvme0n1p2 ociboot.cache_wait=2", Storage{CacheDevice: "/dev/nvme0n1p2", CacheWait: 2 * time.Second}},
		{"ociboot.cache_device=reset ociboot.cache_wait=1m", Storage{CacheDevice: "reset", CacheWait: time.Minute}},
		{"ociboot.cache_device=auto ociboot.cache_quota=50%", Storage{CacheDevice: "auto", Quota: Quota{Percent: 50}}},
		{"ociboot.cache_device=auto ociboot.cache_quota=20G", Storage{CacheDevice: "auto", Quota: Quota{Bytes: 20 << 30}}},
		{`b2c.filesystem=nfs,type=nfs,src=10.0.2.2:/srv,opts=vers=4|nolock b2c.filesystem=host,type=9p,src=share b2c.cache_device=host`, Storage{
			CacheDevice: "host",
			Filesystems: []storage.Filesystem{
				{Name: "nfs", Type: "nfs", Source: "10.0.2.2:/srv", Options: "vers=4,nolock"},
				{Name: "host", Type: "9p", Source: "share"},
			},
		}},
	}
	for _, tc := range good {
		p, err := Parse(tc.cmdline, Baked{})
		if err != nil || !reflect.DeepEqual(p.Storage, tc.want) {
			t.Errorf("Parse(%q).Storage = %+v, %v; want %+v", tc.cmdline, p.Storage, err, tc.want)
		}
	}
	bad := []struct{ cmdline, want string }{
		{"b2c.cache_device", `b2c.cache_device: needs a value: none, auto, reset`},
		{"b2c.cache_device=/dev/disk/by-label/x", `got "/dev/disk/by-label/x", expected none, auto`},
		{"b2c.cache_device=shared", `cache_device=shared: no filesystem= is called shared`},
		{"b2c.swap=lots", `b2c.swap="lots": got "lots"`},
		{"b2c.swap=1G", `swap: the swap file lives on the cache: add cache_device=auto`},
		{"ociboot.cache_wait=-1s", `ociboot.cache_wait="-1s": got "-1s"`},
		{"ociboot.cache_quota=0", `got "0", expected a size such as 20G`},
		{"ociboot.cache_quota=101%", `got "101%", expected a size`},
		{"ociboot.cache_quota=lots", `got "lots"`},
		{"b2c.filesystem=a,type=ext4", `no type= or no src=`},
		{"b2c.filesystem=a,type=ext4,src=/dev/x b2c.filesystem=a,type=xfs,src=/dev/y", `a filesystem called a is already defined`},
	}
	for _, tc := range bad {
		if _, err := Parse(tc.cmdline, Baked{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v, want an error with %q", tc.cmdline, err, tc.want)
		}
	}
}

func TestParseFilesystem(t *testing.T) {
	good := map[string]storage.Filesystem{
		"cache,type=ext4,src=/dev/sda2":                           {Name: "cache", Type: "ext4", Source: "/dev/sda2"},
		"nfs-share,type=nfs,src=10.0.2.2:/srv,opts=vers=4|nolock": {Name: "nfs-share", Type: "nfs", Source: "10.0.2.2:/srv", Options: "vers=4,nolock"},
		"host,src=hostshare,type=9p,opts=trans=virtio":            {Name: "host", Type: "9p", Source: "hostshare", Options: "trans=virtio"},
	}
	for in, want := range good {
		if got, err := parseFilesystem(in); err != nil || got != want {
			t.Errorf("parseFilesystem(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, wantErr := range map[string]string{
		"":                              "name \"\"",
		"a b,type=ext4,src=/dev/x":      "name \"a b\"",
		"c,type=ext4":                   "no type= or no src=",
		"c,src=/dev/x":                  "no type= or no src=",
		"c,type=ext4,src=/dev/x,mode=1": "unknown field \"mode\"",
		"c,type=ext4,src=/dev/x,opts":   "\"opts\"",
		"c,type=ext4,src=/dev/x,opts=":  "\"opts=\"",
	} {
		if _, err := parseFilesystem(in); err == nil || !strings.Contains(err.Error(), wantErr) || !strings.Contains(err.Error(), "expected NAME,type=") {
			t.Errorf("parseFilesystem(%q): %v, want an error with %q", in, err, wantErr)
		}
	}
}
