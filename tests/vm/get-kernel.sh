#!/bin/bash
# Debian's current amd64 kernel for the test VM (never installed on the host).
# Usage: get-kernel.sh [CACHE]   (default $ABGUARD_CACHE, /var/cache/abguard-e2e)
# Output: CACHE/kernel/<KVER>/{root/,vmlinux} and CACHE/kernel/kernel.env (KVER KROOT VMLINUX).
# Only boot/ and the module directories the initrd can need are extracted (70 of 400 MB);
# vmlinux is the uncompressed ELF, booted through PVH, which skips SeaBIOS and the xz
# decompressor (both slow under TCG).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
K=${1:-$ABGUARD_CACHE}/kernel
mkdir -p "$K"

resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'; }
KPKG=$(resolve) || true
[ -n "$KPKG" ] || { apt-get update -q >/dev/null; KPKG=$(resolve); }
[ -n "$KPKG" ] || die "cannot resolve linux-image-amd64's kernel package"
KVER=${KPKG#linux-image-}
D=$K/$KVER

if [ ! -s "$D/vmlinux" ] || [ ! -e "$D/root/lib/modules/$KVER/modules.dep" ]; then
  T=$(mktemp -d "$K/tmp.XXXX"); trap 'rm -rf "$T"' EXIT
  (cd "$T" && { apt-get download -q "$KPKG" >/dev/null 2>&1 ||
                { apt-get update -q >/dev/null && apt-get download -q "$KPKG" >/dev/null; }; })
  M=./lib/modules/$KVER/kernel
  mkdir -p "$T/root"
  dpkg-deb --fsys-tarfile "$T/${KPKG}"_*.deb | tar -x -C "$T/root" --wildcards \
    './boot/vmlinuz-*' './boot/config-*' "./lib/modules/$KVER/modules.*" \
    "$M/fs/*" "$M/lib/*" "$M/crypto/*" "$M/arch/*" "$M/drivers/md/*" "$M/drivers/block/*" \
    "$M/drivers/virtio/*" "$M/drivers/char/*" "$M/drivers/firmware/*" "$M/drivers/watchdog/*" \
    "$M/net/ipv6/*" "$M/net/unix/*"
  depmod -b "$T/root" "$KVER"   # the .deb ships no modules.dep
  # bzImage payload is xz; trailing garbage after the stream makes xz exit non-zero
  off=$(grep -abo $'\xfd7zXZ\x00' "$T/root/boot/vmlinuz-$KVER" | head -1 | cut -d: -f1)
  tail -c +$((off + 1)) "$T/root/boot/vmlinuz-$KVER" | xz -dcq >"$T/vmlinux" 2>/dev/null || true
  [ "$(head -c 4 "$T/vmlinux" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] || die "vmlinux extraction failed"
  rm -rf "$D"; mkdir -p "$D"
  mv "$T/root" "$T/vmlinux" "$D/"
  log "kernel $KVER extracted: $(du -sh "$D" | cut -f1)"
fi
# qemu_fw_cfg: Ignition's qemu platform reads its config from fw_cfg (scenario ign);
# efi-pstore: the kernel's panic text in an EFI variable for the next boot (abguard's dracut
# module loads it). A cache extracted before drivers/firmware was in the list gets just these
# added, in place: new files plus depmod, whose outputs are replaced by rename, so a
# concurrent reader is safe.
for f in drivers/firmware/qemu_fw_cfg.ko drivers/firmware/efi/efi-pstore.ko; do
  [ ! -e "$D/root/lib/modules/$KVER/kernel/$f" ] || continue
  T=$(mktemp -d "$K/tmp.XXXX"); trap 'rm -rf "$T"' EXIT
  (cd "$T" && { apt-get download -q "$KPKG" >/dev/null 2>&1 ||
                { apt-get update -q >/dev/null && apt-get download -q "$KPKG" >/dev/null; }; })
  dpkg-deb --fsys-tarfile "$T/${KPKG}"_*.deb | tar -x -C "$T" "./lib/modules/$KVER/kernel/$f"
  install -D -m 0644 "$T/lib/modules/$KVER/kernel/$f" "$D/root/lib/modules/$KVER/kernel/$f"
  depmod -b "$D/root" "$KVER"
  log "kernel $KVER: added $f"
  rm -rf "$T"
done
# a cache extracted before the watchdog drivers were (the hang budget's i6300esb): add
# that one folder in place, so nothing another build reads disappears meanwhile
W=lib/modules/$KVER/kernel/drivers/watchdog
if [ ! -e "$D/root/$W/i6300esb.ko" ]; then
  T=$(mktemp -d "$K/tmp.XXXX"); trap 'rm -rf "$T"' EXIT
  (cd "$T" && { apt-get download -q "$KPKG" >/dev/null 2>&1 ||
                { apt-get update -q >/dev/null && apt-get download -q "$KPKG" >/dev/null; }; })
  mkdir -p "$T/root"
  dpkg-deb --fsys-tarfile "$T/${KPKG}"_*.deb | tar -x -C "$T/root" --wildcards "./$W/*"
  mkdir -p "$D/root/$W"
  cp -a "$T/root/$W/." "$D/root/$W/"
  depmod -b "$D/root" "$KVER"
  log "kernel $KVER: watchdog drivers added"
  rm -rf "$T"
fi
printf 'KVER=%s\nKROOT=%s\nVMLINUX=%s\n' "$KVER" "$D/root" "$D/vmlinux" >"$K/kernel.env"
log "kernel $KVER ready ($K/kernel.env)"
