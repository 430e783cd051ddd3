package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/ociboot/ociboot/internal/fetch"
	"github.com/ociboot/ociboot/internal/image"
	"github.com/ociboot/ociboot/internal/trust"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

func newVerifyCmd() *cobra.Command {
	var (
		keys     []string
		policy   string
		registry pullFlags
	)
	cmd := &cobra.Command{
		Use:   "verify IMAGE|URL",
		Short: "Check the cosign signature of an image or a rootfs tarball as the init would",
		Long: `verify checks the cosign signatures of IMAGE with the keys of --verify-key
and the policy of --verify-policy, the flags ` + "`ociboot build`" + ` bakes in, with
the init's own code: it resolves IMAGE to its manifest (or index) digest,
reads the signatures the registry holds for that digest (the sha256-HEX.sig
tag of cosign 2.x, the Sigstore bundle referrers of cosign 3.x), and checks
them. It says which key signed; a refusal says why (no signature, another
key, a signature of another manifest, a malformed bundle) and exits 1.
Under a warn scope it prints the warning and exits 0, as the boot goes on.
Registries are reached as by ` + "`ociboot pull`" + `.

A URL (http://, https:// or file://) names a rootfs tarball, as
ociboot.root= does: its signature, URL.sig or else URL.sigstore.json (what
cosign sign-blob writes with --output-signature or --bundle), is fetched
and the whole file is read and checked against it, and against its
#sha256= pin when it has one; nothing is unpacked.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, unix.SIGTERM)
			defer stop()
			t, err := trust.Load(keys, policy)
			if err != nil {
				return err
			}
			if len(t.Keys()) == 0 {
				return fmt.Errorf("no key: give the keys with --verify-key")
			}
			var plat v1.Platform
			if registry.platform != "" {
				if plat, err = image.ParsePlatform(registry.platform); err != nil {
					return fmt.Errorf("--platform: %w", err)
				}
			}
			out := cmd.OutOrStdout()
			if isTarballURL(args[0]) {
				if registry.platform != "" || registry.authFile != "" || len(registry.mirrors) > 0 || len(registry.insecure) > 0 {
					return errors.New("--platform, --registry-auth, --registry-mirror and --insecure-registry do not apply to a rootfs tarball URL")
				}
				return verifyTarball(ctx, out, args[0], t, registry.caFiles)
			}
			po, err := registry.pullOptions(plat, out)
			if err != nil {
				return err
			}
			return verifyImage(ctx, out, args[0], t, po)
		},
	}
	f := cmd.Flags()
	verifyFlags(f, &keys, &policy)
	registryFlags(f, &registry)
	return cmd
}

// verifyFlags adds --verify-key and --verify-policy, as build and verify
// take them.
func verifyFlags(f *pflag.FlagSet, keys *[]string, policy *string) {
	f.StringArrayVar(keys, "verify-key", nil, "PEM public key (cosign.pub: ECDSA P-256, RSA or Ed25519) whose cosign signatures images and rootfs tarballs must carry (repeatable); named by its file name in the policy")
	f.StringVar(policy, "verify-policy", "", "JSON policy: which keys apply to which registry, repository or URL prefix, and whether to require or warn (default: every image and tarball requires a signature by one of the keys); see docs/verify.md")
}

// verifyImage resolves ref with po, checking its signatures as t says,
// and tells what it found.
func verifyImage(ctx context.Context, out io.Writer, ref string, t *trust.Trust, po image.PullOptions) error {
	r, err := image.ParseReference(ref)
	if err != nil {
		return err
	}
	d := t.Image(r.Registry, r.Repository)
	if d.Mode == trust.Accept {
		fmt.Fprintf(out, "%s is not checked: %s\n", r, d)
		return nil
	}
	po.Verify = t.Verification
	p, err := image.NewPuller(po)
	if err != nil {
		return err
	}
	_, err = p.Pull(ctx, ref, image.Request{})
	return err
}

// verifyTarball reads the rootfs tarball at rawURL through its signature
// check as t says, and tells what it found.
func verifyTarball(ctx context.Context, out io.Writer, rawURL string, t *trust.Trust, caFiles []string) error {
	v := t.TarballVerification(rawURL)
	if v == nil {
		fmt.Fprintf(out, "%s is not checked: %s\n", rawURL, t.URLDecision(rawURL))
		return nil
	}
	po, err := pullFlags{caFiles: caFiles}.pullOptions(v1.Platform{}, out)
	if err != nil {
		return err
	}
	return image.VerifyTarball(ctx, rawURL, image.TarballOptions{Log: out, Verify: v, Fetch: fetch.Options{CACerts: po.CACerts}})
}
