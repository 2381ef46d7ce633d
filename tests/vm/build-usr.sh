#!/bin/bash
# One USR slot payload, Flatcar style: [btrfs|ext4|squashfs|erofs /usr, zero-padded to
# FS_BLOCKS*4096] [dm-verity superblock + hash tree]. FS_BLOCKS is Flatcar's fs_blocks: for btrfs
# (the default, as Flatcar's /usr) Flatcar's own 260094 (= the hash offset 1,065,345,024 that
# minimal-init hard-codes) in a 2 GiB slot (build_library/disk_layout.json); otherwise the
# largest n for which n + the hash tree fits the slot.
# Usage: build-usr.sh ROOTFS VERSION_ID OUT.part
# env: USRFS=btrfs (Flatcar's: zstd-compressed when mkfs.btrfs has --compress, btrfs-progs
#      >= 6.13; bookworm-backports has it, install-deps.sh installs it) | ext4 (exactly FS_BLOCKS
#      blocks, so the hash tree starts where the file system's own size says, as bootengine's
#      e2size reads it) | squashfs | erofs (both lz4); USR_MB=2048 for btrfs, 256 for ext4,
#      128 otherwise; FS_BLOCKS (btrfs: 260094)
#      EXTRA_USR="DIR[:DIR...]" trees laid out like / whose usr/ is copied over /usr, in order
#      PROBE=1 install the bootprobe reporter (guest/) and the emergency->reboot drop-in
# Output: OUT.part (exactly USR_MB MiB, sparse) and OUT.env (VERSION_ID ROOTHASH HASH_OFFSET ...)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ROOTFS=${1:?rootfs}; VER=${2:?version}; OUTP=${3:?out.part}
USRFS=${USRFS:-btrfs}
case $USRFS in
  btrfs) USR_MB=${USR_MB:-2048}; FS_BLOCKS=${FS_BLOCKS:-260094} ;;
  ext4) USR_MB=${USR_MB:-256} ;;
  *) USR_MB=${USR_MB:-128} ;;
esac
ROOTFS=${ROOTFS%/}
# staging next to the rootfs: same filesystem, so the hard-link copy below works
W=$(mktemp -d "$ROOTFS.stage.XXXX"); trap 'rm -rf "$W"' EXIT

part_blocks=$((USR_MB * 256))
hash_blocks() { local n=$1 t=1; while [ "$n" -gt 1 ]; do n=$(((n + 127) / 128)); t=$((t + n)); done; echo "$t"; }
fs_blocks=${FS_BLOCKS:-$part_blocks}
while [ $((fs_blocks + $(hash_blocks $fs_blocks))) -gt $part_blocks ]; do fs_blocks=$((fs_blocks - 1)); done
HASH_OFFSET=$((fs_blocks * 4096))

# Hard-link copy is instant; from here on files are replaced, never written in place,
# or the cached rootfs would change too.
cp -al "$ROOTFS/usr" "$W/usr"
rm -f "$W/usr/lib/os-release"
cat >"$W/usr/lib/os-release" <<OSR
NAME="abguard test OS"
ID=abguard-test
ID_LIKE=debian
VERSION="$VER"
VERSION_ID=$VER
PRETTY_NAME="abguard test OS $VER (Debian 12 based)"
OSR
if [ "${PROBE:-1}" = 1 ]; then
  S=$W/usr/lib/systemd/system
  install -m 0755 "$VM_DIR/guest/bootprobe" "$W/usr/libexec/bootprobe"
  install -m 0644 "$VM_DIR/guest/bootprobe.service" "$S/bootprobe.service"
  mkdir -p "$S/multi-user.target.wants" "$S/emergency.service.d"
  ln -sf ../bootprobe.service "$S/multi-user.target.wants/bootprobe.service"
  install -m 0644 "$VM_DIR/guest/emergency-reboot.conf" "$S/emergency.service.d/50-abguard-test.conf"
fi
IFS=: read -ra extra <<<"${EXTRA_USR:-}"
for d in "${extra[@]}"; do
  [ -n "$d" ] || continue
  [ -d "$d/usr" ] || die "EXTRA_USR $d has no usr/ (only usr/ goes into a USR image)"
  cp -a --no-preserve=ownership --remove-destination "$d/usr/." "$W/usr/"
done

case "$USRFS" in
  # Flatcar's /usr: btrfs, zstd, exactly FS_BLOCKS blocks (minimal-init mounts it with
  # rescue=nologreplay, a btrfs option); a sparse file, so the 1 GiB costs only its data
  btrfs) FSTYPE=btrfs; comp=()
    if mkfs.btrfs --help 2>&1 | grep -q -- --compress; then comp=(--compress zstd)
    else log "mkfs.btrfs $(mkfs.btrfs --version | head -1 | awk '{print $NF}') has no --compress: /usr uncompressed"; fi
    truncate -s "$HASH_OFFSET" "$W/fs.img"
    # -m single: one copy of each metadata block, so a flipped byte is the one btrfs reads
    mkfs.btrfs -q -f -L USR -m single -b "$HASH_OFFSET" --rootdir "$W/usr" "${comp[@]}" "$W/fs.img" >/dev/null ;;
  # read-only at runtime, as Flatcar's: no journal, no reserved blocks, root-owned
  ext4) FSTYPE=ext4
    mkfs.ext4 -q -F -b 4096 -O ^has_journal,^resize_inode -m 0 -E root_owner=0:0 -L USR \
      -d "$W/usr" "$W/fs.img" "$fs_blocks" >/dev/null ;;
  squashfs) FSTYPE=squashfs; mksquashfs "$W/usr" "$W/fs.img" -noappend -quiet -no-progress -comp lz4 >/dev/null ;;
  erofs) FSTYPE=erofs; mkfs.erofs --quiet -zlz4hc "$W/fs.img" "$W/usr" ;;
  *) die "USRFS=$USRFS: ext4, squashfs or erofs" ;;
esac
fs_real=$(stat -c %s "$W/fs.img")
[ "$fs_real" -le "$HASH_OFFSET" ] || die "/usr fs is $((fs_real >> 20)) MiB, slot data area $((HASH_OFFSET >> 20)) MiB: raise USR_MB"
mv "$W/fs.img" "$OUTP"
truncate -s $((USR_MB << 20)) "$OUTP"
veritysetup format --hash-offset=$HASH_OFFSET --data-blocks=$fs_blocks \
  --data-block-size=4096 --hash-block-size=4096 "$OUTP" "$OUTP" >"$W/verity.txt"
[ "$(stat -c %s "$OUTP")" -eq $((USR_MB << 20)) ] || die "verity tree overflowed the slot"
ROOTHASH=$(awk '/^Root hash:/{print $3}' "$W/verity.txt")
cat >"${OUTP%.part}.env" <<ENV
VERSION_ID=$VER
ROOTHASH=$ROOTHASH
HASH_OFFSET=$HASH_OFFSET
HASH_END=$(( (HASH_OFFSET + ($(hash_blocks $fs_blocks) + 1) * 4096 + 1048575) / 1048576 * 1048576 ))
FS_BLOCKS=$fs_blocks
USRFS=$USRFS
USR_FSTYPE=$FSTYPE
USR_COMPRESS=${comp[1]:-none}
USR_MB=$USR_MB
ENV
log "usr $VER: $USRFS${comp:+ (zstd)} $(( $(du -k "$OUTP" | cut -f1) >> 10 )) MiB allocated, $((fs_real >> 20)) MiB in a $USR_MB MiB slot, hash offset $HASH_OFFSET, root hash ${ROOTHASH:0:16}..."
