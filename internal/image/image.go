// Package image pulls container images from OCI registries and unpacks
// them into a directory tree: a Puller resolves a reference, written as
// people write them, to an image for the wanted platform, from the
// registry's mirrors or the registry itself, with credentials, extra CAs,
// retries and resumable blob downloads (one HTTP stack, internal/fetch,
// for all its pulls); Unpack streams its layers bottom-up through
// layer.ApplyWith, which applies one layer tar with the OCI whiteout
// rules and never touches anything outside the target directory.
// UnpackTarball does the same for rootfs tarballs; FromDir builds a
// one-layer image from a directory, to seed a registry.
package image

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/store"
)

// PullOptions tune Pull. The zero value pulls over verified HTTPS for
// the platform ociboot runs on, anonymously, within DefaultPullTimeout.
type PullOptions struct {
	// Insecure lists registries (and mirrors), as HOST or HOST:PORT, that
	// are reached over plain HTTP, or over HTTPS without verifying their
	// certificate. Loopback addresses may always use plain HTTP.
	Insecure []string
	// Platform selects the image of a multi-platform index (a variant,
	// when set, must match) and is checked against a single image's
	// config; an empty OS means linux, an empty Architecture
	// runtime.GOARCH. ParsePlatform reads one.
	Platform v1.Platform
	// Log receives one line per pulled image, and one per mirror that
	// failed; nil discards them. Credentials never appear there.
	Log io.Writer
	// Mirrors are tried, in order, before the registry they stand for;
	// a mirror that fails in any way (down, without the image, serving
	// the wrong digest) is skipped for the next, then the registry.
	Mirrors []Mirror
	// Auth holds credentials by registry HOST[:PORT] (mirrors included),
	// as ParseRegistryAuth and ParseDockerConfig return them. Basic and
	// bearer-token (Docker Hub style) challenges are answered with them.
	Auth map[string]Credential
	// CACerts holds PEM CA certificates trusted besides the system's (or,
	// in the initramfs, the embedded) roots.
	CACerts []byte
	// ClientCerts are presented to registries that ask for one.
	ClientCerts []tls.Certificate
	// Timeout bounds the whole pull, including the layers fetched later
	// through the returned image (by Unpack); 0 means DefaultPullTimeout.
	Timeout time.Duration
	// MirrorTimeout bounds how long a mirror may take to serve the
	// manifest and config before the next source is tried; 0 means
	// DefaultMirrorTimeout.
	MirrorTimeout time.Duration
	// StallTimeout is how long a blob download may receive nothing before
	// it is resumed; 0 means fetch.DefaultStall.
	StallTimeout time.Duration
	// Retry is the retry policy of every request; the zero value is
	// fetch's default.
	Retry fetch.Retry
	// Verify, when set, says which signatures the image of repository
	// at registry (as ParseReference normalizes them) must carry; nil,
	// or a nil Verification, checks none.
	Verify func(registry, repository string) *Verification
	// Store, when set, keeps what is pulled: manifests, configs and
	// layer blobs, and what each reference stood for. A blob already
	// there is read from it (verified) instead of downloaded, and one
	// downloaded is stored on the way; Request.Policy says when the
	// registry is asked for the manifest.
	Store *store.Store
}

// Defaults of PullOptions.
const (
	DefaultPullTimeout   = 10 * time.Minute
	DefaultMirrorTimeout = 30 * time.Second
)

// Puller pulls images with one set of registry settings and one HTTP
// stack (connections kept alive, retries, resumed downloads,
// credentials), shared by every pull of a boot: the pipeline's
// containers and the switch-root image.
type Puller struct {
	o    PullOptions
	keys keychain
	tr   http.RoundTripper
}

// NewPuller returns a puller with o's settings. o.Platform and o.Log are
// the defaults of its pulls.
func NewPuller(o PullOptions) (*Puller, error) {
	keys := keychain{}
	for host, c := range o.Auth {
		keys[NormalizeRegistry(host)] = c
	}
	tr, err := newPullTransport(o, keys)
	if err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	return &Puller{o: o, keys: keys, tr: tr}, nil
}

// Pull pulls ref once with the settings of o (see Puller.Pull).
func Pull(ctx context.Context, ref string, o PullOptions) (v1.Image, error) {
	p, err := NewPuller(o)
	if err != nil {
		return nil, err
	}
	return p.Pull(ctx, ref, Request{})
}

// Request is what one pull wants besides the puller's settings.
type Request struct {
	// Platform is the platform wanted; the zero value is the puller's.
	Platform v1.Platform
	// Policy says when the registry is asked; "" is PullAlways.
	Policy PullPolicy
	// Log gets a line per image and per mirror that failed; nil is the
	// puller's.
	Log io.Writer
	// Registry changes the puller's settings for this pull only.
	Registry RegistryOverrides
}

// RegistryOverrides are one pull's own registry settings, podman run's
// --tls-verify, --creds, --authfile and --cert-dir.
type RegistryOverrides struct {
	// TLSVerify, when set, says whether the image's registry is reached
	// with checked TLS only (true, even if it is insecure) or may be
	// reached over plain HTTP or unchecked TLS (false).
	TLSVerify *bool
	// Auth, when set, replaces the puller's credentials (an auth file);
	// Creds, when set, are the image's registry's.
	Auth  map[string]Credential
	Creds *Credential
	// CACerts (PEM) are trusted besides the puller's; ClientCerts are
	// presented to registries that ask.
	CACerts     []byte
	ClientCerts []tls.Certificate
}

// empty tells whether r changes nothing.
func (r RegistryOverrides) empty() bool {
	return r.TLSVerify == nil && r.Auth == nil && r.Creds == nil && len(r.CACerts) == 0 && len(r.ClientCerts) == 0
}

// with returns a puller of p's settings changed by rq for pulls from
// registry (normalized); it shares p's store.
func (p *Puller) with(rq RegistryOverrides, registry string) (*Puller, error) {
	o := p.o
	if rq.TLSVerify != nil {
		o.Insecure = slices.DeleteFunc(slices.Clone(o.Insecure), func(h string) bool { return NormalizeRegistry(h) == registry })
		if !*rq.TLSVerify {
			o.Insecure = append(o.Insecure, registry)
		}
	}
	if rq.Auth != nil {
		o.Auth = rq.Auth
	}
	if rq.Creds != nil {
		o.Auth = maps.Clone(o.Auth)
		if o.Auth == nil {
			o.Auth = map[string]Credential{}
		}
		for host := range o.Auth {
			if NormalizeRegistry(host) == registry {
				delete(o.Auth, host)
			}
		}
		o.Auth[registry] = *rq.Creds
	}
	o.CACerts = append(slices.Clip(o.CACerts), rq.CACerts...)
	o.ClientCerts = append(slices.Clip(o.ClientCerts), rq.ClientCerts...)
	return NewPuller(o)
}

// Pull resolves ref (see ParseReference) to the image for rq.Platform,
// trying the mirrors of its registry first, and returns it; an image
// whose config names another platform is an error. A reference with a
// digest is pulled by digest, which go-containerregistry verifies. Only
// the manifest and config are fetched here; layers are fetched by
// Unpack, under ctx bounded by the pull timeout, so ctx must stay live
// until Unpack is done. Transient failures are retried and interrupted
// blob downloads resumed (see newPullTransport).
//
// With a store, rq.Policy says whether the registry is asked (see
// PullPolicy); what a reference stood for is recorded in the store, and
// when the registry is out of reach (down, unreachable, failing with
// 5xx) a stored copy is returned, with a warning in the log naming the
// image and its age.
func (p *Puller) Pull(ctx context.Context, ref string, rq Request) (img v1.Image, err error) {
	o := p.o
	if rq.Platform.Architecture != "" || rq.Platform.OS != "" {
		o.Platform = rq.Platform
	}
	if rq.Log != nil {
		o.Log = rq.Log
	}
	policy, err := ParsePullPolicy(string(rq.Policy))
	if err != nil {
		return nil, fmt.Errorf("pull %s: --pull %w", ref, err)
	}
	r, err := ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	if !rq.Registry.empty() {
		own, err := p.with(rq.Registry, NormalizeRegistry(r.Registry))
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", r, err)
		}
		rq.Registry = RegistryOverrides{}
		return own.Pull(ctx, ref, rq)
	}
	platform := o.platform()
	cached, err := o.stored(r, platform, policy)
	if v := o.verification(r); v != nil && cached != nil {
		// The stored copy is checked with the signature kept with it,
		// under today's keys.
		var note string
		k, verr := o.verifyStored(r, platform, v)
		switch {
		case verr == nil:
			note = fmt.Sprintf("verified the stored copy of %s: signed by %s\n", r, k)
		case v.Warn:
			note = fmt.Sprintf("WARNING: the stored copy of %s is not verified (the %s): %v; using it all the same\n", r, v.Policy, verr)
		case policy == PullNever:
			return nil, fmt.Errorf("pull %s: --pull never, but its stored copy cannot be verified (the %s): %v", r, v.Policy, verr)
		default:
			if o.Log != nil {
				fmt.Fprintf(o.Log, "the stored copy of %s cannot be verified (the %s): %v; asking the registry\n", r, v.Policy, verr)
			}
			cached = nil
		}
		if note != "" && o.Log != nil {
			defer func() {
				if err == nil && img == cached {
					fmt.Fprint(o.Log, note)
				}
			}()
		}
	}
	// What a digest stands for never changes: its stored copy needs no
	// registry, whatever the policy.
	if err != nil || (cached != nil && (policy != PullAlways || r.Digest != "")) {
		if cached != nil {
			o.used(r, platform)
		}
		return cached, err
	}
	timeout := cmp.Or(o.Timeout, DefaultPullTimeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout,
		fmt.Errorf("pulling %s took longer than %s (ociboot.pull_timeout): %w", r, timeout, context.DeadlineExceeded))
	// On success ctx must outlive Pull: the image's layers are fetched
	// under it. It ends at the deadline, or with the caller's context.
	defer func() {
		if err != nil {
			cancel()
		}
	}()
	var failures []error
	eps := endpoints(r, o.Mirrors)
	for i, ep := range eps {
		img, kept, err := o.pullFrom(ctx, r, ep, p.tr, p.keys)
		if err == nil {
			if ep.mirror {
				img = o.withBlobFallback(ctx, img, r, ep, eps[i+1:], p.tr, p.keys)
			}
			pending, err := o.pendingRef(r, platform, img, kept)
			if err == nil {
				err = pending.record()
			}
			if err != nil {
				return nil, fmt.Errorf("pull %s: %w", r, err)
			}
			return pulledImage{img, o.Store, pending}, nil
		}
		if ctx.Err() != nil {
			if cause := context.Cause(ctx); !errors.Is(err, cause) {
				err = fmt.Errorf("%v: %w", cause, err)
			}
			return nil, err
		}
		failures = append(failures, err)
		if ep.mirror && o.Log != nil {
			fmt.Fprintf(o.Log, "%v; trying the next source\n", err)
		}
	}
	last := failures[len(failures)-1] // the registry's own
	if cached != nil && outOfReach(last) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, "WARNING: %v\nWARNING: the registry is out of reach: using the stored copy of %s\n", last, o.describe(r, platform))
		}
		o.used(r, platform)
		return cached, nil
	}
	if len(failures) > 1 {
		last = fmt.Errorf("pull %s: every source failed: %w", r, errors.Join(failures...))
	}
	if o.Store != nil && outOfReach(last) {
		// Say why no stored copy stood in.
		if _, err := o.Store.Ref(refName(r, platform)); err != nil {
			return nil, fmt.Errorf("%w; and the image store has no copy of it", last)
		} else if _, err := o.stored(r, platform, PullNever); err != nil {
			return nil, fmt.Errorf("%w; and its stored copy cannot be used: %v", last, errors.Unwrap(err))
		}
	}
	return nil, last
}

// platform is the platform o pulls, its blanks filled with the running
// one's.
func (o PullOptions) platform() v1.Platform {
	platform, running := o.Platform, RunningPlatform()
	platform.OS = cmp.Or(platform.OS, running.OS)
	platform.Architecture = cmp.Or(platform.Architecture, running.Architecture)
	return platform
}

// stored returns the stored copy of r for platform, which policy may use
// instead of pulling (nil: none, or no store); with PullNever, an image
// not in the store is an error naming it.
func (o PullOptions) stored(r Reference, platform v1.Platform, policy PullPolicy) (v1.Image, error) {
	if o.Store == nil {
		if policy == PullNever {
			return nil, fmt.Errorf("pull %s (%s): --pull never, but there is no image store to take it from (no cache device: see ociboot.cache_device)", r, platform.String())
		}
		return nil, nil
	}
	rec, err := o.Store.Ref(refName(r, platform))
	if err != nil {
		if policy == PullNever {
			return nil, fmt.Errorf("pull %s (%s): --pull never, and it is not in the image store", r, platform.String())
		}
		return nil, nil
	}
	si, err := storedCopy(o.Store, r.String(), rec.Digest)
	if err != nil {
		if policy == PullNever {
			return nil, fmt.Errorf("pull %s (%s): --pull never: %w", r, platform.String(), err)
		}
		if policy == PullMissing && o.Log != nil {
			fmt.Fprintf(o.Log, "the stored copy of %s cannot be used: %v; pulling it\n", r, err)
		}
		return nil, nil
	}
	img, err := si.image()
	if err != nil {
		return nil, err
	}
	if policy != PullAlways && o.Log != nil {
		fmt.Fprintf(o.Log, "using the stored copy of %s (--pull %s)\n", o.describe(r, platform), policy)
	}
	return pulledImage{img, o.Store, nil}, nil
}

// pendingRef is the ref to record in the store for r on platform, now
// that img was pulled, once the store holds all of img (nil without a
// store), with the signature it was verified with (kept, nil for none).
func (o PullOptions) pendingRef(r Reference, platform v1.Platform, img v1.Image, kept *keptSignature) (*pendingRef, error) {
	if o.Store == nil {
		return nil, nil
	}
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("manifest digest: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	si, err := newStoredImage(o.Store, r.String(), raw, nil)
	if err != nil {
		return nil, err
	}
	ref := store.Ref{Name: refName(r, platform), Digest: d, Pulled: o.now()}
	if kept != nil {
		if ref.Signature, err = kept.keep(o.Store); err != nil {
			return nil, err
		}
	}
	return &pendingRef{img: si, ref: ref}, nil
}

// used notes in the store that its copy of r for platform is used now,
// for eviction; it is best effort: an image that cannot be marked is
// still booted.
func (o PullOptions) used(r Reference, platform v1.Platform) {
	if err := o.Store.UseRef(refName(r, platform), o.now()); err != nil && o.Log != nil {
		fmt.Fprintf(o.Log, "WARNING: %v\n", err)
	}
}

// describe names the stored copy of r for platform, with its digest and
// age, for the log.
func (o PullOptions) describe(r Reference, platform v1.Platform) string {
	rec, err := o.Store.Ref(refName(r, platform))
	if err != nil {
		return r.String()
	}
	return fmt.Sprintf("%s (%s, %s), pulled %s ago", r, platform.String(), rec.Digest, age(o.now(), rec.Pulled))
}

// now is the time by o's clock.
func (o PullOptions) now() time.Time {
	if o.Retry.Clock != nil {
		return o.Retry.Clock.Now()
	}
	return time.Now()
}

// pullFrom resolves r at one endpoint; a mirror gets o.MirrorTimeout to
// serve the manifest and config.
func (o PullOptions) pullFrom(ctx context.Context, r Reference, ep endpoint, tr http.RoundTripper, keys keychain) (img v1.Image, kept *keptSignature, err error) {
	platform := o.platform()
	where := "registry " + ep.host
	if ep.mirror {
		where = "mirror " + ep.String()
	}
	defer func() {
		if err != nil {
			img, kept, err = nil, nil, fmt.Errorf("pull %s (%s) from %s: %w", r, platform.String(), where, err)
		}
	}()
	nref, err := r.nameAtPath(ep.host, ep.repository, o.insecure(ep.host))
	if err != nil {
		return nil, nil, err
	}
	if ep.mirror {
		// A mirror gets little time and few retries to serve the
		// manifest and config; once it has, its layers get the full
		// treatment.
		parent, d := ctx, cmp.Or(o.MirrorTimeout, DefaultMirrorTimeout)
		mctx, mcancel := context.WithCancelCause(parent)
		mctx, probe := withProbe(mctx)
		slow := fmt.Errorf("no manifest and config within %s", d)
		timer := time.AfterFunc(d, func() { mcancel(slow) })
		defer func() {
			probe.on.Store(false)
			if !timer.Stop() && parent.Err() == nil {
				if err == nil {
					err = slow
				} else {
					err = fmt.Errorf("%w (%v)", slow, err)
				}
			}
			if err != nil {
				mcancel(nil)
			}
		}()
		ctx = mctx
	}
	if v := o.verification(r); v != nil {
		if nref, kept, err = o.verifyAt(r, nref, v, remoteOptions(ctx, tr, keys)); err != nil {
			return nil, nil, err
		}
	}
	img, cf, err := resolve(ctx, nref, platform, tr, keys, o.Store)
	if err != nil {
		return nil, nil, err
	}
	if (cf.OS != "" && cf.OS != platform.OS) || (cf.Architecture != "" && cf.Architecture != platform.Architecture) ||
		(cf.Variant != "" && platform.Variant != "" && cf.Variant != platform.Variant) {
		got := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
		return nil, nil, fmt.Errorf("image is for %s, want %s", got.String(), platform.String())
	}
	if o.Log != nil {
		d, err := img.Digest()
		if err != nil {
			return nil, nil, fmt.Errorf("manifest digest: %w", err)
		}
		from := ""
		if ep.mirror {
			from = " from " + where
		}
		fmt.Fprintf(o.Log, "pulled %s %s (%s)%s\n", r, d, platform.String(), from)
	}
	return img, kept, nil
}

// insecure tells whether host (normalized) is one of o.Insecure.
func (o PullOptions) insecure(host string) bool {
	for _, h := range o.Insecure {
		if NormalizeRegistry(h) == host {
			return true
		}
	}
	return false
}

// withBlobFallback makes img, resolved at mirror ep, fetch any layer the
// mirror cannot serve from the sources after it (later mirrors, then the
// registry), by digest.
func (o PullOptions) withBlobFallback(ctx context.Context, img v1.Image, r Reference, ep endpoint, next []endpoint, tr http.RoundTripper, keys keychain) v1.Image {
	m := &mirrorImage{Image: img, ctx: ctx, mirror: "mirror " + ep.String(), log: o.Log}
	for _, n := range next {
		where := "registry " + n.host
		if n.mirror {
			where = "mirror " + n.String()
		}
		m.next = append(m.next, blobSource{where: where, open: func(d v1.Hash) (io.ReadCloser, error) {
			nref, err := r.nameAtPath(n.host, n.repository, o.insecure(n.host))
			if err != nil {
				return nil, err
			}
			l, err := remote.Layer(nref.Context().Digest(d.String()), remoteOptions(ctx, tr, keys)...)
			if err != nil {
				return nil, err
			}
			return l.Compressed()
		}})
	}
	return m
}

// remoteOptions are go-containerregistry's options for every request.
func remoteOptions(ctx context.Context, tr http.RoundTripper, keys keychain) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(tr),
		remote.WithAuthFromKeychain(keys),
		// newPullTransport retries, with a deadline-aware backoff.
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
		remote.WithUserAgent("ociboot"),
	}
}

// resolve fetches the manifest (choosing from an index by platform) and
// the config of nref; with a store, the manifest is kept there and the
// config read from it when there.
func resolve(ctx context.Context, nref name.Reference, platform v1.Platform, tr http.RoundTripper, keys keychain, st *store.Store) (v1.Image, *v1.ConfigFile, error) {
	img, err := remote.Image(nref, append(remoteOptions(ctx, tr, keys), remote.WithPlatform(platform))...)
	if err != nil {
		return nil, nil, err
	}
	if st != nil {
		si, err := storeImage(st, nref.String(), img)
		if err != nil {
			return nil, nil, err
		}
		if img, err = si.image(); err != nil {
			return nil, nil, err
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		m, merr := img.Manifest()
		if merr != nil {
			return nil, nil, fmt.Errorf("image config: %w", err)
		}
		return nil, nil, fmt.Errorf("image config %s: %w", m.Config.Digest, err)
	}
	return img, cf, nil
}

// pulledImage is an image the Puller resolved: its layers are
// remoteLayers.
type pulledImage struct {
	v1.Image
	store *store.Store // nil: none
	// ref is recorded once the store holds the whole image (nil: no
	// store, or a stored copy).
	ref *pendingRef
}

func (p pulledImage) Layers() ([]v1.Layer, error) {
	layers, err := p.Image.Layers()
	for i, l := range layers {
		layers[i] = remoteLayer{l, p.store, p.ref}
	}
	return layers, err
}

// remoteLayer is a layer of an image the Puller resolved, from a
// registry or mirror through go-containerregistry's remote package, whose
// Compressed stream checks the blob's size and digest itself (the read
// that reaches the end fails on a mismatch), or from the store, verified
// before it is served: Unpack does not hash it again. Any other layer is
// hashed by Unpack.
type remoteLayer struct {
	v1.Layer
	store *store.Store // nil: none
	ref   *pendingRef  // recorded once the last layer is stored
}

// stored tells whether the layer's blob is in the store.
func (l remoteLayer) stored() bool {
	if l.store == nil {
		return false
	}
	d, err := l.Digest()
	return err == nil && l.store.Has(d)
}

// Compressed serves the blob from the store when it is there and whole;
// otherwise it downloads it, storing it on the way.
func (l remoteLayer) Compressed() (io.ReadCloser, error) {
	if l.store == nil {
		return l.Layer.Compressed()
	}
	d, err := l.Digest()
	if err != nil {
		return nil, err
	}
	if l.store.Has(d) {
		rc, _, err := l.store.OpenVerified(d)
		if err == nil {
			return rc, nil
		}
		// A damaged blob was deleted: fetch it again.
	}
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	size, err := l.Size()
	if err != nil {
		size = -1
	}
	w, err := l.store.Writer(d, size)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return &storingReader{rc: rc, w: w, ref: l.ref}, nil
}

// storingReader copies a download into the store as it is read; the blob
// is committed when the download ends whole (go-containerregistry has
// then checked it), and discarded otherwise.
type storingReader struct {
	rc   io.ReadCloser
	w    *store.Writer
	ref  *pendingRef
	err  error // from storing; the download goes on
	done bool
}

func (s *storingReader) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	if n > 0 && s.err == nil {
		_, s.err = s.w.Write(p[:n])
	}
	switch {
	case err == io.EOF && !s.done:
		s.done = true
		if s.err != nil {
			s.w.Abort()
		} else if s.err = s.w.Commit(); s.err == nil {
			// A ref that cannot be written is written by the next
			// pull; the image is whole in the store meanwhile.
			_ = s.ref.record()
		}
	case err != nil && !s.done:
		s.done = true
		s.w.Abort()
	}
	return n, err
}

func (s *storingReader) Close() error {
	if !s.done {
		s.done = true
		s.w.Abort()
	}
	return s.rc.Close()
}

// Forget drops what ref, for platform (the zero value: the puller's), was
// recorded as in the store, and the blobs and layers no other image
// needs: podman's --rmi. Without a store there is nothing to forget.
func (p *Puller) Forget(ref string, platform v1.Platform) error {
	if p.o.Store == nil {
		return nil
	}
	r, err := ParseReference(ref)
	if err != nil {
		return err
	}
	o := p.o
	if platform.Architecture != "" || platform.OS != "" {
		o.Platform = platform
	}
	if err := p.o.Store.Forget(refName(r, o.platform())); err != nil {
		return fmt.Errorf("forgetting %s: %w", r, err)
	}
	return nil
}
