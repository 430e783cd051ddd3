package bootcfg

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// S3 is an S3-compatible endpoint (minio=, s3=): boot2container's
// "ALIAS,URL,ACCESS_KEY,SECRET_KEY".
type S3 struct {
	Alias     string
	URL       string
	AccessKey string
	SecretKey string
}

// String writes s for messages, without its keys.
func (s S3) String() string { return s.Alias + "," + s.URL + ",***,***" }

// Bucket is where a volume is mirrored: ALIAS/BUCKET[/PREFIX].
type Bucket struct {
	Alias, Bucket, Prefix string
}

// IsZero tells whether b names no bucket.
func (b Bucket) IsZero() bool { return b.Alias == "" }

func (b Bucket) String() string {
	if b.Prefix == "" {
		return b.Alias + "/" + b.Bucket
	}
	return b.Alias + "/" + b.Bucket + "/" + b.Prefix
}

// VolumeEvent is when a volume is pulled or pushed.
type VolumeEvent string

// The volume events of boot2container; Changes is for pushes only.
const (
	PipelineStart  VolumeEvent = "pipeline_start"
	ContainerStart VolumeEvent = "container_start"
	ContainerEnd   VolumeEvent = "container_end"
	PipelineEnd    VolumeEvent = "pipeline_end"
	Changes        VolumeEvent = "changes"
)

// Volume is a named volume (volume=), with boot2container's options.
type Volume struct {
	Name string
	// PullFrom and PushTo are the buckets it is pulled from and pushed to
	// (mirror= sets both).
	PullFrom, PushTo Bucket
	// PullOn and PushOn say when, in command-line order.
	PullOn, PushOn []VolumeEvent
	// ExpireAtPipelineEnd (expiration=pipeline_end) deletes the volume
	// once the pipeline is over; otherwise it is kept (never).
	ExpireAtPipelineEnd bool
	// Overwrite, Remove, Exclude and Preserve have mc mirror's meanings:
	// replace changed objects, delete those the source lacks, leave out
	// what matches, keep modes, owners and times.
	Overwrite, Remove, Preserve bool
	Exclude                     []string
	// EncryptKey is the SSE-C key of the volume's objects (32 bytes).
	EncryptKey string
	// FscryptKey encrypts the volume's directory on the cache with
	// fscrypt; FscryptResetKey forgets what it held when the key changed.
	FscryptKey      []byte
	FscryptResetKey bool
	// Filesystem is the filesystem= mount that backs the volume ("": the
	// cache, or RAM).
	Filesystem string
}

// isVolumeName tells whether s is a volume name as podman takes them.
func isVolumeName(s string) bool {
	if s == "" || !isAlnum(rune(s[0])) {
		return false
	}
	for _, r := range s {
		if !isAlnum(r) && r != '_' && r != '.' && r != '-' {
			return false
		}
	}
	return true
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// parseS3 reads ALIAS,URL,ACCESS_KEY,SECRET_KEY.
func parseS3(s string) (S3, error) {
	const want = "expected ALIAS,URL,ACCESS_KEY,SECRET_KEY, such as gw,https://s3.lan:7070,KEY,SECRET"
	f := strings.Split(s, ",")
	if len(f) != 4 {
		return S3{}, fmt.Errorf("%d fields: %s", len(f), want)
	}
	e := S3{Alias: f[0], URL: f[1], AccessKey: f[2], SecretKey: f[3]}
	if !isName(e.Alias) {
		return S3{}, fmt.Errorf("alias %q: %s (an alias is letters, digits, '_' and '-')", e.Alias, want)
	}
	if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return S3{}, fmt.Errorf("URL %q of %s: %s (http:// or https://)", e.URL, e.Alias, want)
	}
	if e.AccessKey == "" || e.SecretKey == "" {
		return S3{}, fmt.Errorf("%s has an empty key: %s", e.Alias, want)
	}
	return e, nil
}

// maskS3 hides the keys of an s3= value.
func maskS3(v string) string {
	alias, rest, _ := strings.Cut(v, ",")
	u, _, _ := strings.Cut(rest, ",")
	return alias + "," + u + ",***,***"
}

// DefaultPushTimeout is how long a push of a volume may take, tries again
// included, unless ociboot.push_timeout= says otherwise.
const DefaultPushTimeout = 5 * time.Minute

func applyPushTimeout(p *Plan, v Param) error {
	d, err := durationValue(v, time.Second, "a duration such as 5m, 90s or 1h, or a number of seconds, at least 1s")
	p.PushTimeout = d
	return err
}

func s3Key(v Param) string {
	alias, _, _ := strings.Cut(v.Value, ",")
	return alias
}

func applyS3(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: ALIAS,URL,ACCESS_KEY,SECRET_KEY", err)
	}
	e, err := parseS3(s)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(p.S3, func(o S3) bool { return o.Alias == e.Alias }) {
		return fmt.Errorf("an endpoint called %s is already defined", e.Alias)
	}
	p.S3 = append(p.S3, e)
	return nil
}

// parseBucket reads ALIAS/BUCKET[/PREFIX].
func parseBucket(s string) (Bucket, error) {
	alias, rest, _ := strings.Cut(s, "/")
	bucket, prefix, _ := strings.Cut(rest, "/")
	if alias == "" || bucket == "" {
		return Bucket{}, fmt.Errorf("%q: expected ALIAS/BUCKET[/PREFIX]", s)
	}
	return Bucket{Alias: alias, Bucket: bucket, Prefix: strings.Trim(prefix, "/")}, nil
}

// parseEvents reads a '|'-separated list of events.
func parseEvents(s string, allowed ...VolumeEvent) ([]VolumeEvent, error) {
	var out []VolumeEvent
	for _, e := range strings.Split(s, "|") {
		ev := VolumeEvent(e)
		if !slices.Contains(allowed, ev) {
			names := make([]string, len(allowed))
			for i, a := range allowed {
				names[i] = string(a)
			}
			return nil, fmt.Errorf("event %q: expected %s, separated by '|'", e, strings.Join(names, ", "))
		}
		if !slices.Contains(out, ev) {
			out = append(out, ev)
		}
	}
	return out, nil
}

// parseVolume reads NAME[,OPTION…] with boot2container's options.
func parseVolume(s string) (Volume, error) {
	fields := strings.Split(s, ",")
	v := Volume{Name: fields[0]}
	if !isVolumeName(v.Name) {
		return Volume{}, fmt.Errorf("name %q: expected NAME[,OPTION…], a name being letters, digits, '_', '.' and '-', starting with a letter or digit", v.Name)
	}
	pulls := []VolumeEvent{PipelineStart, ContainerStart, ContainerEnd, PipelineEnd}
	for _, f := range fields[1:] {
		k, val, hasValue := strings.Cut(f, "=")
		var err error
		switch {
		case k == "mirror" || k == "pull_from" || k == "push_to":
			var b Bucket
			if b, err = parseBucket(val); err == nil {
				if k != "push_to" {
					v.PullFrom = b
				}
				if k != "pull_from" {
					v.PushTo = b
				}
			}
		case k == "pull_on":
			v.PullOn, err = parseEvents(val, pulls...)
		case k == "push_on":
			v.PushOn, err = parseEvents(val, append(pulls, Changes)...)
		case k == "expiration":
			switch val {
			case "never":
				v.ExpireAtPipelineEnd = false
			case "pipeline_end":
				v.ExpireAtPipelineEnd = true
			default:
				err = fmt.Errorf("%q: expected never or pipeline_end", val)
			}
		case (k == "overwrite" || k == "remove" || k == "preserve" || k == "fscrypt_reset_key") && !hasValue:
			switch k {
			case "overwrite":
				v.Overwrite = true
			case "remove":
				v.Remove = true
			case "preserve":
				v.Preserve = true
			default:
				v.FscryptResetKey = true
			}
		case k == "exclude" && val != "":
			v.Exclude = append(v.Exclude, val)
		case k == "encrypt_key":
			if len(val) != 32 {
				err = fmt.Errorf("a key of %d bytes: expected 32 (SSE-C)", len(val))
			}
			v.EncryptKey = val
		case k == "fscrypt_key":
			var key []byte
			key, err = base64.StdEncoding.DecodeString(val)
			if err == nil && (len(key) < 16 || len(key) > 64) {
				err = fmt.Errorf("a key of %d bytes: expected 16 to 64", len(key))
			} else if err != nil {
				err = errors.New("expected the key in base64")
			}
			v.FscryptKey = key
		case k == "filesystem" && val != "":
			v.Filesystem = val
		default:
			return Volume{}, fmt.Errorf("volume %s: option %q: expected mirror=, pull_from=, push_to=, pull_on=, push_on=, expiration=, overwrite, remove, exclude=, preserve, encrypt_key=, fscrypt_key=, fscrypt_reset_key or filesystem=", v.Name, k)
		}
		if err != nil {
			return Volume{}, fmt.Errorf("volume %s: option %s: %w", v.Name, k, err)
		}
	}
	switch {
	case len(v.PullOn) > 0 && v.PullFrom.IsZero():
		return Volume{}, fmt.Errorf("volume %s: pull_on= needs mirror= or pull_from=", v.Name)
	case len(v.PushOn) > 0 && v.PushTo.IsZero():
		return Volume{}, fmt.Errorf("volume %s: push_on= needs mirror= or push_to=", v.Name)
	case v.EncryptKey != "" && v.PullFrom.IsZero() && v.PushTo.IsZero():
		return Volume{}, fmt.Errorf("volume %s: encrypt_key= needs mirror=, pull_from= or push_to=", v.Name)
	}
	return v, nil
}

// maskVolume hides the keys of a volume= value.
func maskVolume(s string) string {
	fields := strings.Split(s, ",")
	for i, f := range fields {
		if k, _, ok := strings.Cut(f, "="); ok && (k == "encrypt_key" || k == "fscrypt_key") {
			fields[i] = k + "=***"
		}
	}
	return strings.Join(fields, ",")
}

func volumeKey(v Param) string {
	name, _, _ := strings.Cut(v.Value, ",")
	return name
}

func applyVolume(p *Plan, v Param) error {
	s, err := value(v)
	if err != nil {
		return fmt.Errorf("%w: NAME[,OPTION…]", err)
	}
	vol, err := parseVolume(s)
	if err != nil {
		return err
	}
	if _, dup := p.Volume(vol.Name); dup {
		return fmt.Errorf("a volume called %s is already defined", vol.Name)
	}
	p.Volumes = append(p.Volumes, vol)
	return nil
}

// Volume returns the volume called name.
func (p *Plan) Volume(name string) (Volume, bool) {
	for _, v := range p.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return Volume{}, false
}

// checkVolumes checks what volumes name elsewhere: their endpoints and
// filesystems, and the volumes containers mount.
func (p *Plan) checkVolumes() error {
	for _, v := range p.Volumes {
		for _, b := range []Bucket{v.PullFrom, v.PushTo} {
			if !b.IsZero() && !slices.ContainsFunc(p.S3, func(e S3) bool { return e.Alias == b.Alias }) {
				return fmt.Errorf("volume %s: no minio= (or ociboot.s3=) endpoint is called %s, as in %s", v.Name, b.Alias, b)
			}
		}
		if v.Filesystem != "" {
			if _, ok := p.Storage.Filesystem(v.Filesystem); !ok {
				return fmt.Errorf("volume %s: no filesystem= is called %s", v.Name, v.Filesystem)
			}
		}
	}
	return nil
}
