#!/usr/bin/env bash
# Benchmark (issue 5): live capture under load. nginx in a network namespace answers JSON
# carrying an SSN; wrk in the host namespace POSTs JSON bodies carrying a card, its CVV and an
# email over a veth pair as fast as it can (32 keep-alive connections); `bulwark sensor
# --interface` captures the veth with two fanout workers. Prints the request rate achieved,
# kernel drops, what the sensor reconstructed and its peak RSS (sampled every 200 ms).
#
#   benches/sensor_live.sh [SECONDS]      (root; default 20)
#
# Needs nginx, wrk and iproute2 (installed from Debian when missing).
set -euo pipefail
SECS=${1:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/bulwark-target}
for t in nginx wrk ip; do
  command -v $t >/dev/null || { echo "installing $t"; DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light wrk iproute2 >/dev/null; }
done
(cd "$root" && cargo build --release --quiet)
bin=$CARGO_TARGET_DIR/release/bulwark
work=$(mktemp -d)
ns=bwbench$$
cleanup() {
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  ip link del bwb0 2>/dev/null || true
  ip netns del $ns 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add $ns
ip link add bwb0 type veth peer name bwb1
ip link set bwb1 netns $ns
ip addr add 10.250.0.1/24 dev bwb0 && ip link set bwb0 up
ip netns exec $ns sh -c 'ip addr add 10.250.0.2/24 dev bwb1 && ip link set bwb1 up && ip link set lo up'
cat > "$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_buffer_size 16k;
  server {
    listen 10.250.0.2:8080;
    location / {
      default_type application/json;
      return 200 '{"id":42,"ssn":"536-90-4399","status":"active"}';
    }
  }
}
EOF
ip netns exec $ns nginx -c "$work/nginx.conf"
cat > "$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = '{"customer":{"email":"ada@analytical.engineering","id":' .. n .. '},"card":{"number":"4539578763621486","cvv":"123"},"items":[{"sku":"SKU-ABC-12345","qty":1}]}'
  return wrk.format(nil, "/api/customers/" .. n, nil, body)
end
EOF
"$bin" sensor --interface bwb0 --workers 2 --output "$work/events.jsonl" 2>"$work/sensor.err" &
sensor=$!
until grep -q "capturing on" "$work/sensor.err" 2>/dev/null; do sleep 0.1; done
peak=0
( while kill -0 $sensor 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' /proc/$sensor/status 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss && echo $peak > "$work/peak"
    sleep 0.2
  done ) &
wrk -t1 -c32 -d"${SECS}s" -s "$work/post.lua" http://10.250.0.2:8080/ > "$work/wrk.txt"
sleep 1
kill -TERM $sensor
wait $sensor || true
sleep 0.3
echo "${SECS}s of load on $(nproc) cores (wrk, nginx and the sensor share them); target: 20,000 requests/s with no drops"
grep -E "Requests/sec|requests in" "$work/wrk.txt"
tail -1 "$work/sensor.err" | python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
print("sensor: %d frames, %d HTTP exchanges, kernel packets %d, kernel drops %d, gaps %d bytes" % (
    s["frames"], s["exchanges"], s["kernel_packets"], s["kernel_drops"], s["gap_bytes"]))'
python3 - "$work/events.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    print("  %s %s %s: %s x%d" % (e["method"], e["endpoint"], e["direction"], ",".join(e["data_types"]), e["exchanges"]))
EOF
echo "sensor peak RSS: $(( $(cat "$work/peak" 2>/dev/null || echo 0) / 1024 )) MiB"
