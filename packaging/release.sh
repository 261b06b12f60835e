#!/usr/bin/env bash
# Writes a release into OUT: the binary, the .deb, SHA256SUMS over both, and SHA256SUMS.sig, a
# detached ECDSA P-256 / SHA-256 signature by the release key (a PEM private key kept off the
# build machine's disk between releases).
#
#   packaging/release.sh --key RELEASE_KEY.pem OUT
#
# Anyone verifies with standard tools and the public key in docs/release-key.pub.pem:
#   openssl dgst -sha256 -verify release-key.pub.pem -signature SHA256SUMS.sig SHA256SUMS
#   sha256sum -c SHA256SUMS
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
key=""
no_build=""
while [ $# -gt 1 ]; do
  case "$1" in
    --key) key=$2; shift 2 ;;
    --no-build) no_build=--no-build; shift ;;
    *) break ;;
  esac
done
out=${1:?usage: release.sh --key RELEASE_KEY.pem [--no-build] OUT}
[ -n "$key" ] && [ -f "$key" ] || { echo "release.sh: --key names the release's private key (PEM)" >&2; exit 2; }

deb=$("$root/packaging/build-deb.sh" $no_build | tail -1)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
target=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$out"
bin=$out/bulwark-$version-x86_64-linux
install -m 0755 "$target/release/bulwark" "$bin"
strip --strip-unneeded "$bin"
cp "$deb" "$out/"
(cd "$out" && sha256sum "$(basename "$bin")" "$(basename "$deb")" > SHA256SUMS)
openssl dgst -sha256 -sign "$key" -out "$out/SHA256SUMS.sig" "$out/SHA256SUMS"
# A key that does not match the published one is caught here, not by the first user.
if [ -f "$root/docs/release-key.pub.pem" ] && [ -z "${RELEASE_ANY_KEY:-}" ]; then
  openssl dgst -sha256 -verify "$root/docs/release-key.pub.pem" -signature "$out/SHA256SUMS.sig" \
    "$out/SHA256SUMS" >/dev/null || { echo "release.sh: the key is not the published release key" >&2; exit 1; }
fi
ls -l "$out"
