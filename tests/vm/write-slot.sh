#!/bin/bash
# Stage an update from the host: copy a slot payload (build-usr.sh OUT.part) into USR
# partition N of an image. With LAYOUT.env, also record the payload's root hash and version
# there (USR_A_* / USR_B_*), the host-side stand-in for Flatcar's vmlinuz-a/-b on the ESP.
# GPT attributes are not touched: staging them is the code under test's job (or gpt_set).
# Usage: write-slot.sh DISK 3|4 PAYLOAD.part [LAYOUT.env]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DISK=${1:?disk}; N=${2:?partition}; PAY=${3:?payload}; LAYOUT=${4:-}
case $N in 3) X=A ;; 4) X=B ;; *) die "partition $N is not a USR slot" ;; esac
read -r off size < <(part_range "$DISK" "$N")
[ "$(stat -c %s "$PAY")" -le "$size" ] || die "$PAY is larger than partition $N"
# zero the whole slot first (sparse: discard via fallocate punch) so no old data survives
fallocate -p -o "$off" -l "$size" "$DISK"
dd if="$PAY" of="$DISK" bs=4M seek="$off" oflag=seek_bytes conv=notrunc,sparse status=none
if [ -n "$LAYOUT" ]; then
  env=${PAY%.part}.env
  [ -r "$env" ] || die "no $env next to the payload"
  # shellcheck disable=SC1090
  read -r h v < <(. "$env"; echo "$ROOTHASH $VERSION_ID")
  sed -i -e "s/^USR_${X}_ROOTHASH=.*/USR_${X}_ROOTHASH=$h/" -e "s/^USR_${X}_VERSION=.*/USR_${X}_VERSION=$v/" "$LAYOUT"
fi
log "wrote $(basename "$PAY") into partition $N (USR-$X)"
