#!/bin/bash
# Damage an image from mkimage.sh in place, in one deterministic way, so tests can
# check how GPT/verity readers cope. Plain dd/printf/od only: no GPT tool may
# "helpfully" repair the table while we break it.
# usage: corrupt.sh IMG KIND   (kinds: see usage below)
set -euo pipefail

usage() {
	cat <<'EOF'
usage: corrupt.sh IMG KIND
  primary-header       flip a byte of the disk GUID in the primary GPT header (LBA 1): CRC mismatch
  primary-array        flip the first name byte of partition 3 in the primary entry array
  backup-header        same as primary-header, in the backup header (last LBA)
  backup-array         same as primary-array, in the backup entry array
  both-headers         primary-header + backup-header
  truncate             cut the file to 40 KiB
  zero                 make it a 0-byte file
  mbr-only             wipe both GPT headers and arrays, leave an MBR with one type 0x83 partition
  protective-mbr-only  wipe both GPT headers and arrays, leave only the protective MBR (type 0xEE)
  usr-a-data           flip a byte in block 0 of USR-A's filesystem (needs IMG's .env)
  usr-a-hash           flip a byte in USR-A's top hash-tree block (needs IMG's .env)
Flips are XOR 0xff: applying the same byte-flipping kind twice restores the image.
EOF
}
die() { echo "corrupt: $*" >&2; exit 1; }
[ $# -eq 2 ] || { usage >&2; exit 2; }
IMG=$1 KIND=$2
[ -f "$IMG" ] || die "no such file: $IMG"
SS=512

byte() { od -An -tu1 -j "$1" -N1 "$IMG" | tr -d ' \n'; }
le() { # offset length: unsigned little-endian integer; od's own -tu8 would follow host byte order
	local v=0 i b
	for ((i = $2 - 1; i >= 0; i--)); do b=$(byte $(($1 + i))); v=$((v * 256 + b)); done
	echo "$v"
}
put_bytes() { # offset byte...: write raw bytes without truncating the file
	local off=$1 s='' b
	shift
	for b in "$@"; do s+=$(printf '\\%03o' "$((b & 255))"); done
	# shellcheck disable=SC2059 # the format is built from octal escapes on purpose
	printf "$s" | dd of="$IMG" bs=1 seek="$off" conv=notrunc status=none
}
flip() { # offset what
	local old
	old=$(byte "$1")
	[ -n "$old" ] || die "offset $1 is past the end of $IMG"
	put_bytes "$1" $((old ^ 0xff))
	printf 'corrupt: %s: byte at offset %d (LBA %d + %d) 0x%02x -> 0x%02x\n' \
		"$2" "$1" $(($1 / SS)) $(($1 % SS)) "$old" $((old ^ 0xff))
}
le32() { echo $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }

SECTORS=$(($(stat -c %s "$IMG") / SS))
gpt_at() { # byte offset of a header; dies unless it carries the "EFI PART" signature
	[ "$(dd if="$IMG" bs=1 skip="$1" count=8 status=none)" = "EFI PART" ] ||
		die "no GPT header at byte $1 (already damaged?)"
}
part3_name() { # header offset -> byte offset of partition 3's name in that header's entry array
	local lba esz
	lba=$(le $(($1 + 0x48)) 8)
	esz=$(le $(($1 + 0x54)) 4)
	NAME_OFF=$((lba * SS + 2 * esz + 56))
}
wipe_gpt() {
	[ "$SECTORS" -ge 67 ] || die "$IMG is too small to hold two GPTs"
	dd if=/dev/zero of="$IMG" bs=$SS seek=1 count=33 conv=notrunc status=none
	dd if=/dev/zero of="$IMG" bs=$SS seek=$((SECTORS - 33)) count=33 conv=notrunc status=none
	echo "corrupt: zeroed LBA 1-33 and LBA $((SECTORS - 33))-$((SECTORS - 1)) (both GPT headers and arrays)"
}
mbr_entry() { # type start size: the MBR's only entry; CHS end ff/ff/ff: nobody reads CHS any more
	local size=$(($3 > 0xffffffff ? 0xffffffff : $3))
	dd if=/dev/zero of="$IMG" bs=1 seek=446 count=64 conv=notrunc status=none
	# shellcheck disable=SC2046 # le32 yields four separate byte values
	put_bytes 446 0 0 2 0 "$1" 0xff 0xff 0xff $(le32 "$2") $(le32 "$size")
	put_bytes 510 0x55 0xaa
	printf 'corrupt: MBR now has one partition: type 0x%02x, start %d, %d sectors\n' "$1" "$2" "$size"
}
usr_a() { # needs the .env that mkimage.sh wrote beside the image
	local env=${IMG%.img}.env
	[ -f "$env" ] || die "$env not found (usr-a-* kinds need mkimage.sh's .env)"
	# shellcheck disable=SC1090
	. "$env"
	[ "$USR_A_ROOTHASH" ] || echo "corrupt: note: USR-A has no root hash in $env (empty or --no-verity)" >&2
}

PRI=$SS BAK=$(((SECTORS - 1) * SS))
case "$KIND" in
primary-header | backup-header | both-headers)
	if [ "$KIND" != backup-header ]; then
		gpt_at $PRI
		flip $((PRI + 0x38)) "primary GPT header, disk GUID"
	fi
	if [ "$KIND" != primary-header ]; then
		gpt_at $BAK
		flip $((BAK + 0x38)) "backup GPT header, disk GUID"
	fi
	;;
primary-array | backup-array)
	hdr=$PRI
	[ "$KIND" = primary-array ] || hdr=$BAK
	gpt_at $hdr
	part3_name $hdr
	flip "$NAME_OFF" "${KIND%-array} entry array, partition 3 name"
	;;
truncate)
	truncate -s 40K "$IMG"
	echo "corrupt: truncated $IMG to 40960 bytes"
	;;
zero)
	: >"$IMG"
	echo "corrupt: $IMG is now empty"
	;;
mbr-only)
	wipe_gpt
	mbr_entry 0x83 2048 $((SECTORS - 2048))
	;;
protective-mbr-only)
	wipe_gpt
	mbr_entry 0xee 1 $((SECTORS - 1))
	;;
usr-a-data)
	usr_a
	# byte 256 of block 0: boot-sector padding for ext4/erofs, so only verity can notice
	flip $((USR_A_START + 256)) "USR-A filesystem block 0"
	;;
usr-a-hash)
	usr_a
	# the block after the verity superblock is the top level of the tree: every read depends on it
	flip $((USR_A_START + HASH_OFFSET + 4096 + 16)) "USR-A verity hash tree, first hash block"
	;;
-h | --help) usage ;;
*) usage >&2; die "unknown kind: $KIND" ;;
esac
