package signature

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Media types and annotations of cosign's signatures in a registry.
const (
	// SimpleSigningType is the media type of the layers of a .sig tag's
	// manifest: each one a payload, its signature in SigAnnotation.
	SimpleSigningType = "application/vnd.dev.cosign.simplesigning.v1+json"
	SigAnnotation     = "dev.cosignproject.cosign/signature"
	// BundleType is the artifact type of a referrer holding a Sigstore
	// bundle, the media type of its layer.
	BundleType = "application/vnd.dev.sigstore.bundle.v0.3+json"
)

// simpleSigningKind is the type a simple-signing payload of cosign's
// says it is.
const simpleSigningKind = "cosign container image signature"

// ParsePayload reads a simple-signing payload, as cosign 2.x signs it,
// and returns the manifest digest it is for (critical.image
// .docker-manifest-digest).
func ParsePayload(data []byte) (v1.Hash, error) {
	var p struct {
		Critical *struct {
			Identity struct {
				DockerReference string `json:"docker-reference"`
			} `json:"identity"`
			Image *struct {
				DockerManifestDigest string `json:"docker-manifest-digest"`
			} `json:"image"`
			Type string `json:"type"`
		} `json:"critical"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return v1.Hash{}, fmt.Errorf("malformed payload: %w", err)
	}
	switch {
	case p.Critical == nil:
		return v1.Hash{}, fmt.Errorf("malformed payload: no critical section")
	case p.Critical.Type != simpleSigningKind:
		return v1.Hash{}, fmt.Errorf("malformed payload: type %q, want %q", p.Critical.Type, simpleSigningKind)
	case p.Critical.Image == nil:
		return v1.Hash{}, fmt.Errorf("malformed payload: no critical.image")
	}
	d, err := v1.NewHash(p.Critical.Image.DockerManifestDigest)
	if err != nil || d.Algorithm != "sha256" {
		return v1.Hash{}, fmt.Errorf("malformed payload: docker-manifest-digest %q: want sha256:HEX", p.Critical.Image.DockerManifestDigest)
	}
	return d, nil
}

// bundle is the part of a Sigstore bundle (v0.1 to v0.3, protobuf's
// JSON) a keyed check reads.
type bundle struct {
	MediaType            string `json:"mediaType"`
	VerificationMaterial *struct {
		PublicKey *struct {
			Hint string `json:"hint"`
		} `json:"publicKey"`
		Certificate          json.RawMessage `json:"certificate"`
		X509CertificateChain json.RawMessage `json:"x509CertificateChain"`
	} `json:"verificationMaterial"`
	DSSEEnvelope *struct {
		Payload     []byte `json:"payload"`
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			Sig []byte `json:"sig"`
		} `json:"signatures"`
	} `json:"dsseEnvelope"`
	MessageSignature *struct {
		MessageDigest *struct {
			Algorithm string `json:"algorithm"`
			Digest    []byte `json:"digest"`
		} `json:"messageDigest"`
		Signature []byte `json:"signature"`
	} `json:"messageSignature"`
}

// parseBundle reads a Sigstore bundle signed with a key.
func parseBundle(data []byte) (*bundle, error) {
	var b bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("malformed bundle: %w", err)
	}
	switch b.MediaType {
	case "application/vnd.dev.sigstore.bundle+json;version=0.1", "application/vnd.dev.sigstore.bundle+json;version=0.2",
		"application/vnd.dev.sigstore.bundle+json;version=0.3", BundleType:
	default:
		return nil, fmt.Errorf("malformed bundle: media type %q, want a Sigstore bundle (%s)", b.MediaType, BundleType)
	}
	vm := b.VerificationMaterial
	switch {
	case vm == nil:
		return nil, fmt.Errorf("malformed bundle: no verificationMaterial")
	case vm.PublicKey == nil && (vm.Certificate != nil || vm.X509CertificateChain != nil):
		return nil, fmt.Errorf("bundle signed by a certificate (cosign's keyless signing): ociboot checks signatures by keys only")
	case vm.PublicKey == nil:
		return nil, fmt.Errorf("malformed bundle: no verificationMaterial.publicKey")
	case (b.DSSEEnvelope == nil) == (b.MessageSignature == nil):
		return nil, fmt.Errorf("malformed bundle: want one of dsseEnvelope and messageSignature")
	case b.DSSEEnvelope != nil && len(b.DSSEEnvelope.Signatures) == 0:
		return nil, fmt.Errorf("malformed bundle: dsseEnvelope has no signatures")
	case b.MessageSignature != nil && len(b.MessageSignature.Signature) == 0:
		return nil, fmt.Errorf("malformed bundle: messageSignature has no signature")
	}
	return &b, nil
}

// hint is the bundle's hint of its key, "" if none.
func (b *bundle) hint() string { return b.VerificationMaterial.PublicKey.Hint }

// In-toto statements, as cosign 3.x signs an image in a DSSE envelope.
const (
	inTotoPayloadType = "application/vnd.in-toto+json"
	cosignPredicate   = "https://sigstore.dev/cosign/sign/v1"
)

// pae is DSSE's pre-authentication encoding of a payload, what its
// signatures sign.
func pae(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// parseStatement reads the in-toto statement of an image's signature
// and returns the sha256 digests it is for.
func parseStatement(payloadType string, payload []byte) ([]v1.Hash, error) {
	if payloadType != inTotoPayloadType {
		return nil, fmt.Errorf("malformed bundle: DSSE payload type %q, want %q", payloadType, inTotoPayloadType)
	}
	var s struct {
		Type    string `json:"_type"`
		Subject []struct {
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
		PredicateType string `json:"predicateType"`
	}
	if err := json.Unmarshal(payload, &s); err != nil {
		return nil, fmt.Errorf("malformed bundle: in-toto statement: %w", err)
	}
	if !strings.HasPrefix(s.Type, "https://in-toto.io/Statement/") {
		return nil, fmt.Errorf("malformed bundle: statement type %q, want an in-toto statement", s.Type)
	}
	if s.PredicateType != cosignPredicate {
		// An attestation (an SBOM, provenance) signed by the same key is
		// not a signature of the image.
		return nil, fmt.Errorf("bundle holds a %q attestation, not a signature (%s)", s.PredicateType, cosignPredicate)
	}
	var ds []v1.Hash
	for _, sub := range s.Subject {
		hex, ok := sub.Digest["sha256"]
		if !ok {
			continue
		}
		d, err := v1.NewHash("sha256:" + hex)
		if err != nil {
			return nil, fmt.Errorf("malformed bundle: subject digest %q: %w", hex, err)
		}
		ds = append(ds, d)
	}
	if len(ds) == 0 {
		return nil, fmt.Errorf("malformed bundle: the statement has no sha256 subject")
	}
	return ds, nil
}

// decodeSig decodes a base64 signature, as the .sig tag's annotation and
// sign-blob's --output-signature file hold it.
func decodeSig(s string) ([]byte, error) {
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("malformed signature: not base64: %w", err)
	}
	if len(sig) == 0 {
		return nil, fmt.Errorf("malformed signature: empty")
	}
	return sig, nil
}
