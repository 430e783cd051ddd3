package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/layer"
	"github.com/ociboot/ociboot/internal/store"
)

// DefaultMemoryBudget is the memory Unpack uses for layer data in flight
// when UnpackOptions.MemoryBudget is 0.
const DefaultMemoryBudget = 32 << 20

// The pipeline's shape: layer data moves in chunks; a quarter of the
// budget holds fetched (compressed) bytes, shared out between the layers
// in flight, the rest decompressed tar bytes; up to lookahead layers
// after the one being applied are fetched in advance, and as many as
// there are spare cores decompressed, which keeps the network and every
// core busy; reserveChunks of the tar pool are kept for the applied layer.
const (
	chunkSize       = 256 << 10
	minMemoryBudget = 4 << 20
	lookahead       = 3
	reserveChunks   = 2
)

// UnpackOptions tune UnpackWith. The zero value logs nothing and refuses
// device nodes.
type UnpackOptions struct {
	// Log receives two lines per layer: when its download starts and when
	// it is applied and verified (sizes, time, throughput). They are few
	// enough for a serial console. nil discards them.
	Log io.Writer
	// Progress, if set, is called with a layer's state whenever it
	// changes (at most every 256 KiB of data); calls are serialized but
	// come from several goroutines, and must return quickly.
	Progress func(LayerProgress)
	// AllowDevices lets layers create character and block device nodes;
	// without it such an entry fails the unpack (see layer.Options).
	AllowDevices bool
	// MemoryBudget bounds the layer data held in memory: the compressed
	// bytes fetched and the tar bytes decompressed ahead of the applier
	// (the next layers are downloaded and decompressed while one is
	// applied, until the budget is full). 0 means DefaultMemoryBudget;
	// the smallest budget used is 4 MiB.
	MemoryBudget int64
}

// LayerState is where a layer is in the pipeline.
type LayerState int

// Layer states, in the order a layer goes through them.
const (
	LayerWaiting  LayerState = iota // not started
	LayerFetching                   // downloading, not yet being applied
	LayerApplying                   // being decompressed and applied
	LayerDone                       // applied, blob verified
	LayerFailed                     // see Err
)

func (s LayerState) String() string {
	switch s {
	case LayerWaiting:
		return "waiting"
	case LayerFetching:
		return "fetching"
	case LayerApplying:
		return "applying"
	case LayerDone:
		return "done"
	default:
		return "failed"
	}
}

// LayerProgress is the state of one layer of an unpack.
type LayerProgress struct {
	Index, Count int // Index counts from 1, bottom layer first
	Digest       v1.Hash
	// Size is the compressed blob's size from the manifest (-1 unknown).
	Size int64
	// Fetched counts compressed bytes received, Decompressed those
	// decompressed (Decompressed <= Fetched). For the layer being applied,
	// what is decompressed is applied soon after; later layers are
	// decompressed ahead, within the memory budget.
	Fetched, Decompressed int64
	// Unpacked counts tar bytes applied.
	Unpacked int64
	State    LayerState
	Start    time.Time // when the download started
	Err      error     // set when State is LayerFailed
}

// Unpack applies the layers of img onto dir, bottom layer first, device
// nodes included, logging two lines per layer to log (nil: none). It is
// UnpackWith with Log and AllowDevices set.
func Unpack(ctx context.Context, img v1.Image, dir string, log io.Writer) error {
	return UnpackWith(ctx, img, dir, UnpackOptions{Log: log, AllowDevices: true})
}

// UnpackWith applies the layers of img onto the existing directory dir,
// bottom layer first, with layer.ApplyWith's semantics and confinement.
//
// Layers are streamed, never staged on disk. For each layer one goroutine
// downloads the blob (layer.Compressed) and another decompresses it
// (gzip, zstd or none, told by the first bytes), each into a bounded
// in-memory buffer; the caller's goroutine creates the files. Up to
// three layers after the one being applied are downloaded and
// decompressed ahead, within o.MemoryBudget, so the network and all
// cores stay busy; the layer being applied has a reserve of that memory
// and can always progress. Every blob is read to its end and checked
// against its digest before anything of the next layer is applied; a
// mismatch fails the unpack, naming the layer. Remote layers are checked
// by go-containerregistry as they are read, other layers (caches, files)
// are hashed here.
//
// Errors name the layer (index and digest) and, for a bad entry, the
// entry. On error dir holds a partly applied, possibly unverified tree:
// discard it. ctx bounds the downloads and stops the unpack.
func UnpackWith(ctx context.Context, img v1.Image, dir string, o UnpackOptions) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("unpack into %s: list layers: %w", dir, err)
	}
	u := &unpacker{opts: o, dir: dir, layers: make([]*layerRun, len(layers))}
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return fmt.Errorf("unpack into %s: layer %d/%d: digest: %w", dir, i+1, len(layers), err)
		}
		size, err := l.Size()
		if err != nil {
			size = -1
		}
		u.layers[i] = &layerRun{layer: l, p: LayerProgress{Index: i + 1, Count: len(layers), Digest: d, Size: size}}
	}
	return u.run(ctx)
}

// UnpackLayers unpacks each layer of img that st lacks into st, keyed by
// its diff ID, as UnpackWith streams layers, each into a directory of its
// own in overlayfs's form (see layer.Options.Overlay), its diff ID
// checked, and returns every layer's directory, bottom layer first, to be
// mounted with layer.MountOverlay. A layer st has is not fetched. A layer
// that overlayfs cannot show as the plain unpack would fails with an
// error wrapping layer.ErrNotOverlay: unpack that image with UnpackWith.
func UnpackLayers(ctx context.Context, img v1.Image, st *store.Store, o UnpackOptions) ([]string, error) {
	const where = "the image store"
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("unpack into %s: list layers: %w", where, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("unpack into %s: image config: %w", where, err)
	}
	if len(cf.RootFS.DiffIDs) != len(layers) {
		return nil, fmt.Errorf("unpack into %s: the image config lists %d diff IDs for %d layers", where, len(cf.RootFS.DiffIDs), len(layers))
	}
	dirs := make([]string, len(layers))
	u := &unpacker{opts: o, dir: where}
	defer func() {
		for _, r := range u.layers {
			if r.store != nil {
				r.store.Abort()
			}
		}
	}()
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("unpack into %s: layer %d/%d: digest: %w", where, i+1, len(layers), err)
		}
		size, err := l.Size()
		if err != nil {
			size = -1
		}
		r := &layerRun{layer: l, p: LayerProgress{Index: i + 1, Count: len(layers), Digest: d, Size: size}, diffID: cf.RootFS.DiffIDs[i], stored: &dirs[i]}
		if dir, ok := st.LayerDir(r.diffID); ok {
			dirs[i] = dir
			u.update(r, func(p *LayerProgress) { p.State = LayerDone })
			u.logf("%s: unpacked in the store\n", r.shortName())
			continue
		}
		if r.store, err = st.NewLayer(r.diffID); err != nil {
			return nil, err
		}
		u.layers = append(u.layers, r)
	}
	if err := u.run(ctx); err != nil {
		return nil, err
	}
	if p, ok := img.(pulledImage); ok {
		// The layers are in the store, unpacked if not as blobs.
		if err := p.ref.record(); err != nil {
			return nil, err
		}
	}
	return dirs, nil
}

// unpacker is one UnpackWith or UnpackLayers call.
type unpacker struct {
	opts   UnpackOptions
	dir    string
	layers []*layerRun

	fetchChunks int            // per layer, for its compressed bytes
	tarPool     *chunkPool     // shared by the layers' tar streams
	wg          sync.WaitGroup // the fetch and decompress goroutines

	mu sync.Mutex // serializes Progress and Log, guards layerRun.p
}

// layerRun is one layer of an unpack. Its fetch goroutine writes blob,
// its decompress goroutine reads blob and writes tar, the applier (the
// caller's goroutine) reads tar.
type layerRun struct {
	layer v1.Layer
	p     LayerProgress
	// urgent is set while the layer is applied: its pipes may then use
	// the pools' reserve.
	urgent     atomic.Bool
	blobPool   *chunkPool
	blob, tar  *chunkPipe
	goroutines sync.WaitGroup // its fetch and decompress goroutines
	// Set by the goroutine that writes the pipe, before closing it.
	fetchErr error
	kind     compression
	// To unpack into the image store (UnpackLayers): the layer's writer,
	// its diff ID, checked, and where to put its directory once stored.
	store  *store.LayerWriter
	diffID v1.Hash
	stored *string
}

// name says which layer, for errors.
func (r *layerRun) name() string {
	return fmt.Sprintf("layer %d/%d %s", r.p.Index, r.p.Count, r.p.Digest)
}

// shortName is the layer's name in log lines: "layer 1/3 sha256:0123456789ab".
func (r *layerRun) shortName() string {
	return fmt.Sprintf("layer %d/%d %.19s", r.p.Index, r.p.Count, r.p.Digest)
}

func (u *unpacker) run(ctx context.Context) error {
	budget := u.opts.MemoryBudget
	if budget <= 0 {
		budget = DefaultMemoryBudget
	}
	chunks := int(max(budget, minMemoryBudget) / chunkSize)
	// Each layer in flight has its own share of the fetch buffers: the
	// layer being applied cannot crowd out the downloads ahead of it.
	u.fetchChunks = max(chunks/4/(lookahead+1), 2)
	u.tarPool = newChunkPool(chunkSize, chunks-u.fetchChunks*(lookahead+1), reserveChunks)
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		u.wg.Wait()
		// Only now is no buffer in use.
		for _, r := range u.layers {
			if r.blobPool != nil {
				r.blobPool.close()
			}
		}
		u.tarPool.close()
	}()

	// Decompressing costs CPU: run as many layers' decompressors at once
	// as there are cores besides the applier's, at least one ahead.
	inflateAhead := min(max(runtime.GOMAXPROCS(0)-1, 1), lookahead)
	fetched, decompressed := 0, 0
	for i, r := range u.layers {
		for ; fetched < len(u.layers) && fetched <= i+lookahead; fetched++ {
			u.startFetch(ctx, u.layers[fetched])
		}
		for ; decompressed < len(u.layers) && decompressed <= i+inflateAhead; decompressed++ {
			next := u.layers[decompressed]
			u.goLayer(next, func() { u.decompress(next) })
		}
		r.urgent.Store(true)
		u.tarPool.notify()
		if err := u.apply(r); err != nil {
			cancel()
			u.wg.Wait()
			// A blob that failed its digest check explains any apply error.
			if ferr := r.fetchErr; ferr != nil && !errors.Is(ferr, context.Canceled) && !errors.Is(err, ferr) {
				err = fmt.Errorf("%w (applying it: %v)", ferr, err)
			}
			u.update(r, func(p *LayerProgress) { p.State, p.Err = LayerFailed, err })
			return fmt.Errorf("unpack %s into %s: %w", r.name(), u.dir, err)
		}
		r.goroutines.Wait() // they are ending: the blob and tar were read to their end
		r.blobPool.close()
		if r.store != nil {
			dir, err := r.store.Commit()
			r.store = nil
			if err != nil {
				return fmt.Errorf("unpack %s: %w", r.name(), err)
			}
			*r.stored = dir
		}
	}
	return nil
}

// startFetch makes the pipes of layer r and starts its download.
func (u *unpacker) startFetch(ctx context.Context, r *layerRun) {
	r.blobPool = newChunkPool(chunkSize, u.fetchChunks, 0)
	r.blob = newChunkPipe(ctx, r.blobPool, &r.urgent)
	r.tar = newChunkPipe(ctx, u.tarPool, &r.urgent)
	u.update(r, func(p *LayerProgress) { p.State, p.Start = LayerFetching, time.Now() })
	from := "fetching"
	if rl, ok := r.layer.(remoteLayer); ok && rl.stored() {
		from = "reading it from the image store"
	}
	u.logf("%s %s: %s\n", r.shortName(), formatSize(r.p.Size), from)
	u.goLayer(r, func() { r.fetchErr = u.fetch(r) })
}

// goLayer runs f, one of layer r's goroutines.
func (u *unpacker) goLayer(r *layerRun, f func()) {
	u.wg.Add(1)
	r.goroutines.Add(1)
	go func() {
		defer u.wg.Done()
		defer r.goroutines.Done()
		f()
	}()
}

// fetch downloads one blob into r.blob, checking its digest, and closes
// the pipe with the outcome, which it returns.
func (u *unpacker) fetch(r *layerRun) error {
	rc, err := r.layer.Compressed()
	if err != nil {
		err = fmt.Errorf("fetch: %w", err)
		r.blob.close(err)
		return err
	}
	defer rc.Close()
	src := io.Reader(rc)
	if _, verified := r.layer.(remoteLayer); !verified {
		if src, err = store.Verify(rc, r.p.Digest); err != nil {
			r.blob.close(err)
			return err
		}
	}
	var n int64
	return fill(r.blob, &fetchError{r: src}, func(m int) {
		n += int64(m)
		u.update(r, func(p *LayerProgress) { p.Fetched = n })
	})
}

// decompress turns r.blob into r.tar. It reads the blob to its end, so
// that a clean end of r.tar means the blob was verified.
func (u *unpacker) decompress(r *layerRun) {
	r.blob.onRead = func(n int) { u.update(r, func(p *LayerProgress) { p.Decompressed += int64(n) }) }
	br := bufio.NewReaderSize(r.blob, 64<<10)
	kind, err := sniffCompression(br)
	if err != nil {
		r.tar.close(err)
		return
	}
	var d decompressor
	defer d.close()
	plain, err := d.open(br, kind)
	if err != nil {
		r.tar.close(err)
		return
	}
	r.kind = kind
	if fill(r.tar, plain, nil) == nil {
		r.blob.release()
	}
}

// apply applies layer r from its tar pipe and waits until its blob is
// verified.
func (u *unpacker) apply(r *layerRun) error {
	u.update(r, func(p *LayerProgress) { p.State = LayerApplying })
	counted := &countingReader{r: r.tar}
	dir, opts, src := u.dir, layer.Options{AllowDevices: u.opts.AllowDevices}, io.Reader(counted)
	if r.store != nil {
		// A stored layer is keyed by its diff ID: check it, lest one
		// image's layer stand in for another's.
		dir, opts.Overlay = r.store.Dir(), true
		var err error
		if src, err = store.Verify(counted, r.diffID); err != nil {
			return err
		}
	}
	if err := layer.ApplyWith(src, dir, opts); err != nil {
		return err
	}
	// Read what follows the tar's end-of-archive marker: the blob is
	// checked only when all of it has been read.
	if _, err := io.Copy(io.Discard, src); err != nil {
		if errors.Is(err, store.ErrMismatch) {
			return fmt.Errorf("the uncompressed layer does not match its diff ID %s in the image config: %w", r.diffID, err)
		}
		return fmt.Errorf("read rest of blob: %w", err)
	}
	r.tar.release()
	var done LayerProgress
	u.update(r, func(p *LayerProgress) {
		p.State, p.Unpacked = LayerDone, counted.n
		done = *p
	})
	secs := time.Since(done.Start).Seconds()
	u.logf("%s done: %s %s, %s unpacked in %.2fs (%s/s)\n", r.shortName(), formatSize(done.Fetched), r.kind,
		formatSize(done.Unpacked), secs, formatSize(int64(float64(done.Fetched)/max(secs, 1e-3))))
	return nil
}

// update changes a layer's progress and reports it.
func (u *unpacker) update(r *layerRun, f func(*LayerProgress)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f(&r.p)
	if u.opts.Progress != nil {
		u.opts.Progress(r.p)
	}
}

// logf writes one log line.
func (u *unpacker) logf(format string, args ...any) {
	if u.opts.Log == nil {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.opts.Log, format, args...)
}

// fetchError names download errors as such.
type fetchError struct{ r io.Reader }

func (f *fetchError) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("fetch: %w", err)
	}
	return n, err
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// formatSize prints a byte count for people ("?" when unknown).
func formatSize(n int64) string {
	switch {
	case n < 0:
		return "?"
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
}
