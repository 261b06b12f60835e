#!/usr/bin/env bash
# Runs every Bulwark test: installs and starts the real services the tests need
# (tests/services), checks formatting and lints, runs the whole suite, stops the services,
# then builds the .deb and proves it in a throwaway Debian root (packaging/test-deb.sh).
# CI runs exactly this (.ci/run). A cold run builds the dependencies once (~5 min on 2 cores);
# CARGO_TARGET_DIR defaults to a cache outside the clone so later runs are incremental.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/bulwark-target}
export BULWARK_TEST_ARTIFACTS=${BULWARK_TEST_ARTIFACTS:-$root/test-artifacts}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

services=$(mktemp -d /tmp/bulwark-services.XXXXXX)
trap 'tests/services/stop.sh "$services"' EXIT
tests/services/start.sh "$services"
set -a
# shellcheck disable=SC1091
. "$services/endpoints.env"
set +a

# A shared target dir can hold this crate built from another checkout path with the same unit
# hash; cargo would then reuse that build. Rebuild this crate (dependencies stay cached).
cargo clean -p bulwark

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked
echo "== the .deb: build, then install, upgrade and purge in a throwaway Debian root"
packaging/build-deb.sh
packaging/test-deb.sh
echo "== a release signed and verified with standard tools"
packaging/test-release.sh
echo "== the VM appliance: build, boot under QEMU, reach /healthz"
vm=$(mktemp -d /tmp/bulwark-vm-image.XXXXXX)
packaging/vm/build.sh "$vm/bulwark.qcow2"
packaging/vm/test-vm.sh "$vm/bulwark.qcow2"
rm -rf "$vm"
echo "== zero egress: every feature that needs no peer, in a loopback-only namespace, traced"
tests/zero-egress.sh
echo "== all tests passed; artifacts in $BULWARK_TEST_ARTIFACTS"
