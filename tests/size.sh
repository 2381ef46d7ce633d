#!/bin/bash
# The static binary's size goal, on each architecture: ≤ 1 MiB (the initrd carries it, and
# the goal is what keeps every dependency and format string honest). `make test` checks the
# x86-64 build, tests/arm64.sh the aarch64 one. Also checks it is statically linked.
# Usage: tests/size.sh path/to/abguard
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 ABGUARD_BIN" >&2; exit 2; }
LIMIT=1048576
BIN=$1
kind=$(file -b "$BIN")
case "$kind" in
*"statically linked"*) ;;
*) echo "size: $BIN is not a static executable: $kind" >&2; exit 1 ;;
esac
size=$(stat -c %s "$BIN")
if [ "$size" -gt "$LIMIT" ]; then
	echo "size: $BIN is $size bytes, over the 1 MiB goal ($LIMIT) by $((size - LIMIT))" >&2
	exit 1
fi
echo "size: $BIN: $size bytes, $((LIMIT - size)) under 1 MiB ($(cut -d, -f2 <<<"$kind" | sed 's/^ //'))"
