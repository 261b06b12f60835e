#!/usr/bin/env bash
# Stops exactly the processes tests/services/start.sh recorded in DIR/pids, then removes DIR.
set -u
DIR=${1:?usage: stop.sh DIR}
[ -f "$DIR/pids" ] || exit 0
while read -r name pid; do
  [ -n "${pid:-}" ] || continue
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    printf '[services] stopped %s (%s)\n' "$name" "$pid" >&2
  fi
done < "$DIR/pids"
rm -rf "$DIR"
