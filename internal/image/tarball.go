package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/inflate"
	"github.com/ociboot/ociboot/internal/layer"
	"github.com/ociboot/ociboot/internal/xz"
)

// TarballOptions tune UnpackTarball. The zero value is ready to use.
type TarballOptions struct {
	// Client fetches http and https URLs; nil means fetch.New(Fetch):
	// requests that fail before the body are retried, a body that breaks
	// or stalls is resumed with a range request.
	Client *http.Client
	// Fetch makes the client when Client is nil: CA certificates trusted
	// besides the system's roots, the retry policy, the stall timeout.
	Fetch fetch.Options
	// Log receives one line when the download starts and one when the
	// tree is applied (sizes, time, throughput, sha256); nil discards them.
	Log io.Writer
	// Check, when set, is called once the file's first bytes have been
	// found to be a tar, plain or compressed, with what is known of its
	// sizes, before anything is written; an error from it stops the
	// unpack and is returned.
	Check func(TarballSize) error
	// Verify, when set, is the signature the tarball must carry: its
	// detached signature, URL.sig (a base64 signature or a bundle) or
	// else URL.sigstore.json (a bundle), as `cosign sign-blob` writes
	// them, is fetched first, and the file is checked against it as it
	// streams in, in the same pass as the pin.
	Verify *Verification
}

// UnpackTarball streams the rootfs tarball at rawURL into the existing
// directory dir, the way dracut's container-root module takes
// rd.container.rootfs=, but without a staging copy: the bytes go from
// the network (or file) through a SHA-256 hash and a decompressor
// straight into layer.Apply.
//
// rawURL is http://, https:// or file:///ABSOLUTE/PATH, optionally followed
// by #sha256=HEX (64 hex digits, either case): the SHA-256 of the file as
// served. The file is a tar, plain or compressed with gzip, xz or zstd,
// told apart by its first bytes, not by its name; anything else (an HTML
// error page, say) is refused before anything is written. After the tar's
// end the rest of the file is read, so that the hash covers all of it.
//
// The tree is written while the file arrives, so the pin can only be
// checked at the end: on a mismatch, and on any other error, dir holds a
// partly applied or unverified tree that must not be used as a root; the
// caller discards it.
//
// Entries are applied by layer.Apply, confined to dir. A plain rootfs
// tarball has no whiteouts, but layer.Apply reads any ".wh."-prefixed name
// as one: such an entry is not created, it removes its sibling. The
// entry for the top directory ("./") leaves dir's own mode and owner as
// they are.
//
// Every network wait is bounded by ctx and the client's timeouts; the
// client retries and resumes (see TarballOptions). Errors name the URL
// without its user info and query.
func UnpackTarball(ctx context.Context, rawURL string, dir string, o TarballOptions) error {
	src, err := parseTarballURL(rawURL)
	if err != nil {
		return fmt.Errorf("rootfs tarball %s: %w", redactTarballURL(rawURL), err)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if err := src.unpack(ctx, dir, o); err != nil {
		return fmt.Errorf("rootfs tarball %s: %w", src.name, err)
	}
	return nil
}

// CheckTarballURL checks the form of a rootfs tarball URL as UnpackTarball
// takes it (scheme, host or absolute path, #sha256= pin), without
// fetching anything. Errors do not repeat the URL's user info.
func CheckTarballURL(s string) error {
	_, err := parseTarballURL(s)
	return err
}

// tarballSource is a parsed tarball URL.
type tarballSource struct {
	u      *url.URL // without the fragment
	name   string   // for messages: no user info, query or fragment
	sha256 []byte   // the pinned digest; nil when not pinned
}

// parseTarballURL checks the scheme, the form of the URL and its
// #sha256= fragment.
func parseTarballURL(s string) (tarballSource, error) {
	base, frag, pinned := strings.Cut(s, "#")
	src := tarballSource{name: redactTarballURL(base)}
	if pinned {
		digits, ok := strings.CutPrefix(frag, "sha256=")
		sum, err := hex.DecodeString(digits)
		if !ok || err != nil || len(sum) != sha256.Size {
			return src, fmt.Errorf("fragment %q: want #sha256= followed by 64 hex digits", "#"+frag)
		}
		src.sha256 = sum
	}
	u, err := url.Parse(base)
	if err != nil {
		return src, fmt.Errorf("invalid URL: %w", fetch.StripURL(err))
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return src, fmt.Errorf("no host in URL: want %s://HOST/PATH", u.Scheme)
		}
	case "file":
		if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") || !path.IsAbs(u.Path) || u.RawQuery != "" {
			return src, errors.New("want file:///ABSOLUTE/PATH")
		}
	case "":
		return src, errors.New("not a URL: want http://, https:// or file:///")
	default:
		return src, fmt.Errorf("unsupported URL scheme %q: want http, https or file (ftp, tftp and nfs are not supported)", u.Scheme)
	}
	src.u = u
	return src, nil
}

// redactTarballURL returns s fit for messages: without user info (which
// may hold a password), with the query (which may hold a signature) shown
// as "?..." and without the fragment.
func redactTarballURL(s string) string {
	s, _, _ = strings.Cut(s, "#")
	u, err := url.Parse(s)
	if err != nil {
		// Unparsable: drop everything between "://" and the last "@".
		if i, j := strings.Index(s, "://"), strings.LastIndex(s, "@"); i >= 0 && j > i {
			s = s[:i+3] + s[j+1:]
		}
		if base, _, ok := strings.Cut(s, "?"); ok {
			s = base + "?..."
		}
		return s
	}
	u.User = nil
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = "...", false
	}
	return u.String()
}

// tarballStream is an opened tarball: the file as it comes in, through
// a meter that hashes it, and checks it against its signature.
type tarballStream struct {
	raw   *tarballMeter
	body  io.Closer
	size  int64                         // -1 when unknown
	tail  func(n int64) ([]byte, error) // reads the file's last n bytes
	check *tarballCheck                 // nil: no signature to check
}

// open fetches the tarball's signature, when o.Verify asks for one, then
// opens the file, or the body of a GET through o's client.
func (s tarballSource) open(ctx context.Context, o TarballOptions) (*tarballStream, error) {
	client := o.Client
	if client == nil && s.u.Scheme != "file" {
		var err error
		if client, err = fetch.New(o.Fetch); err != nil {
			return nil, err
		}
	}
	check, err := s.checker(ctx, client, o)
	if err != nil {
		return nil, err
	}
	st := &tarballStream{check: check}
	var body io.ReadCloser
	if s.u.Scheme == "file" {
		f, size, err := openTarballFile(s.u.Path)
		if err != nil {
			return nil, err
		}
		body, st.size = f, size
		st.tail = func(n int64) ([]byte, error) {
			b := make([]byte, n)
			_, err := f.ReadAt(b, size-n)
			return b, err
		}
	} else {
		if body, st.size, err = s.get(ctx, client); err != nil {
			return nil, err
		}
		st.tail = func(n int64) ([]byte, error) { return s.tail(ctx, client, st.size, n) }
	}
	st.body = body
	st.raw = &tarballMeter{ctx: ctx, r: body, h: sha256.New(), also: check.writer()}
	return st, nil
}

// verdict checks the whole file read through st against the pin and the
// signature, and says how it was checked: "sha256:HEX verified" or
// "sha256:HEX (not pinned)".
func (st *tarballStream) verdict(s tarballSource, log io.Writer) (string, error) {
	sum := st.raw.h.Sum(nil)
	if s.sha256 != nil && !bytes.Equal(sum, s.sha256) {
		return "", fmt.Errorf("sha256 mismatch: #sha256= wants %x, the %s downloaded have %x", s.sha256, formatSize(st.raw.n), sum)
	}
	if err := st.check.done(s.name, log); err != nil {
		return "", err
	}
	if s.sha256 != nil {
		return fmt.Sprintf("sha256:%x verified", sum), nil
	}
	return fmt.Sprintf("sha256:%x (not pinned)", sum), nil
}

// unpack opens the source and streams it into dir.
func (s tarballSource) unpack(ctx context.Context, dir string, o TarballOptions) error {
	start := time.Now()
	st, err := s.open(ctx, o)
	if err != nil {
		return err
	}
	defer st.body.Close()

	raw := st.raw
	rawBuf := bufio.NewReaderSize(raw, 1<<20)
	head, _ := rawBuf.Peek(maxZstdHeader)
	head = bytes.Clone(head)
	plain, kind, release, err := decompressTarball(rawBuf)
	if err != nil {
		return err
	}
	defer release()
	tarStream := &tarballMeter{ctx: ctx, r: plain}
	tarBuf := bufio.NewReaderSize(tarStream, 64<<10)
	if err := checkTarHeader(tarBuf, kind); err != nil {
		return err
	}
	if o.Check != nil {
		if err := o.Check(TarballSize{Compression: kind, File: st.size, Tar: tarSize(kind, head, st.size, st.tail)}); err != nil {
			return err
		}
	}
	fmt.Fprintf(o.Log, "rootfs tarball %s: %s %s into %s\n", s.name, formatSize(st.size), kind, dir)

	if err := layer.Apply(tarBuf, dir); err != nil {
		return fmt.Errorf("after %s of %s: %w", formatSize(raw.n), formatSize(st.size), err)
	}
	// Reading the decompressed stream to its end checks the compressor's
	// own checksums; reading the file to its end completes the hash.
	if _, err := io.Copy(io.Discard, tarBuf); err != nil {
		return fmt.Errorf("read %s stream after the tar's end: %w", kind, err)
	}
	if _, err := io.Copy(io.Discard, rawBuf); err != nil {
		return fmt.Errorf("read the file after the %s stream's end: %w", kind, err)
	}
	sum, err := st.verdict(s, o.Log)
	if err != nil {
		return fmt.Errorf("%w; the root in %s must not be used", err, dir)
	}
	tar := formatSize(tarStream.n) + " tar"
	if xr, ok := plain.(*xz.Reader); ok && xr.ParallelBlocks() > 0 {
		tar += fmt.Sprintf(", %d xz blocks decoded in parallel", xr.ParallelBlocks())
	}
	took := time.Since(start)
	fmt.Fprintf(o.Log, "rootfs tarball %s: applied %s (%s) in %.1fs, %s/s, %s\n",
		s.name, formatSize(raw.n), tar, took.Seconds(),
		formatSize(int64(float64(raw.n)/max(took.Seconds(), 1e-3))), sum)
	return nil
}

// VerifyTarball checks the rootfs tarball at rawURL as UnpackTarball
// does, its #sha256= pin and its signature (o.Verify), reading it to the
// end without unpacking it: ociboot verify URL.
func VerifyTarball(ctx context.Context, rawURL string, o TarballOptions) error {
	src, err := parseTarballURL(rawURL)
	if err != nil {
		return fmt.Errorf("rootfs tarball %s: %w", redactTarballURL(rawURL), err)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	err = func() error {
		st, err := src.open(ctx, o)
		if err != nil {
			return err
		}
		defer st.body.Close()
		if _, err := io.Copy(io.Discard, st.raw); err != nil {
			return err
		}
		sum, err := st.verdict(src, o.Log)
		if err == nil {
			fmt.Fprintf(o.Log, "rootfs tarball %s: %s, %s\n", src.name, formatSize(st.raw.n), sum)
		}
		return err
	}()
	if err != nil {
		return fmt.Errorf("rootfs tarball %s: %w", src.name, err)
	}
	return nil
}

// openTarballFile opens a local tarball and returns its size.
func openTarballFile(name string) (*os.File, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is a directory, want a tarball", name)
	}
	return f, fi.Size(), nil
}

// do sends a GET of the file through the client, with the Range header
// rng when it is not "". Its error never holds the URL (its message
// would repeat credentials).
func (s tarballSource) do(ctx context.Context, client *http.Client, rng string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.u.String(), nil)
	if err != nil {
		return nil, err
	}
	// Ask for the file as stored: a transparently decoded body would
	// neither match its pinned hash nor be what was sniffed.
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("User-Agent", "ociboot")
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fetch.StripURL(err)
	}
	return resp, nil
}

// get sends the GET request through the client and returns the body and
// its length (-1 if unknown).
func (s tarballSource) get(ctx context.Context, client *http.Client) (io.ReadCloser, int64, error) {
	resp, err := s.do(ctx, client, "")
	if err != nil {
		return nil, 0, fmt.Errorf("GET: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("GET: server answered %q, want \"200 OK\"", resp.Status)
	}
	return resp.Body, resp.ContentLength, nil
}

// maxZstdHeader is the longest zstd frame header (magic included):
// tarSize reads the content size there.
const maxZstdHeader = 18

// tail fetches the last n bytes of the file, of size bytes, with a range
// request; a server that does not answer it with exactly those bytes (no
// range support, a file changed since) is an error.
func (s tarballSource) tail(ctx context.Context, client *http.Client, size, n int64) ([]byte, error) {
	resp, err := s.do(ctx, client, fmt.Sprintf("bytes=%d-%d", size-n, size-1))
	if err != nil {
		return nil, fmt.Errorf("range request: %w", err)
	}
	defer resp.Body.Close()
	want := fmt.Sprintf("bytes %d-%d/%d", size-n, size-1, size)
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != want {
		return nil, fmt.Errorf("range request: %s, Content-Range %q", resp.Status, resp.Header.Get("Content-Range"))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, n+1))
	if err == nil && int64(len(b)) != n {
		err = fmt.Errorf("range request: %d bytes, want %d", len(b), n)
	}
	return b, err
}

// tarballMeter counts (and, with h set, hashes) what is read through it,
// and stops with ctx's cause once ctx is done.
type tarballMeter struct {
	ctx  context.Context
	r    io.Reader
	h    hash.Hash
	also io.Writer // nil: none
	n    int64
}

func (m *tarballMeter) Read(p []byte) (int, error) {
	if m.ctx.Err() != nil {
		return 0, context.Cause(m.ctx)
	}
	n, err := m.r.Read(p)
	m.n += int64(n)
	if m.h != nil {
		m.h.Write(p[:n])
	}
	if m.also != nil {
		m.also.Write(p[:n])
	}
	if err != nil && err != io.EOF && m.ctx.Err() != nil {
		err = context.Cause(m.ctx) // say why the read was cut short
	}
	return n, err
}

// xzMemory bounds the memory of the blocks of an xz tarball in flight
// (compressed and decoded): the 24 MiB blocks of xz -6 -T0 leave room
// for two, one decoded while the other is unpacked.
const xzMemory = 64 << 20

// decompressTarball tells the compression from the first bytes of raw and
// returns the decompressed stream, the compression's name ("tar" for
// none) and a function that releases the decompressor.
func decompressTarball(raw *bufio.Reader) (io.Reader, string, func(), error) {
	magic, err := raw.Peek(MagicLen)
	if err != nil && err != io.EOF {
		return nil, "", nil, fmt.Errorf("read the start of the file: %w", err)
	}
	if len(magic) == 0 {
		return nil, "", nil, errors.New("the file is empty, want a tar archive")
	}
	switch MagicCompression(magic) {
	case "gzip":
		zr, err := inflate.NewReader(raw)
		if err != nil {
			return nil, "", nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, "gzip", func() {}, nil
	case "xz":
		// Blocks of xz -T0 and pixz files are decoded in parallel, a
		// worker per CPU, with at most xzMemory of blocks in flight.
		xr, err := xz.NewParallelReader(raw, runtime.GOMAXPROCS(0), xzMemory)
		if err != nil {
			return nil, "", nil, err // it says "xz: "
		}
		return xr, "xz", func() { xr.Close() }, nil
	case "zstd":
		// A window of up to 128 MiB admits "zstd --long" and bounds the
		// memory a hostile file can claim.
		zr, err := zstd.NewReader(raw, zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			return nil, "", nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, "zstd", zr.Close, nil
	default:
		return raw, "tar", func() {}, nil
	}
}

// checkTarHeader checks that the stream starts with a tar header block
// ("ustar" magic or a valid header checksum), so that an HTML error page
// or another format is refused before anything is written.
func checkTarHeader(br *bufio.Reader, kind string) error {
	block, err := br.Peek(512)
	if err != nil && err != io.EOF {
		return fmt.Errorf("%s: %w", kind, err)
	}
	if len(block) == 512 && bytes.Equal(block, make([]byte, 512)) {
		return errors.New("the tar archive is empty (it starts with its end marker)")
	}
	if len(block) == 512 && (string(block[257:262]) == "ustar" || tarChecksumOK(block)) {
		return nil
	}
	what := "the file"
	if kind != "tar" {
		what = "the " + kind + "-decompressed data"
	}
	return fmt.Errorf("not a tar archive (want a tar, plain or compressed with gzip, xz or zstd): %s starts with %q", what, block[:min(len(block), 40)])
}

// tarChecksumOK reports whether the header block's checksum field matches
// the sum of its bytes, counted unsigned or (as old tars did) signed.
func tarChecksumOK(block []byte) bool {
	field := strings.Trim(string(block[148:156]), " \x00")
	want, err := strconv.ParseInt(field, 8, 64)
	if err != nil {
		return false
	}
	var unsigned, signed int64
	for i, c := range block {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return want == unsigned || want == signed
}
