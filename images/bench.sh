#!/bin/bash
# Paired benchmark: the shell prototype's first-boot detection script (its verbatim copy is
# tests/vm/e2e-guest/usr/libexec/seed-first-boot-check; docs/test-dependencies.md) against
# `abguard initrd` deciding the same thing on the same image (USR-B's first boot after
# an upgrade, the longest path through the script). Goal: abguard >= 8x faster.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 ABGUARD_BIN" >&2; exit 2; }
BIN=$(realpath "$1")
HERE=$(dirname "$(realpath "$0")")
RUNS=${RUNS:-300}
T=$(mktemp -d)
# /run is a tmpfs on a real boot: the flags go to one here too when there is one
R=$(mktemp -d -p "$([ -w /dev/shm ] && echo /dev/shm || echo "$T")")
trap 'rm -rf "$T" "$R"' EXIT
IMG=$T/disk.img
die() { echo "bench: $*" >&2; exit 1; }

"$HERE/mkimage.sh" -q --version-a 1.0.0 --version-b 2.0.0 --state staged-b "$IMG"
# shellcheck source=/dev/null
. "$T/disk.env"
# GRUB spends USR-B's try: now it is the first boot after the upgrade
[ "$("$BIN" next --disk "$IMG")" = 4 ] || die "GRUB would not boot USR-B"

# The prototype's script with only what cannot run here replaced: rootdev gives the known
# partition, and Debian's cgpt prints Flatcar's USR attributes only through -P/-S (plain
# `cgpt show` prints Attr: for ChromeOS kernel types alone) and knows no flatcar-usr
# alias, so the type GUID is spelled out. The decision logic is untouched.
cat >"$T/detect.sh" <<'EOF'
#!/bin/bash
healthy_flag_file="${1:-/run/first-boot-healthy}"
disk="$2"
function get_part_attr() {
local partition="$1"
local attribute="$2"
local n="${partition##*[!0-9]}"
case "${attribute}" in
priority) cgpt show -i "${n}" -P "${partition%"${n}"}" ;;
successful) cgpt show -i "${n}" -S "${partition%"${n}"}" ;;
esac
}
function is_first_boot_after_upgrade() {
active_part="${disk}4"
active_prio="$(get_part_attr "${active_part}" priority)"
spare_part="$(cgpt find -t 5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6 "${disk}" 2>/dev/null | grep -v "${active_part}")"
spare_prio="$(get_part_attr "${spare_part}" priority)"
if [[ ${active_prio} -le ${spare_prio} ]] ; then
echo "Active partition '${active_part}' has lower or equal priority ('${active_prio}') than spare ('${spare_part}': '${spare_prio}')."
return 1
fi
echo "Active partition '${active_part}' has highest priority '${active_prio}' (spare '${spare_part}': '${spare_prio}')."
if [[ "$(get_part_attr "${active_part}" "successful")" -eq 1 ]] ; then
echo "Current USR partition '${active_part}' has been marked as successful boot in a previous boot."
return 1
fi
return 0
}
if ! is_first_boot_after_upgrade; then
echo "No first boot after upgrade detected, quitting."
touch "${healthy_flag_file}"
exit 0
fi
echo "First boot after upgrade detected"
EOF

# What the initrd sees after booting partition 4: /usr on dm-0 (verity) over vda4, the
# command line GRUB passes for USR-B and dmsetup's view of a verity target that is fine.
S=$T/sys P=$T/sys/devices/pci0000:00/block/vda M=$T/sys/devices/virtual/block/dm-0
mkdir -p "$S"/{class,dev}/block "$P/vda4" "$M/dm" "$M/slaves" "$R/run" "$R/sysroot" "$T/sysroot"
echo 254:0 >"$P/dev" && echo 254:4 >"$P/vda4/dev" && echo 4 >"$P/vda4/partition"
echo 253:0 >"$M/dev" && echo usr >"$M/dm/name"
ln -s ../../../../pci0000:00/block/vda/vda4 "$M/slaves/vda4"
for l in vda:254:0:pci0000:00/block/vda vda4:254:4:pci0000:00/block/vda/vda4 dm-0:253:0:virtual/block/dm-0; do
	IFS=: read -r name maj min path <<<"$l"
	ln -s "../../devices/$path" "$S/class/block/$name"
	ln -s "../../devices/$path" "$S/dev/block/$maj:$min"
done
echo "30 29 253:0 / /sysusr/usr ro,relatime - ext4 /dev/mapper/usr ro" >"$T/mountinfo"
echo "mount.usr=/dev/mapper/usr verity.usr=PARTUUID=$USR_B_PARTUUID verity.usrhash=$USR_B_ROOTHASH" >"$T/cmdline"
echo "0 $((FS_BLOCKS * 8)) verity V" >"$T/dm-status"
echo "0 $((FS_BLOCKS * 8)) verity 1 254:4 254:4 4096 4096 $FS_BLOCKS $((HASH_OFFSET / 4096 + 1)) sha256 $USR_B_ROOTHASH -" >"$T/dm-table"

SCRIPT="bash $T/detect.sh $R/run/first-boot-healthy $IMG"
# SYSROOT is appended last so the on-disk variant can swap it
ABGUARD="$BIN initrd --disk $IMG --cmdline $T/cmdline --sysfs $S --mountinfo $T/mountinfo \
--usr /sysusr/usr --run-dir $R/run --dm-status $T/dm-status --dm-table $T/dm-table --no-reboot --sysroot"

# Both must reach the same decision before their speed means anything.
# Captured, not piped into grep -q: an early-closed pipe would kill the writer.
# shellcheck disable=SC2086 # the command lines are split on purpose, as hyperfine -N does
out=$($SCRIPT)
[[ $out == *"First boot after upgrade detected" ]] || die "the prototype script missed the first boot: $out"
# shellcheck disable=SC2086
out=$($ABGUARD "$R/sysroot" --json 2>/dev/null)
[[ $out == *'"verdict": "needs-health-check"'* ]] || die "abguard missed the first boot: $out"
[ ! -e "$R/run/first-boot-healthy" ] || die "first-boot-healthy written on a first boot"
# A machine that has booted a while rewrites a full history (HISTORY_MAX=100) every boot.
# shellcheck disable=SC2086
for _ in $(seq 100); do
	$ABGUARD "$R/sysroot" 2>/dev/null
	$ABGUARD "$T/sysroot" 2>/dev/null
done

# Not run through a shell (-N): only the commands' own cost is measured.
bench() { # JSON NAME CMD [NAME CMD]...
	local json=$1 args=()
	shift
	while [ $# -gt 0 ]; do args+=(-n "$1" "$2") && shift 2; done
	hyperfine -N --warmup 10 --runs "$RUNS" --style none --export-json "$json" "${args[@]}" \
		>/dev/null 2>"$T/hyperfine.err" || { cat "$T/hyperfine.err" >&2; exit 1; }
	# one line instead of hyperfine's paragraph per command
	! grep -q outliers "$T/hyperfine.err" || echo "note: hyperfine saw statistical outliers (a busy host)" >&2
}
bench "$T/initrd.json" "seed script (bash + 4 cgpt)" "$SCRIPT" \
	"abguard initrd, history on $(stat -f -c %T "$R")" "$ABGUARD $R/sysroot" \
	"abguard initrd, history on $(stat -f -c %T "$T") (fsync)" "$ABGUARD $T/sysroot"
bench "$T/status.json" "cgpt show -i 3 -P" "cgpt show -i 3 -P $IMG" "abguard status" "$BIN status --disk $IMG"

python3 - "$RUNS" "$(stat -c %s "$BIN")" "$(stat -f -c %T "$R")" "$(nproc) CPUs, Linux $(uname -r)" \
	"$T/initrd.json" "$T/status.json" <<'PY'
import json, sys
runs, size, fs, host = sys.argv[1:5]
print(f"hyperfine -N, {runs} runs after 10 warm-up; USR-B's first boot after an upgrade; "
      f"/run on {fs}; {host}\n")
print("| command | mean ± σ (ms) | median (ms) | min (ms) | vs first row |")
print("|---|---|---|---|---|")
means = []
for path in sys.argv[5:]:
    rs = json.load(open(path))["results"]
    means.append([r["mean"] for r in rs])
    for r in rs:
        m, base = r["mean"], rs[0]["mean"]
        vs = "1" if r is rs[0] else f"{base / m:.1f}× faster" if m < base else f"{m / base:.1f}× slower"
        print(f"| {r['command']} | {m * 1e3:.2f} ± {r['stddev'] * 1e3:.2f} | {r['median'] * 1e3:.2f} "
              f"| {r['min'] * 1e3:.2f} | {vs} |")
seed, ab, ab_disk = means[0]
print(f"\nabguard binary: {size} bytes")
print(f"seed script / abguard initrd (means): {seed / ab:.1f}x, goal >= 8x {'met' if seed / ab >= 8 else 'NOT met'}; "
      f"{seed / ab_disk:.1f}x with the history on disk")
PY
