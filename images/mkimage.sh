#!/bin/bash
# Build a small Flatcar-shaped GPT disk image in a plain (sparse) file, for tests.
# No loop devices, no device-mapper, no mounts: every filesystem is made as a file
# and copied in with dd, so it runs unprivileged and on hosts without dm/loop.
# Run with -h for the options; the layout and GUIDs follow flatcar/scripts
# build_library/disk_layout.json and disk_util.
set -euo pipefail

usage() {
	cat <<'EOF'
usage: mkimage.sh [options] OUT.img
  --usr-a DIR      USR-A filesystem from DIR (content of /usr) + dm-verity hash tree
  --usr-b DIR      same for USR-B
  --version-a V    VERSION_ID written to USR-A's lib/os-release (alone: minimal tree)
  --version-b V    same for USR-B; a slot with neither option stays zeroed
  --fs TYPE        ext4 (default), squashfs or erofs
  --usr-mb N       USR-A/USR-B size in MiB (16)
  --root-mb N      ROOT size in MiB (16)
  --root DIR       content for ROOT (default: empty ext4)
  --efi-mb N       EFI-SYSTEM size in MiB (8)
  --oem-mb N       OEM size in MiB (4)
  --state S        fresh (default) | staged-b | booted-b
  --no-verity      plain filesystems, no hash tree
  --arch A         amd64 (default) or arm64: the kernels' header and where the root hash sits
  -q               quiet
Writes OUT.img and OUT.env (KEY=VALUE, shell-sourceable).
EOF
}
die() { echo "mkimage: $*" >&2; exit 1; }
say() { [ -n "$QUIET" ] || echo "$@"; }
# versions go unquoted into os-release and the .env, so keep them to a VERSION_ID-like charset
version() { [[ $1 =~ ^[A-Za-z0-9._+~-]+$ ]] || die "version '$1' may only contain A-Z a-z 0-9 . _ + ~ -"; }

USR_DIR_A='' USR_DIR_B='' VER_A='' VER_B=''
USR_FS=ext4 USR_MB=16 ROOT_MB=16 ROOT_DIR='' EFI_MB=8 OEM_MB=4 STATE=fresh VERITY=1 QUIET='' OUT='' ARCH=amd64
while [ $# -gt 0 ]; do
	case "$1" in
	--usr-[ab] | --version-[ab] | --fs | --*-mb | --root | --state | --arch)
		[ $# -ge 2 ] || die "$1 needs a value" ;;
	esac
	case "$1" in
	--usr-a) USR_DIR_A=$2; shift ;;
	--usr-b) USR_DIR_B=$2; shift ;;
	--version-a) version "$2"; VER_A=$2; shift ;;
	--version-b) version "$2"; VER_B=$2; shift ;;
	--fs) USR_FS=$2; shift ;;
	--usr-mb) USR_MB=$2; shift ;;
	--root-mb) ROOT_MB=$2; shift ;;
	--root) ROOT_DIR=$2; shift ;;
	--efi-mb) EFI_MB=$2; shift ;;
	--oem-mb) OEM_MB=$2; shift ;;
	--state) STATE=$2; shift ;;
	--arch) ARCH=$2; shift ;;
	--no-verity) VERITY= ;;
	-q) QUIET=1 ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; die "unknown option $1" ;;
	*) [ -z "$OUT" ] || die "only one OUT.img allowed"; OUT=$1 ;;
	esac
	shift
done
[ -n "$OUT" ] || { usage >&2; exit 2; }
for n in "$USR_MB" "$ROOT_MB" "$EFI_MB" "$OEM_MB"; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "sizes are whole MiB > 0, got '$n'"
done
case "$USR_FS" in ext4 | squashfs | erofs) ;; *) die "--fs must be ext4, squashfs or erofs" ;; esac
case "$ARCH" in amd64 | arm64) ;; *) die "--arch must be amd64 or arm64" ;; esac
for d in "$USR_DIR_A" "$USR_DIR_B" "$ROOT_DIR"; do
	[ -z "$d" ] || [ -d "$d" ] || die "not a directory: $d"
done
# P T S for A then B; values as flatcar's disk_util (fresh) and flatcar-postinst / update_engine
case "$STATE" in
fresh) ATTRS="1 0 1 0 0 0" ;;
staged-b) ATTRS="1 0 1 2 1 0" ;;
booted-b) ATTRS="1 0 1 2 0 1" ;;
*) die "--state must be fresh, staged-b or booted-b" ;;
esac

# Flatcar type and partition GUIDs: the one copy, shared with tests/vm
# shellcheck source=images/layout.sh
. "$(dirname "${BASH_SOURCE[0]}")/layout.sh"

mkdir -p "$(dirname "$OUT")"
OUT=$(realpath -m "$OUT")
ENV_OUT=${OUT%.img}.env
# Temp dir beside OUT so cp -al and the sparse copies stay on one filesystem.
W=$(mktemp -d "$(dirname "$OUT")/.mkimage.XXXXXX")
# a half-built image or a stale .env from an earlier run must not look usable to a test
cleanup() {
	local rc=$?
	rm -rf "$W"
	[ "$rc" -eq 0 ] || rm -f "$OUT" "$ENV_OUT"
}
trap cleanup EXIT
rm -f "$OUT" "$ENV_OUT"

# --- layout: partitions in number order, each 1 MiB aligned (all sizes are whole MiB) ---
MiB=1048576
declare -A START SIZE # bytes
pos=$MiB              # LBA 0-33 (MBR, primary GPT), padded to the first 1 MiB boundary
for p in "1 $EFI_MB" "2 2" "3 $USR_MB" "4 $USR_MB" "6 $OEM_MB" "7 1" "9 $ROOT_MB"; do
	read -r num mb <<<"$p"
	START[$num]=$pos SIZE[$num]=$((mb * MiB))
	pos=$((pos + mb * MiB))
done
DISK_SIZE=$((pos + MiB)) # room for the backup GPT (33 sectors), kept aligned

truncate -s "$DISK_SIZE" "$OUT"
sg=(-U "$DISK_GUID")
part() { # num label type [partguid]
	sg+=(-n "$1:$((START[$1] / 512)):$(((START[$1] + SIZE[$1]) / 512 - 1))" -t "$1:$3" -c "$1:$2")
	[ -z "${4:-}" ] || sg+=(-u "$1:$4")
}
part 1 EFI-SYSTEM "$T_EFI"
part 2 BIOS-BOOT "$T_BIOS"
part 3 USR-A "$T_USR" "$USR_A_PARTUUID"
part 4 USR-B "$T_USR" "$USR_B_PARTUUID"
part 6 OEM "$T_DATA"
part 7 OEM-CONFIG "$T_RESERVED"
part 9 ROOT "$T_RESIZE"
# sgdisk reports errors on stdout, so keep its output for the failure message only
out=$(sgdisk "${sg[@]}" "$OUT" 2>&1) || die "sgdisk failed: $out"

put() { # num file: copy a partition-content file into the image
	local sz
	sz=$(stat -c %s "$2")
	[ "$sz" -le "${SIZE[$1]}" ] || die "partition $1: $2 is $sz bytes, partition is ${SIZE[$1]}"
	dd if="$2" of="$OUT" bs=1M seek="${START[$1]}" oflag=seek_bytes conv=notrunc,sparse status=none
}

# --- USR payload geometry, exactly like Flatcar's fs_blocks: the largest n with
# n data blocks + 1 verity superblock + all hash levels <= partition blocks ---
fits() { # does $1 data blocks + superblock + hash levels (128 sha256 digests per block) fit?
	local n=$1 total=$(($1 + 1))
	while [ "$n" -gt 1 ]; do n=$(((n + 127) / 128)); total=$((total + n)); done
	[ "$total" -le "$PART_BLOCKS" ]
}
PART_BLOCKS=$((USR_MB * MiB / 4096))
FS_BLOCKS=$((PART_BLOCKS * 128 / 129)) # the tree is ~1/128 of the data: start near the answer
until fits "$FS_BLOCKS" || [ "$FS_BLOCKS" -le 0 ]; do FS_BLOCKS=$((FS_BLOCKS - 1)); done
while fits $((FS_BLOCKS + 1)); do FS_BLOCKS=$((FS_BLOCKS + 1)); done
[ "$FS_BLOCKS" -gt 0 ] || die "--usr-mb $USR_MB is too small"
HASH_OFFSET=$((FS_BLOCKS * 4096))

write_os_release() { # dir version
	mkdir -p "$1/lib"
	rm -f "$1/lib/os-release" # may be a hard link into the caller's DIR: replace, never write through
	cat >"$1/lib/os-release" <<EOF
NAME="Flatcar Container Linux by Kinvolk"
ID=flatcar
ID_LIKE=coreos
VERSION=$2
VERSION_ID=$2
BUILD_ID=abguard-test
PRETTY_NAME="Flatcar Container Linux by Kinvolk $2 (abguard test image)"
EOF
}

# build_usr SLOT(A|B) NUM DIR VERSION; sets ROOTHASH and VERSION
build_usr() {
	local slot=$1 num=$2 dir=$3 src=$W/usr-$1 fs=$W/usr-$1.fs partf=$W/usr-$1.part sz
	ROOTHASH='' VERSION=$4
	if [ -z "$dir" ] && [ -z "$VERSION" ]; then return; fi
	if [ -z "$dir" ]; then
		write_os_release "$src" "$VERSION"
	elif [ -n "$VERSION" ]; then
		# hard-link staging is instant; across filesystems fall back to a real copy
		mkdir "$src"
		cp -al "$dir/." "$src/" 2>/dev/null || { rm -rf "$src"; mkdir "$src"; cp -a "$dir/." "$src/"; }
		write_os_release "$src" "$VERSION"
	else
		src=$dir
		[ ! -f "$dir/lib/os-release" ] || VERSION=$(sed -n 's/^VERSION_ID=//p' "$dir/lib/os-release" | tr -d "\"'" | head -n1)
	fi
	case "$USR_FS" in
	ext4)
		# sized to the whole data area like Flatcar's usr fs; -d fails when it does not fit
		truncate -s "$HASH_OFFSET" "$fs"
		mkfs.ext4 -q -F -b 4096 -I 256 -m 0 -O ^has_journal -L "USR-$slot" -d "$src" "$fs" ||
			die "USR-$slot: content does not fit in $HASH_OFFSET bytes (FS_BLOCKS=$FS_BLOCKS); raise --usr-mb"
		;;
	squashfs) mksquashfs "$src" "$fs" -noappend -quiet -no-progress -comp lz4 >/dev/null ;;
	erofs) mkfs.erofs --quiet "$fs" "$src" >/dev/null ;; # erofs-utils 1.5 has no label option
	esac
	sz=$(stat -c %s "$fs")
	[ "$sz" -le "$HASH_OFFSET" ] ||
		die "USR-$slot: $USR_FS image is $sz bytes, only $HASH_OFFSET fit before the hash tree; raise --usr-mb"
	mv "$fs" "$partf"
	truncate -s "${SIZE[$num]}" "$partf"
	if [ -n "$VERITY" ]; then
		out=$(veritysetup format --hash=sha256 --hash-offset="$HASH_OFFSET" --data-blocks="$FS_BLOCKS" \
			--data-block-size=4096 --hash-block-size=4096 "$partf" "$partf" 2>&1) ||
			die "USR-$slot: veritysetup format failed: $out"
		ROOTHASH=$(sed -n 's/^Root hash:[[:space:]]*//p' <<<"$out")
		[[ $ROOTHASH =~ ^[0-9a-f]{64}$ ]] || die "USR-$slot: no root hash in veritysetup output: $out"
		# format grows the file instead of failing if our fs_blocks arithmetic were wrong
		[ "$(stat -c %s "$partf")" -eq "${SIZE[$num]}" ] || die "USR-$slot: hash tree overflowed the partition"
		out=$(veritysetup verify --hash-offset="$HASH_OFFSET" "$partf" "$partf" "$ROOTHASH" 2>&1) ||
			die "USR-$slot: veritysetup verify failed: $out"
		say "USR-$slot root hash: $ROOTHASH"
	fi
	put "$num" "$partf"
	rm -f "$partf"
}
build_usr A 3 "$USR_DIR_A" "$VER_A"
USR_A_ROOTHASH=$ROOTHASH USR_A_VERSION=$VERSION
build_usr B 4 "$USR_DIR_B" "$VER_B"
USR_B_ROOTHASH=$ROOTHASH USR_B_VERSION=$VERSION

# --- EFI-SYSTEM: FAT type left to mkfs.fat (FAT32 on tiny volumes draws warnings) ---
mkfs.vfat -n EFI-SYSTEM -C "$W/efi.fs" $((EFI_MB * 1024)) >/dev/null
KERNEL_HASHES=0
if command -v mcopy >/dev/null && command -v mmd >/dev/null; then
	# Flatcar's build_image_util.sh stores the verity root hash as 64 ASCII hex chars at
	# byte 0x40 of vmlinuz-<slot> (unused "rdev" area on amd64) or at 512 on arm64, after
	# the EFI stub's headers; GRUB reads it there. An arm64 Image starts "MZ" (EFI stub)
	# and has the magic "ARM\x64" at 0x38 (Documentation/arch/arm64/booting.rst).
	export MTOOLS_SKIP_CHECK=1
	mmd -i "$W/efi.fs" ::flatcar
	: >"$W/first_boot"
	mcopy -i "$W/efi.fs" "$W/first_boot" ::flatcar/first_boot
	for s in a b; do
		h=USR_${s^^}_ROOTHASH
		[ -n "${!h}" ] || continue
		head -c 4096 /dev/zero >"$W/vmlinuz"
		hash_at=64
		if [ "$ARCH" = arm64 ]; then
			printf 'MZ' | dd of="$W/vmlinuz" conv=notrunc status=none
			printf 'ARM\x64' | dd of="$W/vmlinuz" bs=1 seek=56 conv=notrunc status=none
			hash_at=512
		fi
		printf %s "${!h}" | dd of="$W/vmlinuz" bs=1 seek="$hash_at" conv=notrunc status=none
		mcopy -i "$W/efi.fs" "$W/vmlinuz" "::flatcar/vmlinuz-$s"
	done
	KERNEL_HASHES=1
fi
put 1 "$W/efi.fs"

# --- OEM and ROOT ---
# files are pre-sized because mke2fs says "Creating regular file" even with -q
truncate -s "${SIZE[6]}" "$W/oem.fs"
mkfs.ext4 -q -F -L OEM "$W/oem.fs"
put 6 "$W/oem.fs"
truncate -s "${SIZE[9]}" "$W/root.fs"
mkfs.ext4 -q -F -L ROOT ${ROOT_DIR:+-d "$ROOT_DIR"} "$W/root.fs"
put 9 "$W/root.fs"

# --- priority / tries / successful (bits 48-51, 52-55, 56) ---
read -r pa ta sa pb tb sb <<<"$ATTRS"
cgpt add -i 3 -P "$pa" -T "$ta" -S "$sa" "$OUT"
cgpt add -i 4 -P "$pb" -T "$tb" -S "$sb" "$OUT"

{
	# plain KEY=VALUE for simple values so non-shell parsers need no unquoting
	kv() { if [[ $2 =~ ^[[:alnum:]_./:@%+,=-]*$ ]]; then echo "$1=$2"; else printf '%s=%q\n' "$1" "$2"; fi; }
	kv DISK "$OUT"
	kv DISK_SIZE "$DISK_SIZE"
	kv SECTOR_SIZE 512
	kv STATE "$STATE"
	kv USR_FS "$USR_FS"
	kv VERITY "${VERITY:-0}"
	kv FS_BLOCKS "$FS_BLOCKS"
	kv HASH_OFFSET "$HASH_OFFSET"
	kv USR_A_PARTUUID "$USR_A_PARTUUID"
	kv USR_B_PARTUUID "$USR_B_PARTUUID"
	kv USR_A_ROOTHASH "$USR_A_ROOTHASH"
	kv USR_B_ROOTHASH "$USR_B_ROOTHASH"
	kv USR_A_VERSION "$USR_A_VERSION"
	kv USR_B_VERSION "$USR_B_VERSION"
	for p in EFI:1 BIOS:2 USR_A:3 USR_B:4 OEM:6 OEM_CONFIG:7 ROOT:9; do
		kv "${p%:*}_START" "${START[${p#*:}]}"
		kv "${p%:*}_SIZE" "${SIZE[${p#*:}]}"
	done
	kv KERNEL_HASHES "$KERNEL_HASHES"
	kv ARCH "$ARCH"
} >"$ENV_OUT"
say "wrote $OUT ($((DISK_SIZE / MiB)) MiB sparse, state $STATE, $USR_FS) and $ENV_OUT"
