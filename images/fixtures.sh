#!/bin/bash
# Capture what the real tools (sgdisk, cgpt, veritysetup) say about a freshly built
# image, as oracle text for documentation and for parser tests.
# usage: fixtures.sh OUTDIR [mkimage.sh options...]
#   Without options the image is `mkimage.sh --version-a 1.0.0`: the default layout
#   with USR-A populated and USR-B empty, like a freshly installed Flatcar.
# Partition GUIDs other than USR-A/B, verity salts/UUIDs and root hashes are random
# per build (as in Flatcar's own build), so regenerated fixtures differ in those.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: fixtures.sh OUTDIR [mkimage.sh options...]" >&2; exit 2; }
OUTDIR=$1
shift
[ $# -gt 0 ] || set -- --version-a 1.0.0
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
W=$(mktemp -d "$OUTDIR/.fixtures.XXXXXX")
trap 'rm -rf "$W"' EXIT

"$HERE/mkimage.sh" -q "$@" "$W/disk.img"
# shellcheck disable=SC1091
. "$W/disk.env"
# The image is named by a relative path from inside $W so no temp path ends up in the text.
cd "$W"
INDEX=$OUTDIR/commands.txt
: >"$INDEX"
capture() { # file command...: stdout+stderr into OUTDIR/file, exit status into the index
	local f=$1 rc=0
	shift
	"$@" >"$OUTDIR/$f" 2>&1 || rc=$?
	printf '%s\t%s\t%s\n' "$rc" "$f" "$*" >>"$INDEX"
}

printf '%s\n' "$*" >"$OUTDIR/mkimage.args"
sed 's|^DISK=.*|DISK=disk.img|' disk.env >"$OUTDIR/disk.env"
capture sgdisk-p.txt sgdisk -p disk.img
capture sgdisk-v.txt sgdisk -v disk.img
for n in 1 2 3 4 6 7 9; do capture "sgdisk-i-$n.txt" sgdisk -i "$n" disk.img; done
capture cgpt-show.txt cgpt show disk.img
for n in 3 4; do
	for f in A P T S; do capture "cgpt-show-i$n-$f.txt" cgpt show -i "$n" "-$f" disk.img; done
done
capture partx-s.txt partx -s disk.img
for s in A B; do
	start=USR_${s}_START size=USR_${s}_SIZE
	# veritysetup dump needs the hash device itself, so cut the partition out first
	dd if=disk.img of="usr-$s.part" bs=1M iflag=skip_bytes,count_bytes \
		skip="${!start}" count="${!size}" conv=sparse status=none
	capture "veritysetup-dump-usr-${s,,}.txt" veritysetup dump --hash-offset="$HASH_OFFSET" "usr-$s.part"
done
{
	sgdisk --version | head -n1
	dpkg-query -W -f '${Package} ${Version}\n' gdisk cgpt cryptsetup-bin e2fsprogs \
		squashfs-tools erofs-utils dosfstools mtools 2>/dev/null || true
	veritysetup --version
} >"$OUTDIR/versions.txt"
echo "fixtures in $OUTDIR (index: commands.txt, columns: exit status, file, command)"
