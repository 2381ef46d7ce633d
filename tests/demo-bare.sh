#!/bin/bash
# `make demo` on a machine without disk tools: runs it with a PATH of symlinks to every
# command on this one except the disk tools (no gdisk, cgpt, sfdisk, mkfs…), so a demo that shells out to any
# of them fails here with "command not found". Unprivileged.
set -euo pipefail

cd "$(dirname "$(realpath "$0")")/.."
BARE=$(mktemp -d)
trap 'rm -rf "$BARE"' EXIT
skip='^(sgdisk|gdisk|cgpt|veritysetup|cryptsetup|mkfs.*|mke2fs|mksquashfs|debugfs|partx|losetup|sfdisk|fdisk|parted|dmsetup)$'
for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin "$HOME/.cargo/bin"; do
	[ -d "$d" ] || continue
	for f in "$d"/*; do
		n=${f##*/}
		if [[ ! $n =~ $skip ]] && [ -x "$f" ] && [ ! -e "$BARE/$n" ]; then ln -s "$f" "$BARE/$n"; fi
	done
done
for t in sgdisk cgpt veritysetup mke2fs debugfs losetup; do
	[ ! -e "$BARE/$t" ] || { echo "demo-bare: $t is still on the bare PATH" >&2; exit 1; }
done
env PATH="$BARE" make -s demo >"$BARE/.out" 2>&1 || { cat "$BARE/.out" >&2; echo "demo-bare: FAILED" >&2; exit 1; }
tail -n1 "$BARE/.out"
echo "demo-bare: OK (no disk tools on PATH)"
