#!/usr/bin/env bash
# Builds the Debian package: target/debian/bulwark_<version>_amd64.deb
#
#   packaging/build-deb.sh [--no-build]     (--no-build: package the release binary already built)
#
# Contents: /usr/bin/bulwark; the appliance and sensor units (packaging/deb, hardened); the
# system user and /var/lib/bulwark (0700) through sysusers.d and tmpfiles.d; the configuration
# /etc/bulwark/bulwark.toml (a conffile: kept across upgrades, removed on purge) and
# /etc/bulwark/sensor.env; manual pages and bash, zsh and fish completions generated from the
# command line. Needs cargo, dpkg-deb and gzip; no network once the crates are fetched.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
[ "${1:-}" = "--no-build" ] || cargo build --release --locked --bin bulwark
bin=$CARGO_TARGET_DIR/release/bulwark
[ -x "$bin" ] || { echo "no release binary at $bin" >&2; exit 1; }

out=$root/target/debian
pkg=$out/pkg
rm -rf "$pkg"
mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/etc/bulwark" \
  "$pkg/usr/lib/systemd/system" "$pkg/usr/lib/sysusers.d" "$pkg/usr/lib/tmpfiles.d" \
  "$pkg/usr/share/man/man1" "$pkg/usr/share/doc/bulwark" \
  "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" \
  "$pkg/usr/share/fish/vendor_completions.d"

install -m 0755 "$bin" "$pkg/usr/bin/bulwark"
strip --strip-unneeded "$pkg/usr/bin/bulwark"
install -m 0644 packaging/deb/bulwark.service packaging/deb/bulwark-sensor.service \
  "$pkg/usr/lib/systemd/system/"
install -m 0644 packaging/deb/bulwark.sysusers "$pkg/usr/lib/sysusers.d/bulwark.conf"
install -m 0644 packaging/deb/bulwark.tmpfiles "$pkg/usr/lib/tmpfiles.d/bulwark.conf"
# The packaged configuration: the documented defaults, with the data where the unit keeps it and
# the listener on every interface (an appliance is reached by browsers and admission webhooks).
sed -e 's|^data_dir = .*|data_dir = "/var/lib/bulwark"|' \
    -e 's|^listen = .*|listen = "0.0.0.0:8443"|' config/bulwark.toml > "$pkg/etc/bulwark/bulwark.toml"
# Shipped 0644 as Debian wants; postinst narrows both (the group of the first to bulwark).
chmod 0644 "$pkg/etc/bulwark/bulwark.toml"
install -m 0644 packaging/deb/sensor.env "$pkg/etc/bulwark/sensor.env"
mkdir -p "$pkg/usr/share/lintian/overrides"
install -m 0644 packaging/deb/lintian-overrides "$pkg/usr/share/lintian/overrides/bulwark"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" generate man "$tmp/man"
"$bin" generate completions "$tmp/completions"
for page in "$tmp"/man/*.1; do
  gzip -9n < "$page" > "$pkg/usr/share/man/man1/$(basename "$page").gz"
done
chmod 0644 "$pkg"/usr/share/man/man1/*.gz
install -m 0644 "$tmp/completions/bulwark.bash" "$pkg/usr/share/bash-completion/completions/bulwark"
install -m 0644 "$tmp/completions/_bulwark" "$pkg/usr/share/zsh/vendor-completions/_bulwark"
install -m 0644 "$tmp/completions/bulwark.fish" "$pkg/usr/share/fish/vendor_completions.d/bulwark.fish"

install -m 0644 packaging/deb/copyright "$pkg/usr/share/doc/bulwark/copyright"
date=$(date -R -u -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")
printf 'bulwark (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- Bulwark maintainers <maintainers@bulwark.invalid>  %s\n' \
  "$version" "$version" "$date" | gzip -9n > "$pkg/usr/share/doc/bulwark/changelog.gz"
chmod 0644 "$pkg/usr/share/doc/bulwark/changelog.gz"

# The C library the binary needs at least (its newest GLIBC_ symbol version).
glibc=$(objdump -T "$pkg/usr/bin/bulwark" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<EOF
Package: bulwark
Version: $version
Architecture: $arch
Maintainer: Bulwark maintainers <maintainers@bulwark.invalid>
Installed-Size: $size
Depends: libc6 (>= $glibc), libgcc-s1, systemd
Section: admin
Priority: optional
Homepage: https://bulwark.invalid/
Description: on-prem Kubernetes security appliance
 One program that replaces a stack of cluster security tools for air-gapped
 networks: image compliance and an admission webhook, an offline vulnerability
 scanner, cluster audits, Gatekeeper policies, Falco runtime events, and
 sensitive-data discovery in traffic and in data stores. It needs no database
 server, message queue or internet access.
EOF
printf '/etc/bulwark/bulwark.toml\n/etc/bulwark/sensor.env\n' > "$pkg/DEBIAN/conffiles"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$pkg/DEBIAN/"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
  | xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$pkg/DEBIAN/md5sums" "$pkg/DEBIAN/control" "$pkg/DEBIAN/conffiles"

deb=$out/bulwark_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
rm -rf "$pkg"
echo "$deb"
