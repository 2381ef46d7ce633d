#!/bin/bash
# Regenerate the GPT seeds of the fuzz corpus (fuzz/seeds/*.img, fuzz/corpus/gpt_read/).
# The text seeds (command lines, os-release, dmsetup lines, DM_TABLE_STATUS replies) are
# written by hand and checked in; only the disk images are derived here.
#
# Each image is a real one from images/mkimage.sh (one per --state), shrunk to 64 KiB:
# the same partition table (disk GUID, every entry's type, unique GUID, name and all 64
# attribute bits, in partition-number order) laid out again with sgdisk -a 1 on 128
# sectors. Needs sgdisk and cgpt (./ci/install-deps.sh). Partitions whose GUIDs mkimage.sh
# leaves random (EFI, BIOS, OEM, ROOT) get new random ones each run.
set -euo pipefail
cd "$(dirname "$0")"

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

# shrink BIG SMALL [sgdisk options for SMALL]: BIG's partition table on a 64 KiB disk
shrink() {
	local big=$1 small=$2 disk n first=40 info type uuid attr name
	shift 2
	disk=$(sgdisk -p "$big" | sed -n 's/^Disk identifier (GUID): //p')
	rm -f "$small"
	truncate -s 64K "$small"
	local sg=(-a 1 "$@" -U "$disk")
	for n in $(sgdisk -p "$big" | awk '/^Number/ {t = 1; next} t && NF {print $1}'); do
		info=$(sgdisk -i "$n" "$big")
		type=$(sed -n 's/^Partition GUID code: \([0-9A-F-]*\).*/\1/p' <<<"$info")
		uuid=$(sed -n 's/^Partition unique GUID: //p' <<<"$info")
		attr=$(sed -n 's/^Attribute flags: //p' <<<"$info")
		name=$(sed -n "s/^Partition name: '\(.*\)'$/\1/p" <<<"$info")
		sg+=(-n "$n:$first:$((first + 5))" -t "$n:$type" -u "$n:$uuid" -c "$n:$name")
		[ "$attr" = 0000000000000000 ] || sg+=(-A "$n:=:$attr")
		first=$((first + 6))
	done
	out=$(sgdisk "${sg[@]}" "$small" 2>&1) || { echo "sgdisk failed: $out" >&2; exit 1; }
}

mkdir -p seeds corpus/gpt_read
for state in fresh staged-b booted-b; do
	../images/mkimage.sh -q --no-verity --usr-mb 1 --root-mb 1 --efi-mb 1 --oem-mb 1 \
		--state "$state" "$W/$state.img"
	shrink "$W/$state.img" "seeds/flatcar-$state.img"
	# the attributes must have survived bit for bit
	for p in 3 4; do
		want=$(cgpt show -i "$p" -A "$W/$state.img")
		have=$(cgpt show -i "$p" -A "seeds/flatcar-$state.img")
		[ "$want" = "$have" ] || { echo "partition $p: -A $have, want $want" >&2; exit 1; }
	done
	cp "seeds/flatcar-$state.img" "corpus/gpt_read/flatcar-$state.img"
done

# a 16-entry array (4 sectors), the smallest table sgdisk writes
shrink "$W/staged-b.img" "$W/small.img" --resize-table=16
cp "$W/small.img" corpus/gpt_read/table16-staged-b.img

# damaged copies: the reader must fall back to the other one
img=corpus/gpt_read
cp "seeds/flatcar-staged-b.img" "$img/primary-header-crc.img"
printf '\xff' | dd of="$img/primary-header-crc.img" bs=1 seek=$((512 + 16)) conv=notrunc status=none
cp "seeds/flatcar-staged-b.img" "$img/primary-array-crc.img"
printf '\xff' | dd of="$img/primary-array-crc.img" bs=1 seek=$((1024 + 2 * 128 + 48 + 6)) conv=notrunc status=none
cp "seeds/flatcar-booted-b.img" "$img/backup-header-zeroed.img"
dd if=/dev/zero of="$img/backup-header-zeroed.img" bs=512 seek=127 count=1 conv=notrunc status=none
# a grown disk: the backup is no longer at the last sector, the primary still points at it
cp "seeds/flatcar-fresh.img" "$img/grown-disk.img"
truncate -s 72K "$img/grown-disk.img"
# ... and the same with the primary gone, so only a scan of the last sector could find a copy
cp "$img/grown-disk.img" "$img/grown-no-primary.img"
dd if=/dev/zero of="$img/grown-no-primary.img" bs=512 seek=1 count=1 conv=notrunc status=none
ls -l seeds "$img" >&2
