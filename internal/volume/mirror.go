package volume

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/encrypt"
	"github.com/ociboot/ociboot/internal/bootcfg"
	"github.com/ociboot/ociboot/internal/fetch"
	"golang.org/x/sys/unix"
)

// The user metadata ociboot keeps on the objects it pushes: the content's
// SHA-256 (ETags are not content hashes for multipart uploads), and with
// preserve, the file's mode, owner and modification time.
const (
	metaSHA256 = "Ociboot-Sha256"
	metaMode   = "Ociboot-Mode"
	metaUID    = "Ociboot-Uid"
	metaGID    = "Ociboot-Gid"
	metaMtime  = "Ociboot-Mtime"
)

// SyncOptions are mc mirror's options.
type SyncOptions struct {
	// Overwrite replaces what differs at the destination; without it,
	// such entries are left alone.
	Overwrite bool
	// Remove deletes what the destination has and the source has not.
	Remove bool
	// Preserve keeps modes, owners and modification times (through the
	// objects' metadata).
	Preserve bool
	// Exclude are patterns (path.Match, on the path and on the base
	// name) of what is left out.
	Exclude []string

	// State, when set, is the file that keeps what the syncs of this
	// directory with this bucket prefix saw (see syncState).
	State string `json:"-"`

	// skip, when set, leaves out more paths, on both sides: the files
	// being written, for a push on changes.
	skip func(rel string) bool
}

// Transfers is how many files a sync compares and copies at once: a
// transport should keep as many idle connections per host.
const Transfers = 16

// Report counts what a sync did.
type Report struct {
	Copied, Same, LeftAlone, Removed int
	Bytes                            int64
}

// tally is a Report that workers add to.
type tally struct {
	mu sync.Mutex
	r  Report
}

func (t *tally) add(f func(r *Report)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(&t.r)
}

// Mirror copies between a directory and a bucket prefix.
type Mirror struct {
	client *minio.Client
	bucket string
	prefix string // "" or ending in "/"
	// ID names the endpoint URL, bucket and prefix, for the file of a
	// directory's sync state with them.
	ID string
	// Retry is the policy an upload is tried again by when it fails as
	// a request worth another try does (the zero value: fetch's default
	// policy, on the wall clock): the transport retries the requests it
	// can send again (the boot's does), but not uploads, whose bodies it
	// cannot rewind.
	Retry fetch.Retry
	sse   encrypt.ServerSide // SSE-C, or nil
	tls   bool               // the endpoint is https://
}

// again runs f, again while it fails with an error worth another try,
// as m.Retry says.
func (m *Mirror) again(ctx context.Context, f func() error) error {
	b := m.Retry.Start(ctx)
	for {
		err := f()
		if err == nil {
			return nil
		}
		var after time.Duration
		var retry bool
		if resp := (minio.ErrorResponse{}); errors.As(err, &resp) {
			after, retry = m.Retry.Retryable(&http.Response{StatusCode: resp.StatusCode}, nil)
		} else {
			after, retry = m.Retry.Retryable(nil, err)
		}
		if !retry || !b.Again(after) || b.Wait() != nil {
			return err
		}
	}
}

// Encrypt makes the mirror's objects encrypted by the server with key
// (SSE-C: the key goes with every request for an object's content, and
// the server keeps only its MD5), which needs an https:// endpoint.
func (m *Mirror) Encrypt(key []byte) error {
	if !m.tls {
		return errors.New("encrypt_key= needs an https:// endpoint: the key would cross the network in clear")
	}
	sse, err := encrypt.NewSSEC(key)
	if err != nil {
		return fmt.Errorf("encrypt_key=: %w", err)
	}
	m.sse = sse
	return nil
}

// NewMirror connects to endpoint e for the bucket and prefix of b, its
// requests made through tr (nil: http.DefaultTransport).
func NewMirror(e bootcfg.S3, b bootcfg.Bucket, tr http.RoundTripper) (*Mirror, error) {
	u, err := url.Parse(e.URL)
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %s: %w", e.Alias, err)
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:     credentials.NewStaticV4(e.AccessKey, e.SecretKey, ""),
		Secure:    u.Scheme == "https",
		Transport: tr,
		// The transport retries (the boot's has ociboot's one policy);
		// minio-go's own retries would multiply its tries.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %s: %w", e.Alias, err)
	}
	prefix := b.Prefix
	if prefix != "" {
		prefix += "/"
	}
	id := sha256.Sum256([]byte(e.URL + "\x00" + b.Bucket + "\x00" + prefix))
	return &Mirror{client: c, bucket: b.Bucket, prefix: prefix, ID: hex.EncodeToString(id[:8]), tls: u.Scheme == "https"}, nil
}

// excluded tells whether rel is left out by o.
func (o SyncOptions) excluded(rel string) bool {
	if o.skip != nil && o.skip(rel) {
		return true
	}
	for _, p := range o.Exclude {
		if ok, _ := path.Match(p, rel); ok {
			return true
		}
		if ok, _ := path.Match(p, path.Base(rel)); ok {
			return true
		}
	}
	return false
}

// localFile is a regular file of the directory.
type localFile struct {
	path string
	st   unix.Stat_t
}

// walk lists the regular files under dir, by slash-separated path.
func walk(dir string, o SyncOptions) (map[string]localFile, error) {
	files := map[string]localFile{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if o.excluded(rel) {
			return nil
		}
		f := localFile{path: p}
		if err := unix.Stat(p, &f.st); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone since it was listed
			}
			return err
		}
		files[rel] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	return files, nil
}

// objects lists the bucket prefix's objects, by path under the prefix.
func (m *Mirror) objects(ctx context.Context, o SyncOptions) (map[string]minio.ObjectInfo, error) {
	ctx, cancel := context.WithCancel(ctx) // ends the lister on an error
	defer cancel()
	out := map[string]minio.ObjectInfo{}
	for obj := range m.client.ListObjects(ctx, m.bucket, minio.ListObjectsOptions{Prefix: m.prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("listing %s/%s: %w", m.bucket, m.prefix, obj.Err)
		}
		rel := strings.TrimPrefix(obj.Key, m.prefix)
		if rel == "" || strings.HasSuffix(rel, "/") || o.excluded(rel) {
			continue
		}
		out[rel] = obj
	}
	return out, nil
}

// hashFile returns the SHA-256 and MD5 of a file, hex.
func hashFile(p string) (sha, md string, err error) {
	f, err := os.Open(p)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	hs, hm := sha256.New(), md5.New()
	if _, err := io.Copy(io.MultiWriter(hs, hm), f); err != nil {
		return "", "", err
	}
	return hex.EncodeToString(hs.Sum(nil)), hex.EncodeToString(hm.Sum(nil)), nil
}

// meta reads one of ociboot's metadata values of an object.
func meta(info minio.ObjectInfo, key string) string {
	for k, v := range info.UserMetadata {
		if strings.EqualFold(k, key) || strings.EqualFold(k, "X-Amz-Meta-"+key) {
			return v
		}
	}
	return ""
}

// each runs f for every key, Transfers at a time, and returns the
// errors: the first few, and how many more there were.
func each(ctx context.Context, keys []string, f func(ctx context.Context, rel string) error) error {
	work := make(chan string)
	var mu sync.Mutex
	var errs []error
	more := 0
	var wg sync.WaitGroup
	for range min(Transfers, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rel := range work {
				if err := f(ctx, rel); err != nil {
					mu.Lock()
					if len(errs) < 5 {
						errs = append(errs, err)
					} else {
						more++
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, k := range keys {
		if ctx.Err() != nil {
			break
		}
		work <- k
	}
	close(work)
	wg.Wait()
	if more > 0 {
		errs = append(errs, fmt.Errorf("and %d more errors", more))
	}
	if err := ctx.Err(); err != nil && len(errs) == 0 {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// same tells whether the local file holds what the object does, and
// returns the file's SHA-256 when it had to be read: the same size, and
// the SHA-256 ociboot stored, or for objects others pushed, an ETag that
// is the MD5 of a single-part upload; with preserve, the same mode,
// owner and modification time too. What the state knows is not read
// again.
func (m *Mirror) same(ctx context.Context, f localFile, rel string, obj minio.ObjectInfo, o SyncOptions, st *syncState) (bool, string, error) {
	if st.inSync(rel, f.st, obj.ETag) {
		sha, _ := st.sha(rel, f.st)
		return true, sha, nil
	}
	if f.st.Size != obj.Size {
		return false, "", nil
	}
	info, err := m.client.StatObject(ctx, m.bucket, m.prefix+rel, minio.StatObjectOptions{ServerSideEncryption: m.sse})
	if err != nil {
		return false, "", fmt.Errorf("%s: %w", rel, err)
	}
	if o.Preserve && meta(info, metaMode) != "" && !maps.Equal(preserved(f.st), map[string]string{
		metaMode: meta(info, metaMode), metaUID: meta(info, metaUID), metaGID: meta(info, metaGID), metaMtime: meta(info, metaMtime)}) {
		return false, "", nil
	}
	want := meta(info, metaSHA256)
	sha, known := st.sha(rel, f.st)
	var md string
	if !known || want == "" {
		if sha, md, err = hashFile(f.path); err != nil {
			return false, "", err
		}
	}
	same := sha == want
	if want == "" {
		etag := strings.Trim(info.ETag, `"`)
		same = !strings.Contains(etag, "-") && etag == md
	}
	if same {
		st.record(rel, f.st, sha, obj.ETag)
	}
	return same, sha, nil
}

// preserved is the metadata that keeps a file's mode, owner and
// modification time.
func preserved(st unix.Stat_t) map[string]string {
	return map[string]string{
		metaMode:  strconv.FormatUint(uint64(st.Mode&0o7777), 8),
		metaUID:   strconv.FormatUint(uint64(st.Uid), 10),
		metaGID:   strconv.FormatUint(uint64(st.Gid), 10),
		metaMtime: strconv.FormatInt(st.Mtim.Nano(), 10),
	}
}

// replace says whether the destination's copy of rel, present on both
// sides, is to be replaced: not when it is the same, nor without
// overwrite; t counts those.
func (m *Mirror) replace(ctx context.Context, f localFile, rel string, obj minio.ObjectInfo, o SyncOptions, st *syncState, t *tally) (bool, error) {
	same, _, err := m.same(ctx, f, rel, obj, o, st)
	switch {
	case err != nil:
		return false, err
	case same:
		t.add(func(r *Report) { r.Same++ })
		return false, nil
	case !o.Overwrite:
		t.add(func(r *Report) { r.LeftAlone++ })
		return false, nil
	}
	return true, nil
}

// Push makes the bucket prefix hold the directory's files, as mc mirror
// does with o's options, Transfers files at a time.
func (m *Mirror) Push(ctx context.Context, dir string, o SyncOptions) (Report, error) {
	files, err := walk(dir, o)
	if err != nil {
		return Report{}, err
	}
	objs, err := m.objects(ctx, o)
	if err != nil {
		return Report{}, err
	}
	st := loadState(o.State)
	var t tally
	err = each(ctx, slices.Sorted(maps.Keys(files)), func(ctx context.Context, rel string) error {
		f := files[rel]
		if obj, ok := objs[rel]; ok {
			if replace, err := m.replace(ctx, f, rel, obj, o, st, &t); err != nil || !replace {
				return err
			}
		}
		var copied bool
		err := m.again(ctx, func() (err error) {
			copied, err = m.put(ctx, f, rel, o, st)
			return err
		})
		if err != nil || !copied {
			return err
		}
		t.add(func(r *Report) { r.Copied++; r.Bytes += f.st.Size })
		return nil
	})
	if err == nil && o.Remove {
		var gone []string
		for rel := range objs {
			if _, ok := files[rel]; !ok {
				gone = append(gone, rel)
			}
		}
		err = m.remove(ctx, gone)
		t.r.Removed = len(gone)
	}
	if serr := st.save(func(rel string) bool { _, ok := files[rel]; return ok }); serr != nil && err == nil {
		err = fmt.Errorf("the sync state: %w", serr)
	}
	return t.r, err
}

// remove deletes the objects of the keys under the prefix, a batch at a
// time.
func (m *Mirror) remove(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	objs := make(chan minio.ObjectInfo)
	go func() {
		defer close(objs)
		for _, rel := range keys {
			select {
			case objs <- minio.ObjectInfo{Key: m.prefix + rel}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var errs []error
	for e := range m.client.RemoveObjects(ctx, m.bucket, objs, minio.RemoveObjectsOptions{}) {
		errs = append(errs, fmt.Errorf("removing %s: %w", strings.TrimPrefix(e.ObjectName, m.prefix), e.Err))
	}
	return errors.Join(errs...)
}

// put uploads one file with its metadata, and says whether it did: a
// file gone since it was listed is not.
func (m *Mirror) put(ctx context.Context, f localFile, rel string, o SyncOptions, st *syncState) (bool, error) {
	in, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer in.Close()
	// What is sent is what was read: the file as it is open now.
	var now unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &now); err != nil {
		return false, err
	}
	sha, known := st.sha(rel, now)
	if !known {
		h := sha256.New()
		if _, err := io.Copy(h, in); err != nil {
			return false, fmt.Errorf("pushing %s: %w", rel, err)
		}
		sha = hex.EncodeToString(h.Sum(nil))
	}
	md := map[string]string{metaSHA256: sha}
	if o.Preserve {
		maps.Copy(md, preserved(now))
	}
	info, err := m.client.PutObject(ctx, m.bucket, m.prefix+rel, io.NewSectionReader(in, 0, now.Size), now.Size, minio.PutObjectOptions{UserMetadata: md, ServerSideEncryption: m.sse})
	if err != nil {
		return false, fmt.Errorf("pushing %s: %w", rel, err)
	}
	var after unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &after); err != nil || identity(after) != identity(now) {
		// Written to while it was read: the object may not hold what its
		// SHA-256 says. None is better than a wrong one.
		if err := m.client.RemoveObject(ctx, m.bucket, m.prefix+rel, minio.RemoveObjectOptions{}); err != nil {
			return false, fmt.Errorf("pushing %s: it changed while it was pushed, and removing what was pushed: %w", rel, err)
		}
		return false, fmt.Errorf("pushing %s: it changed while it was pushed; the next push sends it", rel)
	}
	st.record(rel, now, sha, info.ETag)
	return true, nil
}

// Pull makes the directory hold the bucket prefix's objects, as mc
// mirror does with o's options, Transfers files at a time; files are
// written to a temporary name and renamed, checked against the SHA-256
// ociboot stored.
func (m *Mirror) Pull(ctx context.Context, dir string, o SyncOptions) (Report, error) {
	objs, err := m.objects(ctx, o)
	if err != nil {
		return Report{}, err
	}
	files, err := walk(dir, o)
	if err != nil {
		return Report{}, err
	}
	st := loadState(o.State)
	var t tally
	err = each(ctx, slices.Sorted(maps.Keys(objs)), func(ctx context.Context, rel string) error {
		obj := objs[rel]
		if f, ok := files[rel]; ok {
			if replace, err := m.replace(ctx, f, rel, obj, o, st, &t); err != nil || !replace {
				return err
			}
		}
		if err := m.get(ctx, dir, rel, o, st); err != nil {
			return err
		}
		t.add(func(r *Report) { r.Copied++; r.Bytes += obj.Size })
		return nil
	})
	if err == nil && o.Remove {
		err = removeFiles(files, objs, &t.r)
	}
	if serr := st.save(func(rel string) bool { _, ok := objs[rel]; return ok }); serr != nil && err == nil {
		err = fmt.Errorf("the sync state: %w", serr)
	}
	return t.r, err
}

// objectPath is where the object at rel under the prefix goes in dir:
// rel must be a clean relative path (no "..", ".", empty or doubled
// elements, no leading slash), so that every file of the directory has
// one key and no key leads out of it.
func objectPath(dir, rel string) (string, error) {
	if rel == "" || rel == "." || path.Clean(rel) != rel || path.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") || strings.ContainsRune(rel, 0) {
		return "", fmt.Errorf("object %q: its key under the prefix is not a clean relative path", rel)
	}
	return filepath.Join(dir, filepath.FromSlash(rel)), nil
}

// removeFiles removes the files that have no object, counting them in r.
func removeFiles(files map[string]localFile, objs map[string]minio.ObjectInfo, r *Report) error {
	for rel, f := range files {
		if _, ok := objs[rel]; ok {
			continue
		}
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", rel, err)
		}
		r.Removed++
	}
	return nil
}

// get downloads one object into dir.
func (m *Mirror) get(ctx context.Context, dir, rel string, o SyncOptions, st *syncState) (err error) {
	target, err := objectPath(dir, rel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	// One GET, its metadata in its headers (minio.Core's: no reader
	// goroutine per object, as Client.GetObject has).
	obj, info, _, err := minio.Core{Client: m.client}.GetObject(ctx, m.bucket, m.prefix+rel, minio.GetObjectOptions{ServerSideEncryption: m.sse})
	if err != nil {
		return fmt.Errorf("pulling %s: %w", rel, err)
	}
	defer obj.Close()
	tmp, err := os.CreateTemp(filepath.Dir(target), ".ociboot-pull-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), obj)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pulling %s: %w", rel, err)
	}
	sha := hex.EncodeToString(h.Sum(nil))
	if want := meta(info, metaSHA256); want != "" && want != sha {
		return fmt.Errorf("pulling %s: its content does not match the SHA-256 it was pushed with", rel)
	}
	mode := uint32(0o644)
	if o.Preserve {
		if v, err := strconv.ParseUint(meta(info, metaMode), 8, 32); err == nil {
			mode = uint32(v) & 0o7777
		}
		uid, uerr := strconv.Atoi(meta(info, metaUID))
		gid, gerr := strconv.Atoi(meta(info, metaGID))
		if uerr == nil && gerr == nil {
			if err := os.Lchown(tmp.Name(), uid, gid); err != nil {
				return err
			}
		}
	}
	// After chown, which clears setuid and setgid bits.
	if err := unix.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	if o.Preserve {
		if ns, err := strconv.ParseInt(meta(info, metaMtime), 10, 64); err == nil {
			t := time.Unix(0, ns)
			if err := os.Chtimes(tmp.Name(), t, t); err != nil {
				return err
			}
		}
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return err
	}
	var now unix.Stat_t
	if err := unix.Stat(target, &now); err != nil {
		return err
	}
	st.record(rel, now, sha, info.ETag)
	return nil
}
