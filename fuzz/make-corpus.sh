#!/bin/bash
# Regenerate the binary seeds of the fuzz corpus: the GPT images (fuzz/seeds/*.img,
# fuzz/corpus/gpt_read/), the structured GPT inputs (fuzz/corpus/gpt_image/, see
# fuzz/src/lib.rs `Spec`) and the DM_TABLE_STATUS replies (fuzz/corpus/dm_ioctl/). The
# text seeds (command lines, os-release, dmsetup lines, mountinfo) are written by hand.
#
# Each image is a real one from images/mkimage.sh (one per --state), shrunk to 64 KiB:
# the same partition table (disk GUID, every entry's type, unique GUID, name and all 64
# attribute bits, in partition-number order) laid out again with sgdisk -a 1 on 128
# sectors, with fixed unique GUIDs where mkimage.sh leaves them random, so a rerun writes
# the same bytes (the gpt_image inputs are patches against fuzz/seeds/). Needs sgdisk and
# cgpt (./ci/install-deps.sh).
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
		# mkimage.sh fixes only USR-A's and USR-B's; fix the others here so reruns match
		[ "$type" = 5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6 ] || uuid=$(printf '5EED0000-0000-4000-8000-%012d' "$n")
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

# structured GPT inputs: flags, verb, target, two field bytes, size, then patches
# (region, u16 offset, length, bytes); see `Spec` in fuzz/src/lib.rs
mkdir -p corpus/gpt_image corpus/dm_ioctl
python3 - <<'EOF'
import struct
def spec(flags=3, verb=0, target=0, fields=(0, 0), size=0, patches=()):
    b = bytes([flags, verb, target, fields[0], fields[1], size])
    for region, off, data in patches:
        b += bytes([region]) + struct.pack("<H", off) + bytes([len(data)]) + data
    return b
base = lambda i: i << 2  # 0 fresh, 1 staged-b, 2 booted-b
u32, u64 = (lambda v: struct.pack("<I", v)), (lambda v: struct.pack("<Q", v))
seeds = {
    "keep-fresh": spec(),
    "set-staged": spec(flags=3 | base(1) | 0x20, verb=1, fields=(0x01, 0x12)),
    "next-staged": spec(flags=3 | base(1), verb=2),
    "stage-fresh": spec(verb=3, target=1),
    "mark-good-booted": spec(flags=3 | base(2), verb=4, target=1),
    "rollback-booted": spec(flags=3 | base(2), verb=5, target=0),
    "spend-booted": spec(flags=3 | base(2), verb=6, target=1),
    "spend-last-fresh": spec(verb=6, target=0),
    "entries-16": spec(flags=3 | base(1), verb=2, patches=[(0, 80, u32(16)), (2, 80, u32(16))]),
    "primary-no-signature": spec(flags=3 | base(1), verb=3, target=0, patches=[(0, 0, b"X")]),
    "backup-stale-crc": spec(flags=1 | base(1), verb=2, patches=[(3, 2 * 128 + 48 + 6, b"\x22")]),
    "grown-disk": spec(flags=3 | 0x10 | base(2), verb=2, size=200),
    "shrunk-disk": spec(flags=3 | 0x10 | base(1), verb=2, size=120),
    "partition-moved": spec(flags=3 | base(1), verb=2,
                            patches=[(1, 3 * 128 + 32, u64(90)), (1, 3 * 128 + 40, u64(93))]),
    "first-usable-raised": spec(flags=3 | base(0), verb=3, target=1, patches=[(0, 40, u64(60))]),
}
for k, v in seeds.items():
    open(f"corpus/gpt_image/{k}", "wb").write(v)

# DM_TABLE_STATUS replies: struct dm_ioctl (312 bytes), then per target a dm_target_spec
# and its NUL-terminated parameters, 8-byte aligned, `next` relative to data_start
# (native byte order; x86_64)
H = "10ae16c5d9be2f7a3f2f8d6b5e6b0b6dc4b5a0d7e8f9a1b2c3d4e5f60718293a"
def reply(targets, flags=0, count=None, data_start=312, data_size=None, backwards=False):
    body, offs = bytearray(), []
    for s, l, ty, p in targets:
        offs.append(len(body))
        body += struct.pack("<QQiI16s", s, l, 0, 0, ty.encode()) + p.encode() + b"\0"
        while len(body) % 8:
            body += b"\0"
    for i, at in enumerate(offs):
        nxt = offs[i + 1] if i + 1 < len(offs) else 0
        struct.pack_into("<I", body, at + 20, 0 if backwards and i == 1 else nxt)
    total = 312 + len(body)
    hdr = struct.pack("<3IIIIiIIIQ", 4, 48, 0, total if data_size is None else data_size,
                      data_start, len(targets) if count is None else count, 1, flags, 3, 0, 254 << 8)
    hdr += b"usr".ljust(128, b"\0")
    hdr += b"CRYPT-VERITY-7130c94a213a4e5a8e266cce9662f132-usr".ljust(129, b"\0") + bytes(7)
    assert len(hdr) == 312
    return hdr + bytes(body)
table = f"1 259:3 259:3 4096 4096 260094 260095 sha256 {H} {'5eed' * 16} 1 panic_on_corruption"
seeds = {
    "status-verity-V": reply([(0, 2097152, "verity", "V")]),
    "status-verity-C": reply([(0, 2097152, "verity", "C 12")]),
    "table-verity": reply([(0, 2097152, "verity", table)], flags=1 << 4),
    "linear-zero": reply([(0, 8, "linear", "254:3 0"), (8, 8, "zero", "")]),
    "three-targets": reply([(0, 8, "linear", "254:3 0"), (8, 8, "verity", "V"), (16, 8, "error", "")]),
    "buffer-full": reply([], flags=(1 << 8) | (1 << 11), count=0, data_size=16384),
    "next-backwards": reply([(0, 8, "linear", "254:3 0"), (8, 8, "zero", ""), (16, 8, "zero", "")],
                            backwards=True),
    "count-too-large": reply([(0, 2097152, "verity", "V")], count=7),
    "data-start-outside": reply([(0, 2097152, "verity", "V")], data_start=4096),
}
for k, v in seeds.items():
    open(f"corpus/dm_ioctl/{k}", "wb").write(v)
EOF
