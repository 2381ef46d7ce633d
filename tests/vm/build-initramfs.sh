#!/bin/bash
# dracut 059 initramfs for the test VM: the minimal systemd module set, dm, the test verity
# module (dracut/99verity-usr) and any project modules. /usr/lib/dracut is not modified: a
# private dracutbasedir of symlinks adds the extra modules.
# Usage: build-initramfs.sh HASH_OFFSET OUT.img [CACHE]   (HASH_OFFSET "": none built in; an
#        ext4 slot needs none, verity-usr-open reads it from the superblock)
# env: EXTRA_DRACUT_MODULES="/abs/dracut/50abguard ..." (added by name: 50abguard -> abguard)
#      DRACUT_COMPRESS=--no-compress (zstd costs ~0.8 s of every boot under TCG)
# The kernel comes from CACHE/kernel/kernel.env (get-kernel.sh); initrd systemd/udev come from
# the host, which must match the rootfs's (both Debian 12 here).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HOFF=${1?hash offset (empty: none built in, ext4 slots only)}; OUTIMG=${2:?output}; CACHE=${3:-$ABGUARD_CACHE}
# shellcheck disable=SC1091
. "$CACHE/kernel/kernel.env"
OUTIMG=$(realpath -m "$OUTIMG"); mkdir -p "$(dirname "$OUTIMG")"
B=$(mktemp -d "$(dirname "$OUTIMG")/dracutbase.XXXX"); trap 'rm -rf "$B"' EXIT
mkdir -p "$B/base/modules.d" "$B/conf.d"
for f in /usr/lib/dracut/*; do [ "${f##*/}" = modules.d ] || ln -s "$f" "$B/base/"; done
ln -s /usr/lib/dracut/modules.d/* "$B/base/modules.d/"
MODS="systemd systemd-initrd dracut-systemd udev-rules base fs-lib rootfs-block dm"
for d in "$VM_DIR/dracut/99verity-usr" ${EXTRA_DRACUT_MODULES:-}; do
  [ -r "$d/module-setup.sh" ] || die "$d is not a dracut module directory"
  d=$(realpath "$d"); n=${d##*/}
  ln -sfn "$d" "$B/base/modules.d/$n"
  MODS="$MODS ${n##[0-9][0-9]}"
done
export dracutbasedir=$B/base VERITY_USR_HASH_OFFSET=$HOFF
# shellcheck disable=SC2086 # DRACUT_COMPRESS is one option word
dracut --quiet --force --no-hostonly --reproducible --conf /dev/null --confdir "$B/conf.d" \
  --kver "$KVER" --kmoddir "$KROOT/lib/modules/$KVER" -m "$MODS" \
  --filesystems "ext4 squashfs erofs" ${DRACUT_COMPRESS:---no-compress} --no-early-microcode "$OUTIMG"
log "initramfs $OUTIMG: $(du -h "$OUTIMG" | cut -f1), modules: $MODS"
