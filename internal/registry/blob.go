package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// blob opens a blob's content.
type blob func() (io.ReadSeekCloser, error)

// fileBlob is the blob held in the file at path.
func fileBlob(path string) blob {
	return func() (io.ReadSeekCloser, error) { return os.Open(path) }
}

// memBlob is a blob held in memory.
func memBlob(data []byte) blob {
	return func() (io.ReadSeekCloser, error) { return nopCloser{bytes.NewReader(data)}, nil }
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// ociManifest is the image manifest the registry writes for images it
// assembles (from docker-archives, and indexes of stored platforms).
type ociManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     types.MediaType `json:"mediaType"`
	Config        *v1.Descriptor  `json:"config,omitempty"`
	Layers        []v1.Descriptor `json:"layers,omitempty"`
	Manifests     []v1.Descriptor `json:"manifests,omitempty"`
}

// checkDigest checks that data hashes to d.
func checkDigest(data []byte, d v1.Hash) error {
	h, err := v1.Hasher(d.Algorithm)
	if err != nil {
		return err
	}
	h.Write(data)
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != d.Hex {
		return fmt.Errorf("content hashes to %s:%s", d.Algorithm, got)
	}
	return nil
}

func sha256Hash(data []byte) v1.Hash {
	sum := sha256.Sum256(data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}
