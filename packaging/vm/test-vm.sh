#!/usr/bin/env bash
# Boots the VM appliance under QEMU (software emulation unless VM_ACCEL=kvm) with
# user-mode networking restricted to the host (the guest reaches nothing else), and proves:
# /healthz answers through a forwarded port, the console showed the first password and the
# address, and that password signs in. Prints the time from power-on to /healthz.
#
#   packaging/vm/test-vm.sh IMAGE.qcow2
#
# The image is not changed (the guest writes to an overlay). QEMU is stopped by PID.
set -euo pipefail
image=$(readlink -f "${1:?usage: test-vm.sh IMAGE.qcow2}")
PORT=${VM_TEST_PORT:-18944}
BOOT_SECONDS=${VM_BOOT_SECONDS:-900}
work=$(mktemp -d /tmp/bulwark-vm-test.XXXXXX)
qemu=""
cleanup() { [ -n "$qemu" ] && kill "$qemu" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }
fail() {
  echo "FAILED: $*" >&2
  [ -f "$work/serial.log" ] && tail -40 "$work/serial.log" >&2
  echo "$passed passed, 1 failed"; exit 1
}

code=/usr/share/OVMF/OVMF_CODE_4M.fd
[ -f "$code" ] || fail "no OVMF firmware (apt-get install ovmf)"
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$work/vars.fd"
qemu-img create -q -f qcow2 -F qcow2 -b "$image" "$work/disk.qcow2"
# Software emulation by default: /dev/kvm exists on some sandboxes whose KVM cannot run
# firmware. VM_ACCEL=kvm where it can.
accel=${VM_ACCEL:-tcg}
start=$(date +%s)
qemu-system-x86_64 -machine q35,accel="$accel" -m 1536 -smp 2 \
  -drive if=pflash,format=raw,readonly=on,file="$code" \
  -drive if=pflash,format=raw,file="$work/vars.fd" \
  -drive file="$work/disk.qcow2",if=virtio,format=qcow2 \
  -nic user,model=virtio-net-pci,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:8443 \
  -display none -serial file:"$work/serial.log" -no-reboot > "$work/qemu.log" 2>&1 &
qemu=$!
echo "booting ($accel) ..."
up=""
while [ $(( $(date +%s) - start )) -lt "$BOOT_SECONDS" ]; do
  kill -0 "$qemu" 2>/dev/null || { cat "$work/qemu.log" >&2; fail "qemu exited"; }
  if [ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 5 "https://127.0.0.1:$PORT/healthz" || true)" = 200 ]; then
    up=$(( $(date +%s) - start )); break
  fi
  sleep 2
done
[ -n "$up" ] || fail "/healthz did not answer within ${BOOT_SECONDS}s"
ok "/healthz answered ${up}s after power-on ($accel)"

for _ in $(seq 1 60); do grep -q 'Bulwark is listening' "$work/serial.log" && break; sleep 2; done
password=$(sed -n 's/.*sign in as admin@bulwark.local with the password: \([^ [:cntrl:]]*\).*/\1/p' "$work/serial.log" | head -1)
[ -n "$password" ] || fail "the console did not show the first password"
grep -q 'https://10\.0\.2\.15:8443/' "$work/serial.log" || fail "the console did not show the address"
ok "the console showed the first password and https://10.0.2.15:8443/"
status=$(curl -sk -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
  -d "{\"email\":\"admin@bulwark.local\",\"password\":\"$password\"}" "https://127.0.0.1:$PORT/api/v1/auth/login")
[ "$status" = 200 ] || fail "signing in with the console's password answered $status"
ok "that password signs in"
echo "vm: $passed passed, 0 failed"
