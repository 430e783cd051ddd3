package registry

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ociboot/ociboot/internal/image"
)

// maxArchiveLinks bounds the symlinks followed to reach a file in an
// archive (docker 25's layer.tar links to blobs/sha256/…).
const maxArchiveLinks = 8

// AddArchive serves the docker-archive tarball at file (what `docker
// save` and `skopeo copy docker-archive:` write, plain tar) as repository
// name: one OCI image manifest per entry of its manifest.json, tagged
// with the tags of its RepoTags. With tag set, the archive's only image
// is tagged tag too. Blobs are served as sections of the tarball; the
// layers are read once here, to compute their digests (an archive names
// them by path, not digest) and tell their compression.
func (r *Registry) AddArchive(name, tag, file string) error {
	fail := func(err error) error { return fmt.Errorf("docker-archive %s: %w", file, err) }
	f, err := os.Open(file)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	a, err := indexArchive(f)
	if err != nil {
		return fail(err)
	}
	var entries []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	raw, err := a.read(f, "manifest.json", maxManifest)
	if err != nil {
		return fail(err)
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		return fail(fmt.Errorf("manifest.json: %w", err))
	}
	if len(entries) == 0 {
		return fail(errors.New("manifest.json lists no image"))
	}
	rp, err := r.repo(name)
	if err != nil {
		return fail(err)
	}
	seen := map[string]archiveBlob{} // by archive path: layers shared by images are read once
	var tops []v1.Hash
	for n, e := range entries {
		m := ociManifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
		cfg, err := a.blob(f, e.Config, seen)
		if err != nil {
			return fail(fmt.Errorf("image %d: config: %w", n+1, err))
		}
		rp.blobs[cfg.desc.Digest] = sectionBlob(file, cfg.sec)
		cfg.desc.MediaType = types.OCIConfigJSON
		m.Config = &cfg.desc
		for i, l := range e.Layers {
			layer, err := a.blob(f, l, seen)
			if err != nil {
				return fail(fmt.Errorf("image %d: layer %d of %d: %w", n+1, i+1, len(e.Layers), err))
			}
			rp.blobs[layer.desc.Digest] = sectionBlob(file, layer.sec)
			m.Layers = append(m.Layers, layer.desc)
		}
		mraw, err := json.Marshal(m)
		if err != nil {
			return fail(err)
		}
		d := sha256Hash(mraw)
		if _, err := rp.addManifest(d, types.OCIManifestSchema1, mraw); err != nil {
			return fail(err)
		}
		tops = appendNew(tops, d)
		for _, rt := range e.RepoTags {
			if err := rp.tag(name, tagOfRefName(rt), d); err != nil {
				return fail(fmt.Errorf("image %d: RepoTags %q: %w", n+1, rt, err))
			}
		}
	}
	if err := rp.tagOnly(name, tag, tops); err != nil {
		return fail(err)
	}
	return nil
}

// section is where a file's content lies in the tarball.
type section struct {
	off, size int64
	link      string // a symlink's target, resolved against the archive root
}

// archive is the index of a tarball: its files and symlinks by path.
type archive struct {
	files map[string]section
}

// indexArchive reads the tar headers of f, seeking past the contents.
func indexArchive(f *os.File) (*archive, error) {
	var magic [image.MagicLen]byte
	n, _ := f.ReadAt(magic[:], 0)
	if c := image.MagicCompression(magic[:n]); c != "" {
		return nil, fmt.Errorf("compressed with %s: serve a plain tar (as docker save writes it), decompress it first", c)
	}
	a := &archive{files: map[string]section{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not a tar archive: %w", err)
		}
		p := path.Clean(strings.TrimPrefix(h.Name, "./"))
		switch h.Typeflag {
		case tar.TypeReg:
			// tar.Reader reads exactly the headers: f is at the content.
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			a.files[p] = section{off: off, size: h.Size}
		case tar.TypeSymlink:
			a.files[p] = section{link: path.Join(path.Dir(p), h.Linkname)}
		}
	}
	return a, nil
}

// find returns the section of the file at p, following symlinks.
func (a *archive) find(p string) (section, string, error) {
	p = path.Clean(p)
	for range maxArchiveLinks {
		s, ok := a.files[p]
		if !ok {
			return section{}, p, fmt.Errorf("%s: not in the archive", p)
		}
		if s.link == "" {
			return s, p, nil
		}
		p = path.Clean(s.link)
	}
	return section{}, p, fmt.Errorf("%s: too many symlinks", p)
}

func (a *archive) read(f *os.File, p string, limit int64) ([]byte, error) {
	s, _, err := a.find(p)
	if err != nil {
		return nil, err
	}
	if s.size > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, limit)
	}
	data := make([]byte, s.size)
	if _, err := f.ReadAt(data, s.off); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return data, nil
}

// archiveBlob is a file of the archive as a blob: its descriptor and
// where its content lies.
type archiveBlob struct {
	desc v1.Descriptor
	sec  section
}

// blob describes the file at p as a layer blob: its digest, read here,
// its size, and a media type that says how it is compressed. seen caches
// what was read.
func (a *archive) blob(f *os.File, p string, seen map[string]archiveBlob) (archiveBlob, error) {
	s, real, err := a.find(p)
	if err != nil {
		return archiveBlob{}, err
	}
	if b, ok := seen[real]; ok {
		return b, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, s.off, s.size)); err != nil {
		return archiveBlob{}, fmt.Errorf("%s: %w", p, err)
	}
	var magic [image.MagicLen]byte
	n, _ := f.ReadAt(magic[:min(int64(len(magic)), s.size)], s.off)
	mt := types.OCIUncompressedLayer
	switch image.MagicCompression(magic[:n]) {
	case "gzip":
		mt = types.OCILayer
	case "zstd":
		mt = types.OCILayerZStd
	}
	b := archiveBlob{sec: s, desc: v1.Descriptor{
		MediaType: mt,
		Size:      s.size,
		Digest:    v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))},
	}}
	seen[real] = b
	return b, nil
}

// sectionBlob is a blob that is the section s of the file at file.
func sectionBlob(file string, s section) blob {
	return func() (io.ReadSeekCloser, error) {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		return sectionFile{io.NewSectionReader(f, s.off, s.size), f}, nil
	}
}

type sectionFile struct {
	*io.SectionReader
	f *os.File
}

func (s sectionFile) Close() error { return s.f.Close() }
