# shellcheck shell=bash
# The fault matrix (issue 26), sourced by e2e.sh: every way a first boot after an upgrade
# can fail, each one qemu run through Flatcar's GRUB with the guest rebooting itself. Each
# case asserts the boot sequence, the stage A records for B's attempt, and that the attempt
# ended within its budget, and prints exactly one line:
#   FAULT <case> stage=<recorded stage> took=<s from B's GRUB choice to the reset> budget=<s> ok|FAIL
# Cases that an older scenario already is (4, 6, 10, 20) call fault_report from their own
# block; fault_cases runs the rest. Budgets: docs/failure-budgets.md.

# A TCG boot from GRUB's choice to the point a fault strikes (kernel, initrd, userspace up
# to the gate) takes 15-40 s here; BOOT_ALLOWANCE is that, with room for a loaded machine.
# Each budget is this plus what the stage's enforcer waits (0 for what reboots at once).
BOOT_ALLOWANCE=${BOOT_ALLOWANCE:-90}
# Stage B from inside A and wait (at most 30 s) for abguard's loop guard to leave its
# "staged" breadcrumb, as a node does long before its reboot; the plan's reboot follows at once
UPDATE_SEEN='reboot /usr/libexec/e2e-update && for i in $(seq 150); do grep -qs "\"reached\":\"staged\"" /var/lib/abguard/attempt.json && break; sleep 0.2; done'
# pstore: on UEFI (the default lane) abguard's dracut module loads efi-pstore, so a panic
# after stage 0 leaves the kernel's last words in an EFI variable and A records `kernel
# panic`. Stage 0 loads no efi-pstore, so a panic there is `stage 0 or kernel`. SeaBIOS has no
# EFI variables, and ramoops (tried: memmap= / mem= regions) came back empty after qemu's
# reset, so the BIOS lane records a panic as what the other breadcrumbs show.
# panic_stage NO_PSTORE_STAGE: what A records for a panic after stage 0 (pstore's word on UEFI)
panic_stage() { if [ "$FIRMWARE" = uefi ]; then echo "kernel panic"; else echo "$1"; fi; }
# pstore_said TAG PANIC_LINE: on UEFI, A's fallback quotes B's panic from pstore
pstore_said() {
  [ "$FIRMWARE" = uefi ] || return 0
  assert "$1 A read B's panic from pstore" yes "$(has "$(hist_of fallback reasons)" "$2")"
}

# fault_took: seconds from the first "boot slot=b" to the next GRUB start (the reset) or,
# when GRUB fell back by itself, to its next "boot slot=" in the same run
fault_took() {
  # (reads to the end: an early exit would SIGPIPE the reader under pipefail)
  strip_ansi "$RUN_STAMPED" | awk '
    done { next }
    !b && / GRUB-E2E: boot slot=b / { b = $1; next }
    b && (/ GRUB-E2E: start$/ || / GRUB-E2E: boot slot=/) { printf "%.1f", $1 - b; done = 1 }'
}

# fault_stage: the stage ROOT's history records for B's attempt: a fallback's `stage`, or
# the stage of the verdict abguard reached itself (initrd, gate, deadline)
fault_stage() {
  root_cat "$DISK" /var/lib/abguard/attempts.jsonl | python3 -c '
import json, sys
stage = ""
for l in filter(str.strip, sys.stdin):
    e = json.loads(l)
    ev = e.get("event")
    if ev == "fallback":
        stage = e.get("stage") or "?"
    elif ev == "initrd-emergency" or (ev == "initrd" and e.get("verdict") == "rollback"):
        stage = "initrd"
    elif ev in ("deadline", "gate-failed"):
        stage = "deadline" if ev == "deadline" else "gate"
print(stage)'
}

# fault_report CASE EXPECTED_STAGE BUDGET: the FAULT line for the run just made; a case whose
# stage is not the expected one or that took longer than its budget fails the e2e at the end
# (fault_verdict), after every case has printed its line
# gap_to_reset PATTERN: seconds from the first serial line matching PATTERN to the next GRUB start
gap_to_reset() {
  # (reads to the end, as fault_took)
  strip_ansi "$RUN_STAMPED" | awk -v p="$1" '
    done { next }
    !f && index($0, p) { f = $1; next }
    f && / GRUB-E2E: start$/ { printf "%.1f", $1 - f; done = 1 }'
}

fault_report() {
  local stage took verdict=ok
  set -- "$1${FAULT_CASE_SUFFIX:-}" "$2" "$3"
  stage=$(fault_stage); took=$(fault_took)
  [ "$stage" = "$2" ] || verdict=FAIL
  [ -n "$took" ] && lt "$took" "$3" || verdict=FAIL
  echo "FAULT $1 stage=$stage took=${took:-?} budget=$3 $verdict"
  if [ "$verdict" = ok ]; then ASSERTS_OK=$((ASSERTS_OK + 1))
  else FAULT_FAILED+=("$1: stage '$stage' (expected '$2'), took ${took:-?}s (budget $3 s)"); fi
}
FAULT_FAILED=()

# fault_verdict: every FAULT line again, together; the e2e fails if one case did
fault_verdict() {
  [ "${#FAULT_FAILED[@]}" = 0 ] || die "fault matrix: ${FAULT_FAILED[*]}"
}

# stage0_run TAG PAYLOAD: B staged from inside A (the breadcrumb written), B's boot reaches
# stage 0's mount of its /usr and fails there, GRUB falls back to A
stage0_run() {
  new_disk "$1"
  run_guest "$1" -p "$2" "$UPDATE_SEEN" "poweroff"
  assert_seq "$1" "A B A"
  assert "$1 stage 0 reached the mount of B's /usr" 1 "$(grep -ac '^Mounting /usr from /dev/mapper/usr' "$(boot_log 2)")"
}

fault_cases() {
  # --- B's kernel missing from EFI-SYSTEM: GRUB cannot load it, its fallback entry runs
  #     gptprio.next again, which boots A in the same GRUB run (B's try is spent) ---------
  if want kernel-missing; then
    new_disk skm
    run_guest skm -p "$W/b.payload" "$UPDATE_SEEN && rm /boot/flatcar/vmlinuz-b && sync" \
      "poweroff findmnt -n -o FSTYPE,OPTIONS /boot | sed 's/^/E2E-BOOT-MOUNT: /'; echo E2E-BOOT-MOUNT-END"
    assert "skm GRUB chose B, then A in the same run" "A B A" "$SEQ"
    assert "skm two GRUB starts (no reset for B)" 2 "$BOOTS"
    assert "skm ended in a poweroff" poweroff "$END"
    assert "skm B spent, A first again" "$ROLLED_BACK" "$(gpt_state "$DISK")"
    # A's initrd reads EFI-SYSTEM (abguard-esp.sh): B's kernel is gone, so GRUB could not
    # have started it. GRUB's budget: its 10 s pause after an error ("Press any key to
    # continue..."), then the fallback entry's gptprio.next and loading A (measured 12.5 s)
    assert "skm A's initrd saw EFI-SYSTEM and no kernel of B" yes "$(has "$(hist_of fallback reasons)" "GRUB could not load it")"
    assert "skm A's booted system listed its /boot mounts" 1 "$(grep -ac '^E2E-BOOT-MOUNT-END' "$(boot_log 2)" || true)"
    assert "skm the initrd's EFI-SYSTEM mount did not reach the booted system" 0 "$(grep -ac '^E2E-BOOT-MOUNT: vfat' "$(boot_log 2)" || true)"
    fault_report kernel-missing bootloader 20
  fi

  # --- B's root hash wrong: B's kernel (and load-b) carry a hash its /usr does not match.
  #     Stage 0 opens it all the same (the kernel checks nothing before a read) and dmsetup
  #     status is still V; the first read, minimal-init's mount of /usr, fails verification
  #     and --panic-on-corruption panics the kernel: no stage 2, so nothing of B's abguard
  #     runs. The lab's panic=-1 resets at once (Flatcar's kernel: 60 s, docs) -----------
  if want roothash-wrong; then
    ln -sf usr-b.part "$W/usr-b-wronghash.part"
    sed 's/^ROOTHASH=\(.\)/ROOTHASH=0/; s/^ROOTHASH=00/ROOTHASH=11/' "$W/usr-b.env" >"$W/usr-b-wronghash.env"
    make_payload "$W/usr-b-wronghash.part" "$W/b-wronghash.payload"
    stage0_run srh "$W/b-wronghash.payload"
    assert "srh dm-verity rejected the first block read" 1 "$(grep -ac 'device-mapper: verity: .*block [0-9]* is corrupted' "$(boot_log 2)")"
    assert "srh the kernel panicked" 1 "$(grep -ac 'Kernel panic - not syncing: dm-verity device corrupted' "$(boot_log 2)")"
    assert "srh B left no record (its stage 2 never ran)" 0 "$(root_cat "$DISK" /var/lib/abguard/attempts.jsonl | grep -c '"booted":{"partition":4,' || true)"
    assert "srh B spent, A first again" "$ROLLED_BACK" "$(gpt_state "$DISK")"
    fault_report roothash-wrong "stage 0 or kernel" "$BOOT_ALLOWANCE"
  fi

  # --- B's /usr has no lib/flatcar/bootengine.img: stage 0 mounts /usr, its losetup fails,
  #     minimal-init's ERR trap waits its fixed 60 s, then reboot -f (stage 0's floor) -----
  if want bootengine-missing; then
    timed "usr B-nobootengine" env EXTRA_USR="$W/tree:$VM_DIR/e2e-guest:$F:$VM_DIR/e2e-fault:$W/marked" \
      "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$W/usr-b-nobe.part"
    make_payload "$W/usr-b-nobe.part" "$W/b-nobe.payload"
    stage0_run sbe "$W/b-nobe.payload"
    assert "sbe minimal-init failed" 1 "$(grep -ac '^ERROR: The early initrd has failed' "$(boot_log 2)")"
    assert "sbe minimal-init rebooted itself" 1 "$(grep -ac '^INFO: Rebooting' "$(boot_log 2)")"
    t=$(gap_to_reset "ERROR: The early initrd has failed")
    assert "sbe the reset came after stage 0's 60 s wait" yes "$([ -n "$t" ] && lt 60 "$t" && echo yes || echo "no (${t:-?} s)")"
    assert "sbe B spent, A first again" "$ROLLED_BACK" "$(gpt_state "$DISK")"
    fault_report bootengine-missing "stage 0 or kernel" $((BOOT_ALLOWANCE + 60))
  fi

  # --- PID 1 frozen on B before the verdict (ptrace stop: no more watchdog pings); the
  #     watchdog armed by the initrd and pinged by PID 1 resets after HANG_BUDGET ---------
  if want pid1-frozen; then
    new_disk spf
    prestage "$W/b.payload"
    printf 'HANG_BUDGET=30s\n' >"$W/hang.conf"
    root_write "$DISK" /etc/abguard/abguard.conf.d/50-hang.conf "$W/hang.conf"
    run_guest spf -a "e2e.fault=freeze" "poweroff"
    assert_seq spf "B A"
    assert "spf PID 1 was stopped" 1 "$(grep -ac 'E2E-FAULT: PID 1 stopped' "$(boot_log 1)")"
    assert "spf B's initrd armed the watchdog for HANG_BUDGET" 1 "$(hist_of initrd actions 0 | grep -c 'armed the watchdog watchdog0 (i6300ESB timer) for 30s')"
    assert "spf A knows the watchdog reset B (bootstatus)" 1 "$(hist_of fallback reasons | grep -c 'the watchdog reset the machine')"
    assert "spf B spent, A first again" "$ROLLED_BACK" "$(gpt_state "$DISK")"
    fault_report pid1-frozen hang $((BOOT_ALLOWANCE + 30))
  fi
  # --- a kernel crash on B after switch-root (sysrq c, the gate watching): panic=-1 here
  #     resets at once (Flatcar: 60 s); efi-pstore keeps the panic text for A -------------
  if want kernel-crash; then
    new_disk skc
    prestage "$W/b.payload"
    run_guest skc -a "e2e.fault=crash" "poweroff"
    assert_seq skc "B A"
    assert "skc B crashed" 1 "$(grep -ac 'E2E-FAULT-NOW crash' "$(boot_log 1)")"
    assert "skc B spent, A first again" "$ROLLED_BACK" "$(gpt_state "$DISK")"
    pstore_said skc 'Kernel panic - not syncing: sysrq triggered crash'
    fault_report kernel-crash "$(panic_stage "power loss or reset")" "$BOOT_ALLOWANCE"
  fi

}
