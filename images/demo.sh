#!/bin/bash
# The A/B story told with abguard's real verbs on a sample image: an update that fails
# its health gate falls back by itself, one that passes is kept. Unprivileged, a few
# seconds, and every step is checked, so `make demo` doubles as a smoke test.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 ABGUARD_BIN DEMO_IMAGE_BIN" >&2; exit 2; }
BIN=$(realpath "$1") MKDEMO=$(realpath "$2")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
IMG=disk.img SYSROOT=$T/sysroot RUN=$T/run
mkdir -p "$SYSROOT" "$RUN"
# relative, so status prints a short disk name
cd "$T"

step() { printf '\n== %s\n' "$*"; }
die() { echo "demo: FAILED: $*" >&2; exit 1; }
ab() { "$BIN" "$@" --disk "$IMG"; }
status() { ab status "${PROBE[@]}" --history 4 | sed 's/^/   /'; }

# The machine as the initrd sees it after GRUB booted partition $1 (3 = USR-A, 4 = USR-B):
# /usr on dm-verity device dm-0 over vdaN, the command line GRUB passes for that slot,
# dmsetup's view of the verity target and that slot's os-release (from demo_image). Only
# files and symlinks, so no loop device, dm or root is needed.
fake_boot() {
	local n=$1 s slot uuid hash salt
	s=$T/boot$n
	slot=$([ "$n" = 3 ] && echo A || echo B)
	uuid=USR_${slot}_PARTUUID hash=USR_${slot}_ROOTHASH
	uuid=${!uuid} hash=${!hash}
	rm -rf "$s" && mkdir -p "$s"/sys/{class,dev}/block "$s/usr/lib"
	local d=$s/sys/devices/pci0000:00/block/vda p=$s/sys/devices/pci0000:00/block/vda/vda$n
	local m=$s/sys/devices/virtual/block/dm-0
	mkdir -p "$p" "$m/dm" "$m/slaves"
	echo 254:0 >"$d/dev"
	echo "254:$n" >"$p/dev" && echo "$n" >"$p/partition"
	echo 253:0 >"$m/dev" && echo usr >"$m/dm/name"
	ln -s "../../../../pci0000:00/block/vda/vda$n" "$m/slaves/vda$n"
	ln -s ../../devices/pci0000:00/block/vda "$s/sys/class/block/vda"
	ln -s ../../devices/pci0000:00/block/vda "$s/sys/dev/block/254:0"
	ln -s "../../devices/pci0000:00/block/vda/vda$n" "$s/sys/class/block/vda$n"
	ln -s "../../devices/pci0000:00/block/vda/vda$n" "$s/sys/dev/block/254:$n"
	ln -s ../../devices/virtual/block/dm-0 "$s/sys/class/block/dm-0"
	ln -s ../../devices/virtual/block/dm-0 "$s/sys/dev/block/253:0"
	echo "30 29 253:0 / $s/usr ro,relatime - ext4 /dev/mapper/usr ro" >"$s/mountinfo"
	echo "mount.usr=/dev/mapper/usr verity.usr=PARTUUID=$uuid verity.usrhash=$hash" >"$s/cmdline"
	cp "$T/usr-${slot,,}/lib/os-release" "$s/usr/lib/os-release"
	salt=$SALT
	echo "0 $((FS_BLOCKS * 8)) verity V" >"$s/dm-status"
	echo "0 $((FS_BLOCKS * 8)) verity 1 254:$n 254:$n 4096 4096 $FS_BLOCKS $((HASH_OFFSET / 4096 + 1)) sha256 $hash $salt" >"$s/dm-table"
	PROBE=(--cmdline "$s/cmdline" --sysfs "$s/sys" --mountinfo "$s/mountinfo" --usr "$s/usr"
		--run-dir "$RUN" --sysroot "$SYSROOT")
	DM=(--dm-status "$s/dm-status" --dm-table "$s/dm-table")
}

# JSON is checked with python3, not jq, which CI images may lack.

# initrd N WANT: boot partition N and run the initrd assessment; /run starts empty on
# every boot, /sysroot (where the history lives) persists.
initrd() {
	fake_boot "$1"
	rm -rf "$RUN" && mkdir "$RUN"
	ab initrd "${PROBE[@]}" "${DM[@]}" --no-reboot --json 2>"$T/err" | python3 -c '
import json, sys
r = json.load(sys.stdin)
b = r["booted"] or {}
print("   initrd: %s %s booted (found by %s), dm-verity %s, first boot after upgrade: %s -> %s"
      % (b.get("label"), r["version_id"], b.get("source"), (r["verity"] or {}).get("status"),
         r["first_boot_after_upgrade"], r["verdict"]))
sys.exit(r["verdict"] != sys.argv[1])' "$2" || { cat "$T/err" >&2; die "initrd on partition $1: expected $2"; }
}

# next N: GRUB's gptprio.next must pick partition N.
next() {
	ab next --json | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("   GRUB boots %s, partition %s (tries %s -> %s)"
      % (r["label"], r["partition"], r["tries_before"], r["tries_after"]))
sys.exit(r["partition"] != int(sys.argv[1]))' "$1" || die "next: expected partition $1"
}

# flags F...: exactly these of the two flags the booted system's units key on exist.
flags() {
	local f want have
	for f in first-boot-healthy abguard/needs-health-check; do
		want=absent have=absent
		if [[ " $* " == *" $f "* ]]; then want=present; fi
		if [ -e "$RUN/$f" ]; then have=present; fi
		echo "   /run/$f: $have"
		[ "$have" = "$want" ] || die "/run/$f is $have, expected $want"
	done
}

# examples/demo_image.rs: Flatcar's table and attributes, written with gptman, so the demo
# needs no disk tools
"$MKDEMO" "$T"
# shellcheck source=/dev/null
. "$T/disk.env"
IMG=disk.img
fake_boot 3

echo "The sample disk holds Flatcar's partition table and the fresh-install attributes, and"
echo "no filesystem: abguard decides from the table and attributes; each slot's os-release and"
echo "dm-verity table (with fixed stand-in root hashes) are files given to it as in the initrd."

step "1. fresh image: USR-A (1.0.0) is good and boots; USR-B holds 2.0.0, not yet staged"
status

step "2. update_engine wrote 2.0.0 to USR-B; its postinst stages it: one try, top priority"
ab stage --partition 4 | sed 's/^/   /'
status

step "3. reboot: GRUB picks USR-B and spends its only try"
next 4
step "4. initrd on USR-B: first boot after an upgrade, so the system must prove itself"
initrd 4 needs-health-check
flags abguard/needs-health-check

step "5. a critical service fails: nothing runs mark-good, the watchdog reboots"
status

step "6. reboot: USR-B has no tries left, GRUB falls back to USR-A"
next 3
initrd 3 healthy
flags first-boot-healthy
status

step "7. the fixed update: stage USR-B again, boot it, services come up, mark it good"
ab stage --partition 4 >/dev/null
next 4
initrd 4 needs-health-check
# no --partition: mark-good finds the booted slot itself, as on a real machine
ab mark-good "${PROBE[@]}" | sed 's/^/   /'
status
ab status --json | python3 -c '
import json, sys
b = json.load(sys.stdin)["slots"][1]
sys.exit(not (b["successful"] and b["priority"] == 2 and b["tries"] == 0))' ||
	die "USR-B is not marked good"
echo
echo "demo: OK"
