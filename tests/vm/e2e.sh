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
#        ABGUARD_FLATCAR_GRUB, ABGUARD_FLATCAR_SEISMOGRAPH (folders, docs/test-dependencies.md)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$VM_DIR/scenario.sh"
. "$VM_DIR/faults.sh"
ABGUARD_BIN=$(realpath "${1:?usage: e2e.sh ABGUARD_BIN}"); export ABGUARD_BIN
SEISMO=${ABGUARD_FLATCAR_SEISMOGRAPH:-$REPO_DIR/../shared/vendor/flatcar-seismograph}
W=$E2E_WORK/e2e
mkdir -p "$W"; rm -rf "$W/logs" "$W"/s*.img "$W"/s*.layout "$W"/lane-*.log
T_ALL=$(date +%s%N)
result=FAIL
trap 'log "timings:"; print_timings >&2; log "total $(secs_since "$T_ALL")s"
      log "serial console of every boot: $W/logs/ (TAG.bootK.log; TAG.serial.log per run)"; echo "E2E $result"' EXIT
# (bios:N asks for scenario N too: the build makes what it needs)
want() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* || " $ONLY " == *" bios:$1 "* ]]; }

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
# the fault matrix's PID 1 freezer (faults.sh), static: the guest has its own libc
gcc -static -O2 -o "$F/usr/libexec/e2e-freeze-pid1" "$VM_DIR/e2e-fault/src/freeze-pid1.c"
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
COMMON=$W/tree:$VM_DIR/e2e-guest:$F:$VM_DIR/e2e-fault:$BE
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
if want 3 || want ign; then
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
! { want 3 || want ign; } || make_payload "$W/usr-b-bad.part" "$W/b-bad.payload"
# UPDATE: scenario 2 stages from inside A (its first step), GRUB picks B on the next reset; the
# scenarios about a bad update stage it from the host before the run (prestage), the same
# writes with the same Flatcar cgpt, saving one boot each
UPDATE="reboot /usr/libexec/e2e-update"
# --- 8-13: the health gate -----------------------------------------------------------
# One update for all of them: B with the gate's test units (tests/vm/e2e-gate/usr), staged
# from the host; each scenario's ROOT config names which of them is critical, so only those
# start. Boot 1 is B's first boot; after a rollback GRUB boots A (boot 2), which powers off.
G=$VM_DIR/e2e-gate
if want 8 || want 9 || want 10 || want 11 || want 12 || want 13 || want 23; then
  timed "usr B-gate" env EXTRA_USR="$COMMON:$W/marked:$G" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$W/usr-b-gate.part"
  make_payload "$W/usr-b-gate.part" "$W/b-gate.payload"
fi

# --- the scenarios (e2e-scenarios.sh), in E2E_LANES lanes run side by side ------------------
# A TCG guest with 2 vCPUs costs about 1.5 host cores per boot (a boot of A: 37 s alone, 60 s
# of CPU); with one vCPU about 1 core (41 s of CPU), so two one-vCPU lanes boot about twice
# as many guests per minute on this 2-core machine as one lane of 2-vCPU guests. The lanes
# are balanced by the measured run times (docs/vm-lab.md); E2E_LANES=1 runs them in order.
# bios:N is scenario N booted through SeaBIOS and GRUB's i386-pc build (the BIOS lane: GRUB's
# other path, a healthy update kept and a fallback), in a work folder of its own ($W/bios)
LANE_1=${E2E_LANE_1:-"1 2 5 3 6 8 9 11 12 23 13 kernel-missing bootengine-missing pid1-frozen bios:12"}
LANE_2=${E2E_LANE_2:-"4 4p 7 10 20 21 22 ign roothash-wrong kernel-crash bios:20"}
E2E_LANES=${E2E_LANES:-2}
for s in ${ONLY:-}; do
  [[ " $LANE_1 $LANE_2 " == *" $s "* ]] || die "E2E_ONLY: no scenario '$s' (the scenarios: $LANE_1 $LANE_2)"
done
# in_lane LIST: the items of LIST that E2E_ONLY asks for, by exact name ("12" is not "bios:12")
in_lane() {
  local s out=""
  for s in $1; do [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $s "* ]] || out="$out $s"; done
  echo "${out# }"
}
run_lane() {   # NAME SCENARIOS: in a subshell; its last line is "LANE NAME: N checks"
  local s uefi="" bios="" f
  for s in $2; do case $s in bios:*) bios="$bios ${s#bios:}" ;; *) uefi="$uefi $s" ;; esac; done
  ASSERTS_OK=0; TIMINGS=()
  if [ -n "$uefi" ]; then
    ONLY=$uefi
    # shellcheck source=tests/vm/e2e-scenarios.sh
    . "$VM_DIR/e2e-scenarios.sh"
  fi
  if [ -n "$bios" ]; then
    # the build's outputs, shared; every scenario's own files in $W/bios
    mkdir -p "$W/bios"
    for f in "$W"/*.payload "$W"/*.payload.env "$W"/usr-* "$W"/tree "$W"/flatcar "$W"/marked \
             "$W"/bad "$W"/cold "$W"/bootengine "$W"/stage0.cpio "$W"/stage2-tree; do
      [ ! -e "$f" ] || ln -sfn "$f" "$W/bios/${f##*/}"
    done
    export FIRMWARE=bios; W=$W/bios; ONLY=$bios
    # shellcheck disable=SC2034 # read by faults.sh: the BIOS lane's FAULT lines say so
    FAULT_CASE_SUFFIX=-bios
    # shellcheck disable=SC2034 # the UEFI pass's fault_verdict has judged its own
    FAULT_FAILED=()
    . "$VM_DIR/e2e-scenarios.sh"
  fi
  log "lane $1 timings:"; print_timings >&2
  echo "LANE $1: $ASSERTS_OK checks"
}
if [ "$E2E_LANES" = 1 ]; then
  ( run_lane all "$(in_lane "$LANE_1 $LANE_2")" ) 2>&1 | tee "$W/lane-all.log"
else
  [ "$E2E_LANES" = 2 ] || die "E2E_LANES=$E2E_LANES: 1 or 2"
  export SMP=${SMP:-1}
  pids=()
  for n in 1 2; do
    list=LANE_$n; list=$(in_lane "${!list}")
    [ -n "$list" ] || continue
    log "lane $n: $list"
    ( run_lane "$n" "$list" ) > >(sed -u "s/^/[lane $n] /" | tee "$W/lane-$n.log" >&2) 2>&1 &
    pids+=($!)
  done
  rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done
  sleep 1   # the last lines through sed and tee
  [ "$rc" = 0 ] || die "a lane failed (logs: $W/lane-*.log)"
fi
ASSERTS_OK=$(( ASSERTS_OK + $(sed -n 's/^.*LANE [^:]*: \([0-9]*\) checks$/\1/p' "$W"/lane-*.log | paste -sd+ | sed 's/^$/0/' | bc) ))
# two lanes prefix their lines: every case's FAULT line once more, as it is, together
[ "$E2E_LANES" = 1 ] || grep -h '^\[lane [0-9]\] FAULT [a-z0-9-]* stage=' "$W"/lane-*.log | sed 's/^\[lane [0-9]\] //' || true
result="PASS ($ASSERTS_OK checks)"
