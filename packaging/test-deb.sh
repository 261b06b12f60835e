#!/usr/bin/env bash
# Proves the .deb in a throwaway Debian 12 root (debootstrap from Debian's mirror, chroot):
# install, the system user, the data directory and the configuration's modes, manual pages and
# completions, the units as systemd reads them, the appliance started as the service would and
# answering /healthz, an upgrade that keeps an edited configuration and the data, a purge that
# removes the configuration and keeps the data, and lintian. Prints the install time and size.
#
#   packaging/test-deb.sh [target/debian/bulwark_<version>_amd64.deb]
#
# Needs root (debootstrap, chroot, mounts). Nothing outside the temporary root is changed; the
# appliance it starts listens on loopback only and is stopped by PID.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deb=${1:-$(ls "$root"/target/debian/bulwark_*_amd64.deb | sort -V | tail -1)}
[ -f "$deb" ] || { echo "no .deb: run packaging/build-deb.sh" >&2; exit 1; }
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PORT=${DEB_TEST_PORT:-18943}

work=$(mktemp -d /tmp/bulwark-deb-test.XXXXXX)
chr=$work/root
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  for m in proc dev/pts dev sys; do umountpoint "$chr/$m"; done
  rm -rf "$work"
}
umountpoint() { mountpoint -q "$1" 2>/dev/null && umount -l "$1" || true; }
trap cleanup EXIT
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { echo "FAILED: $*" >&2; echo "$passed passed, 1 failed"; exit 1; }
in_root() { chroot "$chr" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

echo "== debootstrap (Debian 12, minbase)"
debootstrap --variant=minbase --include=ca-certificates,curl,man-db bookworm "$chr" "$MIRROR" \
  > "$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
mount -t proc proc "$chr/proc"
mount --bind /dev "$chr/dev"
mount --bind /sys "$chr/sys"
# Nothing may start services inside the root.
printf '#!/bin/sh\nexit 101\n' > "$chr/usr/sbin/policy-rc.d"; chmod +x "$chr/usr/sbin/policy-rc.d"
cp "$deb" "$chr/tmp/bulwark.deb"

echo "== install"
ms() { echo $(( $(date +%s%N) / 1000000 )); }
start=$(ms)
in_root apt-get install -y -q /tmp/bulwark.deb > "$work/install.log" 2>&1 \
  || { tail -30 "$work/install.log" >&2; fail "apt-get install"; }
took=$(( $(ms) - start ))
# The dependencies (systemd) come from the mirror: time the package alone too.
start=$(ms)
in_root dpkg -i /tmp/bulwark.deb > "$work/reinstall.log" 2>&1 || fail "dpkg -i (again)"
alone=$(( $(ms) - start ))
ok "installed (with its dependencies ${took} ms; the package alone ${alone} ms; $(du -h "$deb" | cut -f1) .deb, $(in_root dpkg-query -Wf '${Installed-Size}' bulwark) KiB installed)"

in_root id bulwark >/dev/null || fail "no bulwark user"
[ "$(in_root stat -c '%a %U' /var/lib/bulwark)" = "700 bulwark" ] || fail "/var/lib/bulwark is not 0700 bulwark"
[ "$(in_root stat -c '%a %U %G' /etc/bulwark/bulwark.toml)" = "640 root bulwark" ] || fail "bulwark.toml mode"
[ "$(in_root stat -c '%a' /etc/bulwark/sensor.env)" = "600" ] || fail "sensor.env mode"
ok "the bulwark user, /var/lib/bulwark 0700, the configuration 0640 root:bulwark, sensor.env 0600"
for f in /usr/share/man/man1/bulwark.1.gz /usr/share/man/man1/bulwark-serve.1.gz \
  /usr/share/bash-completion/completions/bulwark /usr/share/zsh/vendor-completions/_bulwark \
  /usr/share/fish/vendor_completions.d/bulwark.fish; do
  [ -s "$chr$f" ] || fail "missing $f"
done
ok "manual pages and bash, zsh, fish completions"
in_root systemd-analyze verify /usr/lib/systemd/system/bulwark.service \
  /usr/lib/systemd/system/bulwark-sensor.service > "$work/verify.log" 2>&1 \
  || { cat "$work/verify.log" >&2; fail "systemd-analyze verify"; }
ok "systemd-analyze verify accepts both units"
in_root /usr/bin/bulwark --config /etc/bulwark/bulwark.toml config check >/dev/null || fail "config check"
ok "the packaged configuration checks"
in_root man -w bulwark-crawl >/dev/null || fail "man bulwark-crawl"
ok "man finds the pages"

echo "== the appliance as the unit runs it"
chroot --userspec=bulwark:bulwark "$chr" env -i PATH=/usr/bin:/bin HOME=/var/lib/bulwark \
  BULWARK_LISTEN="127.0.0.1:$PORT" BULWARK_ADMIN_PASSWORD=deb-test-password-1 \
  /usr/bin/bulwark --config /etc/bulwark/bulwark.toml serve > "$work/serve.log" 2>&1 &
server=$!
code=000
for _ in $(seq 1 100); do
  code=$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$PORT/healthz" || true)
  [ "$code" = 200 ] && break
  sleep 0.2
done
[ "$code" = 200 ] || { tail -20 "$work/serve.log" >&2; fail "/healthz answered $code"; }
kill "$server"; wait "$server" 2>/dev/null || true; server=""
[ -f "$chr/var/lib/bulwark/bulwark.redb" ] || fail "no database in /var/lib/bulwark"
ok "bulwark serve as the bulwark user answered /healthz and wrote /var/lib/bulwark"

echo "== upgrade"
echo '# edited by the operator' >> "$chr/etc/bulwark/bulwark.toml"
repack=$work/repack
dpkg-deb -R "$deb" "$repack"
sed -i 's/^Version: \(.*\)$/Version: \1+test1/' "$repack/DEBIAN/control"
dpkg-deb --root-owner-group --build "$repack" "$chr/tmp/bulwark-next.deb" >/dev/null
in_root apt-get install -y -q -o Dpkg::Options::=--force-confold /tmp/bulwark-next.deb \
  > "$work/upgrade.log" 2>&1 || { tail -20 "$work/upgrade.log" >&2; fail "upgrade"; }
in_root dpkg-query -Wf '${Version}' bulwark | grep -q '+test1' || fail "not upgraded"
grep -q 'edited by the operator' "$chr/etc/bulwark/bulwark.toml" || fail "the edited configuration was replaced"
[ -f "$chr/var/lib/bulwark/bulwark.redb" ] || fail "the upgrade lost the data"
ok "an upgrade keeps the edited configuration and the data"

echo "== purge"
in_root apt-get purge -y -q bulwark > "$work/purge.log" 2>&1 || { tail -20 "$work/purge.log" >&2; fail "purge"; }
[ ! -e "$chr/etc/bulwark" ] || fail "purge left /etc/bulwark"
[ -f "$chr/var/lib/bulwark/bulwark.redb" ] || fail "purge removed the data"
[ ! -e "$chr/usr/bin/bulwark" ] || fail "purge left the binary"
ok "purge removes the configuration and keeps the data"

echo "== lintian"
command -v lintian >/dev/null || apt-get install -y -q lintian >/dev/null
lintian --tag-display-limit 0 --fail-on error "$deb" 2>&1 | grep -v 'root privileges' || true
lintian --fail-on error "$deb" >/dev/null 2>&1 || fail "lintian reports errors"
ok "lintian reports no errors"
echo "deb: $passed passed, 0 failed"
