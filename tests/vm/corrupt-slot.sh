#!/bin/bash
# Flip one byte (XOR 0xff) inside the /usr data of USR partition N, after it was hashed: a
# "bad download" that dm-verity must reject. The default offset lies in data block 0, which
# the initrd's verity unit reads, so the boot fails in the initrd. Pick an offset in a block
# that is read only later (still below HASH_OFFSET) to test a failure after switch-root.
# Usage: corrupt-slot.sh DISK 3|4 [OFFSET_IN_SLOT=2000]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DISK=${1:?disk}; N=${2:?partition}; AT=${3:-2000}
case $N in 3|4) ;; *) die "partition $N is not a USR slot" ;; esac
read -r off size < <(part_range "$DISK" "$N")
[ "$AT" -lt "$size" ] || die "offset $AT is outside partition $N"
pos=$((off + AT))
old=$(dd if="$DISK" bs=1 skip="$pos" count=1 status=none | od -An -tu1 | tr -d ' ')
new=$(( ${old:-0} ^ 255 ))
# shellcheck disable=SC2059 # octal escape built on purpose
printf "\\$(printf '%03o' "$new")" | dd of="$DISK" bs=1 seek="$pos" count=1 conv=notrunc status=none
log "partition $N byte $AT: $old -> $new"
