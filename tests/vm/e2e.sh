#!/bin/bash
# make e2e: the A/B scenarios on real boots through Flatcar's own GRUB. The test disk carries
# Flatcar's GRUB for both firmwares (EFI/boot/bootx64.efi on EFI-SYSTEM; core.img in BIOS-BOOT,
# boot.img in the MBR; grub.cfg on EFI-SYSTEM running gptprio.next); qemu (TCG) boots it
# through OVMF (FIRMWARE=uefi, the default) or SeaBIOS (FIRMWARE=bios) and GRUB, then the
# two-stage initrd as Flatcar's: GRUB's initrd is stage 0 (minimal-init, unmodified), which
# opens the slot's btrfs /usr with dm-verity and switch_roots into the slot's own
# /usr/lib/flatcar/bootengine.img (dracut-ng + systemd 257 + abguard's module). The guest
# reboots itself: one qemu run per scenario, across all its boots, ending in a poweroff. Updates are staged
# from inside the running guest (payload into the spare slot, Flatcar's postinst with
# Flatcar's cgpt, /run/reboot-required); the update-engine stand-in marks good with Flatcar's
# cgpt as flatcar-setgoodroot does. The host only reads the disk afterwards: GPT, the history
# on ROOT, and the serial log (GRUB's choice of every boot, the guest's reports).
# Every scenario starts from a copy of the pristine disk (A 1.0.0 installed and good, B empty).
# Usage: e2e.sh ABGUARD_BIN   env: ABGUARD_CACHE, E2E_WORK, TIMEOUT (per boot), ONLY="3 4",
#        ROOTFS_SUITE (trixie: stage 2 is built from trixie too, to share its systemd),
#        FIRMWARE=uefi|bios, ABGUARD_FLATCAR_BOOTENGINE (minimal-init, bootengine modules),
#        ABGUARD_FLATCAR_GRUB, ABGUARD_FLATCAR_SEISMOGRAPH (folders, see shared/vendor)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$VM_DIR/scenario.sh"
ABGUARD_BIN=$(realpath "${1:?usage: e2e.sh ABGUARD_BIN}"); export ABGUARD_BIN
SEISMO=${ABGUARD_FLATCAR_SEISMOGRAPH:-$REPO_DIR/../shared/vendor/flatcar-seismograph}
W=$E2E_WORK/e2e
mkdir -p "$W"; rm -rf "$W/logs" "$W"/s*.img "$W"/s*.layout
T_ALL=$(date +%s%N)
result=FAIL
trap 'log "timings:"; print_timings >&2; log "total $(secs_since "$T_ALL")s"
      log "serial console of every boot: $W/logs/ (TAG.bootK.log; TAG.serial.log per run)"; echo "E2E $result"' EXIT
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

# --- build (kernel, rootfs and GRUB cached outside the repo) -------------------------------
timed deps "$VM_DIR/install-deps.sh"
timed kernel "$VM_DIR/get-kernel.sh" "$ABGUARD_CACHE"
# the guest: Debian trixie, systemd 257 (Flatcar ships >= 256); ROOTFS_SUITE=bookworm: 252
export ROOTFS_SUITE=${ROOTFS_SUITE:-trixie}
timed rootfs "$VM_DIR/build-rootfs.sh" "$ABGUARD_CACHE" >"$W/rootfs.path"
ROOTFS=$(cat "$W/rootfs.path")
log "guest: Debian $ROOTFS_SUITE, systemd $(awk '/^Package: systemd$/{f=1} f&&/^Version:/{print $2; exit}' "$ROOTFS/var/lib/dpkg/status")"
grub_tree pc >/dev/null; grub_tree efi >/dev/null
log "firmware: $FIRMWARE"
# shellcheck disable=SC1091
. "$ABGUARD_CACHE/kernel/kernel.env"

# the product exactly as `make install` lays it out, plus the test stand-ins
rm -rf "$W/tree" "$W/bad" "$W/marked" "$W/flatcar" "$W/cold"
timed install make -s -C "$REPO_DIR" install DESTDIR="$W/tree" >/dev/null
install -m 0755 "$ABGUARD_BIN" "$W/tree/usr/bin/abguard"
# Flatcar's cgpt and rootdev (seismograph, built for Debian 12: the guest has its libc,
# libblkid, libuuid) replace Debian's cgpt; the vfat modules let the update stand-in mount
# EFI-SYSTEM (the rootfs has no kmod: busybox's insmod loads them)
F=$W/flatcar; mkdir -p "$F/usr/lib/seismograph" "$F/usr/bin" "$F/usr/libexec" "$F/usr/lib/e2e/modules"
[ -r "$SEISMO/seismograph-bin-debian12-amd64.tar.xz" ] ||
  die "Flatcar's cgpt/rootdev not found in $SEISMO (set ABGUARD_FLATCAR_SEISMOGRAPH)"
tar -xJf "$SEISMO/seismograph-bin-debian12-amd64.tar.xz" -C "$F/usr/lib/seismograph" --strip-components=1
ln -sf ../lib/seismograph/cgpt "$F/usr/bin/cgpt"; ln -sf ../lib/seismograph/rootdev "$F/usr/bin/rootdev"
# busybox picks the applet from its own name unless it is called "busybox"
install -m 0755 "$(command -v busybox)" "$F/usr/lib/e2e/busybox"
for m in fs/fat/fat fs/fat/vfat fs/nls/nls_cp437 fs/nls/nls_ascii fs/nls/nls_utf8 \
         drivers/block/loop fs/squashfs/squashfs fs/overlayfs/overlay; do
  cp "$KROOT/lib/modules/$KVER/kernel/$m.ko" "$F/usr/lib/e2e/modules/"
done
# Stage 2: the full initrd, abguard's module inside, squashed into each slot's /usr as
# /usr/lib/flatcar/bootengine.img (both slots: each carries its own abguard, under its own
# root hash); 96e2e-initrd-fail and 97initrd-noop are test modules (scenario 6, timings)
BE=$W/bootengine; rm -rf "$BE" "$W/stage2-tree"; mkdir -p "$BE/usr/lib/flatcar"
timed stage2 env ABGUARD_BIN="$ABGUARD_BIN" STAGE2_TREE_OUT="$W/stage2-tree" \
  EXTRA_DRACUT_MODULES="$REPO_DIR/dracut/50abguard $VM_DIR/dracut/96e2e-initrd-fail $VM_DIR/dracut/97initrd-noop" \
  "$VM_DIR/build-stage2.sh" "$ROOTFS" "$BE/usr/lib/flatcar/bootengine.img"
# Stage 0: what GRUB loads as the initrd (minimal-init, busybox, modprobe, veritysetup, dmsetup)
timed stage0 "$VM_DIR/build-stage0.sh" "$W/stage0.cpio"
COMMON=$W/tree:$VM_DIR/e2e-guest:$F:$BE
# shellcheck disable=SC2034 # read by prestage (scenario.sh)
FLATCAR_CGPT=$F/usr/lib/seismograph/cgpt
# B's os-release carries a marker stored as literal bytes (btrfs keeps a file this small inline
# in its metadata, uncompressed; ext4, squashfs and erofs with lz4 too), so the host can find
# the block holding it and corrupt exactly that block
MARKER=e2e$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$W/marked/usr/lib" "$W/bad/usr/share/e2e" "$W/cold/usr/share/e2e"
printf 'ID=abguard-e2e\nNAME="abguard test OS"\nVERSION_ID=2.0.0\nE2E_MARKER=%s\n' "$MARKER" >"$W/marked/usr/lib/os-release"
touch "$W/bad/usr/share/e2e/web-fail"
# a file no one opens during boot, of random bytes, so every USRFS stores it as is (scenario 7)
{ printf '%s' "$MARKER-cold"; head -c $((256 * 1024 - ${#MARKER} - 5)) /dev/urandom; } >"$W/cold/usr/share/e2e/cold.bin"
timed "usr A" env EXTRA_USR="$COMMON" "$VM_DIR/build-usr.sh" "$ROOTFS" 1.0.0 "$W/usr-a.part"
timed "usr B" env EXTRA_USR="$COMMON:$W/marked:$W/cold" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$W/usr-b.part"
if want 3; then
  timed "usr B-bad" env EXTRA_USR="$COMMON:$W/bad" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$W/usr-b-bad.part"
fi
timed disk env EXTRA_ROOT="$VM_DIR/e2e-root" "$VM_DIR/build-disk.sh" "$ROOTFS" "$W" "$W/usr-a.part" none
PRISTINE=$W/pristine.img PRISTINE_LAYOUT=$W/pristine.layout
mv "$W/disk.img" "$PRISTINE"; mv "$W/layout.env" "$PRISTINE_LAYOUT"
# shellcheck disable=SC1090
. "$PRISTINE_LAYOUT"
[ "$HASH_OFFSET" = 1065345024 ] || die "USR slots: hash offset $HASH_OFFSET, minimal-init hard-codes 1065345024"
timed grub "$VM_DIR/install-boot.sh" "$PRISTINE" "$PRISTINE_LAYOUT" "$W/stage0.cpio"

# dracut's install() failures are silent, so check that the module really landed in stage 2
for f in usr/bin/abguard usr/lib/systemd/system/abguard-initrd.service \
         etc/systemd/system/initrd.target.wants/abguard-initrd.service \
         usr/lib/dracut/hooks/emergency/00-abguard-emergency.sh \
         usr/lib/dracut/hooks/shutdown-emergency/00-abguard-emergency.sh \
         usr/lib/dracut/hooks/emergency/99-timeout.sh; do
  assert "stage 2 has $f" yes "$([ -e "$W/stage2-tree/$f" ] || [ -L "$W/stage2-tree/$f" ] && echo yes || echo no)"
done

# Byte offset of the first occurrence of $2 in the data area of payload $1 (empty when absent).
# grep -m1 stops early, so dd may die of SIGPIPE: the first hit is cut from the captured text.
marker_offset() {
  local hits
  hits=$(dd if="$1" bs=4M count=$((HASH_OFFSET / 4194304 + 1)) status=none | grep -aob -m1 "$2") || true
  echo "${hits%%:*}"
}
# flip_byte FILE OFFSET: a "bad download" after the image was hashed
flip_byte() {
  local old
  old=$(dd if="$1" bs=1 skip="$2" count=1 status=none | od -An -tu1 | tr -d ' ')
  # shellcheck disable=SC2059 # octal escape built on purpose
  printf "\\$(printf '%03o' $(( ${old:-0} ^ 255 )))" | dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none
}
timed payloads make_payload "$W/usr-b.part" "$W/b.payload"
if want 21; then   # another build: another version, so another root hash
  timed "usr B2" env EXTRA_USR="$COMMON" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.1.0 "$W/usr-b2.part"
  make_payload "$W/usr-b2.part" "$W/b2.payload"
fi
! want 3 || make_payload "$W/usr-b-bad.part" "$W/b-bad.payload"
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
  run_guest s2 -p "$W/b.payload" "$UPDATE" "reboot" "reboot abguard rollback" "reboot" "poweroff"
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
#        Flatcar initrd never does.)
if want 4 || want 4p; then
  cp --sparse=always "$W/b.payload" "$W/b-corrupt.payload"; cp "$W/b.payload.env" "$W/b-corrupt.payload.env"
  at=$(marker_offset "$W/b-corrupt.payload" "$MARKER")
  [ -n "$at" ] || die "s4: the os-release marker is not stored literally in B's image"
  flip_byte "$W/b-corrupt.payload" "$at"
  new_disk s4
  prestage "$W/b-corrupt.payload"
  run_guest s4 "poweroff"
  assert_seq s4 "B A"
  assert "s4 B's boot ended in a kernel panic" 1 "$(grep -ac 'Kernel panic - not syncing: dm-verity device corrupted' "$(boot_log 1)")"
  assert "s4 B left no history (the panic came first)" 1 "$(hist_count)"
  assert "s4 A healthy" healthy "$(hist verdict)"
  assert "s4 A's record shows GRUB's fallback (B first, spent)" "2 0 false" \
    "$(hist slots | python3 -c 'import json,sys; b=json.load(sys.stdin)[1]; print(b["priority"], b["tries"], str(b["successful"]).lower())')"
  assert "s4 B spent, A first again" "A(P2 T0 S1) B(P1 T0 S0)" "$(gpt_state "$DISK")"
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
  assert "s6 the 300 s timeout never started" 0 "$(strip_ansi "$RUN_LOG" | grep -ac 'wait 5 minutes for reboot' || true)"
  assert "s6 the emergency rollback is in the history" initrd-emergency "$(hist event 2)"
  assert "s6 A healthy" healthy "$(hist verdict)"
  assert "s6 B spent, A first again" "A(P2 T0 S1) B(P1 T0 S0)" "$(gpt_state "$DISK")"
fi

# --- stage-0 failures (issue 25): B fails before any of its dracut, systemd or abguard code
#     runs; after 60 s the machine resets, GRUB falls back to A (B's try spent) and A's abguard
#     records B above A, spent and unsuccessful. B was staged from the host (prestage), so no
#     record of A saw B staged: abguard's fallback rule (decide/fallback.rs) then finds the
#     spent slot "older than the history" and writes no `fallback` event; the scenarios assert
#     that too, so a change of that rule shows here. Named s0-hash and s0-bootengine; each
#     prints one "FAULT" line for a fault matrix.
# gap_to_reset PATTERN: seconds from the first serial line matching PATTERN to the next GRUB start
gap_to_reset() {
  strip_ansi "$RUN_STAMPED" | awk -v p="$1" '
    !f && index($0, p) { f = $1; next }
    f && / GRUB-E2E: start$/ { printf "%.1f", $1 - f; exit }'
}
# stage0_fallback TAG WHAT FAILURE-LINE: the assertions both cases share
stage0_fallback() {
  local t
  assert_seq "$1" "B A"
  t=$(gap_to_reset "$3")
  [ -n "$t" ] && lt 60 "$t" || die "$1: B's boot reset ${t:-?}s after '$3', not after 60 s"
  assert "$1 B left no record (nothing of its stage 2 ran)" 1 "$(hist_count)"
  assert "$1 A's record: B above A, spent, unsuccessful (GRUB's fallback)" "USR-B 2 0 false" \
    "$(hist slots | python3 -c 'import json,sys; b=json.load(sys.stdin)[1]; print(b["label"], b["priority"], b["tries"], str(b["successful"]).lower())')"
  assert "$1 no fallback event: no record saw B staged" 0 "$(jsonl_count fallback)"
  assert "$1 A healthy" healthy "$(hist verdict)"
  assert "$1 B spent, A first again" "A(P2 T0 S1) B(P1 T0 S0)" "$(gpt_state "$DISK")"
  TIMINGS+=("$1 B: '$3' -> reset ${t}s ($2)")
  echo "FAULT $1: $2 -> '$3', reset after ${t}s, GRUB fell back to A, A's record shows B spent above A" >&2
}
# jsonl_count EVENT: history lines of that event on ROOT
jsonl_count() { root_cat "$DISK" /var/lib/abguard/attempts.jsonl | grep -c "\"event\":\"$1\"" || true; }

# --- s0-hash: B's root hash in its grub entry is wrong (load-b: one digit changed). Measured:
#     veritysetup opens it (the kernel checks nothing before a read), dmsetup status is still
#     V, and the first read, minimal-init's mount of /usr, hits a metadata block that does not
#     match: with --panic-on-corruption a kernel panic. Flatcar's kernel resets 60 s after a
#     panic (CONFIG_PANIC_TIMEOUT=60); the lab's grub.cfg says panic=-1, so this run passes
#     panic=60 (OEM linux_append) to wait as Flatcar does. ---
if want s0-hash; then
  new_disk s0-hash
  prestage "$W/b.payload"
  esp=$(( $(gpt_attr "$DISK" 1 b) * 512 ))
  mcopy -n -i "$DISK@@$esp" ::/flatcar/load-b "$W/s0-hash.load"
  h=$(sed -n 's/^set usrhash="\([0-9a-f]*\)"$/\1/p' "$W/s0-hash.load")
  [ ${#h} = 64 ] || die "s0-hash: no root hash in load-b"
  bad=$(printf '%x' $(( (0x${h:0:1} + 1) % 16 )))${h:1}
  printf 'set usrhash="%s"\n' "$bad" >"$W/s0-hash.load"
  mcopy -o -i "$DISK@@$esp" "$W/s0-hash.load" ::/flatcar/load-b
  mcopy -n -i "$DISK@@$esp" ::/flatcar/load-b "$W/s0-hash.check"
  assert "s0-hash B's grub entry carries the wrong hash" "set usrhash=\"$bad\"" "$(cat "$W/s0-hash.check")"
  run_guest s0-hash -a "panic=60" "poweroff"
  assert "s0-hash stage 0 reached the mount of B's /usr" 1 "$(grep -ac '^Mounting /usr from /dev/mapper/usr' "$(boot_log 1)")"
  assert "s0-hash dm-verity rejected the first block read" 1 "$(grep -ac 'device-mapper: verity: .*block [0-9]* is corrupted' "$(boot_log 1)")"
  stage0_fallback s0-hash "root hash wrong in B's grub entry" "Kernel panic - not syncing: dm-verity device corrupted"
fi

# --- s0-bootengine: B's /usr lacks lib/flatcar/bootengine.img: stage 0's losetup fails and
#     minimal-init's own emergency path waits 60 s, then reboot -f ---
if want s0-bootengine; then
  NOBE=$W/usr-b-nobe.part
  timed "usr B-nobootengine" env EXTRA_USR="$W/tree:$VM_DIR/e2e-guest:$F:$W/marked" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$NOBE"
  make_payload "$NOBE" "$W/b-nobe.payload"
  new_disk s0-bootengine
  prestage "$W/b-nobe.payload"
  run_guest s0-bootengine "poweroff"
  assert "s0-bootengine stage 0 mounted B's /usr" 1 "$(grep -ac '^Mounting /usr from /dev/mapper/usr' "$(boot_log 1)")"
  assert "s0-bootengine minimal-init rebooted itself" 1 "$(grep -ac '^INFO: Rebooting' "$(boot_log 1)")"
  stage0_fallback s0-bootengine "B's /usr has no lib/flatcar/bootengine.img" "ERROR: The early initrd has failed"
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

# --- 8-13: the health gate (issue 11) -----------------------------------------------------
# One update for all of them: B with the gate's test units (tests/vm/e2e-gate/usr), staged
# from the host; each scenario's ROOT config names which of them is critical, so only those
# start. Boot 1 is B's first boot; after a rollback GRUB boots A (boot 2), which powers off.
G=$VM_DIR/e2e-gate
GATE_IMAGE_BUILT=""
gate_image() {   # once per run, so a changed e2e-gate/ is always in it
  [ -z "$GATE_IMAGE_BUILT" ] || return 0
  timed "usr B-gate" env EXTRA_USR="$COMMON:$W/marked:$G" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$W/usr-b-gate.part"
  make_payload "$W/usr-b-gate.part" "$W/b-gate.payload"
  GATE_IMAGE_BUILT=yes
}
# root_put SRC DEST [MODE]: a file onto ROOT, with its mode (debugfs writes 0644)
root_put() {
  root_write "$DISK" "$2" "$1"
  [ -z "${3:-}" ] || debugfs -w -R "sif $2 mode 0100$3" "$DISK?offset=$(( $(gpt_attr "$DISK" 9 b) * 512 ))" >/dev/null 2>&1
  assert "ROOT has $2" "$(cat "$1")" "$(root_cat "$DISK" "$2")"
}
# gate_disk N: a fresh disk with B-gate staged and scenario N's config on ROOT
gate_disk() {
  gate_image; new_disk "s$1"; prestage "$W/b-gate.payload"
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
# hist_of EVENT FIELD [I]: FIELD of the history lines whose event is EVENT, the last one
# (I: python index, 0 = the first)
hist_of() {
  root_cat "$DISK" /var/lib/abguard/attempts.jsonl | python3 -c '
import json, sys
v = [l for l in map(json.loads, filter(str.strip, sys.stdin)) if l.get("event") == sys.argv[1]]
i = int(sys.argv[3]) if len(sys.argv) > 3 else -1
v = v[i] if -len(v) <= i < len(v) else {}
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else json.dumps(v) if isinstance(v, (list, dict)) else v)' "$@"
}
has() { grep -qF -- "$2" <<<"$1" && echo yes || echo no; }
ROLLED_BACK="A(P2 T0 S1) B(P1 T0 S0)"   # B spent; A's setgoodroot prioritized A
KEPT="A(P1 T0 S1) B(P2 T0 S1)"          # B marked good by update-engine's setgoodroot

# --- 8. (a) the tutorial's nginx shape, failing ExecStartPre, no DEADLINE: back on A fast --
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
#         and (issue 14) locksmithd held back until the verdict
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
fi

# --- 21. the same build staged again from A, update_engine's way: un-staged at once --------
# e2e-update writes the payload into USR-B and runs Flatcar's postinst with Flatcar's cgpt,
# then /run/reboot-required; abguard-guard-staged un-stages the held build. A build with
# another root hash stages and boots.
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
  assert "s21 metrics: one fallback" 1 "$(sed -n 's/^abguard_fallbacks_total //p' <<<"$prom")"
  assert "s21 metrics: B's build held" 1 "$(sed -n 's/^abguard_held_builds //p' <<<"$prom")"
  run_guest s21b -a "e2e.settle=90" -p "$W/b2.payload" "reboot /usr/libexec/e2e-update && sleep 5" "poweroff"
  assert_seq s21b "A B"
  assert "s21b the other build boots" 2.1.0 "$(probe 2 version)"
  assert "s21b and passes its gate" gate-passed "$(hist event)"
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

result="PASS ($ASSERTS_OK checks)"
