package image_test

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/ociboot/ociboot/internal/cosigntest"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/registry"
	"github.com/ociboot/ociboot/internal/registrytest"
	"github.com/ociboot/ociboot/internal/signature"
	"github.com/ociboot/ociboot/internal/store"
)

// TestVerifySignatures signs images in the CNCF registry with the real
// cosign CLI, in both of its formats, and holds the puller's verdict on
// each to cosign verify's: signed images pass, and each way of being
// wrongly signed is refused with its reason.
func TestVerifySignatures(t *testing.T) {
	cosign := cosigntest.New(t)
	reg := registrytest.Start(t)
	dir := t.TempDir()
	release := cosign.GenerateKeyPair(t, dir, "release")
	other := cosign.GenerateKeyPair(t, dir, "other")
	push := func(tag, marker string) (string, v1.Hash) {
		img := registrytest.Image(t, v1.Config{Cmd: []string{marker}}, registrytest.Layer(t, registrytest.Entry{Name: "marker", Body: marker}))
		ref := registrytest.Push(t, reg, "lab/app:"+tag, img)
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return ref, d
	}
	byDigest := cosigntest.ByDigest
	ctx := context.Background()

	legacy, legacyD := push("legacy", "legacy")
	cosign.Sign(t, byDigest(legacy, legacyD), release, cosigntest.SigTag)
	bundled, bundledD := push("bundle", "bundle")
	cosign.Sign(t, byDigest(bundled, bundledD), release, cosigntest.Bundle)
	unsigned, _ := push("unsigned", "unsigned")
	otherKey, otherKeyD := push("other-key", "other-key")
	cosign.Sign(t, byDigest(otherKey, otherKeyD), other, cosigntest.Bundle)
	// A signature copied from another image: the legacy image's .sig
	// manifest under the copied image's .sig tag.
	copied, copiedD := push("copied", "copied")
	cosigntest.CopySignature(t, legacy, legacyD, copied, copiedD)
	// A tag moved to an unsigned manifest after it was signed.
	moved, movedD := push("moved", "moved-signed")
	cosign.Sign(t, byDigest(moved, movedD), release, cosigntest.Bundle)
	push("moved", "moved-unsigned")
	// A truncated bundle, attached as cosign attaches them.
	truncated, truncatedD := push("truncated", "truncated")
	bundle := cosigntest.FetchBundle(t, bundled, bundledD)
	cosigntest.AttachBundle(t, truncated, truncatedD, bundle[:len(bundle)/2])
	// A multi-platform index, signed as a whole.
	idx := registrytest.PlatformIndex(t, func(p v1.Platform) v1.Image {
		return registrytest.Image(t, v1.Config{Cmd: []string{p.Architecture}}, registrytest.Layer(t, registrytest.Entry{Name: "arch", Body: p.Architecture}))
	}, v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"})
	multi := registrytest.PushIndex(t, reg, "lab/multi:v1", idx)
	idxD, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	cosign.Sign(t, byDigest(multi, idxD), release, cosigntest.SigTag)

	key := parseKey(t, release.Pub)
	for _, c := range []struct {
		name, ref string
		format    cosigntest.Format
		want      string // "" for verified, else the refusal's reason
	}{
		{"cosign 2.x signature", legacy, cosigntest.SigTag, ""},
		{"cosign 3.x bundle", bundled, cosigntest.Bundle, ""},
		{"signed index", multi, cosigntest.SigTag, ""},
		{"by digest", byDigest(bundled, bundledD), cosigntest.Bundle, ""},
		{"unsigned", unsigned, cosigntest.Bundle, "no signature: neither a sha256-"},
		{"another key", otherKey, cosigntest.Bundle, "not signed by any of the keys: release.pub"},
		{"copied signature", copied, cosigntest.SigTag, "signed by release.pub (ECDSA P-256 " + key.Hint()[:12] + ") for another manifest, " + legacyD.String()},
		{"moved tag", moved, cosigntest.Bundle, "no signature"},
		{"truncated bundle", truncated, cosigntest.Bundle, "malformed bundle: unexpected end of JSON input"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log bytes.Buffer
			p, err := image.NewPuller(image.PullOptions{Log: &log, Verify: verifyWith(&image.Verification{Keys: []signature.Key{key}, Policy: "policy default: require (release.pub)"})})
			if err != nil {
				t.Fatal(err)
			}
			img, err := p.Pull(ctx, c.ref, image.Request{})
			cosignOK, cosignOut := cosign.Verify(c.ref, release.Pub, c.format)
			if (err == nil) != cosignOK {
				t.Errorf("ociboot says %v, cosign verify says %v:\n%s", err, cosignOK, cosignOut)
			}
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(log.String(), "signed by release.pub (ECDSA P-256 ") {
					t.Errorf("log: %s", log.String())
				}
				if _, err := img.ConfigFile(); err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "refused by the policy default: require (release.pub): manifest sha256:") ||
				!strings.Contains(err.Error(), c.want) || !errors.Is(err, image.ErrRefused) {
				t.Errorf("Pull: %v, want a refusal for %q", err, c.want)
			}
		})
	}

	t.Run("warn", func(t *testing.T) {
		var log bytes.Buffer
		p, err := image.NewPuller(image.PullOptions{Log: &log, Verify: verifyWith(&image.Verification{Keys: []signature.Key{key}, Warn: true, Policy: "policy scope lab: warn (release.pub)"})})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Pull(ctx, otherKey, image.Request{}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(log.String(), "WARNING: "+otherKey[:strings.LastIndexByte(otherKey, ':')]) ||
			!strings.Contains(log.String(), "is not verified (the policy scope lab: warn (release.pub)): referrer sha256:") ||
			!strings.Contains(log.String(), "not signed by any of the keys: release.pub") || !strings.Contains(log.String(), "; using it all the same") {
			t.Errorf("log: %s", log.String())
		}
	})

	// A mirror holding the image but not its signatures is passed over
	// for the registry, which has them.
	t.Run("mirror", func(t *testing.T) {
		mirror := registrytest.Start(t)
		img := remoteImage(t, byDigest(legacy, legacyD))
		registrytest.Push(t, mirror, "lab/app:legacy", img)
		var log bytes.Buffer
		p, err := image.NewPuller(image.PullOptions{Log: &log, Verify: verifyWith(&image.Verification{Keys: []signature.Key{key}, Policy: "test"}),
			Mirrors: []image.Mirror{{Registry: reg.Addr, Mirrors: []string{mirror.Addr}}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Pull(ctx, legacy, image.Request{}); err != nil {
			t.Fatal(err)
		}
		inOrderLog(t, log.String(), "from mirror "+mirror.Addr, "refused by the test: manifest "+legacyD.String()+": no signature", "trying the next source",
			"verified "+legacy+" "+legacyD.String()+": signed by release.pub")
	})

	// The store keeps the signature an image was verified with: its
	// stored copy is checked again, with the keys of the day, without the
	// registry.
	t.Run("store", func(t *testing.T) {
		st, err := store.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		pull := func(ref string, v *image.Verification, policy image.PullPolicy) (string, error) {
			var log bytes.Buffer
			o := image.PullOptions{Log: &log, Store: st}
			if v != nil {
				o.Verify = verifyWith(v)
			}
			p, err := image.NewPuller(o)
			if err != nil {
				t.Fatal(err)
			}
			img, err := p.Pull(ctx, ref, image.Request{Policy: policy})
			if err == nil {
				err = image.Unpack(ctx, img, t.TempDir(), nil)
			}
			return log.String(), err
		}
		release := &image.Verification{Keys: []signature.Key{key}, Policy: "test: require"}
		otherKey := &image.Verification{Keys: []signature.Key{parseKey(t, other.Pub)}, Policy: "test: require other"}
		warnOther := &image.Verification{Keys: otherKey.Keys, Warn: true, Policy: "test: warn other"}
		for _, ref := range []string{legacy, multi} {
			if log, err := pull(ref, release, image.PullAlways); err != nil || !strings.Contains(log, "verified "+ref) {
				t.Errorf("%s, --pull always: %v\n%s", ref, err, log)
			}
			for _, policy := range []image.PullPolicy{image.PullMissing, image.PullNever} {
				if log, err := pull(ref, release, policy); err != nil || !strings.Contains(log, "verified the stored copy of "+ref+": signed by release.pub (ECDSA P-256 ") {
					t.Errorf("%s, --pull %s: %v\n%s", ref, policy, err, log)
				}
			}
		}
		if _, err := pull(legacy, otherKey, image.PullNever); err == nil ||
			!strings.Contains(err.Error(), "--pull never, but its stored copy cannot be verified (the test: require other): its kept signature (the sha256-") ||
			!strings.Contains(err.Error(), "not signed by any of the keys: other.pub") {
			t.Errorf("--pull never, another key: %v", err)
		}
		if log, err := pull(legacy, warnOther, image.PullNever); err != nil || !strings.Contains(log, "WARNING: the stored copy of "+legacy+" is not verified (the test: warn other): its kept signature") {
			t.Errorf("--pull never, another key, warn: %v\n%s", err, log)
		}
		// Under require, a stored copy that cannot be verified sends the
		// pull to the registry, which verifies it there.
		if log, err := pull(legacy, otherKey, image.PullMissing); err == nil || !strings.Contains(log, "the stored copy of "+legacy+" cannot be verified (the test: require other)") ||
			!strings.Contains(log, "; asking the registry") || !errors.Is(err, image.ErrRefused) {
			t.Errorf("--pull missing, another key: %v\n%s", err, log)
		}
		// An image pulled unchecked has no signature kept.
		if _, err := pull(unsigned, nil, image.PullAlways); err != nil {
			t.Fatal(err)
		}
		if _, err := pull(unsigned, release, image.PullNever); err == nil || !strings.Contains(err.Error(), "no signature was kept with it (it was pulled unverified)") {
			t.Errorf("--pull never, pulled unchecked: %v", err)
		}
	})

	// The referrers API, where a registry has one: ociboot's own
	// registry serves the bundled image and its bundle, without the
	// referrers tag.
	t.Run("referrers API", func(t *testing.T) {
		lay := filepath.Join(t.TempDir(), "layout")
		l, err := layout.Write(lay, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		img := remoteImage(t, byDigest(bundled, bundledD))
		if err := l.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "bundle"})); err != nil {
			t.Fatal(err)
		}
		refs, err := remote.Referrers(mustDigest(t, byDigest(bundled, bundledD)))
		if err != nil {
			t.Fatal(err)
		}
		im, err := refs.IndexManifest()
		if err != nil || len(im.Manifests) != 1 {
			t.Fatalf("referrers: %v, %v", im, err)
		}
		if err := l.AppendImage(remoteImage(t, byDigest(bundled, im.Manifests[0].Digest))); err != nil {
			t.Fatal(err)
		}
		r := registry.New()
		if err := r.AddLayout("lab/app", "", lay); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(r)
		defer srv.Close()
		host := strings.TrimPrefix(srv.URL, "http://")
		if tags := r.Tags("lab/app"); len(tags) != 1 {
			t.Fatalf("the layout has tags %v, want only bundle (no referrers tag)", tags)
		}
		var log bytes.Buffer
		p, err := image.NewPuller(image.PullOptions{Log: &log, Verify: verifyWith(&image.Verification{Keys: []signature.Key{key}, Policy: "test"})})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Pull(ctx, host+"/lab/app:bundle", image.Request{}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(log.String(), "signed by release.pub") {
			t.Errorf("log: %s", log.String())
		}
	})
}

// verifyWith is a PullOptions.Verify that asks v of every image.
func verifyWith(v *image.Verification) func(string, string) *image.Verification {
	return func(string, string) *image.Verification { return v }
}

func parseKey(t *testing.T, file string) signature.Key {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	k, err := signature.ParseKey(filepath.Base(file), data)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustDigest(t *testing.T, ref string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func remoteImage(t *testing.T, ref string) v1.Image {
	t.Helper()
	img, err := remote.Image(mustDigest(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// inOrderLog checks that log holds wants, in that order.
func inOrderLog(t *testing.T, log string, wants ...string) {
	t.Helper()
	rest := log
	for _, w := range wants {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("the log lacks %q after what came before:\n%s", w, log)
		}
		rest = rest[i+len(w):]
	}
}
