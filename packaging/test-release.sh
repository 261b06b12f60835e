#!/usr/bin/env bash
# Proves packaging/release.sh: a release signed with a throwaway key verifies with openssl and
# sha256sum exactly as docs/install.md tells users to, and a tampered file or signature fails.
#
#   packaging/test-release.sh      (after packaging/build-deb.sh: the binary is reused)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/bulwark-release-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { echo "FAILED: $*" >&2; echo "$passed passed, 1 failed"; exit 1; }

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/key.pem" 2>/dev/null
openssl pkey -in "$work/key.pem" -pubout -out "$work/pub.pem"
RELEASE_ANY_KEY=1 "$root/packaging/release.sh" --key "$work/key.pem" --no-build "$work/out" > "$work/release.log" 2>&1 \
  || { cat "$work/release.log" >&2; fail "release.sh"; }
out=$work/out
[ "$(wc -l < "$out/SHA256SUMS")" = 2 ] || fail "SHA256SUMS lists the binary and the .deb"
(cd "$out" && sha256sum -c --quiet SHA256SUMS) || fail "sha256sum -c"
openssl dgst -sha256 -verify "$work/pub.pem" -signature "$out/SHA256SUMS.sig" "$out/SHA256SUMS" >/dev/null \
  || fail "the signature does not verify"
ok "a release verifies with sha256sum -c and openssl dgst -verify"
"$out"/bulwark-*-x86_64-linux --version > /dev/null || fail "the released binary runs"
ok "the released binary runs"

cp "$out/SHA256SUMS" "$work/sums"
sed -i '1s/^./0/' "$out/SHA256SUMS"
if openssl dgst -sha256 -verify "$work/pub.pem" -signature "$out/SHA256SUMS.sig" "$out/SHA256SUMS" >/dev/null 2>&1; then
  fail "an edited SHA256SUMS still verifies"
fi
cp "$work/sums" "$out/SHA256SUMS"
printf 'x' >> "$out"/bulwark_*.deb
if (cd "$out" && sha256sum -c --quiet SHA256SUMS) >/dev/null 2>&1; then fail "a changed .deb passes sha256sum -c"; fi
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/other.pem" 2>/dev/null
if "$root/packaging/release.sh" --key "$work/other.pem" --no-build "$work/out2" >/dev/null 2>&1; then
  fail "release.sh signed with a key that is not the published one"
fi
ok "an edited checksum list, a changed package and a key that is not the published one are refused"
echo "release: $passed passed, 0 failed"
