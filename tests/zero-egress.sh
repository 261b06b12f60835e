#!/usr/bin/env bash
# Proves that Bulwark, as configured by default, attempts no outbound connection: the appliance
# runs in a network namespace that has only loopback, under strace recording every connect()
# and sendto()/sendmsg() with an address, while this script exercises every feature that needs
# no peer (sign-in, scan uploads, admission reviews, every job run now, a backup, search,
# detection, offline scans, kubesec, a crawl with nothing configured). Any address other than
# loopback or a local socket fails the test. (A namespace without a route makes a connect() to
# the outside fail at once, so packet counters would see nothing: the system calls are what
# shows an attempt.)
#
#   tests/zero-egress.sh [BULWARK_BINARY]      (default: the release build, else the debug one)
#
# Needs root (ip netns) and strace.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=${1:-}
if [ -z "$bin" ]; then
  for b in "$target/release/bulwark" "$target/debug/bulwark"; do [ -x "$b" ] && { bin=$b; break; }; done
fi
[ -x "$bin" ] || { echo "no bulwark binary: cargo build first" >&2; exit 1; }
command -v strace >/dev/null || { echo "strace is needed (apt-get install strace)" >&2; exit 1; }

ns=bulwark-egress-$$
work=$(mktemp -d /tmp/bulwark-egress.XXXXXX)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() { echo "FAILED: $*" >&2; echo "$passed passed, 1 failed"; exit 1; }
inns() { ip netns exec "$ns" "$@"; }
traced() { inns strace -f -qq -e trace=connect,sendto,sendmsg -o "$work/trace.$1" "${@:2}"; }

ip netns add "$ns"
ip -n "$ns" link set lo up
data=$work/data
port=18945
url=https://127.0.0.1:$port
"$bin" --data-dir "$data" user add admin@egress.test --role super-admin --password-stdin \
  <<< 'egress-test-password-1' >/dev/null
key=$("$bin" --data-dir "$data" apikey create --user admin@egress.test --name egress --scope admin \
  | grep -o 'bwk_[^[:space:]]*' | head -1)
scanner=$("$bin" --data-dir "$data" apikey create --user admin@egress.test --name scans --scope scanner \
  | grep -o 'bwk_[^[:space:]]*' | head -1)
[ -n "$key" ] && [ -n "$scanner" ] || fail "could not make API keys"

traced serve env BULWARK_LISTEN="127.0.0.1:$port" "$bin" --data-dir "$data" serve > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 150); do
  [ "$(inns curl -sk -o /dev/null -w '%{http_code}' "$url/healthz" || true)" = 200 ] && break
  sleep 0.2
done
[ "$(inns curl -sk -o /dev/null -w '%{http_code}' "$url/healthz")" = 200 ] || { tail "$work/serve.log" >&2; fail "the appliance did not start"; }
ok "the appliance serves in a namespace with only loopback"

api() { # METHOD PATH [BODY-FILE] -> HTTP status
  local args=(-sk -o "$work/last.json" -w '%{http_code}' -X "$1" -H "authorization: Bearer ${KEY:-$key}")
  [ -n "${3:-}" ] && args+=(-H 'content-type: application/json' --data-binary "@$3")
  inns curl "${args[@]}" "$url$2"
}
echo '{"email":"admin@egress.test","password":"egress-test-password-1"}' > "$work/login.json"
[ "$(inns curl -sk -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
  --data-binary "@$work/login.json" "$url/api/v1/auth/login")" = 200 ] || fail "sign-in"
ok "sign-in"
echo '{"name":"egress","description":"no peer"}' > "$work/cluster.json"
api POST /api/v1/clusters "$work/cluster.json" >/dev/null
status=$(KEY=$scanner api POST "/api/v1/scans?cluster=egress&image=debian:buster" "$root/tests/fixtures/trivy/debian-buster.trivy.json")
[ "$status" = 200 ] || [ "$status" = 201 ] || [ "$status" = 202 ] || fail "scan upload answered $status: $(cat "$work/last.json")"
ok "a Trivy report uploaded"
status=$(api POST /api/v1/admission/egress "$root/tests/fixtures/admission/SYNTHETIC-admissionreview-v1-request.json")
[ "$status" = 200 ] || fail "admission review answered $status"
ok "an admission review answered"
api GET /api/v1/jobs >/dev/null
jobs=$(grep -o '"name":"[a-z_-]*"' "$work/last.json" | cut -d'"' -f4)
[ -n "$jobs" ] || fail "no jobs listed"
for j in $jobs; do
  echo '{}' > "$work/empty.json"
  api POST "/api/v1/jobs/$j/run" "$work/empty.json" >/dev/null
done
sleep 5
ok "every job run now: $(echo $jobs | tr '\n' ' ')"
status=$(api POST /api/v1/backup "$work/empty.json")
[ "$status" = 200 ] || [ "$status" = 201 ] || [ "$status" = 202 ] || fail "backup answered $status"
[ "$(api GET '/api/v1/search?q=debian')" = 200 ] || fail "search"
ok "a backup and a search"

printf 'card 4539 1488 0343 6467 mail jane@acme-corp.de\n' > "$work/detect.txt"
traced detect "$bin" detect "$work/detect.txt" > /dev/null || fail "bulwark detect"
traced kubesec "$bin" kubesec "$root/tests/fixtures/kubesec"/*.yaml > /dev/null 2>&1 || true
traced crawl env -u BULWARK_CRAWL_POSTGRES "$bin" --data-dir "$work/crawl" crawl > /dev/null 2>&1 || true
traced scan "$bin" --data-dir "$work/scan" scan "dir:$root/tests/fixtures/images/debian12-dpkg-status" > /dev/null 2>&1 || true
ok "detect, kubesec, crawl and an offline scan run"

# The tracing sees what it must: a connect() this script makes to the appliance on loopback.
traced control curl -sk -o /dev/null "$url/healthz"
grep -q "inet_addr(\"127.0.0.1\")" "$work/trace.control" || fail "strace did not record a connect()"
rm "$work/trace.control"
kill "$server"; wait "$server" 2>/dev/null || true; server=""
[ -f "$work/trace.serve" ] || fail "the appliance was not traced"
# Every address a call named: AF_INET/AF_INET6 must be loopback; local sockets are fine.
outside=$(cat "$work"/trace.* | grep -E 'sa_family=AF_INET6?' \
  | grep -vE 'inet_addr\("127\.[0-9.]+"\)|inet_pton\(AF_INET6, "::1"|inet_pton\(AF_INET6, "::ffff:127\.' || true)
[ -z "$outside" ] || { echo "$outside" | head -20 >&2; fail "connections to the outside were attempted"; }
calls=$(cat "$work"/trace.* | grep -cE 'connect\(|sendto\(|sendmsg\(' || true)
ok "no outbound connection attempted ($calls socket calls traced, all to loopback or local sockets)"
echo "egress: $passed passed, 0 failed"
