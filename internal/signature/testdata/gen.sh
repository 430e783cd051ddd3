#!/usr/bin/env bash
# Regenerates this directory's corpus with the real cosign CLI (the version
# scripts/install-deps.sh installs) and the CNCF distribution registry:
# three key pairs (cosign's own ECDSA P-256, and RSA 3072 and Ed25519
# imported from openssl), each signing one image manifest in both of
# cosign's formats (the simple-signing payload of the .sig tag, and the
# Sigstore bundle of the referrers tag) and one blob (a detached
# signature, and a bundle). No transparency log, no network beyond
# 127.0.0.1: any other address goes to a dead proxy. Needs cosign,
# docker-registry, umoci, skopeo, openssl, curl and python3.
set -euo pipefail
cd "$(dirname "$0")"
export HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY= COSIGN_PASSWORD=
work=$(mktemp -d)
trap 'kill $reg 2>/dev/null; rm -rf "$work"' EXIT
export HOME=$work TUF_ROOT=$work/tuf
port=$((20000 + RANDOM % 20000))
printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%d\n' "$work/store" "$port" >"$work/reg.yml"
docker-registry serve "$work/reg.yml" >"$work/reg.log" 2>&1 &
reg=$!
until curl -sf "http://127.0.0.1:$port/v2/" >/dev/null; do sleep 0.2; done
umoci init --layout "$work/l" >/dev/null
umoci new --image "$work/l:img" >/dev/null
umoci config --image "$work/l:img" --config.cmd corpus >/dev/null
repo=127.0.0.1:$port/corpus/img
skopeo copy -q "oci:$work/l:img" "docker://$repo:img" --dest-tls-verify=false
digest=$(skopeo inspect --tls-verify=false "docker://$repo:img" | sed -n 's/^ *"Digest": "\(sha256:[0-9a-f]*\)".*/\1/p')
echo "$digest" >image.digest
head -c 4096 /dev/urandom >blob
cosign=(cosign --verbose=false)
sign=(--tlog-upload=false --use-signing-config=false -y)
cosign generate-key-pair --output-key-prefix "$work/ecdsa" >/dev/null 2>&1
cp "$work/ecdsa.pub" ecdsa.pub
openssl genpkey -quiet -algorithm rsa -pkeyopt rsa_keygen_bits:3072 -out "$work/rsa.pem"
openssl genpkey -quiet -algorithm ed25519 -out "$work/ed25519.pem"
for k in rsa ed25519; do
	cosign import-key-pair --key "$work/$k.pem" --output-key-prefix "$work/$k" >/dev/null 2>&1
	cp "$work/$k.pub" "$k.pub"
done
get() { curl -sf -H "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json" "http://127.0.0.1:$port/v2/corpus/img/$1"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
for k in ecdsa rsa ed25519; do
	# cosign 2.x's format: a simple-signing payload in the .sig tag.
	"${cosign[@]}" sign --key "$work/$k.key" "${sign[@]}" --new-bundle-format=false "$repo@$digest" >/dev/null 2>&1
	m=$(get "manifests/${digest/:/-}.sig")
	get "blobs/$(echo "$m" | json 'd["layers"][-1]["digest"]')" >"image.$k.payload"
	echo "$m" | json 'd["layers"][-1]["annotations"]["dev.cosignproject.cosign/signature"]' >"image.$k.sig"
	skopeo delete --tls-verify=false "docker://$repo:${digest/:/-}.sig"
	# cosign 3.x's: a Sigstore bundle, a referrer (here through the
	# referrers tag: this registry has no referrers API).
	"${cosign[@]}" sign --key "$work/$k.key" "${sign[@]}" "$repo@$digest" >/dev/null 2>&1
	idx=$(get "manifests/${digest/:/-}")
	m=$(get "manifests/$(echo "$idx" | json 'd["manifests"][-1]["digest"]')")
	get "blobs/$(echo "$m" | json 'd["layers"][0]["digest"]')" >"image.$k.bundle"
	skopeo delete --tls-verify=false "docker://$repo:${digest/:/-}"
	"${cosign[@]}" sign-blob --key "$work/$k.key" "${sign[@]}" --new-bundle-format=false --output-signature "blob.$k.sig" blob >/dev/null 2>&1
	"${cosign[@]}" sign-blob --key "$work/$k.key" "${sign[@]}" --bundle "blob.$k.bundle" blob >/dev/null 2>&1
done
