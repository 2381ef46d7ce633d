#!/bin/bash
# make e2e: the six A/B scenarios of issue 3 on real boots. qemu (TCG) boots a Debian kernel
# with a dracut initrd that carries the abguard module, from a Flatcar-layout disk whose USR
# slots hold real dm-verity /usr trees. Between boots the host plays GRUB with `abguard next`
# on the image and builds the command line from the chosen slot. Every scenario starts from
# a copy of the pristine disk (A 1.0.0 installed and good, B empty) and is judged from the
# image's GPT, the history on ROOT and the serial log.
# Usage: e2e.sh ABGUARD_BIN   env: ABGUARD_CACHE, E2E_WORK, TIMEOUT (per boot), ONLY="3 4"
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ABGUARD_BIN=$(realpath "${1:?usage: e2e.sh ABGUARD_BIN}"); export ABGUARD_BIN
W=$E2E_WORK/e2e
mkdir -p "$W"; rm -rf "$W/logs" "$W"/s*.img "$W"/s*.layout
T_ALL=$(date +%s%N)
result=FAIL
trap 'log "timings:"; print_timings >&2; log "total $(secs_since "$T_ALL")s"; echo "E2E $result"' EXIT
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

# --- build (kernel and rootfs cached outside the repo) -------------------------------------
timed deps "$VM_DIR/install-deps.sh"
timed kernel "$VM_DIR/get-kernel.sh" "$ABGUARD_CACHE"
timed rootfs "$VM_DIR/build-rootfs.sh" "$ABGUARD_CACHE" >"$W/rootfs.path"
ROOTFS=$(cat "$W/rootfs.path")

# the product exactly as `make install` lays it out, plus the test stand-ins
rm -rf "$W/tree" "$W/bad" "$W/marked"
timed install make -s -C "$REPO_DIR" install DESTDIR="$W/tree" >/dev/null
install -m 0755 "$ABGUARD_BIN" "$W/tree/usr/bin/abguard"
COMMON=$W/tree:$VM_DIR/e2e-guest
# B's os-release carries a marker that lz4 stores as literal bytes, so the host can find
# the block holding it in the squashfs image and corrupt exactly that block
MARKER=e2e$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$W/marked/usr/lib" "$W/bad/usr/share/e2e"
printf 'ID=abguard-e2e\nNAME="abguard test OS"\nVERSION_ID=2.0.0\nE2E_MARKER=%s\n' "$MARKER" >"$W/marked/usr/lib/os-release"
touch "$W/bad/usr/share/e2e/web-fail"
timed "usr A" env EXTRA_USR="$COMMON" "$VM_DIR/build-usr.sh" "$ROOTFS" 1.0.0 "$W/usr-a.part"
timed "usr B" env EXTRA_USR="$COMMON:$W/marked" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$W/usr-b.part"
timed "usr B-bad" env EXTRA_USR="$COMMON:$W/bad" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$W/usr-b-bad.part"
timed disk env EXTRA_ROOT="$VM_DIR/e2e-root" "$VM_DIR/build-disk.sh" "$ROOTFS" "$W" "$W/usr-a.part" none
mv "$W/disk.img" "$W/pristine.img"; mv "$W/layout.env" "$W/pristine.layout"
# shellcheck disable=SC1091
. "$W/pristine.layout"
timed initramfs env EXTRA_DRACUT_MODULES="$REPO_DIR/dracut/50abguard $VM_DIR/dracut/98emergency-timeout" \
  "$VM_DIR/build-initramfs.sh" "$HASH_OFFSET" "$W/initrd.img"

# lsinitrd: dracut's install() failures are silent, so check that the module really landed
listing=$(lsinitrd "$W/initrd.img" 2>/dev/null)
for f in usr/bin/abguard usr/lib/systemd/system/abguard-initrd.service \
         etc/systemd/system/initrd.target.wants/abguard-initrd.service \
         usr/lib/dracut/hooks/emergency/00-abguard-emergency.sh \
         usr/lib/dracut/hooks/shutdown-emergency/00-abguard-emergency.sh; do
  assert "lsinitrd shows $f" 1 "$(grep -c " $f\( \|$\)" <<<"$listing")"
done

# --- helpers --------------------------------------------------------------------------------
# new_disk TAG: a private copy of the pristine disk; sets DISK and LAYOUT
new_disk() {
  DISK=$W/$1.img LAYOUT=$W/$1.layout
  cp --sparse=always "$W/pristine.img" "$DISK"; cp "$W/pristine.layout" "$LAYOUT"
}
# stage_b PAYLOAD: what update_engine does: write the payload into USR-B, then postinst
stage_b() {
  "$VM_DIR/write-slot.sh" "$DISK" 4 "$1" "$LAYOUT"
  "$ABGUARD_BIN" stage --disk "$DISK" --partition 4 >/dev/null
}
# boot TAG [kernel args]: GRUB's choice, then one boot; sets PART, END, WALL, LOG
boot() {
  local tag=$1 next hash; shift
  next=$(grub_next "$DISK") || die "$tag: no bootable USR partition: $(gpt_state "$DISK")"
  PART=$(json_get "$next" partition)
  # shellcheck disable=SC1090
  hash=$(. "$LAYOUT"; [ "$PART" = 3 ] && echo "$USR_A_ROOTHASH" || echo "$USR_B_ROOTHASH")
  LOG=$W/logs/$tag.serial.log
  timed "boot $tag" env WORK="$W" DISK="$DISK" LAYOUT="$LAYOUT" INITRD="$W/initrd.img" \
    "$VM_DIR/run-vm.sh" "$tag" "$(json_get "$next" partuuid)" "$hash" "$@" >"$W/$tag.result" || true
  log "$(cat "$W/$tag.result") ($next)"
  strip_ansi "$LOG" | grep -a -e '^BOOTPROBE:' -e 'abguard' | sed 's/^/  | /' >&2 || true
  END=$(sed -n 's/.* end=//p' "$W/$tag.result")
  WALL=$(sed -n 's/.* wall=\([0-9.]*\)s.*/\1/p' "$W/$tag.result")
}
# hist FIELD [N]: FIELD (dotted path) of the Nth-last history entry on ROOT (default last)
hist() {
  root_cat "$DISK" /var/lib/abguard/attempts.jsonl | python3 -c '
import json, os, sys
lines = [json.loads(l) for l in sys.stdin if l.strip()]
# manual-* lines are stage/mark-good/rollback/next run by hand or by the update-engine stand-in;
# the assertions read the boot assessment around them (HIST_ALL=1: every line)
if not os.environ.get("HIST_ALL"):
    lines = [l for l in lines if not str(l.get("event", "")).startswith("manual-")]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1
v = lines[-n] if len(lines) >= n else {}
for k in sys.argv[1].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else (json.dumps(v) if isinstance(v, (list, dict)) else str(v).lower() if isinstance(v, bool) else v))
' "$@"
}
hist_count() { root_cat "$DISK" /var/lib/abguard/attempts.jsonl | grep -c . || true; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a < b)}'; }

# --- 1. plain boot on A: healthy at once, nothing reboots, A stays good ----------------------
if want 1; then
  new_disk s1
  boot s1-a
  assert "s1 booted A" 3 "$PART"
  assert "s1 powered off (no reboot)" poweroff "$END"
  assert "s1 version" 1.0.0 "$(probe_field "$LOG" version)"
  assert "s1 system state" running "$(probe_field "$LOG" state)"
  assert "s1 GPT" "A(P1 T0 S1) B(P0 T0 S0)" "$(gpt_state "$DISK")"
  assert "s1 initrd verdict" healthy "$(hist verdict)"
  assert "s1 booted slot found by" cmdline+sysfs "$(hist booted.source)"
  assert "s1 dm-verity status" V "$(hist verity.status)"
  assert "s1 verity root hash checked" "$USR_A_ROOTHASH" "$(hist verity.root_hash)"
fi

# --- 2. B staged and healthy: the gate passes, B becomes good; next boot is ordinary ---------
if want 2 || want 5; then
  new_disk s2
  stage_b "$W/usr-b.part"
  boot s2-b-first
  assert "s2 booted B" 4 "$PART"
  assert "s2 powered off (no reboot)" poweroff "$END"
  assert "s2 version" 2.0.0 "$(probe_field "$LOG" version)"
  assert "s2 initrd said first boot" needs-health-check "$(hist verdict 2)"
  assert "s2 gate passed" gate-passed "$(hist event)"
  assert "s2 B marked good by update-engine" "A(P1 T0 S1) B(P2 T0 S1)" "$(gpt_state "$DISK")"
  assert "s2 the mark-good is in the history" manual-mark-good "$(HIST_ALL=1 hist event)"
  boot s2-b-again
  assert "s2 second boot on B" 4 "$PART"
  assert "s2 second boot is no first boot" healthy "$(hist verdict)"
  assert "s2 second boot first_boot_after_upgrade" false "$(hist first_boot_after_upgrade)"
  assert "s2 second boot powered off" poweroff "$END"
  S2_DISK=$DISK S2_LAYOUT=$LAYOUT
fi

# --- 3. B staged, its critical service fails: back on A within the deadline ----------------
if want 3; then
  new_disk s3
  stage_b "$W/usr-b-bad.part"
  boot s3-b-bad
  assert "s3 booted B" 4 "$PART"
  assert "s3 abguard rebooted" reboot "$END"
  lt "$WALL" 150 || die "s3: the rollback took ${WALL}s, beyond the 150 s deadline"
  assert "s3 history: gate failed" gate-failed "$(hist event)"
  assert "s3 history names the unit" 1 "$(hist reasons | grep -c 'web.service failed')"
  assert "s3 failed units recorded" 1 "$(hist failed_units | grep -c 'web.service')"
  assert "s3 B spent" "A(P1 T0 S1) B(P2 T0 S0)" "$(gpt_state "$DISK")"
  boot s3-a
  assert "s3 back on A" 3 "$PART"
  assert "s3 A version" 1.0.0 "$(probe_field "$LOG" version)"
  assert "s3 A healthy" healthy "$(hist verdict)"
  assert "s3 no further reboot" poweroff "$END"
fi

# Byte offset of the first occurrence of $1 in B's data area on $DISK (empty when absent).
# grep -m1 stops early, so dd may die of SIGPIPE: with pipefail, the `| head` this replaced failed
# the whole run now and then, silently (set -e); the first hit is cut from the captured text.
marker_offset() {
  local off hits
  read -r off _ < <(part_range "$DISK" 4)
  hits=$(dd if="$DISK" bs=4M skip="$off" count=$((HASH_OFFSET / 4194304 + 1)) iflag=skip_bytes status=none |
         grep -aob -m1 "$1") || true
  echo "${hits%%:*}"
}

# --- 4. B staged with a corrupted block in its /usr: detected, B spent, back on A -----------
if want 4; then
  new_disk s4
  stage_b "$W/usr-b.part"
  at=$(marker_offset "$MARKER")
  [ -n "$at" ] || die "s4: the os-release marker is not stored literally in B's image"
  "$VM_DIR/corrupt-slot.sh" "$DISK" 4 "$at"
  boot s4-b-corrupt
  assert "s4 booted B" 4 "$PART"
  assert "s4 abguard rebooted from the initrd" reboot "$END"
  assert "s4 verdict" rollback "$(hist verdict)"
  assert "s4 dm-verity said corrupted" C "$(hist verity.status)"
  assert "s4 B spent" "A(P1 T0 S1) B(P2 T0 S0)" "$(gpt_state "$DISK")"
  boot s4-a
  assert "s4 back on A" 3 "$PART"
  assert "s4 A healthy" healthy "$(hist verdict)"
  assert "s4 no further reboot" poweroff "$END"
fi

# --- 5. manual `abguard rollback` from B to A: A boots, no loop ----------------------------
if want 5; then
  # continues on scenario 2's disk: B good and booted, A good and older
  DISK=$S2_DISK LAYOUT=$S2_LAYOUT
  # from the host the booted slot is unknown, so the target is named (without it: exit 3)
  "$ABGUARD_BIN" rollback --disk "$DISK" --partition 3 >/dev/null
  assert "s5 rollback made A next" "A(P2 T0 S1) B(P1 T0 S1)" "$(gpt_state "$DISK")"
  boot s5-a
  assert "s5 booted A" 3 "$PART"
  assert "s5 A healthy" healthy "$(hist verdict)"
  assert "s5 powered off" poweroff "$END"
  boot s5-a-again
  assert "s5 A again, no loop" 3 "$PART"
  assert "s5 GPT stable" "A(P2 T0 S1) B(P1 T0 S1)" "$(gpt_state "$DISK")"
fi

# --- 6. B's initrd fails: back on A without waiting out the emergency timeout ---------------
if want 6; then
  new_disk s6
  stage_b "$W/usr-b.part"
  "$VM_DIR/corrupt-slot.sh" "$DISK" 4   # block 0: the initrd's verity setup fails
  # Flatcar's behaviour: the emergency shell, with a 300 s timeout (98emergency-timeout)
  RD_ARGS="rd.shell=1" boot s6-b-broken
  assert "s6 booted B" 4 "$PART"
  assert "s6 rebooted" reboot "$END"
  lt "$WALL" 120 || die "s6: ${WALL}s: the emergency timeout was waited out"
  assert "s6 the 300 s timeout never started" 0 "$(strip_ansi "$LOG" | grep -ac 'E2E-EMERGENCY-TIMEOUT' || true)"
  assert "s6 B spent" "A(P1 T0 S1) B(P2 T0 S0)" "$(gpt_state "$DISK")"
  boot s6-a
  assert "s6 back on A" 3 "$PART"
  assert "s6 A healthy" healthy "$(hist verdict)"
  assert "s6 the emergency rollback is in the history" initrd-emergency "$(hist event 2)"
  assert "s6 no further reboot" poweroff "$END"
fi

# --- 7. VERIFY_USR=yes: the full read of /usr finds a corrupted block nothing else reads ----
if want 7; then
  # B carries a file no one opens during boot, of random bytes, so squashfs stores it as is
  # and the host can find it and flip a byte in it: without the full read, this boot would
  # pass the gate and B would be marked good with a bad block in it
  mkdir -p "$W/cold/usr/share/e2e"
  { printf '%s' "$MARKER-cold"; head -c $((256 * 1024 - ${#MARKER} - 5)) /dev/urandom; } >"$W/cold/usr/share/e2e/cold.bin"
  timed "usr B-cold" env EXTRA_USR="$COMMON:$W/marked:$W/cold" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$W/usr-b-cold.part"
  new_disk s7
  stage_b "$W/usr-b-cold.part"
  # VERIFY_USR=yes in ROOT's /etc/abguard/abguard.conf.d/, written into the image copy
  printf 'VERIFY_USR=yes\n' >"$W/s7-verify-usr.conf"
  root_off=$(( $(gpt_attr "$DISK" 9 b) * 512 ))
  printf 'mkdir /etc/abguard/abguard.conf.d\nwrite %s /etc/abguard/abguard.conf.d/50-verify-usr.conf\n' "$W/s7-verify-usr.conf" |
    debugfs -w -f - "$DISK?offset=$root_off" >/dev/null 2>&1
  assert "s7 VERIFY_USR=yes on ROOT" VERIFY_USR=yes "$(root_cat "$DISK" /etc/abguard/abguard.conf.d/50-verify-usr.conf)"
  at=$(marker_offset "$MARKER-cold")
  [ -n "$at" ] || die "s7: the cold file is not stored literally in B's image"
  at=$((at + 200000)); bad_block=$((at / 4096))
  [ "$at" -lt "$HASH_OFFSET" ] || die "s7: the cold file lies beyond the data area"
  "$VM_DIR/corrupt-slot.sh" "$DISK" 4 "$at"
  boot s7-b-cold
  assert "s7 booted B" 4 "$PART"
  assert "s7 the failed full read rebooted" reboot "$END"
  assert "s7 the full read failed" read-usr-failed "$(hist event 2)"
  assert "s7 the full read named the block" "$bad_block" "$(hist read_usr.error_block 2)"
  assert "s7 dm-verity named the same block" yes "$(strip_ansi "$LOG" | grep -aq "data block $bad_block is corrupted" && echo yes || echo no)"
  assert "s7 gate failed on the full read" gate-failed "$(hist event)"
  assert "s7 history names the unit" 1 "$(hist reasons | grep -c 'abguard-read-usr.service failed')"
  assert "s7 B spent" "A(P1 T0 S1) B(P2 T0 S0)" "$(gpt_state "$DISK")"
  boot s7-a
  assert "s7 back on A" 3 "$PART"
  assert "s7 A healthy" healthy "$(hist verdict)"
  assert "s7 no further reboot" poweroff "$END"
fi

# --- 8-13: the health gate (issue 11) -----------------------------------------------------
# One update image for all of them: B with the gate's test units (tests/vm/e2e-gate/usr);
# each scenario's ROOT config names which of them is critical, so only those start.
G=$VM_DIR/e2e-gate
GATE_IMAGE_BUILT=""
gate_image() {   # once per run, so a changed e2e-gate/ is always in it
  [ -z "$GATE_IMAGE_BUILT" ] || return 0
  timed "usr B-gate" env EXTRA_USR="$COMMON:$W/marked:$G" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$W/usr-b-gate.part"
  GATE_IMAGE_BUILT=yes
}
# root_put SRC DEST [MODE]: a file onto the image copy's ROOT (replacing what is there)
root_put() {
  local off d; off=$(( $(gpt_attr "$DISK" 9 b) * 512 ))
  d=$(dirname "$2")
  { printf 'mkdir %s\n' "$(dirname "$d")" "$d"; printf 'rm %s\nwrite %s %s\n' "$2" "$1" "$2"
    [ -z "${3:-}" ] || printf 'sif %s mode 0100%s\n' "$2" "$3"; } |
    debugfs -w -f - "$DISK?offset=$off" >/dev/null 2>&1
  assert "ROOT has $2" "$(cat "$1")" "$(root_cat "$DISK" "$2")"
}
# gate_disk N: a fresh disk with B-gate staged and scenario N's config on ROOT
gate_disk() {
  gate_image; new_disk "s$1"; stage_b "$W/usr-b-gate.part"
  root_put "$G/conf/s$1.conf" /etc/abguard/abguard.conf
  # a persistent journal, for `journal_of TAG` when a scenario needs explaining
  debugfs -w -R "mkdir /var/log/journal" "$DISK?offset=$(( $(gpt_attr "$DISK" 9 b) * 512 ))" >/dev/null 2>&1
}
# journal_of TAG: the guest's journal of the boots so far, into $W/logs/TAG.journal
journal_of() {
  rm -rf "$W/j"; mkdir -p "$W/j"
  root_debugfs "$DISK" "rdump /var/log/journal $W/j" >/dev/null
  journalctl -D "$W/j/journal" -o short-monotonic --no-pager >"$W/logs/$1.journal" 2>&1 || true
}
# kts PATTERN: kernel timestamp (s) of the first serial line matching PATTERN
# (no grep -m1: its early exit would SIGPIPE the reader, and pipefail would end the run)
kts() { strip_ansi "$LOG" | grep -a "$1" | sed -n '1s/^\[ *\([0-9.]*\)\].*/\1/p'; }
# fail_to_reboot: seconds from the first E2E-FAIL to the reboot request, printed
fail_to_reboot() {
  local f r; f=$(kts 'E2E-FAIL'); r=$(kts 'E2E-REBOOT')
  [ -n "$f" ] && [ -n "$r" ] || die "$1: no E2E-FAIL/E2E-REBOOT timestamps in $LOG"
  FAIL_TO_REBOOT=$(awk -v a="$f" -v b="$r" 'BEGIN{printf "%.1f", b-a}')
  TIMINGS+=("$1 failure->reboot request ${FAIL_TO_REBOOT}s")
  log "time: $1 failure -> reboot request ${FAIL_TO_REBOOT}s (failure at ${f}s, reboot asked at ${r}s)"
}
hist_has() { hist "$1" "${3:-1}" | grep -qF -- "$2" && echo yes || echo no; }
next_dry() { "$ABGUARD_BIN" next --disk "$DISK" --dry-run; }

# --- 8. (a) the tutorial's nginx shape, failing ExecStartPre, no DEADLINE: back on A fast --
if want 8; then
  gate_disk 8
  boot s8-b-loop
  assert "s8 booted B" 4 "$PART"
  assert "s8 abguard rebooted" reboot "$END"
  journal_of s8
  fail_to_reboot s8
  lt "$FAIL_TO_REBOOT" 5 || die "s8: failure -> reboot took ${FAIL_TO_REBOOT}s (target <= 5 s)"
  restart_at=$(kts 'reboot: Restarting system')
  lt "$(awk -v a="$(kts E2E-FAIL)" -v b="$restart_at" 'BEGIN{print b-a}')" 60 || die "s8: not back within 60 s of the first failure"
  assert "s8 history: gate failed" gate-failed "$(hist event)"
  assert "s8 the reason names the unit's restart" yes "$(hist_has reasons 'critical unit loop.service')"
  assert "s8 failed units recorded" yes "$(hist_has failed_units loop.service)"
  assert "s8 B spent" "A(P1 T0 S1) B(P2 T0 S0)" "$(gpt_state "$DISK")"
  boot s8-a
  assert "s8 back on A" 3 "$PART"
  assert "s8 A healthy" healthy "$(hist verdict)"
  assert "s8 no further reboot" poweroff "$END"
fi

# --- 9. (b) Type=simple, crashes 7 s after start: rolled back, never marked good ------------
if want 9; then
  gate_disk 9
  boot s9-b-crash
  assert "s9 booted B" 4 "$PART"
  assert "s9 abguard rebooted" reboot "$END"
  fail_to_reboot s9
  lt "$FAIL_TO_REBOOT" 5 || die "s9: failure -> reboot took ${FAIL_TO_REBOOT}s (target <= 5 s)"
  assert "s9 history: gate failed" gate-failed "$(hist event)"
  assert "s9 the reason names the crash" yes "$(hist_has reasons 'critical unit crash.service')"
  assert "s9 B spent, never successful" "A(P1 T0 S1) B(P2 T0 S0)" "$(gpt_state "$DISK")"
  assert "s9 update-engine never marked anything" 0 "$(root_cat "$DISK" /var/lib/abguard/attempts.jsonl | grep -c manual-mark-good || true)"
  assert "s9 the healthy flag was never written" 0 "$(strip_ansi "$LOG" | grep -ac 'E2E-LOCKSMITHD' || true)"
  assert "s9 GRUB picks A next" 3 "$(next_dry)"
fi

# --- 10. (c)+(d) a hanging unit and a bad config line: rolled back at the deadline ----------
if want 10; then
  gate_disk 10
  boot s10-b-hang e2e.settle=200
  assert "s10 booted B" 4 "$PART"
  assert "s10 rolled back" reboot "$END"
  assert "s10 history: the deadline" deadline "$(hist event)"
  assert "s10 the reason names the hanging unit" yes "$(hist_has reasons 'hang.service (activating')"
  assert "s10 the reason names file:line of the bad line" yes "$(hist_has reasons '/etc/abguard/abguard.conf:3: CRITICAL_UNITS=')"
  assert "s10 the config error is recorded" yes "$(hist_has config_errors 'abguard.conf:3')"
  assert "s10 B spent" "A(P1 T0 S1) B(P2 T0 S0)" "$(gpt_state "$DISK")"
  assert "s10 GRUB picks A next" 3 "$(next_dry)"
fi

# --- 11. (e) a required check that fails (a port nothing listens on): rolled back -----------
if want 11; then
  gate_disk 11
  root_put "$G/checks/port" /etc/abguard/checks.d/port 755
  boot s11-b-check e2e.settle=200
  assert "s11 booted B" 4 "$PART"
  assert "s11 rolled back" reboot "$END"
  assert "s11 history: the deadline" deadline "$(hist event)"
  assert "s11 the reason names the check" yes "$(hist_has reasons 'check port (exit 1)')"
  assert "s11 the check's output is recorded" yes "$(hist_has gate.checks 'connecting to 127.0.0.1:8089')"
  assert "s11 B spent" "A(P1 T0 S1) B(P2 T0 S0)" "$(gpt_state "$DISK")"
fi

# --- 12. (f)+(e) a healthy B with a failing wanted check: good only after the window -------
#         and (issue 14) locksmithd held back until the verdict
if want 12; then
  gate_disk 12
  root_put "$G/checks/disk.wanted" /etc/abguard/checks.d/disk.wanted 755
  boot s12-b-good e2e.settle=120
  assert "s12 booted B" 4 "$PART"
  assert "s12 powered off (no reboot)" poweroff "$END"
  assert "s12 gate passed" gate-passed "$(hist event)"
  assert "s12 B marked good by update-engine" "A(P1 T0 S1) B(P2 T0 S1)" "$(gpt_state "$DISK")"
  assert "s12 the wanted check's failure is recorded" yes "$(hist_has gate.checks 'the wanted check fails on purpose')"
  window=$(hist gate.units | python3 -c '
import json, sys, datetime as d
u = json.load(sys.stdin)[0]["up_since"]
print(u)')
  passed_at=$(hist time)
  waited=$(( $(date -d "$passed_at" +%s) - $(date -d "$window" +%s) ))
  log "s12: web.service up at $window, gate passed at $passed_at (${waited}s later, STABLE_FOR=20s)"
  [ "$waited" -ge 19 ] || die "s12: passed ${waited}s after web.service came up, inside the 20 s window"
  gate_up=$(hist uptime_s); mark_up=$(HIST_ALL=1 hist uptime_s)
  assert "s12 the mark-good came after the gate" yes "$(lt "$gate_up" "$mark_up" && echo yes || echo no)"
  lock=$(strip_ansi "$LOG" | grep -a 'E2E-LOCKSMITHD' | sed -n 1p)
  assert "s12 locksmithd started once the flag existed" yes "$(grep -q 'healthy=yes pending=no' <<<"$lock" && echo yes || echo no)"
  lock_up=$(sed -n 's/.*uptime=\([0-9.]*\).*/\1/p' <<<"$lock")
  assert "s12 locksmithd started after the verdict" yes "$(lt "$gate_up" "$lock_up" && echo yes || echo no)"
  TIMINGS+=("s12 gate passed at ${gate_up}s, locksmithd at ${lock_up}s, mark-good at ${mark_up}s (uptime)")
fi

# --- 13. (g) ON_FAILURE=report: the failure is recorded, B stays ---------------------------
if want 13; then
  gate_disk 13
  boot s13-b-report
  assert "s13 booted B" 4 "$PART"
  assert "s13 no rollback" poweroff "$END"
  assert "s13 history: gate failed" gate-failed "$(hist event)"
  assert "s13 verdict report" report "$(hist verdict)"
  assert "s13 the reason names the unit" yes "$(hist_has reasons 'critical unit loop.service')"
  assert "s13 B stays and is marked good, as stock Flatcar" "A(P1 T0 S1) B(P2 T0 S1)" "$(gpt_state "$DISK")"
  assert "s13 GRUB boots B again" 4 "$(next_dry)"
fi

result="PASS ($ASSERTS_OK checks)"
