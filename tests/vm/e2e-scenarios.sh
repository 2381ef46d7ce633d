# shellcheck shell=bash
# The e2e's scenarios, sourced by e2e.sh after its build, once per lane (a subshell with its
# own ONLY): every block reads what the build made ($W, the payloads, $PRISTINE) and writes
# only files named after its own tag, so two lanes can run side by side.
# shellcheck disable=SC2034 # SEQ/END etc. are read by the sourced helpers

# scenario 2 stages from inside A (its first step), GRUB picks B on the next reset; the
# scenarios about a bad update stage it from the host before the run (prestage), the same
# writes with the same Flatcar cgpt, saving one boot each
UPDATE="reboot /usr/libexec/e2e-update"

# --- 1. plain boot on A: healthy at once, nothing reboots, A stays good ----------------------
if want 1; then
  new_disk s1
  run_guest s1 "poweroff"
  assert_seq s1 "A"
  assert "s1 version" 1.0.0 "$(probe 1 version)"
  assert "s1 /usr from USR-A" 3 "$(probe 1 partn)"
  assert "s1 system state" running "$(probe 1 state)"
  assert "s1 GPT" "A(P1 T0 S1) B(P0 T0 S0)" "$(gpt_state "$DISK")"
  assert "s1 initrd verdict" healthy "$(hist verdict)"
  assert "s1 booted slot found by" cmdline+sysfs "$(hist booted.source)"
  assert "s1 dm-verity status" V "$(hist verity.status)"
  assert "s1 verity root hash checked" "$USR_A_ROOTHASH" "$(hist verity.root_hash)"
  assert "s1 the seed's script agrees: no first boot" 1 "$(grep -ac '^SEED: No first boot after upgrade detected' "$(boot_log 1)")"
fi

# --- 2. B staged from inside A and healthy: the gate passes, B is marked good by Flatcar's cgpt;
#        the next boot is ordinary; (5) a manual `abguard rollback` from B boots A, no loop ---
if want 2 || want 5; then
  new_disk s2
  # B's first settled boot (after the gate's verdict) reports the watchdog's state
  WD='echo "E2E-WATCHDOG: $(cat /sys/class/watchdog/watchdog0/state)" >/dev/ttyS0'
  run_guest s2 -p "$W/b.payload" "$UPDATE" "reboot $WD" "reboot abguard rollback" "reboot" "poweroff"
  assert_seq s2 "A B B A A"
  assert "s2 staged from inside A" 1 "$(grep -ac '^e2e-update: staged into /dev/vda4' "$(boot_log 1)")"
  assert "s2 B version" 2.0.0 "$(probe 2 version)"
  assert "s2 /usr from USR-B" 4 "$(probe 2 partn)"
  assert "s2 B marked good by Flatcar's cgpt" 1 "$(grep -ac '^e2e-setgoodroot: /dev/vda4 marked good' "$(boot_log 2)")"
  assert "s2 the seed's script saw the first boot" 1 "$(grep -ac '^SEED: First boot after upgrade detected' "$(boot_log 2)")"
  assert "s2 the seed's script: B's second boot is none" 1 "$(grep -ac '^SEED: No first boot after upgrade detected' "$(boot_log 3)")"
  # history, oldest first: A healthy | B needs-health-check, gate-passed | B healthy | A | A
  assert "s2 initrd said first boot on B" needs-health-check "$(hist verdict 5)"
  assert "s2 gate passed" gate-passed "$(hist event 4)"
  assert "s2 B's initrd armed the watchdog (HANG_BUDGET)" 1 "$(hist actions 5 | grep -c 'armed the watchdog watchdog0 (i6300ESB timer) for 120s')"
  assert "s2 the verdict returned it to the node's setting" 1 "$(hist actions 4 | grep -c 'the watchdog is back to the node')"
  assert "s2 the watchdog is off after the verdict" 1 "$(grep -ac '^E2E-WATCHDOG: inactive' "$(boot_log 2)")"
  assert "s2 B's second boot is no first boot" false "$(hist first_boot_after_upgrade 3)"
  assert "s2 B's second boot healthy" healthy "$(hist verdict 3)"
  assert "s2 the rollback is in the history" manual-rollback "$(HIST_ALL=1 hist event 3)"
  assert "s5 A healthy after the rollback" healthy "$(hist verdict 2)"
  assert "s5 A again, healthy" healthy "$(hist verdict)"
  assert "s5 A version" 1.0.0 "$(probe 5 version)"
  assert "s5 GPT: A first, both good" "A(P2 T0 S1) B(P1 T0 S1)" "$(gpt_state "$DISK")"
fi

# --- 3. B staged, its critical service fails: back on A within the deadline ----------------
# (on A, update-engine's setgoodroot then prioritizes A with Flatcar's cgpt: A P2, B P1)
if want 3; then
  new_disk s3
  prestage "$W/b-bad.payload"
  run_guest s3 "poweroff"
  assert_seq s3 "B A"
  assert "s3 B took no step (the gate failed)" 1 "$(steps_taken)"
  assert "s3 history: gate failed" gate-failed "$(hist event 2)"
  assert "s3 history names the unit" 1 "$(hist reasons 2 | grep -c 'web.service failed')"
  assert "s3 failed units recorded" 1 "$(hist failed_units 2 | grep -c 'web.service')"
  assert "s3 A healthy" healthy "$(hist verdict)"
  assert "s3 A version" 1.0.0 "$(probe 2 version)"
  assert "s3 B spent, A first again" "A(P2 T0 S1) B(P1 T0 S0)" "$(gpt_state "$DISK")"
fi

# --- 4. B staged with a corrupted block in its /usr (4p: the same scenario, its old name) ---
#        Stage 0 opens verity as Flatcar's minimal-init does, --panic-on-corruption: the first
#        read of the block (stage 2 reading B's os-release) is a kernel panic, panic=-1 resets
#        at once, GRUB falls back to A (B's one try is spent) and A's boot records the fallback.
#        (The lab's old stand-in opened without the panic and let abguard see status C; a
#        Flatcar initrd never does.) Staged from inside A, so the history knows B was tried
#        (the fault matrix's stage)
if want 4 || want 4p; then
  cp --sparse=always "$W/b.payload" "$W/b-corrupt.payload"; cp "$W/b.payload.env" "$W/b-corrupt.payload.env"
  at=$(marker_offset "$W/b-corrupt.payload" "$MARKER")
  [ -n "$at" ] || die "s4: the os-release marker is not stored literally in B's image"
  flip_byte "$W/b-corrupt.payload" "$at"
  new_disk s4
  run_guest s4 -p "$W/b-corrupt.payload" "$UPDATE_SEEN" "poweroff"
  assert_seq s4 "A B A"
  assert "s4 B's boot ended in a kernel panic" 1 "$(grep -ac 'Kernel panic - not syncing: dm-verity device corrupted' "$(boot_log 2)")"
  assert "s4 B left no history (the panic came first)" 0 "$(root_cat "$DISK" /var/lib/abguard/attempts.jsonl | grep -c '"booted":{"partition":4,' || true)"
  assert "s4 A healthy" healthy "$(hist verdict)"
  assert "s4 A's record shows GRUB's fallback (B first, spent)" "2 0 false" \
    "$(hist slots | python3 -c 'import json,sys; b=json.load(sys.stdin)[1]; print(b["priority"], b["tries"], str(b["successful"]).lower())')"
  assert "s4 B spent, A first again" "A(P2 T0 S1) B(P1 T0 S0)" "$(gpt_state "$DISK")"
  # the panic came before abguard's initrd unit ran in B's stage 2, but after its dracut
  # module loaded efi-pstore: the kernel's last words are in an EFI variable for A to read
  pstore_said s4 'Kernel panic - not syncing: dm-verity device corrupted'
  fault_report usr-corrupt-panic "$(panic_stage "stage 0 or kernel")" "$BOOT_ALLOWANCE"
fi

# --- 6. B's stage 2 fails (after stage 0 mounted its /usr): back on A without waiting out
#        bootengine's 5-minute emergency timeout (its 99emergency-timeout, from the vendored
#        tarball, runs after abguard's emergency hook)
if want 6; then
  new_disk s6
  prestage "$W/b.payload"
  run_guest s6 -a "e2e.initrd_fail=2.0.0" -r "rd.shell=1" "poweroff"
  assert_seq s6 "B A"
  assert "s6 B's stage 2 was made to fail" yes "$(grep -aq '^E2E-INITRD-FAIL: failing stage 2 of 2.0.0' "$(boot_log 1)" && echo yes || echo no)"
  # the absence below is read from the log of both boots, with the timeout's hook in stage 2
  assert "s6 the serial log holds both boots" 2 "$(strip_ansi "$RUN_LOG" | grep -ac '^GRUB-E2E: start$' || true)"
  assert "s6 the 300 s timeout never started" 0 "$(strip_ansi "$RUN_LOG" | grep -ac 'wait 5 minutes for reboot' || true)"
  assert "s6 the emergency rollback is in the history" initrd-emergency "$(hist event 2)"
  assert "s6 A healthy" healthy "$(hist verdict)"
  assert "s6 B spent, A first again" "A(P2 T0 S1) B(P1 T0 S0)" "$(gpt_state "$DISK")"
  fault_report dracut-unit-fails initrd "$BOOT_ALLOWANCE"
fi

# --- 7. VERIFY_USR=yes: the full read of /usr finds a corrupted block nothing else reads ----
#     Stage 0 opens /usr as Flatcar does, --panic-on-corruption, so the full read's hit on the
#     block is a kernel panic (not abguard's read-usr-failed record, which needs a verity
#     device opened without it): GRUB falls back and A's abguard records the fallback, with
#     B's first-boot assessment (dm-verity status V then) as its attempt.
if want 7; then
  # without the full read, this boot would pass the gate and B would be marked good with a
  # bad block in it
  cp --sparse=always "$W/b.payload" "$W/b-cold.payload"; cp "$W/b.payload.env" "$W/b-cold.payload.env"
  at=$(marker_offset "$W/b-cold.payload" "$MARKER-cold")
  [ -n "$at" ] || die "s7: the cold file is not stored literally in B's image"
  # offsets in the payload count its header (PAYLOAD_HDR) before the slot image
  at=$((at + 200000)); bad_block=$(( (at - PAYLOAD_HDR) / 4096 ))
  [ "$at" -lt $((PAYLOAD_HDR + HASH_OFFSET)) ] || die "s7: the cold file lies beyond the data area"
  flip_byte "$W/b-cold.payload" "$at"
  new_disk s7
  printf 'VERIFY_USR=yes\n' >"$W/s7-verify-usr.conf"
  root_write "$DISK" /etc/abguard/abguard.conf.d/50-verify-usr.conf "$W/s7-verify-usr.conf"
  assert "s7 VERIFY_USR=yes on ROOT" VERIFY_USR=yes "$(root_cat "$DISK" /etc/abguard/abguard.conf.d/50-verify-usr.conf)"
  prestage "$W/b-cold.payload"
  run_guest s7 "poweroff"
  assert_seq s7 "B A"
  assert "s7 dm-verity named the flipped block" yes "$(grep -aq "data block $bad_block is corrupted" "$(boot_log 1)" && echo yes || echo no)"
  assert "s7 the read panicked the kernel" 1 "$(grep -ac 'Kernel panic - not syncing: dm-verity device corrupted' "$(boot_log 1)")"
  assert "s7 B's first boot was assessed" needs-health-check "$(hist verdict 3)"
  assert "s7 A recorded GRUB's fallback from B" "fallback USR-B" "$(hist event 2) $(hist failed.label 2)"
  assert "s7 A healthy" healthy "$(hist verdict)"
  assert "s7 B spent, A first again" "A(P2 T0 S1) B(P1 T0 S0)" "$(gpt_state "$DISK")"
fi

# --- 8-13: the health gate (B-gate is built with the other payloads, in e2e.sh) ----------
# root_put SRC DEST [MODE]: a file onto ROOT, with its mode (debugfs writes 0644)
root_put() {
  root_write "$DISK" "$2" "$1"
  [ -z "${3:-}" ] || debugfs -w -R "sif $2 mode 0100$3" "$DISK?offset=$(( $(gpt_attr "$DISK" 9 b) * 512 ))" >/dev/null 2>&1
  assert "ROOT has $2" "$(cat "$1")" "$(root_cat "$DISK" "$2")"
}
# gate_disk N: a fresh disk with B-gate staged and scenario N's config on ROOT
gate_disk() {
  new_disk "s$1"; prestage "$W/b-gate.payload"
  root_put "$G/conf/s$1.conf" /etc/abguard/abguard.conf
}
# kts PATTERN: kernel timestamp (s) of the first line of boot 1 matching PATTERN
# (no grep -m1: its early exit would SIGPIPE the reader, and pipefail would end the run)
kts() { strip_ansi "$(boot_log 1)" | grep -a "$1" | sed -n '1s/^\[ *\([0-9.]*\)\].*/\1/p'; }
# fail_to_reboot TAG: seconds from boot 1's first E2E-FAIL to its reboot request, printed
fail_to_reboot() {
  local f r; f=$(kts 'E2E-FAIL'); r=$(kts 'E2E-REBOOT')
  [ -n "$f" ] && [ -n "$r" ] || die "$1: no E2E-FAIL/E2E-REBOOT timestamps in boot 1"
  FAIL_TO_REBOOT=$(awk -v a="$f" -v b="$r" 'BEGIN{printf "%.1f", b-a}')
  TIMINGS+=("$1 failure->reboot request ${FAIL_TO_REBOOT}s")
  log "time: $1 failure -> reboot request ${FAIL_TO_REBOOT}s (failure at ${f}s, reboot asked at ${r}s)"
}

# --- 8. (a) the nginx unit shape, failing ExecStartPre, no DEADLINE: back on A fast --
if want 8; then
  gate_disk 8
  run_guest s8 "poweroff"
  assert_seq s8 "B A"
  fail_to_reboot s8
  lt "$FAIL_TO_REBOOT" 5 || die "s8: failure -> reboot took ${FAIL_TO_REBOOT}s (target <= 5 s)"
  lt "$(awk -v a="$(kts E2E-FAIL)" -v b="$(kts 'reboot: Restarting system')" 'BEGIN{print b-a}')" 60 ||
    die "s8: not back within 60 s of the first failure"
  assert "s8 the reason names the unit" yes "$(has "$(hist_of gate-failed reasons)" 'critical unit loop.service')"
  assert "s8 failed units recorded" yes "$(has "$(hist_of gate-failed failed_units)" loop.service)"
  assert "s8 A healthy" healthy "$(hist verdict)"
  assert "s8 B spent, A first again" "$ROLLED_BACK" "$(gpt_state "$DISK")"
fi

# --- 9. (b) Type=simple, crashes 7 s after start: rolled back, never marked good ------------
if want 9; then
  gate_disk 9
  run_guest s9 "poweroff"
  assert_seq s9 "B A"
  fail_to_reboot s9
  lt "$FAIL_TO_REBOOT" 5 || die "s9: failure -> reboot took ${FAIL_TO_REBOOT}s (target <= 5 s)"
  assert "s9 the reason names the crash" yes "$(has "$(hist_of gate-failed reasons)" 'critical unit crash.service')"
  assert "s9 B spent, never successful" "$ROLLED_BACK" "$(gpt_state "$DISK")"
  # the absence is read from B's boot; s12 shows the stand-in's line once it is released
  assert "s9 boot 1's log is B's" yes "$(has "$(strip_ansi "$(boot_log 1)")" 'GRUB-E2E: boot slot=b ')"
  assert "s9 no healthy flag on B: locksmithd (and update-engine) held" 0 \
    "$(strip_ansi "$(boot_log 1)" | grep -ac 'E2E-LOCKSMITHD' || true)"
fi

# --- 10. (c)+(d) a hanging unit and a bad config line: rolled back at the deadline ----------
if want 10; then
  gate_disk 10
  run_guest s10 "poweroff"
  assert_seq s10 "B A"
  r=$(hist_of deadline reasons)
  assert "s10 the deadline names the hanging unit" yes "$(has "$r" 'hang.service (activating')"
  assert "s10 the deadline names file:line of the bad line" yes "$(has "$r" '/etc/abguard/abguard.conf:3: CRITICAL_UNITS=')"
  assert "s10 the config error is recorded" yes "$(has "$(hist_of deadline config_errors)" 'abguard.conf:3')"
  assert "s10 on A (an ordinary boot) the error is reported only" yes "$(has "$(hist_of config-error config_errors)" 'abguard.conf:3')"
  assert "s10 B spent" "$ROLLED_BACK" "$(gpt_state "$DISK")"
  fault_report deadline deadline $((60 + BOOT_ALLOWANCE))   # DEADLINE=1min (e2e-gate/conf/s10.conf)
fi

# --- 11. (e) a required check that fails (a port nothing listens on): rolled back -----------
if want 11; then
  gate_disk 11
  root_put "$G/checks/port" /etc/abguard/checks.d/port 755
  run_guest s11 "poweroff"
  assert_seq s11 "B A"
  assert "s11 the deadline names the check" yes "$(has "$(hist_of deadline reasons)" 'check port (exit 1)')"
  assert "s11 the check's output is recorded" yes "$(has "$(hist_of deadline gate.checks)" 'connecting to 127.0.0.1:8089')"
  assert "s11 B spent" "$ROLLED_BACK" "$(gpt_state "$DISK")"
fi

# --- 12. (f)+(e) a healthy B with a failing wanted check: good only after the window -------
#         and locksmithd held back until the verdict
if want 12; then
  gate_disk 12
  root_put "$G/checks/disk.wanted" /etc/abguard/checks.d/disk.wanted 755
  run_guest s12 -a "e2e.settle=120" "poweroff"
  assert_seq s12 "B"
  assert "s12 gate passed" gate-passed "$(hist event)"
  assert "s12 B marked good by update-engine" "$KEPT" "$(gpt_state "$DISK")"
  assert "s12 the wanted check's failure is recorded" yes "$(has "$(hist_of gate-passed gate.checks)" 'the wanted check fails on purpose')"
  up=$(hist_of gate-passed gate.units | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["up_since"])')
  passed_at=$(hist_of gate-passed time)
  waited=$(( $(date -d "$passed_at" +%s) - $(date -d "$up" +%s) ))
  log "s12: web.service up at $up, gate passed at $passed_at (${waited}s later, STABLE_FOR=20s)"
  [ "$waited" -ge 19 ] || die "s12: passed ${waited}s after web.service came up, inside the 20 s window"
  gate_up=$(hist_of gate-passed uptime_s)
  lock=$(strip_ansi "$(boot_log 1)" | grep -a 'E2E-LOCKSMITHD' | sed -n 1p)
  assert "s12 locksmithd started once the flag existed" yes "$(has "$lock" 'healthy=yes pending=no')"
  lock_up=$(sed -n 's/.*uptime=\([0-9.]*\).*/\1/p' <<<"$lock")
  assert "s12 locksmithd started after the verdict" yes "$(lt "$gate_up" "$lock_up" && echo yes || echo no)"
  TIMINGS+=("s12 gate passed at ${gate_up}s, locksmithd started at ${lock_up}s (uptime)")
fi

# --- 23. (issue 23) the checks' trust boundary under real systemd: a mode-0777 check is
#         refused (never runs, named in the deadline's reason), a setsid grandchild of a
#         check dies at CHECK_TIMEOUT (its own cgroup, cgroup.kill), B rolled back -----------
if want 23; then
  gate_disk 23
  root_put "$G/checks/s23/api" /etc/abguard/checks.d/api 777
  root_put "$G/checks/s23/hang.wanted" /etc/abguard/checks.d/hang.wanted 700
  root_put "$G/checks/s23/observer" /etc/abguard/checks.d/observer 700
  run_guest s23 "poweroff"
  assert_seq s23 "B A"
  r=$(hist_of deadline reasons)
  assert "s23 the deadline names the refused check" yes "$(has "$r" 'checks.d/api: writable by others (mode 0777): refused')"
  assert "s23 the refused check never ran" 0 "$(strip_ansi "$(boot_log 1)" | grep -ac 'E2E-API-RAN' || true)"
  c=$(hist_of deadline gate.checks)
  assert "s23 the hang was killed at the timeout" yes "$(has "$c" 'killed after 5s (CHECK_TIMEOUT)')"
  assert "s23 in a cgroup of its own (not a process group)" no "$(has "$c" 'no cgroup')"
  assert "s23 the setsid grandchild is gone after the timeout" yes \
    "$(strip_ansi "$(boot_log 1)" | grep -aq 'E2E-GRANDCHILD gone' && echo yes || echo no)"
  assert "s23 B spent" "$ROLLED_BACK" "$(gpt_state "$DISK")"
fi

# --- 13. (g) ON_FAILURE=report: the failure is recorded, B stays ---------------------------
if want 13; then
  gate_disk 13
  run_guest s13 "poweroff"
  assert_seq s13 "B"
  assert "s13 verdict report" report "$(hist_of gate-failed verdict)"
  assert "s13 the reason names the unit" yes "$(has "$(hist_of gate-failed reasons)" 'critical unit loop.service')"
  assert "s13 B stays and is marked good, as stock Flatcar" "$KEPT" "$(gpt_state "$DISK")"
fi

# --- 20. a power cut during B's first boot: GRUB falls back, abguard records it once -------
# e2e-powercut.service resets the guest (sysrq b: no sync, no unmount) right after the
# initrd's verdict on B's first boot; GRUB then boots A with B's try spent.
if want 20 || want 21; then
  new_disk s20
  prestage "$W/b.payload"
  run_guest s20 -a e2e.powercut "reboot" "poweroff"
  assert_seq s20 "B A A"
  assert "s20 B's first boot was cut" 1 "$(strip_ansi "$RUN_LOG" | grep -ac '^E2E-POWERCUT-NOW')"
  assert "s20 one fallback across two boots of A" 1 "$(jsonl_count fallback)"
  fb=$(root_cat "$DISK" /var/lib/abguard/attempts.jsonl | grep '"event":"fallback"')
  # shellcheck disable=SC1090
  b_hash=$(. "$W/b.payload.env"; echo "$ROOTHASH")
  assert "s20 fallback names B" 1 "$(grep -c '"label":"USR-B"' <<<"$fb")"
  assert "s20 fallback names B's version" 1 "$(grep -c '"version_id":"2.0.0"' <<<"$fb")"
  assert "s20 fallback names B's root hash" 1 "$(grep -c "\"root_hash\":\"$b_hash\"" <<<"$fb")"
  assert "s20 fallback says what is known" 1 "$(grep -c 'no verdict was reached: hang, panic, power loss or a reboot before the gate' <<<"$fb")"
  assert "s20 A healthy" healthy "$(hist verdict)"
  assert "s20 B spent, A first again (setgoodroot)" "A(P2 T0 S1) B(P1 T0 S0)" "$(gpt_state "$DISK")"
  fault_report power-cut "power loss or reset" "$BOOT_ALLOWANCE"
fi

# --- 21. the same build staged again from A, update_engine's way: un-staged at once --------
# e2e-update writes the payload into USR-B and runs Flatcar's postinst with Flatcar's cgpt,
# then /run/reboot-required; abguard-guard-staged un-stages the held build. A build with
# another root hash stays staged.
UNSTAGED='/usr/libexec/e2e-update && for i in $(seq 150); do [ "$(cgpt show -i 4 -T /dev/vda)" = 0 ] && { echo "E2E-UNSTAGED after $((i / 5)).$((i % 5 * 2))s"; break; }; sleep 0.2; done'
if want 21; then
  # -a replaces the OEM grub.cfg's linux_append that scenario 20 left (e2e.powercut)
  run_guest s21 -a "e2e.settle=90" -p "$W/b.payload" "reboot $UNSTAGED" "poweroff"
  assert_seq s21 "A A"
  un=$(strip_ansi "$RUN_LOG" | sed -n 's/^E2E-UNSTAGED after \([0-9.]*\)s.*/\1/p')
  [ -n "$un" ] || die "s21: the re-staged build was not un-staged within 30 s"
  log "time: s21 re-staged build un-staged ${un}s after /run/reboot-required"
  TIMINGS+=("s21 un-staged ${un}s after /run/reboot-required")
  assert "s21 B un-staged on disk" "T0 S0" "$(gpt_state "$DISK" | sed 's/.*B(P[0-9]* \(T[0-9]* S[0-9]*\)).*/\1/')"
  assert "s21 restage-refused recorded" 1 "$(jsonl_count restage-refused)"
  assert "s21 still one fallback" 1 "$(jsonl_count fallback)"
  mkdir -p "$W/s21-root/var/lib/abguard"
  root_cat "$DISK" /var/lib/abguard/attempts.jsonl >"$W/s21-root/var/lib/abguard/attempts.jsonl"
  root_cat "$DISK" /var/lib/abguard/held.json >"$W/s21-root/var/lib/abguard/held.json"
  prom=$("$ABGUARD_BIN" status --prometheus --disk "$DISK" --sysroot "$W/s21-root")
  assert "s21 metrics: one rollback" 1 "$(sed -n 's/^abguard_rollbacks_total //p' <<<"$prom")"
  assert "s21 metrics: one failed first boot" 1 "$(sed -n 's/^abguard_failed_first_boots_total //p' <<<"$prom")"
  # the fallback counter is labelled by the stage the attempt reached (docs/failure-budgets.md)
  assert "s21 metrics: one fallback, all stages" 1 "$(awk '/^abguard_fallbacks_total\{/ { n += $NF } END { print n + 0 }' <<<"$prom")"
  assert "s21 metrics: the power cut's stage" 1 "$(sed -n 's/^abguard_fallbacks_total{stage="power loss or reset"} //p' <<<"$prom")"
  assert "s21 metrics: B's build held" 1 "$(sed -n 's/^abguard_held_builds //p' <<<"$prom")"
  # another build: the guard leaves it staged (booting a staged build is scenario 2's)
  run_guest s21b -a "e2e.settle=90" -p "$W/b2.payload" "poweroff /usr/libexec/e2e-update && sleep 5"
  assert_seq s21b "A"
  assert "s21b the other build stays staged (one try, not good)" "T1 S0" "$(gpt_state "$DISK" | sed 's/.*B(P[0-9]* \(T[0-9]* S[0-9]*\)).*/\1/')"
  assert "s21b GRUB would boot it next" 4 "$("$ABGUARD_BIN" next --dry-run --disk "$DISK" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["partition"])')"
  assert "s21b no refusal for it" 1 "$(jsonl_count restage-refused)"
fi

# --- 22. stock-image mode: no dracut module, abguard only from /etc/extensions/abguard.raw ----
# Both slots hold an image without abguard (os-release ID=flatcar SYSEXT_LEVEL=1.0, as the
# sysext requires), the initrd has no abguard module, ROOT carries `make sysext`'s image;
# systemd-sysext merges it and the ensure-sysext stand-in loads its units, as on Flatcar.
# B's critical service fails: abguard-assess (booted system) and the gate roll it back.
if want 22; then
  ST=$W/stock; rm -rf "$ST"; mkdir -p "$ST/a/usr/lib" "$ST/b/usr/lib"
  for v in a:1.0.0 b:2.0.0; do
    printf 'ID=flatcar\nNAME="abguard test OS (stock image)"\nVERSION_ID=%s\nSYSEXT_LEVEL=1.0\n' "${v#*:}" \
      >"$ST/${v%%:*}/usr/lib/os-release"
  done
  # stage 2 without abguard's module (Flatcar's stock bootengine.img), in both slots
  mkdir -p "$ST/be/usr/lib/flatcar"
  timed "stage2-stock" env STAGE2_TREE_OUT="$ST/stage2-tree" \
    "$VM_DIR/build-stage2.sh" "$ROOTFS" "$ST/be/usr/lib/flatcar/bootengine.img"
  assert "the stock stage 2 has no abguard" 0 "$(find "$ST/stage2-tree" -name 'abguard*' | wc -l)"
  STOCK=$VM_DIR/e2e-guest:$F:$VM_DIR/e2e-stock:$ST/be
  timed "usr A-stock" env EXTRA_USR="$STOCK:$ST/a" "$VM_DIR/build-usr.sh" "$ROOTFS" 1.0.0 "$ST/usr-a.part"
  timed "usr B-stock-bad" env EXTRA_USR="$STOCK:$W/bad:$ST/b" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$ST/usr-b.part"
  make_payload "$ST/usr-b.part" "$ST/b.payload"
  timed "sysext" "$REPO_DIR/packaging/sysext.sh" "$ABGUARD_BIN" "$ST/abguard.raw" >/dev/null
  timed "disk-stock" env EXTRA_ROOT="$VM_DIR/e2e-root" "$VM_DIR/build-disk.sh" "$ROOTFS" "$ST" "$ST/usr-a.part" none
  timed "grub-stock" "$VM_DIR/install-boot.sh" "$ST/disk.img" "$ST/layout.env" "$W/stage0.cpio"
  DISK=$W/s22.img LAYOUT=$W/s22.layout
  mv "$ST/disk.img" "$DISK"; mv "$ST/layout.env" "$LAYOUT"
  root_write "$DISK" /etc/extensions/abguard.raw "$ST/abguard.raw"
  # usr_has PATH: 1 when USR-A's btrfs holds PATH (btrfs restore of just that path from a
  # copy of the slot's file system; no mount, no loop device)
  dd if="$DISK" of="$W/s22-usr-a.img" bs=4M skip="$(( $(gpt_attr "$DISK" 3 b) * 512 ))" count="$HASH_OFFSET" \
    iflag=skip_bytes,count_bytes conv=sparse status=none
  usr_has() {
    local parts i re="" d=$W/s22-usr-a.restore
    IFS=/ read -ra parts <<<"${1#/}"
    # /lib/os-release -> ^(|/lib(|/os-release))$: btrfs restore descends only where it matches
    for ((i = ${#parts[@]} - 1; i >= 0; i--)); do re="(|/${parts[i]}$re)"; done
    rm -rf "$d"; mkdir -p "$d"
    btrfs restore --path-regex "^$re\$" "$W/s22-usr-a.img" "$d" >/dev/null 2>&1 || true
    [ -e "$d$1" ] && echo 1 || echo 0
  }
  assert "s22 USR-A read from the host" 1 "$(usr_has /lib/os-release)"
  assert "s22 no abguard in USR-A" 0 "$(usr_has /bin/abguard)"
  prestage "$ST/b.payload"
  run_guest s22 "poweroff"
  assert_seq s22 "B A"
  assert "s22 only A took a step (B never settled: its gate failed)" 1 "$(steps_taken)"
  assert "s22 boot 1's log is B's" yes "$(has "$(strip_ansi "$(boot_log 1)")" 'GRUB-E2E: boot slot=b ')"
  assert "s22 update-engine held on B" 0 "$(grep -ac '^e2e-setgoodroot: /dev/vda4' "$(boot_log 1)" || true)"
  assert "s22 the gate failed on B, naming the unit" yes "$(has "$(hist_of gate-failed reasons)" 'web.service')"
  assert "s22 B was assessed in the booted system" needs-health-check "$(hist_of assess verdict 0)"
  assert "s22 B's assessment names B" USR-B "$(hist_of assess booted.label 0)"
  assert "s22 the sysext is merged over A's /usr" yes "$(probe 2 sysext)"
  assert "s22 A's /usr is still the slot" 3 "$(probe 2 partn)"
  assert "s22 A assessed healthy in the booted system" healthy "$(hist verdict)"
  assert "s22 A's record comes from abguard-assess" assess "$(hist event)"
  assert "s22 A marked good by update-engine" 1 "$(grep -ac '^e2e-setgoodroot: /dev/vda3 marked good' "$(boot_log 2)")"
  assert "s22 B spent, A first again" "$ROLLED_BACK" "$(gpt_state "$DISK")"
fi

# --- ign. Ignition's first boot: a fresh machine provisioned from `abguard butane` ---------
# The tutorial's shape as abguard prints it (a critical web service that fails on the bad
# update, a deadline, a required check) goes to the guest over fw_cfg, as
# flatcar_production_qemu_uefi.sh -i passes it. ROOT starts without any of it (no
# /etc/abguard, no unit, no check, no machine-id, as Flatcar's image), EFI-SYSTEM carries
# Flatcar's first-boot marker and the initrd Debian's real Ignition. Boot 1 is Ignition's
# provisioning boot; it stages the bad B from inside, whose gate (Ignition's files) rolls
# it back; a second run on the same disk stages the good B, which is kept.
# IGN_JOURNAL: this boot's command line and the initrd's Ignition and abguard journal lines,
# printed to the serial console by a plan step
IGN_JOURNAL='sed "s/^/E2E-IGN-CMDLINE: /" /proc/cmdline; journalctl -b -o short-monotonic --no-pager -u ignition-fetch-offline.service -u ignition-files.service -u ignition-quench.service -u abguard-initrd.service | sed "s/^/E2E-IGN: /"; echo E2E-IGN-END'
# root_has PATH: yes when PATH exists on ROOT
root_has() { root_debugfs "$DISK" "stat $1" | grep -q '^Inode:' && echo yes || echo no; }
# hq PYEXPR: a Python expression over L, the history on ROOT as a list of records
hq() {
  root_cat "$DISK" /var/lib/abguard/attempts.jsonl |
    python3 -c 'import json, sys; L = [json.loads(l) for l in sys.stdin if l.strip()]; print(eval(sys.argv[1]))' "$1"
}
if want ign; then
  IG=$W/ign; rm -rf "$IG"; mkdir -p "$IG"
  "$ABGUARD_BIN" butane --format ignition --critical-unit ign-web.service --deadline 173s \
    --stable-for 10s --check "ign-web-up=$VM_DIR/e2e-ign/ign-web-up" \
    --unit-file "ign-web.service=$VM_DIR/e2e-ign/ign-web.service" >"$IG/config.ign"
  assert "ign config passes ignition-validate" "" "$(ignition-validate "$IG/config.ign" 2>&1)"
  assert "ign config matches the Ignition 3.3.0 JSON schema" valid "$(python3 -c 'import json, sys, jsonschema
jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))); print("valid")' \
    "$IG/config.ign" "$REPO_DIR/tests/data/ignition-3.3.schema.json" 2>&1)"
  # the files the config writes, decoded (data: URLs) for the comparison after the boot
  python3 - "$IG/config.ign" "$IG/want" <<'PY'
import json, os, sys, urllib.parse
c = json.load(open(sys.argv[1]))
for f in c["storage"]["files"]:
    p = sys.argv[2] + f["path"]
    os.makedirs(os.path.dirname(p), exist_ok=True)
    open(p, "wb").write(urllib.parse.unquote_to_bytes(f["contents"]["source"].split(",", 1)[1]))
PY
  # ROOT: only the SELinux stand-in Debian's Ignition needs (e2e-ign/root/etc/selinux/config)
  # A's stage 2 with Ignition's module (from the trixie tree's ignition package, as Flatcar's
  # bootengine.img carries it) and the lab's ignition-quench; the other scenarios' slots carry
  # none (+40 MB uncompressed). B's payloads are the usual ones: Ignition runs only on a first boot
  BEI=$IG/bootengine; mkdir -p "$BEI/usr/lib/flatcar"
  timed "stage2-ign" env ABGUARD_BIN="$ABGUARD_BIN" STAGE2_TREE_OUT="$IG/stage2-tree" TREE_DRACUT_MODULES="ignition network-legacy" \
    EXTRA_DRACUT_MODULES="$REPO_DIR/dracut/50abguard $VM_DIR/dracut/96ignition-quench $VM_DIR/dracut/97initrd-noop" \
    "$VM_DIR/build-stage2.sh" "$ROOTFS" "$BEI/usr/lib/flatcar/bootengine.img"
  for f in usr/bin/ignition usr/bin/abguard usr/lib/systemd/system-generators/ignition-generator \
           usr/lib/systemd/system/ignition-files.service usr/lib/systemd/system/ignition-quench.service \
           usr/sbin/setfiles; do
    assert "ign stage 2 has $f" yes "$([ -e "$IG/stage2-tree/$f" ] && echo yes || echo no)"
  done
  assert "ign stage 2 has the fw_cfg driver" 1 "$(find "$IG/stage2-tree" -name 'qemu_fw_cfg.ko*' | wc -l)"
  timed "usr A-ign" env EXTRA_USR="$W/tree:$VM_DIR/e2e-guest:$F:$VM_DIR/e2e-fault:$BEI" "$VM_DIR/build-usr.sh" "$ROOTFS" 1.0.0 "$IG/usr-a.part"
  # ROOT: only the SELinux stand-in Debian's Ignition needs (e2e-ign/root/etc/selinux/config)
  timed "disk-ign" env EXTRA_ROOT="$VM_DIR/e2e-ign/root" "$VM_DIR/build-disk.sh" "$ROOTFS" "$IG" "$IG/usr-a.part" none
  timed "grub-ign" "$VM_DIR/install-boot.sh" "$IG/disk.img" "$IG/layout.env" "$W/stage0.cpio"
  DISK=$W/sign.img LAYOUT=$W/sign.layout
  mv "$IG/disk.img" "$DISK"; mv "$IG/layout.env" "$LAYOUT"
  ESP=(-i "$DISK@@$(( $(gpt_attr "$DISK" 1 b) * 512 ))")
  # Flatcar's image ships the first-boot marker on EFI-SYSTEM and no /etc/machine-id
  : >"$IG/first_boot"; mcopy -o "${ESP[@]}" "$IG/first_boot" ::/flatcar/first_boot
  debugfs -w -R "rm /etc/machine-id" "$DISK?offset=$(( $(gpt_attr "$DISK" 9 b) * 512 ))" >/dev/null 2>&1
  assert "ign ROOT starts without /etc/abguard" no "$(root_has /etc/abguard)"
  assert "ign ROOT starts without the web unit" no "$(root_has /etc/systemd/system/ign-web.service)"
  assert "ign ROOT starts without a machine-id (systemd's first boot)" no "$(root_has /etc/machine-id)"
  assert "ign ROOT starts without a history" no "$(root_has /var/lib/abguard/attempts.jsonl)"

  # systemd.firstboot=no: no interactive systemd-firstboot prompt on the serial console
  run_guest ign -i "$IG/config.ign" -a "ignition.platform.id=qemu systemd.firstboot=no" -p "$W/b-bad.payload" \
    "reboot $IGN_JOURNAL; /usr/libexec/e2e-update" "poweroff $IGN_JOURNAL"
  assert_seq ign "A B A"
  b1=$(boot_log 1); b3=$(boot_log 3)
  assert "ign boot 1 printed its journal" 1 "$(grep -ac '^E2E-IGN-END' "$b1" || true)"
  assert "ign boot 1 is Ignition's first boot (GRUB saw the marker)" 1 \
    "$(grep -a '^E2E-IGN-CMDLINE: ' "$b1" | grep -c ' flatcar.first_boot=detected ignition.firstboot=1 .*ignition.platform.id=qemu' || true)"
  assert "ign Ignition read the config from fw_cfg" 1 "$(grep -ac 'ignition\[[0-9]*\]: fetched user config from "qemu"' "$b1" || true)"
  while read -r f; do
    assert "ign Ignition wrote $f in the initrd" 1 "$(grep -ac "ignition\[[0-9]*\]: .*\[finished\] writing file \"/sysroot$f\"" "$b1" || true)"
  done < <(cd "$IG/want" && find . -type f | sed 's/^\.//')
  assert "ign Ignition wrote the unit" 1 "$(grep -ac 'ignition\[[0-9]*\]: .*\[finished\] writing unit "ign-web.service"' "$b1" || true)"
  assert "ign Ignition set the unit's preset" 1 "$(grep -ac 'ignition\[[0-9]*\]: .*\[finished\] setting preset to enabled for "ign-web.service"' "$b1" || true)"
  assert "ign the first-boot marker removed in the initrd" 1 "$(grep -ac 'ignition-quench: removed /flatcar/first_boot' "$b1" || true)"
  # abguard's initrd unit ran after Ignition's files stage (monotonic journal stamps)
  order=$(awk 'function t() { return match($0, /\[ *[0-9]+\.[0-9]+\]/) ? substr($0, RSTART + 1, RLENGTH - 2) + 0 : "" }
               /^E2E-IGN: / && /Finished ignition-files.service/ { f = t() }
               /^E2E-IGN: / && /Starting abguard-initrd.service/ { a = t() }
               END { print (f != "" && a != "" && f <= a) ? "after" : "files=" f " abguard=" a }' "$b1")
  assert "ign abguard-initrd started after ignition-files finished" after "$order"
  assert "ign boot 3 printed its journal" 1 "$(grep -ac '^E2E-IGN-END' "$b3" || true)"
  assert "ign Ignition did not run again on boot 3" 0 "$(grep -ac 'ignition\[[0-9]*\]:' "$b3" || true)"
  assert "ign boot 3 is no first boot for GRUB" "1 0" \
    "$(grep -ac '^E2E-IGN-CMDLINE: ' "$b3" || true) $(grep -a '^E2E-IGN-CMDLINE: ' "$b3" | grep -c 'first_boot\|firstboot=1' || true)"
  assert "ign the marker is gone from EFI-SYSTEM" no "$(mdir "${ESP[@]}" ::/flatcar/first_boot >/dev/null 2>&1 && echo yes || echo no)"
  while read -r f; do
    assert "ign ROOT has Ignition's $f (sha256)" "$(sha256sum <"$IG/want$f")" "$(root_cat "$DISK" "$f" | sha256sum)"
  done < <(cd "$IG/want" && find . -type f | sed 's/^\.//')
  assert "ign the check is root's own (Ignition's mode 0700)" 0700 \
    "$(root_debugfs "$DISK" "stat /etc/abguard/checks.d/ign-web-up" | sed -n 's/.*Mode: *\([0-7]*\).*/\1/p')"
  assert "ign ROOT has Ignition's unit (sha256)" "$(sha256sum <"$VM_DIR/e2e-ign/ign-web.service")" \
    "$(root_cat "$DISK" /etc/systemd/system/ign-web.service | sha256sum)"
  assert "ign the unit was enabled by the first boot's presets" 1 \
    "$(root_debugfs "$DISK" "ls /etc/systemd/system/multi-user.target.wants" | grep -c 'ign-web.service' || true)"
  # the provisioning boot: abguard's records of it say a plain boot of a good A, nothing else
  assert "ign provisioning boot: abguard's records of it" initrd \
    "$(hq '" ".join(l["event"] for l in L if l.get("boot_id") == L[0]["boot_id"])')"
  assert "ign provisioning boot: a plain boot of a good A" "USR-A healthy False" \
    "$(hq '" ".join(map(str, (L[0]["booted"]["label"], L[0]["verdict"], L[0]["first_boot_after_upgrade"])))')"
  assert "ign provisioning boot: no first boot, rollback or failure counted" "0 0 0" \
    "$(hq '" ".join(str(L[0]["totals"][k]) for k in ("first_boots", "rollbacks", "failed_first_boots"))')"
  # the bad B: the gate acted on Ignition's unit
  assert "ign B's first boot gated in the initrd" needs-health-check \
    "$(hq '" ".join(l["verdict"] for l in L if l["event"] == "initrd" and l["booted"]["label"] == "USR-B")')"
  assert "ign the gate failed on Ignition's unit" yes "$(has "$(hist_of gate-failed reasons)" 'critical unit ign-web.service')"
  assert "ign the image's own web.service is not critical here" no "$(has "$(hist_of gate-failed reasons)" 'critical unit web.service')"
  assert "ign failed units recorded" yes "$(has "$(hist_of gate-failed failed_units)" ign-web.service)"
  assert "ign A healthy after the rollback" healthy "$(hist verdict)"
  assert "ign B spent, A first again" "$ROLLED_BACK" "$(gpt_state "$DISK")"

  # the good B, staged from inside the provisioned machine; the config is still on fw_cfg
  DEADLINE_DROPIN='sed "s/^/E2E-IGN-DEADLINE: /" /run/systemd/generator/abguard-deadline.timer.d/50-abguard.conf'
  run_guest ign2 -i "$IG/config.ign" -p "$W/b.payload" "$UPDATE" "poweroff $DEADLINE_DROPIN; $IGN_JOURNAL"
  assert_seq ign2 "A B"
  assert "ign2 Ignition did not run again" 0 "$(cat "$(boot_log 1)" "$(boot_log 2)" | grep -ac 'ignition\[[0-9]*\]:' || true)"
  assert "ign2 gate passed" gate-passed "$(hist event)"
  assert "ign2 the gate watched Ignition's unit" ign-web.service \
    "$(hq '" ".join(u["unit"] for u in [l for l in L if l["event"] == "gate-passed"][-1]["gate"]["units"])')"
  assert "ign2 the gate ran Ignition's check, passed" "ign-web-up True True ign-web.service is active" \
    "$(hq '" ".join(str(c[k]).strip() for c in [l for l in L if l["event"] == "gate-passed"][-1]["gate"]["checks"] for k in ("name", "required", "passed", "output"))')"
  assert "ign2 the deadline timer is Ignition's" 'E2E-IGN-DEADLINE: OnStartupSec=173s' \
    "$(grep -a '^E2E-IGN-DEADLINE: OnStartupSec=.' "$(boot_log 2)" || true)"
  assert "ign2 B kept" "$KEPT" "$(gpt_state "$DISK")"
fi


fault_cases
fault_verdict
