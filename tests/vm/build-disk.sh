#!/bin/bash
# Flatcar-layout test disk as a sparse file, built with no loop device and no device-mapper:
#   1 EFI-SYSTEM (vfat)  2 BIOS-BOOT  3 USR-A  4 USR-B  6 OEM (ext4)  7 OEM-CONFIG  9 ROOT (ext4)
# USR-A/B hold slot payloads (build-usr.sh: the rootfs's /usr as ext4|squashfs|erofs + dm-verity),
# ROOT holds the rest of the rootfs.
# Usage: build-disk.sh ROOTFS OUTDIR [USR_A.part [USR_B.part|none]]
#   Payloads not given (or "") are built here into OUTDIR/usr-{a,b}.part with build-usr.sh, from
#   env VERSION_A=1.0.0 VERSION_B=2.0.0, EXTRA_USR (both slots) and EXTRA_USR_A / EXTRA_USR_B
#   (one slot, after EXTRA_USR), USRFS, USR_MB. "none" leaves USR-B zeroed (fresh install).
# env: ROOT_MB=128, EXTRA_ROOT=DIR copied over ROOT
# Output: OUTDIR/disk.img and OUTDIR/layout.env (DISK HASH_OFFSET USR_FSTYPE USR_{A,B}_{PARTUUID,ROOTHASH,VERSION})
# GPT state: A P1 T0 S1 (booted, good), B P0 T0 S0 (payload present but not staged).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ROOTFS=${1:?rootfs}; OUT=${2:?outdir}; A_PART=${3:-}; B_PART=${4:-}
ROOT_MB=${ROOT_MB:-128}; EFI_MB=128; BIOS_MB=2; OEM_MB=16; OEMCFG_MB=4
mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd); img=$OUT/disk.img
W=$(mktemp -d "$OUT/disk.XXXX"); trap 'rm -rf "$W"' EXIT

if [ -z "$A_PART" ]; then
  A_PART=$OUT/usr-a.part
  EXTRA_USR=${EXTRA_USR:-}${EXTRA_USR_A:+:$EXTRA_USR_A} "$VM_DIR/build-usr.sh" "$ROOTFS" "${VERSION_A:-1.0.0}" "$A_PART"
fi
if [ -z "$B_PART" ]; then
  B_PART=$OUT/usr-b.part
  EXTRA_USR=${EXTRA_USR:-}${EXTRA_USR_B:+:$EXTRA_USR_B} "$VM_DIR/build-usr.sh" "$ROOTFS" "${VERSION_B:-2.0.0}" "$B_PART"
fi
# shellcheck disable=SC1090
read -r USR_MB HASH_OFFSET FSTYPE A_HASH A_VER < <(. "${A_PART%.part}.env"; echo "$USR_MB $HASH_OFFSET $USR_FSTYPE $ROOTHASH $VERSION_ID")
B_HASH=""; B_VER=""
if [ "$B_PART" != none ]; then
  # shellcheck disable=SC1090
  read -r b_mb b_off B_HASH B_VER < <(. "${B_PART%.part}.env"; echo "$USR_MB $HASH_OFFSET $ROOTHASH $VERSION_ID")
  [ "$b_mb $b_off" = "$USR_MB $HASH_OFFSET" ] || die "USR-A and USR-B payloads have different layouts"
fi

rm -f "$img"
truncate -s $((1 + EFI_MB + BIOS_MB + 2 * USR_MB + OEM_MB + OEMCFG_MB + ROOT_MB + 1))M "$img"
sgdisk -a 2048 \
  -n 1:0:+${EFI_MB}M    -t 1:$T_EFI      -c 1:EFI-SYSTEM \
  -n 2:0:+${BIOS_MB}M   -t 2:$T_BIOS     -c 2:BIOS-BOOT \
  -n 3:0:+"${USR_MB}"M   -t 3:$T_USR      -c 3:USR-A -u 3:$USR_A_PARTUUID \
  -n 4:0:+"${USR_MB}"M   -t 4:$T_USR      -c 4:USR-B -u 4:$USR_B_PARTUUID \
  -n 6:0:+${OEM_MB}M    -t 6:$T_DATA     -c 6:OEM \
  -n 7:0:+${OEMCFG_MB}M -t 7:$T_RESERVED -c 7:OEM-CONFIG \
  -n 9:0:0              -t 9:$T_RESIZE   -c 9:ROOT \
  "$img" >/dev/null

write_part() { # N FILE
  local off size; read -r off size < <(part_range "$img" "$1")
  [ "$(stat -c %s "$2")" -le "$size" ] || die "$2 does not fit partition $1 ($size bytes)"
  dd if="$2" of="$img" bs=4M seek="$off" oflag=seek_bytes conv=notrunc,sparse status=none
}
part_mb() { local off size; read -r off size < <(part_range "$img" "$1"); echo $((size >> 20)); }

mkfs.vfat -n EFI-SYSTEM -C "$W/efi.img" $((EFI_MB * 1024)) >/dev/null
write_part 1 "$W/efi.img"
mkdir "$W/oem"
mkfs.ext4 -q -F -L OEM -d "$W/oem" "$W/oem.img" "$(part_mb 6)M" >/dev/null
write_part 6 "$W/oem.img"
write_part 3 "$A_PART"
[ "$B_PART" = none ] || write_part 4 "$B_PART"

# ROOT: the rootfs minus /usr (the merged-usr symlinks bin, lib, sbin -> usr/* come along),
# plus an empty /usr for the verity mount.
R=$W/root; mkdir "$R"
find "$ROOTFS" -mindepth 1 -maxdepth 1 ! -name usr -exec cp -a {} "$R/" \;
mkdir -m 0755 "$R/usr"
[ -z "${EXTRA_ROOT:-}" ] || cp -a --no-preserve=ownership "$EXTRA_ROOT/." "$R/"
mkfs.ext4 -q -F -L ROOT -d "$R" "$W/root.img" "$(part_mb 9)M" >/dev/null
write_part 9 "$W/root.img"

gpt_set "$img" 3 1 0 1
gpt_set "$img" 4 0 0 0

cat >"$OUT/layout.env" <<ENV
DISK=$img
USR_MB=$USR_MB
USR_FSTYPE=$FSTYPE
HASH_OFFSET=$HASH_OFFSET
USR_A_PARTUUID=$USR_A_PARTUUID
USR_B_PARTUUID=$USR_B_PARTUUID
USR_A_ROOTHASH=$A_HASH
USR_B_ROOTHASH=$B_HASH
USR_A_VERSION=$A_VER
USR_B_VERSION=$B_VER
ENV
log "disk $img: $(du -h --apparent-size "$img" | cut -f1) apparent, $(du -h "$img" | cut -f1) allocated; $(gpt_state "$img")"
