#!/bin/bash
# Stock-image mode: a systemd-sysext image with abguard's binary, units, generator and
# defaults, for Flatcar machines that cannot add the dracut module. Units from an
# extension appear only after systemd-sysext merged it (just before sysinit.target), so
# they are started with Upholds= drop-ins, the way Flatcar's sysext-bakery does it, and
# their start conditions move into the binary, which checks the same markers itself.
# Usage: packaging/sysext.sh ABGUARD_BIN OUT.raw
set -euo pipefail
BIN=${1:?abguard binary}; OUT=${2:?output image}
REPO=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
R=$T/root

make -s -C "$REPO" install DESTDIR="$R" >/dev/null
install -m 0755 "$BIN" "$R/usr/bin/abguard"
# the initrd module has no place in a booted system's /usr overlay
rm -rf "$R/usr/lib/dracut"
S=$R/usr/lib/systemd/system
dropin() { mkdir -p "$S/$1.d"; printf '%s\n' "# abguard sysext" "$2" >"$S/$1.d/10-abguard.conf"; }
dropin sysinit.target "$(printf '[Unit]\nUpholds=abguard-assess.service')"
dropin multi-user.target "$(printf '[Unit]\nUpholds=abguard-gate.service abguard-healthy.path abguard-locksmithd.path abguard-guard-staged.path')"
dropin timers.target "$(printf '[Unit]\nUpholds=abguard-deadline.timer')"
for u in abguard-assess.service abguard-gate.service abguard-deadline.timer; do
  dropin "$u" "$(printf '[Unit]\nConditionPathExists=')"
done
mkdir -p "$R/usr/lib/extension-release.d"
cat >"$R/usr/lib/extension-release.d/extension-release.abguard" <<REL
ID=flatcar
SYSEXT_LEVEL=1.0
ARCHITECTURE=x86-64
REL
mkdir -p "$(dirname "$OUT")"
mksquashfs "$R" "$OUT.tmp" -all-root -noappend -quiet -no-progress -comp zstd >/dev/null
mv "$OUT.tmp" "$OUT"
echo "sysext $OUT: $(stat -c %s "$OUT") bytes"
