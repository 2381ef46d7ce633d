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
# Flatcar's own cgpt (seismograph) for staging from inside the guest as flatcar-postinst does
SEISMOGRAPH=${SEISMOGRAPH:-$REPO_DIR/../shared/vendor/flatcar-seismograph/seismograph-bin-debian12-amd64.tar.xz}
if want 20 || want 21; then
  [ -r "$SEISMOGRAPH" ] || die "scenarios 20/21 need Flatcar's cgpt: $SEISMOGRAPH (set SEISMOGRAPH=)"
  rm -rf "$W/seismo"; mkdir -p "$W/seismo/usr/lib/e2e/seismograph"
  tar -xJf "$SEISMOGRAPH" -C "$W/seismo/usr/lib/e2e/seismograph"
  COMMON=$COMMON:$W/seismo
fi
# B's os-release carries a marker that lz4 stores as literal bytes, so the host can find
# the block holding it in the squashfs image and corrupt exactly that block
MARKER=e2e$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$W/marked/usr/lib" "$W/bad/usr/share/e2e"
printf 'ID=abguard-e2e\nNAME="abguard test OS"\nVERSION_ID=2.0.0\nE2E_MARKER=%s\n' "$MARKER" >"$W/marked/usr/lib/os-release"
touch "$W/bad/usr/share/e2e/web-fail"
timed "usr A" env EXTRA_USR="$COMMON" "$VM_DIR/build-usr.sh" "$ROOTFS" 1.0.0 "$W/usr-a.part"
timed "usr B" env EXTRA_USR="$COMMON:$W/marked" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$W/usr-b.part"
timed "usr B-bad" env EXTRA_USR="$COMMON:$W/bad" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$W/usr-b-bad.part"
# scenario 21: a different build (another version, so another root hash)
! want 21 || timed "usr B2" env EXTRA_USR="$COMMON" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.1.0 "$W/usr-b2.part"
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
# boot_cut TAG MARKER [kernel args]: one boot whose power the host cuts (kills qemu) as soon
# as MARKER shows on the serial console; sets PART, END (cut|timeout), LOG
boot_cut() {
  local tag=$1 marker=$2 next hash pid i; shift 2
  next=$(grub_next "$DISK") || die "$tag: no bootable USR partition: $(gpt_state "$DISK")"
  PART=$(json_get "$next" partition)
  # shellcheck disable=SC1090
  hash=$(. "$LAYOUT"; [ "$PART" = 3 ] && echo "$USR_A_ROOTHASH" || echo "$USR_B_ROOTHASH")
  LOG=$W/logs/$tag.serial.log; rm -f "$LOG"
  env WORK="$W" DISK="$DISK" LAYOUT="$LAYOUT" INITRD="$W/initrd.img" \
    "$VM_DIR/run-vm.sh" "$tag" "$(json_get "$next" partuuid)" "$hash" "$@" >"$W/$tag.result" &
  pid=$!; END=timeout
  for ((i = 0; i < ${TIMEOUT:-180} * 5; i++)); do
    if grep -aq "$marker" "$LOG" 2>/dev/null; then END="cut"; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -TERM "$pid" 2>/dev/null || true   # run-vm.sh's exit trap kills qemu: the power cut
  wait "$pid" || true
  log "BOOT $tag: power cut at '$marker': $END ($next)"
}
# every event on ROOT, oldest first
hist_events() { root_cat "$DISK" /var/lib/abguard/attempts.jsonl | python3 -c '
import json, sys
for l in sys.stdin:
    if l.strip(): print(json.loads(l).get("event", ""))'; }
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

# --- 20. power cut during B's first boot: GRUB falls back, abguard records it once --------
if want 20 || want 21; then
  new_disk s20
  stage_b "$W/usr-b.part"
  # the initrd has assessed B (needs-health-check, on ROOT); nothing later ever runs
  boot_cut s20-b-cut E2E-POWERCUT-NOW e2e.powercut
  assert "s20 booted B" 4 "$PART"
  assert "s20 the power was cut" cut "$END"
  assert "s20 B's try is spent, nothing marked" "A(P1 T0 S1) B(P2 T0 S0)" "$(gpt_state "$DISK")"
  assert "s20 B's initrd verdict reached ROOT" needs-health-check "$(hist verdict)"
  boot s20-a
  assert "s20 GRUB fell back to A" 3 "$PART"
  assert "s20 fallback recorded before A's line" fallback "$(hist event 2)"
  assert "s20 fallback names B" USR-B "$(hist failed.label 2)"
  assert "s20 fallback names B's version" 2.0.0 "$(hist failed.version_id 2)"
  # shellcheck disable=SC1090
  assert "s20 fallback names B's root hash" "$(. "$LAYOUT"; echo "$USR_B_ROOTHASH")" "$(hist failed.root_hash 2)"
  assert "s20 fallback says what is known" 1 "$(hist reasons 2 | grep -c 'no verdict was reached: hang, panic, power loss or a reboot before the gate')"
  assert "s20 A healthy" healthy "$(hist verdict)"
  S20_DISK=$DISK S20_LAYOUT=$LAYOUT
fi

# --- 21. the same B staged again in the guest (update_engine's way): un-staged at once ------
if want 21; then
  DISK=$S20_DISK LAYOUT=$S20_LAYOUT
  # shellcheck disable=SC1090
  b_hash=$(. "$LAYOUT"; echo "$USR_B_ROOTHASH")
  # writing the 128 MiB payload under TCG takes a while: a longer timeout for these boots
  PAYLOAD=$W/usr-b.part TIMEOUT=400 boot s21-a-restage "e2e.restage=$b_hash"
  assert "s21 on A" 3 "$PART"
  strip_ansi "$LOG" | grep -a '^E2E-RESTAGE:' | sed 's/^/  | /' >&2 || true
  unstaged=$(strip_ansi "$LOG" | sed -n 's/^E2E-RESTAGE: unstaged after \([0-9.]*\)s.*/\1/p')
  [ -n "$unstaged" ] || die "s21: the restaged B was not un-staged: $(strip_ansi "$LOG" | grep -a E2E-RESTAGE)"
  lt "$unstaged" 10 || die "s21: un-staging took ${unstaged}s"
  log "s21: un-staged ${unstaged}s after /run/reboot-required"
  # (update-engine's mark-good on A's previous boot prioritized A; postinst then put B on top)
  assert "s21 B un-staged on disk: tries=0 successful=0" "T0 S0" "$(gpt_pts "$DISK" 4 | cut -d' ' -f2-)"
  assert "s21 GRUB would boot A" 3 "$("$ABGUARD_BIN" next --dry-run --disk "$DISK")"
  assert "s21 restage-refused recorded" restage-refused "$(hist event)"
  assert "s21 it names the held build" "$b_hash" "$(hist failed.root_hash)"
  # the next boot is A; still one fallback, counted once as a rollback and a failed first boot
  B2_HASH=$(. "$W/usr-b2.env"; echo "$ROOTHASH")
  PAYLOAD=$W/usr-b2.part TIMEOUT=400 boot s21-a-b2 "e2e.restage=$B2_HASH"
  assert "s21 next boot is A" 3 "$PART"
  assert "s21 fallback once across two more boots" 1 "$(HIST_ALL=1 hist_events | grep -cx fallback)"
  assert "s21 a different build stays staged" 1 "$(strip_ansi "$LOG" | grep -ac '^E2E-RESTAGE: still staged')"
  assert "s21 B2 staged: tries=1 successful=0" "T1 S0" "$(gpt_pts "$DISK" 4 | cut -d' ' -f2-)"
  mkdir -p "$W/s21-root/var/lib/abguard"
  root_cat "$DISK" /var/lib/abguard/attempts.jsonl >"$W/s21-root/var/lib/abguard/attempts.jsonl"
  root_cat "$DISK" /var/lib/abguard/held.json >"$W/s21-root/var/lib/abguard/held.json"
  prom=$("$ABGUARD_BIN" status --prometheus --disk "$DISK" --sysroot "$W/s21-root")
  assert "s21 metrics: one rollback" 1 "$(sed -n 's/^abguard_rollbacks_total //p' <<<"$prom")"
  assert "s21 metrics: one failed first boot" 1 "$(sed -n 's/^abguard_failed_first_boots_total //p' <<<"$prom")"
  assert "s21 metrics: one fallback" 1 "$(sed -n 's/^abguard_fallbacks_total //p' <<<"$prom")"
  assert "s21 metrics: B's build held" 1 "$(sed -n 's/^abguard_held_builds //p' <<<"$prom")"
  # the different build boots (its kernel's root hash is what GRUB would pass)
  sed -i "s/^USR_B_ROOTHASH=.*/USR_B_ROOTHASH=$B2_HASH/" "$LAYOUT"
  boot s21-b2
  assert "s21 B2 booted" 4 "$PART"
  assert "s21 B2 version" 2.1.0 "$(probe_field "$LOG" version)"
  assert "s21 B2 passed its gate" gate-passed "$(hist event)"
  assert "s21 B2 marked good" "T0 S1" "$(gpt_pts "$DISK" 4 | cut -d' ' -f2-)"
fi

result="PASS ($ASSERTS_OK checks)"
