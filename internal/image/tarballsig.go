package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"

	"github.com/ociboot/ociboot/internal/signature"
)

// signatureSuffixes name the files, next to a tarball, that may hold its
// signature, in the order they are tried: cosign sign-blob's
// --output-signature (or a bundle under that name), then the Sigstore
// bundle's usual name.
var signatureSuffixes = []string{".sig", ".sigstore.json"}

// tarballCheck is a tarball's signature check: the checker the file
// streams through, the file the signature came from, and what a failure
// does.
type tarballCheck struct {
	v       *Verification
	where   string             // the signature's file, for messages
	checker *signature.Checker // nil: nothing to check
}

// checker fetches the tarball's signature when o.Verify asks for one;
// nil when it does not. A missing or unreadable signature is an error,
// or under Warn a warning and nothing to check.
func (s tarballSource) checker(ctx context.Context, client *http.Client, o TarballOptions) (*tarballCheck, error) {
	if o.Verify == nil {
		return nil, nil
	}
	c := &tarballCheck{v: o.Verify}
	data, where, err := s.fetchSignature(ctx, client)
	if err == nil {
		var sig *signature.BlobSignature
		if sig, err = signature.ParseBlobSignature(data); err == nil {
			c.where, c.checker = where, sig.NewChecker(o.Verify.Keys)
			return c, nil
		}
		err = fmt.Errorf("%s: %w", where, err)
	}
	return c, c.fail(s.name, o.Log, err)
}

// writer is what the file is written to for the check, nil for none.
func (c *tarballCheck) writer() io.Writer {
	if c == nil || c.checker == nil {
		return nil
	}
	return c.checker
}

// done checks the signature once the whole file went through writer.
func (c *tarballCheck) done(name string, log io.Writer) error {
	if c == nil || c.checker == nil {
		return nil
	}
	k, err := c.checker.Check()
	if err != nil {
		return c.fail(name, log, fmt.Errorf("%s: %w", c.where, err))
	}
	fmt.Fprintf(log, "rootfs tarball %s: signed by %s (%s)\n", name, k, c.where)
	return nil
}

// fail is the refusal of err, or under Warn a warning in log and nil.
func (c *tarballCheck) fail(name string, log io.Writer, err error) error {
	if c.v.Warn {
		fmt.Fprintf(log, "WARNING: rootfs tarball %s is not verified (the %s): %v; using it all the same\n", name, c.v.Policy, err)
		return nil
	}
	return fmt.Errorf("%w by the %s: %w", ErrRefused, c.v.Policy, err)
}

// fetchSignature reads the first of the tarball's signature files there
// is, and says which it was.
func (s tarballSource) fetchSignature(ctx context.Context, client *http.Client) ([]byte, string, error) {
	var tried []string
	for _, suffix := range signatureSuffixes {
		sib := s.sibling(suffix)
		data, found, err := sib.readSmall(ctx, client, maxSignatureSize)
		if err != nil {
			return nil, sib.name, fmt.Errorf("signature %s: %w", sib.name, err)
		}
		if found {
			return data, sib.name, nil
		}
		tried = append(tried, sib.name)
	}
	return nil, "", fmt.Errorf("no signature: neither %s", strings.Join(tried, " nor "))
}

// sibling is the file whose name is the tarball's followed by suffix.
func (s tarballSource) sibling(suffix string) tarballSource {
	u := *s.u
	u.Path += suffix
	if u.RawPath != "" {
		u.RawPath += suffix
	}
	return tarballSource{u: &u, name: redactTarballURL(u.String())}
}

// readSmall reads the whole file, of at most limit bytes; found is false
// when there is no such file (404, 410, or no file of that name).
func (s tarballSource) readSmall(ctx context.Context, client *http.Client, limit int64) (data []byte, found bool, err error) {
	var r io.ReadCloser
	if s.u.Scheme == "file" {
		f, err := os.Open(s.u.Path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		r = f
	} else {
		resp, err := s.do(ctx, client, "")
		if err != nil {
			return nil, false, err
		}
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusNotFound, http.StatusGone:
			resp.Body.Close()
			return nil, false, nil
		default:
			resp.Body.Close()
			return nil, false, fmt.Errorf("GET: server answered %q, want \"200 OK\"", resp.Status)
		}
		r = resp.Body
	}
	defer r.Close()
	data, err = io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(data)) > limit {
		return nil, false, fmt.Errorf("more than %d bytes: not a signature", limit)
	}
	return data, true, nil
}
