package volume

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/ociboot/ociboot/internal/bootcfg"
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
}

// Report counts what a sync did.
type Report struct {
	Copied, Same, LeftAlone, Removed int
	Bytes                            int64
}

// Mirror copies between a directory and a bucket prefix.
type Mirror struct {
	client *minio.Client
	bucket string
	prefix string // "" or ending in "/"
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
	return &Mirror{client: c, bucket: b.Bucket, prefix: prefix}, nil
}

// excluded tells whether rel is left out by o.
func (o SyncOptions) excluded(rel string) bool {
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

// same tells whether the local file holds what the object does: the
// same size, and the SHA-256 ociboot stored, or for objects others
// pushed, an ETag that is the MD5 of a single-part upload.
func (m *Mirror) same(ctx context.Context, f localFile, rel string, obj minio.ObjectInfo) (bool, error) {
	if f.st.Size != obj.Size {
		return false, nil
	}
	info, err := m.client.StatObject(ctx, m.bucket, m.prefix+rel, minio.StatObjectOptions{})
	if err != nil {
		return false, fmt.Errorf("%s: %w", rel, err)
	}
	sha, md, err := hashFile(f.path)
	if err != nil {
		return false, err
	}
	if want := meta(info, metaSHA256); want != "" {
		return want == sha, nil
	}
	etag := strings.Trim(info.ETag, `"`)
	return !strings.Contains(etag, "-") && etag == md, nil
}

// replace says whether the destination's copy of rel, present on both
// sides, is to be replaced: not when it is the same, nor without
// overwrite; r counts those.
func (m *Mirror) replace(ctx context.Context, f localFile, rel string, obj minio.ObjectInfo, o SyncOptions, r *Report) (bool, error) {
	same, err := m.same(ctx, f, rel, obj)
	switch {
	case err != nil:
		return false, err
	case same:
		r.Same++
		return false, nil
	case !o.Overwrite:
		r.LeftAlone++
		return false, nil
	}
	return true, nil
}

// Push makes the bucket prefix hold the directory's files, as mc mirror
// does with o's options.
func (m *Mirror) Push(ctx context.Context, dir string, o SyncOptions) (Report, error) {
	var r Report
	files, err := walk(dir, o)
	if err != nil {
		return r, err
	}
	objs, err := m.objects(ctx, o)
	if err != nil {
		return r, err
	}
	for rel, f := range files {
		if obj, ok := objs[rel]; ok {
			if replace, err := m.replace(ctx, f, rel, obj, o, &r); err != nil || !replace {
				if err != nil {
					return r, err
				}
				continue
			}
		}
		if err := m.put(ctx, f, rel, o); err != nil {
			return r, err
		}
		r.Copied++
		r.Bytes += f.st.Size
	}
	if o.Remove {
		for rel := range objs {
			if _, ok := files[rel]; ok {
				continue
			}
			if err := m.client.RemoveObject(ctx, m.bucket, m.prefix+rel, minio.RemoveObjectOptions{}); err != nil {
				return r, fmt.Errorf("removing %s: %w", rel, err)
			}
			r.Removed++
		}
	}
	return r, nil
}

// put uploads one file with its metadata.
func (m *Mirror) put(ctx context.Context, f localFile, rel string, o SyncOptions) error {
	sha, _, err := hashFile(f.path)
	if err != nil {
		return err
	}
	md := map[string]string{metaSHA256: sha}
	if o.Preserve {
		md[metaMode] = strconv.FormatUint(uint64(f.st.Mode&0o7777), 8)
		md[metaUID] = strconv.FormatUint(uint64(f.st.Uid), 10)
		md[metaGID] = strconv.FormatUint(uint64(f.st.Gid), 10)
		md[metaMtime] = strconv.FormatInt(f.st.Mtim.Nano(), 10)
	}
	in, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer in.Close()
	_, err = m.client.PutObject(ctx, m.bucket, m.prefix+rel, in, f.st.Size, minio.PutObjectOptions{UserMetadata: md})
	if err != nil {
		return fmt.Errorf("pushing %s: %w", rel, err)
	}
	return nil
}

// Pull makes the directory hold the bucket prefix's objects, as mc
// mirror does with o's options; files are written to a temporary name
// and renamed, checked against the SHA-256 ociboot stored.
func (m *Mirror) Pull(ctx context.Context, dir string, o SyncOptions) (Report, error) {
	var r Report
	objs, err := m.objects(ctx, o)
	if err != nil {
		return r, err
	}
	files, err := walk(dir, o)
	if err != nil {
		return r, err
	}
	for rel, obj := range objs {
		if f, ok := files[rel]; ok {
			if replace, err := m.replace(ctx, f, rel, obj, o, &r); err != nil || !replace {
				if err != nil {
					return r, err
				}
				continue
			}
		}
		if err := m.get(ctx, dir, rel, o); err != nil {
			return r, err
		}
		r.Copied++
		r.Bytes += obj.Size
	}
	if o.Remove {
		for rel, f := range files {
			if _, ok := objs[rel]; ok {
				continue
			}
			if err := os.Remove(f.path); err != nil {
				return r, fmt.Errorf("removing %s: %w", rel, err)
			}
			r.Removed++
		}
	}
	return r, nil
}

// get downloads one object into dir.
func (m *Mirror) get(ctx context.Context, dir, rel string, o SyncOptions) (err error) {
	target := filepath.Join(dir, filepath.FromSlash(rel))
	if !strings.HasPrefix(target, filepath.Clean(dir)+string(filepath.Separator)) {
		return fmt.Errorf("object %s names a path outside the volume", rel)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	obj, err := m.client.GetObject(ctx, m.bucket, m.prefix+rel, minio.GetObjectOptions{})
	if err != nil {
		return fmt.Errorf("pulling %s: %w", rel, err)
	}
	defer obj.Close()
	info, err := obj.Stat()
	if err != nil {
		return fmt.Errorf("pulling %s: %w", rel, err)
	}
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
	if want := meta(info, metaSHA256); want != "" && want != hex.EncodeToString(h.Sum(nil)) {
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
	return os.Rename(tmp.Name(), target)
}
