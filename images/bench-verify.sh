#!/bin/bash
# Paired benchmarks for "Verify before trust" (docs/operator.md), on one USR slot of USR_MB MiB
# (default 256) filled with incompressible data, copied out of a mkimage.sh image:
#  1. `abguard verify` against `veritysetup verify` on the same slot: the same libcryptsetup
#     does the hashing, so the ratio is abguard's own cost (finding the hash offset, the
#     report); page cache warm, so it measures work, not the disk.
#  2. `abguard read-usr` (the first-boot full read) against a plain sequential read
#     (`dd bs=4M`) of the same file, page cache dropped before every run when we may
#     (root). Goal: read-usr reaches >= 90% of the plain read's throughput. There is no
#     dm-verity under a file: this measures the reader, not the kernel's hashing.
# usage: bench-verify.sh VERIFY_BIN [READ_BIN]
#   VERIFY_BIN: a build with the cryptsetup feature (make build-cryptsetup)
#   READ_BIN:   the binary whose read-usr is measured (default VERIFY_BIN; make passes the
#               static one, which is what runs on the machine)
#   env: USR_MB=256  RUNS=10  TMPDIR (on a real disk, not tmpfs, for the read benchmark)
set -euo pipefail

[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 VERIFY_BIN [READ_BIN]" >&2; exit 2; }
BIN=$(realpath "$1")
RBIN=$(realpath "${2:-$1}")
HERE=$(dirname "$(realpath "$0")")
USR_MB=${USR_MB:-256}
RUNS=${RUNS:-10}
T=$(mktemp -d "${TMPDIR:-/var/tmp}/bench-verify.XXXXXX")
trap 'rm -rf "$T"' EXIT
die() { echo "bench-verify: $*" >&2; exit 1; }

# /usr content that fills most of the slot and compresses to nothing: what a real slot's
# blocks cost to read and hash
mkdir -p "$T/usr/lib"
head -c $((USR_MB * 7 / 8 * 1048576)) /dev/urandom >"$T/usr/lib/payload.bin"
"$HERE/mkimage.sh" -q --usr-a "$T/usr" --version-a 1.0.0 --usr-mb "$USR_MB" "$T/disk.img"
# shellcheck source=/dev/null
. "$T/disk.env"
# the slot as a file of its own, fully allocated (no holes to read for free)
dd if="$T/disk.img" of="$T/usr-a.part" bs=4M skip="$USR_A_START" count="$USR_A_SIZE" \
	iflag=skip_bytes,count_bytes status=none
PART=$T/usr-a.part

# Both verifiers must agree before their speed means anything.
veritysetup verify --hash-offset="$HASH_OFFSET" "$PART" "$PART" "$USR_A_ROOTHASH" ||
	die "veritysetup rejects the slot"
"$BIN" verify --device "$PART" --root-hash "$USR_A_ROOTHASH" >/dev/null ||
	die "abguard verify rejects the slot"
cp "$PART" "$T/bad.part"
printf '\xff' | dd of="$T/bad.part" bs=1 seek=$((HASH_OFFSET / 2)) conv=notrunc status=none
out=$("$BIN" verify --device "$T/bad.part" --root-hash "$USR_A_ROOTHASH" --json 2>/dev/null) && die "abguard verify accepted a corrupted slot"
[[ $out == *'"block": '$((HASH_OFFSET / 2 / 4096))* ]] || die "abguard verify named the wrong block: $out"
rm -f "$T/bad.part"
"$RBIN" read-usr --device "$PART" >/dev/null || die "abguard read-usr failed on a good file"

bench() { # JSON PREPARE|"" NAME CMD [NAME CMD]...
	local json=$1 prep=$2 args=()
	shift 2
	while [ $# -gt 0 ]; do args+=(-n "$1" "$2") && shift 2; done
	[ -z "$prep" ] || args+=(--prepare "$prep")
	hyperfine -N --warmup 2 --runs "$RUNS" --style none --export-json "$json" "${args[@]}" \
		>/dev/null 2>"$T/hyperfine.err" || { cat "$T/hyperfine.err" >&2; exit 1; }
	! grep -q outliers "$T/hyperfine.err" || echo "note: hyperfine saw statistical outliers (a busy host)" >&2
}

bench "$T/verify.json" "" \
	"veritysetup verify" "veritysetup verify --hash-offset=$HASH_OFFSET $PART $PART $USR_A_ROOTHASH" \
	"abguard verify (hash offset found)" "$BIN verify --device $PART --root-hash $USR_A_ROOTHASH" \
	"abguard verify --hash-offset" "$BIN verify --device $PART --root-hash $USR_A_ROOTHASH --hash-offset $HASH_OFFSET"

DROP=""
cache=warm
if [ -w /proc/sys/vm/drop_caches ] && sh -c 'echo 3 > /proc/sys/vm/drop_caches' 2>/dev/null; then
	DROP="sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches'"
	cache=cold
fi
bench "$T/read.json" "$DROP" \
	"dd bs=4M (plain read)" "dd if=$PART of=/dev/null bs=4M status=none" \
	"abguard read-usr" "$RBIN read-usr --device $PART" \
	"abguard read-usr --direct" "$RBIN read-usr --device $PART --direct"

python3 - "$RUNS" "$USR_MB" "$cache" "$(stat -f -c %T "$T")" "$(nproc) CPUs, Linux $(uname -r)" \
	"$(stat -c %s "$PART")" "$(cut -d' ' -f1-3 /proc/loadavg)" "$T/verify.json" "$T/read.json" <<'PY'
import json, sys
runs, mb, cache, fs, host, size, load = sys.argv[1:8]
size = int(size)
v = json.load(open(sys.argv[8]))["results"]
r = json.load(open(sys.argv[9]))["results"]
print(f"hyperfine -N, {runs} runs after 2 warm-up; one {mb} MiB USR slot ({size >> 20} MiB file on {fs}); "
      f"{host}; load average {load}\n")
print("| command | mean ± σ (ms) | median (ms) | min (ms) | MiB/s (median) | vs first row (median) |")
print("|---|---|---|---|---|---|")
for rows, note in ((v, "page cache warm"), (r, f"page cache {cache}")):
    base = rows[0]["median"]
    for x in rows:
        m = x["median"]
        vs = f"{base / m:.2f}" if x is not rows[0] else "1"
        print(f"| {x['command']} ({note}) | {x['mean'] * 1e3:.0f} ± {x['stddev'] * 1e3:.0f} | {m * 1e3:.0f} | "
              f"{x['min'] * 1e3:.0f} | {size / 1048576 / m:.0f} | {vs} |")
med = lambda rows, k: [x[k] for x in rows]
(vm, am, _), (vn, an, _) = med(v, "median"), med(v, "min")
(dm, rm, rdm), (dn, rn, rdn) = med(r, "median"), med(r, "min")
print(f"\nabguard verify / veritysetup verify (time): {am / vm:.2f}x by median, {an / vn:.2f}x by min")
print(f"read-usr throughput / plain read: {dm / rm * 100:.0f}% buffered ({dn / rn * 100:.0f}% by min), "
      f"{dm / rdm * 100:.0f}% --direct ({dn / rdn * 100:.0f}% by min); "
      f"goal >= 90%: {'met' if min(dm / rm, dn / rn) >= 0.9 else 'NOT met'}")
PY
