#!/bin/bash
# The A/B story told with abguard's real verbs on a sample image: an update whose
# critical service crashes fails its health gate (the real gate code, with a stand-in
# for systemctl), rolls back, and status says why; the loop guard refuses the same build
# once; a different build passes its gate and is kept. Unprivileged, a few seconds, and
# every step is checked, so `make demo` doubles as a smoke test.
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
	# slot B holds build 2.0.0 (usr-b), later 2.1.0 (usr-b2, BUILD_B=2)
	cp "$T/usr-${slot,,}$([ "$slot" = B ] && echo "${BUILD_B:-}")/lib/os-release" "$s/usr/lib/os-release"
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

# The stand-in for systemctl the gate asks (ABGUARD_SYSTEMCTL): `systemctl show` of a unit
# answers from $T/units/UNIT, which the demo changes while the gate watches.
mkdir -p "$T/units"
cat >"$T/systemctl" <<'EOF'
#!/bin/sh
[ "$1" = show ] || exit 0
d=$(dirname "$0")
shift
units=""
while [ $# -gt 0 ]; do
	case $1 in -p) shift ;; --value | --) ;; *) units="$units $1" ;; esac
	shift
done
[ -n "$units" ] || { echo 0; exit 0; }
sep=""
for u in $units; do
	printf "%b" "$sep"
	sep="\n"
	cat "$d/units/$u"
done
EOF
chmod +x "$T/systemctl"
export ABGUARD_SYSTEMCTL=$T/systemctl

# unit STATE SUB RESTARTS: what systemd says of web.service from now on
unit() {
	printf 'ActiveState=%s\nSubState=%s\nInvocationID=i1\nNRestarts=%s\nResult=%s\n' "$1" "$2" "$3" \
		"$([ "$1" = failed ] && echo exit-code || echo success)" >"$T/units/web.service.new"
	mv "$T/units/web.service.new" "$T/units/web.service"
}

# The booted system's health gate (abguard-gate.service runs `abguard gate-pass`), in the
# background until its verdict.
gate_start() {
	ab gate-pass "${PROBE[@]}" --no-reboot 2>"$T/gate.err" &
	GATE=$!
	for _ in $(seq 100); do
		[ -e "$RUN/abguard/gate.json" ] && return
		sleep 0.05
	done
	die "the gate did not start watching: $(cat "$T/gate.err")"
}
gate_end() {
	wait "$GATE" || die "the gate failed: $(cat "$T/gate.err")"
	sed 's/^/   gate: /' "$T/gate.err"
}

# examples/demo_image.rs: Flatcar's table and attributes, written with gptman, so the demo
# needs no disk tools
"$MKDEMO" "$T"
# shellcheck source=/dev/null
. "$T/disk.env"
IMG=disk.img
BUILD_B=
# the kernels on the boot partition: each carries its slot's root hash (the loop guard's
# build identity)
mkdir -p "$SYSROOT/boot/flatcar" "$SYSROOT/etc/abguard"
cp "$T/kernels/vmlinuz-a" "$T/kernels/vmlinuz-b" "$SYSROOT/boot/flatcar/"
# the node's configuration: web.service must come up and stay up for 2 s
printf 'CRITICAL_UNITS=web.service\nSTABLE_FOR=2s\n' >"$SYSROOT/etc/abguard/abguard.conf"
fake_boot 3

echo "The sample disk holds Flatcar's partition table and the fresh-install attributes, and"
echo "no filesystem: abguard decides from the table and attributes; each slot's os-release,"
echo "kernel and dm-verity table (with fixed stand-in root hashes) are files given to it as"
echo "on a machine, and systemctl is a stand-in the demo tells what web.service does."

step "1. fresh image: USR-A (1.0.0) is good and boots; USR-B is empty"
initrd 3 healthy
status

step "2. update_engine wrote 2.0.0 to USR-B; its postinst stages it: one try, top priority"
ab stage --partition 4 "${PROBE[@]}" | sed 's/^/   /'

step "3. reboot: GRUB picks USR-B and spends its only try; the initrd says: prove yourself"
next 4
initrd 4 needs-health-check
flags abguard/needs-health-check

step "4. the health gate watches web.service: it starts, then crashes"
unit activating start 0
gate_start
unit active running 0
sleep 0.6
unit failed failed 0
gate_end
flags abguard/needs-health-check

step "5. status answers: what runs, what the next reboot does, and why"
status

step "6. reboot: USR-B is spent, GRUB falls back to USR-A"
next 3
initrd 3 healthy
flags first-boot-healthy
status | sed -n 1,5p
ab status "${PROBE[@]}" | grep -q 'why: critical unit web.service failed' ||
	die "status does not say why"

step "7. update_engine re-stages the same 2.0.0: the loop guard refuses it"
if ab stage --partition 4 "${PROBE[@]}" 2>"$T/err"; then die "the failed build was staged again"; fi
sed 's/^/   /' "$T/err"

step "8. a different build, 2.1.0 (another root hash), is written to USR-B and staged"
cp "$T/kernels/vmlinuz-b2" "$SYSROOT/boot/flatcar/vmlinuz-b"
# shellcheck disable=SC2034 # fake_boot reads it through ${!hash}
BUILD_B=2 USR_B_ROOTHASH=$USR_B2_ROOTHASH
ab stage --partition 4 "${PROBE[@]}" | sed 's/^/   /'
next 4
initrd 4 needs-health-check

step "9. the gate watches again: web.service comes up and stays up for 2 s"
unit activating start 0
gate_start
unit active running 0
gate_end
flags first-boot-healthy
status | sed -n 1,3p

step "10. update-engine marks the booted slot good (flatcar-setgoodroot): 2.1.0 is kept"
ab mark-good "${PROBE[@]}" | sed 's/^/   /'
status
ab status "${PROBE[@]}" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
b = s["slots"][1]
ok = b["successful"] and b["tries"] == 0 and s["running"]["version_id"] == "2.1.0"
ok = ok and s["next_reboot"]["label"] == "USR-B" and s["health_gate"]["state"] == "passed"
sys.exit(not ok)' || die "USR-B 2.1.0 is not kept"
echo
echo "demo: OK"
