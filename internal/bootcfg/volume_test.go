package bootcfg

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestVolumeParameters(t *testing.T) {
	key := "c2VjcmV0LWtleS1vZi0zMi1ieXRlcy1leGFjdGx5ISE=" // 32 bytes
	p, err := Parse(`b2c.minio="gw,http://10.0.2.2:7070,AK,SK" `+
		`b2c.volume="job,mirror=gw/job-bucket,pull_on=pipeline_start,push_on=changes|pipeline_end,overwrite,preserve,remove,expiration=pipeline_end" `+
		`ociboot.volume="logs,push_to=gw/logs/run-1/,push_on=container_end,exclude=*.tmp,exclude=cache/*,encrypt_key=0123456789abcdef0123456789abcdef" `+
		`ociboot.volume=scratch,fscrypt_key=`+key+`,fscrypt_reset_key,filesystem=disk b2c.filesystem=disk,type=ext4,src=/dev/vdb`, Baked{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Volume{
		{Name: "job", PullFrom: Bucket{"gw", "job-bucket", ""}, PushTo: Bucket{"gw", "job-bucket", ""},
			PullOn: []VolumeEvent{PipelineStart}, PushOn: []VolumeEvent{Changes, PipelineEnd},
			ExpireAtPipelineEnd: true, Overwrite: true, Remove: true, Preserve: true},
		{Name: "logs", PushTo: Bucket{"gw", "logs", "run-1"}, PushOn: []VolumeEvent{ContainerEnd},
			Exclude: []string{"*.tmp", "cache/*"}, EncryptKey: "0123456789abcdef0123456789abcdef"},
		{Name: "scratch", FscryptKey: []byte("secret-key-of-32-bytes-exactly!!"), FscryptResetKey: true, Filesystem: "disk"},
	}
	if !reflect.DeepEqual(p.Volumes, want) {
		t.Errorf("Volumes =\n%+v\nwant\n%+v", p.Volumes, want)
	}
	if len(p.S3) != 1 || p.S3[0] != (S3{"gw", "http://10.0.2.2:7070", "AK", "SK"}) {
		t.Errorf("S3 = %+v", p.S3)
	}
	if p.PushTimeout != DefaultPushTimeout {
		t.Errorf("PushTimeout = %v, want the default, %v", p.PushTimeout, DefaultPushTimeout)
	}
	if p, err := Parse("ociboot.push_timeout=90", Baked{}); err != nil || p.PushTimeout != 90*time.Second {
		t.Errorf("ociboot.push_timeout=90: %v, %v; want 1m30s", p.PushTimeout, err)
	}

	for _, tc := range []struct{ cmdline, want string }{
		{"b2c.volume=-job", `name "-job"`},
		{"b2c.volume=job,mirror=gw", `mirror: "gw": expected ALIAS/BUCKET`},
		{"b2c.volume=job,mirror=gw/b", `volume job: no minio= (or ociboot.s3=) endpoint is called gw`},
		{"b2c.volume=job,pull_on=pipeline_start", `pull_on= needs mirror= or pull_from=`},
		{`b2c.minio=gw,http://h,a,b b2c.volume=job,push_to=gw/b,push_on=sometimes`, `event "sometimes": expected pipeline_start`},
		{`b2c.minio=gw,http://h,a,b b2c.volume=job,pull_from=gw/b,pull_on=changes`, `event "changes"`},
		{"b2c.volume=job,expiration=soon", `expected never or pipeline_end`},
		{"b2c.volume=job,overwrite=yes", `option "overwrite": expected mirror=`},
		{"b2c.volume=job,encrypt_key=short", `a key of 5 bytes: expected 32`},
		{"b2c.volume=job,encrypt_key=0123456789abcdef0123456789abcdef", `volume job: encrypt_key= needs mirror=, pull_from= or push_to=`},
		{"b2c.volume=job,fscrypt_key=!!!", `expected the key in base64`},
		{"b2c.volume=job,fscrypt_key=AAAA", `a key of 3 bytes: expected 16 to 64`},
		{"b2c.volume=job,filesystem=nfs", `volume job: no filesystem= is called nfs`},
		{"b2c.volume=job b2c.volume=job", `a volume called job is already defined`},
		{"b2c.minio=gw,ftp://h,a,b", `URL "ftp://h"`},
		{"b2c.minio=gw,http://h,a", `3 fields`},
		{"b2c.minio=gw,http://h,,b", `gw has an empty key`},
		{"ociboot.push_timeout=0", `ociboot.push_timeout="0": got "0", expected a duration such as 5m`},
		{"ociboot.push_timeout=later", `got "later"`},
	} {
		_, err := Parse(tc.cmdline, Baked{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v, want an error with %q", tc.cmdline, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "SK") || strings.Contains(err.Error(), ",b b2c")) {
			t.Errorf("Parse(%q): the error shows a key: %v", tc.cmdline, err)
		}
	}
}

func TestMaskVolumeSecrets(t *testing.T) {
	in := `b2c.minio="gw,http://10.0.2.2:7070,ACCESS-1,SECRET-1" b2c.volume="job,mirror=gw/b,encrypt_key=0123456789abcdef0123456789abcdef,fscrypt_key=QUJD" b2c.volume=plain`
	got := MaskSecrets(in)
	for _, secret := range []string{"ACCESS-1", "SECRET-1", "0123456789abcdef", "QUJD"} {
		if strings.Contains(got, secret) {
			t.Errorf("MaskSecrets left %q in %s", secret, got)
		}
	}
	if want := `b2c.minio="gw,http://10.0.2.2:7070,***,***" b2c.volume="job,mirror=gw/b,encrypt_key=***,fscrypt_key=***" b2c.volume="plain"`; got != want {
		t.Errorf("MaskSecrets = %s\nwant %s", got, want)
	}
}

func FuzzParseVolume(f *testing.F) {
	f.Add("job,mirror=gw/b/p,pull_on=pipeline_start|container_start,push_on=changes,expiration=pipeline_end,overwrite,remove,preserve,exclude=*.o")
	f.Add("v,fscrypt_key=QUJDREVGR0hJSktMTU5PUA==,fscrypt_reset_key,filesystem=x,encrypt_key=0123456789abcdef0123456789abcdef")
	f.Add("a,,=,mirror=/,push_to=a//")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseVolume(s)
		if err != nil {
			return
		}
		if !isVolumeName(v.Name) || (len(v.PushOn) > 0 && v.PushTo.IsZero()) || (len(v.PullOn) > 0 && v.PullFrom.IsZero()) {
			t.Fatalf("parseVolume(%q) = %+v: accepted what it must refuse", s, v)
		}
		if v.EncryptKey != "" && len(v.EncryptKey) != 32 {
			t.Fatalf("parseVolume(%q): a %d-byte SSE-C key", s, len(v.EncryptKey))
		}
	})
}
