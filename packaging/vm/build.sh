#!/usr/bin/env bash
# Builds the Bulwark VM appliance: a bootable Debian 12 disk image (UEFI, systemd-boot, a serial
# console) with Bulwark installed from the .deb and enabled.
#
#   packaging/vm/build.sh OUT.qcow2 [DEB]     (DEB: default the newest target/debian/*.deb)
#
# Made without mounting anything: debootstrap into a directory, the root filesystem written
# with mkfs.ext4 -d, the EFI system partition with mkfs.vfat and mcopy, both placed into a GPT
# disk with dd. First boot creates the super-admin's password and shows it on the console
# (packaging/vm/firstboot), then the address (console-banner). Needs root and Debian's
# debootstrap, e2fsprogs, dosfstools, mtools, fdisk and qemu-utils.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: build.sh OUT.qcow2 [DEB]}
deb=${2:-$(ls "$root"/target/debian/bulwark_*_amd64.deb 2>/dev/null | sort -V | tail -1)}
[ -f "$deb" ] || { echo "no .deb: run packaging/build-deb.sh first" >&2; exit 1; }
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DISK_MB=${DISK_MB:-3072}
ESP_MB=200
log() { printf '[vm] %s\n' "$*" >&2; }

work=$(mktemp -d /tmp/bulwark-vm.XXXXXX)
fs=$work/rootfs
cleanup() {
  for m in proc sys dev; do mountpoint -q "$fs/$m" 2>/dev/null && umount -l "$fs/$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

log "debootstrap Debian 12 into $fs"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,udev,dbus,linux-image-amd64,systemd-boot-efi,iproute2,curl,ca-certificates,kmod \
  bookworm "$fs" "$MIRROR" > "$work/debootstrap.log" 2>&1 \
  || { tail -30 "$work/debootstrap.log" >&2; exit 1; }
mount -t proc proc "$fs/proc"; mount --bind /sys "$fs/sys"; mount --bind /dev "$fs/dev"
printf '#!/bin/sh\nexit 101\n' > "$fs/usr/sbin/policy-rc.d"; chmod +x "$fs/usr/sbin/policy-rc.d"

log "installing $(basename "$deb")"
cp "$deb" "$fs/tmp/bulwark.deb"
chroot "$fs" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/bulwark.deb \
  > "$work/install.log" 2>&1 || { tail -30 "$work/install.log" >&2; exit 1; }
rm -f "$fs/tmp/bulwark.deb" "$fs/usr/sbin/policy-rc.d"
chroot "$fs" apt-get clean

log "configuring the appliance"
install -d "$fs/usr/lib/bulwark"
install -m 0755 "$here/firstboot" "$here/console-banner" "$fs/usr/lib/bulwark/"
install -m 0644 "$here/bulwark-firstboot.service" "$here/bulwark-console.service" "$fs/usr/lib/systemd/system/"
echo bulwark > "$fs/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tbulwark\n' > "$fs/etc/hosts"
cat > "$fs/etc/fstab" <<FSTAB
LABEL=bulwark-root / ext4 errors=remount-ro 0 1
LABEL=BULWARK-ESP /boot/efi vfat umask=0077 0 2
FSTAB
mkdir -p "$fs/boot/efi" "$fs/etc/systemd/network"
cat > "$fs/etc/systemd/network/80-dhcp.network" <<NET
[Match]
Name=en* eth*

[Network]
DHCP=yes
NET
ln -sf /dev/null "$fs/etc/systemd/system/systemd-networkd-wait-online.service"
for unit in systemd-networkd.service bulwark.service bulwark-firstboot.service bulwark-console.service; do
  chroot "$fs" systemctl enable "$unit" >/dev/null 2>&1
done
# No password sign-in on the console: the appliance is run from its web console.
chroot "$fs" passwd -l root >/dev/null
: > "$fs/etc/machine-id"

log "the boot partition (systemd-boot, the kernel, the initramfs)"
kernel=$(ls "$fs"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$fs"/boot/initrd.img-* | sort -V | tail -1)
esp=$work/esp.img
mkfs.vfat -C -n BULWARK-ESP "$esp" $((ESP_MB * 1024)) >/dev/null
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$esp" "$fs/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$kernel" ::/vmlinuz
mcopy -i "$esp" "$initrd" ::/initrd.img
printf 'default bulwark.conf\ntimeout 0\n' > "$work/loader.conf"
printf 'title Bulwark appliance\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=LABEL=bulwark-root ro console=tty0 console=ttyS0,115200 quiet\n' \
  > "$work/bulwark.conf"
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/bulwark.conf" ::/loader/entries/bulwark.conf

for m in proc sys dev; do umount -l "$fs/$m"; done

log "the root filesystem"
rootimg=$work/root.img
root_mb=$((DISK_MB - ESP_MB - 2))
mkfs.ext4 -q -L bulwark-root -d "$fs" "$rootimg" "${root_mb}M"

log "the disk"
disk=$work/disk.raw
truncate -s "${DISK_MB}M" "$disk"
sfdisk -q "$disk" <<PARTS
label: gpt
start=1MiB, size=${ESP_MB}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
start=$((ESP_MB + 1))MiB, size=${root_mb}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
PARTS
dd if="$esp" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$rootimg" of="$disk" bs=1M seek=$((ESP_MB + 1)) conv=notrunc,sparse status=none
qemu-img convert -c -O qcow2 "$disk" "$out"
log "wrote $out ($(du -h "$out" | cut -f1))"
