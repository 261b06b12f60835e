#!/usr/bin/env bash
# Benchmark (issue 4): a cold `bulwark scan` of a real two-layer Debian 12 image stored as an OCI
# layout, beside `gzip -dc` of the same layers and Trivy's catalog-only run, all in one run.
# Prints CPU seconds and peak RSS of each, the import speed of the 100,000-advisory database the
# scan matches against, and 20 scans run concurrently.
#
#   benches/debian_image.sh            (root: debootstrap; ~3 min the first time, cached after)
#
# The image: `debootstrap --variant=minbase bookworm` (≈90 packages), made into an OCI layout by
# umoci as two layers (everything but /usr; then /usr). The database: 100,000 synthetic OSV
# records, 5,000 of them on the image's own packages (source names, Debian:12, ranges both
# below and above the installed versions), the rest on other packages and ecosystems.
# Cached under $BULWARK_BENCH_CACHE (default ~/.cache/bulwark-bench).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${BULWARK_BENCH_CACHE:-$HOME/.cache/bulwark-bench}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/bulwark-target}
mkdir -p "$cache"
log() { printf '[bench] %s\n' "$*" >&2; }

for tool in debootstrap umoci; do
  command -v $tool >/dev/null || { log "installing $tool"; DEBIAN_FRONTEND=noninteractive apt-get install -y -q $tool >/dev/null; }
done

if [ ! -d "$cache/rootfs" ]; then
  log "debootstrap bookworm (minbase) into $cache/rootfs"
  rm -rf "$cache/rootfs.tmp"
  debootstrap --variant=minbase bookworm "$cache/rootfs.tmp" http://deb.debian.org/debian >"$cache/debootstrap.log"
  mv "$cache/rootfs.tmp" "$cache/rootfs"
fi

layout=$cache/layout
if [ ! -f "$layout/index.json" ]; then
  log "building the two-layer OCI layout"
  rm -rf "$layout" "$cache/l1" "$cache/l2"
  mkdir -p "$cache/l1" "$cache/l2"
  # As Debian's official image: no downloaded .debs or package lists.
  rm -f "$cache/rootfs"/var/cache/apt/archives/*.deb "$cache/rootfs"/var/cache/apt/*.bin
  rm -rf "$cache/rootfs"/var/lib/apt/lists/*
  (cd "$cache/rootfs" && tar --exclude=./usr --exclude=./proc --exclude=./sys --exclude=./dev -cf - . ) | tar -C "$cache/l1" -xf -
  mkdir -p "$cache/l2/usr" && cp -a "$cache/rootfs/usr/." "$cache/l2/usr/"
  umoci init --layout "$layout" >/dev/null
  umoci new --image "$layout:12" >/dev/null
  umoci insert --image "$layout:12" "$cache/l1" / >/dev/null
  umoci insert --image "$layout:12" "$cache/l2" / >/dev/null
  rm -rf "$cache/l1" "$cache/l2"
fi

log "building the release binary"
(cd "$root" && cargo build --release --quiet)
bin=$CARGO_TARGET_DIR/release/bulwark

db=$cache/vulndb-100k.redb
if [ ! -f "$db" ]; then
  log "writing 100,000 synthetic OSV records"
  python3 - "$cache/rootfs/var/lib/dpkg/status" "$cache/osv-100k.zip" <<'PY'
import json, sys, zipfile
status, out = sys.argv[1], sys.argv[2]
names = []
for stanza in open(status).read().split("\n\n"):
    f = dict(l.split(": ", 1) for l in stanza.splitlines() if ": " in l and not l.startswith(" "))
    if "Package" in f:
        names.append(f.get("Source", f["Package"]).split(" ")[0])
names = sorted(set(names))
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for i in range(100_000):
        if i < 5000:
            eco, name = "Debian:12", names[i % len(names)]
            # Half below any installed version (not affecting), half far above (affecting).
            fixed = "0.0.%d" % i if i % 2 else "999.%d" % i
        else:
            eco = ["Debian:12", "Alpine:v3.19", "PyPI", "npm"][i % 4]
            name, fixed = "pkg%d" % (i % 20000), "1.%d.%d" % (i % 30, i % 7)
        rec = {"id": "BENCH-%06d" % i, "modified": "2026-01-01T00:00:00Z",
               "aliases": ["CVE-2026-%05d" % i], "summary": "synthetic advisory",
               "database_specific": {"severity": ["LOW", "MEDIUM", "HIGH", "CRITICAL"][i % 4]},
               "affected": [{"package": {"ecosystem": eco, "name": name},
                             "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]}
        z.writestr("BENCH-%06d.json" % i, json.dumps(rec))
PY
  log "importing"
  "$bin" db import --db "$db" "$cache/osv-100k.zip" | sed 's/^/[import] /'
fi

timed() { # label command... → "label: CPU s (user+sys), wall s, peak RSS MiB"
  local label=$1; shift
  local tfile
  tfile=$(mktemp)
  /usr/bin/time -o "$tfile" -f '%U %S %e %M' "$@" >/dev/null 2>/dev/null || { echo "$label: failed"; return; }
  read -r u s e m <"$tfile"
  rm -f "$tfile"
  printf '%-34s CPU %6.2f s   wall %6.2f s   peak RSS %6.1f MiB\n' "$label" "$(echo "$u + $s" | bc)" "$e" "$(echo "$m / 1024" | bc -l)"
}

layers=$(python3 -c "
import json,sys
L=sys.argv[1]
idx=json.load(open(L+'/index.json'))
m=json.load(open(L+'/blobs/sha256/'+idx['manifests'][0]['digest'].split(':')[1]))
print(' '.join(L+'/blobs/sha256/'+l['digest'].split(':')[1] for l in m['layers']))
" "$layout")
bytes=$(du -cb $layers | tail -1 | cut -f1)
pkgs=$(grep -c '^Package: ' "$cache/rootfs/var/lib/dpkg/status")
echo "image: Debian 12 minbase, $pkgs packages, 2 layers, $(echo "$bytes / 1048576" | bc -l | cut -c1-5) MiB gzipped"
echo "database: $("$bin" db status --db "$db" | head -3 | tr '\n' ' ')"
for round in 1 2 3; do
  echo "-- round $round"
  timed "gzip -dc (layers only)" sh -c "gzip -dc $layers"
  timed "bulwark scan (catalog + match)" "$bin" scan --quiet --db "$db" --format json "oci:$layout:12"
  trivy=${BULWARK_TEST_TRIVY:-$(command -v trivy || true)}
  if [ -n "$trivy" ]; then
    # A fresh cache each round: Trivy caches analysed layers, and this measures a cold scan.
    tcache=$(mktemp -d)
    timed "trivy 0.76 (catalog only)" "$trivy" image --input "$layout" --format cyclonedx --cache-dir "$tcache" \
      --skip-db-update --offline-scan --disable-telemetry --skip-version-check --quiet
    rm -rf "$tcache"
  fi
done
findings=$("$bin" scan --quiet --db "$db" --format json "oci:$layout:12" | python3 -c "import json,sys; print(sum(len(r.get('Vulnerabilities') or []) for r in json.load(sys.stdin)['Results']))")
echo "findings per scan: $findings"

echo "-- 20 scans at once"
start=$(date +%s.%N)
seq 20 | xargs -P 20 -I{} sh -c "$bin scan --quiet --db $db --format json oci:$layout:12 > /dev/null"
end=$(date +%s.%N)
echo "20 concurrent scans: wall $(echo "$end - $start" | bc | cut -c1-5) s on $(nproc) cores"
