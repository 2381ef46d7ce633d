#!/bin/bash
# Smoke test of the VM machinery: build everything (cached where it pays), boot USR-A, stage
# USR-B the way an update would, let the host pick it like GRUB, boot it; then corrupt B and
# check that the boot fails fast in the initrd (no timeout).
# Usage: smoke.sh   env: ABGUARD_CACHE, E2E_WORK, SMOKE_NEGATIVE=1 (0: skip the corrupt-B boot),
#        EXTRA_USR / EXTRA_DRACUT_MODULES (passed through), TIMEOUT, USRFS
set -euo pipefail
. "$(dirname "$0")/lib.sh"
W=$E2E_WORK/smoke
mkdir -p "$W"; rm -rf "$W/logs"
# the fast tier's single dracut initrd (99verity-usr) finds ext4's hash offset itself; the
# e2e's btrfs slots need stage 0 (e2e.sh)
export USRFS=${USRFS:-ext4}
T_ALL=$(date +%s%N)
result=FAIL
trap 'log "timings:"; print_timings >&2; log "total $(secs_since "$T_ALL")s"; echo "SMOKE $result"' EXIT

timed deps "$VM_DIR/install-deps.sh"
timed kernel "$VM_DIR/get-kernel.sh" "$ABGUARD_CACHE"
timed rootfs "$VM_DIR/build-rootfs.sh" "$ABGUARD_CACHE" >"$W/rootfs.path"
ROOTFS=$(cat "$W/rootfs.path")
timed "usr A" "$VM_DIR/build-usr.sh" "$ROOTFS" 1.0.0 "$W/usr-a.part"
timed "usr B" "$VM_DIR/build-usr.sh" "$ROOTFS" 2.0.0 "$W/usr-b.part"
timed disk "$VM_DIR/build-disk.sh" "$ROOTFS" "$W" "$W/usr-a.part" "$W/usr-b.part"
# shellcheck disable=SC1091
. "$W/layout.env"
timed initramfs "$VM_DIR/build-initramfs.sh" "$HASH_OFFSET" "$W/initrd.img"

# boot TAG [kernel args...]: the host picks the slot like GRUB, boots it; sets PART and LOG
boot() {
  local tag=$1 next hash; shift
  next=$(grub_next "$DISK") || die "$tag: no bootable USR partition: $(gpt_state "$DISK")"
  PART=$(json_get "$next" partition)
  case $PART in 3) hash=$USR_A_ROOTHASH ;; 4) hash=$USR_B_ROOTHASH ;; *) die "partition $PART" ;; esac
  log "$tag: bootloader picked $next"
  LOG=$W/logs/$tag.serial.log
  timed "boot $tag" env WORK="$W" "$VM_DIR/run-vm.sh" "$tag" "$(json_get "$next" partuuid)" "$hash" "$@" \
    >"$W/$tag.result" || true
  cat "$W/$tag.result" >&2
  grep -a '^BOOTPROBE:' "$LOG" | strip_ansi | sed 's/^/  | /' >&2 || true
  END=$(sed -n 's/.* end=//p' "$W/$tag.result")
}

boot 1-usr-a
assert "boot 1 partition" 3 "$PART"
assert "boot 1 end" poweroff "$END"
assert "boot 1 version" 1.0.0 "$(probe_field "$LOG" version)"
assert "boot 1 /usr backing" USR-A "$(probe_field "$LOG" partlabel)"
assert "boot 1 state" running "$(probe_field "$LOG" state)"
assert "GPT after boot 1" "A(P1 T0 S1) B(P0 T0 S0)" "$(gpt_state "$DISK")"
# the guest wrote its generated machine-id to ROOT; read it back without mounting
assert "machine-id on ROOT is set" 1 "$(root_cat "$DISK" /etc/machine-id | grep -cE '^[0-9a-f]{32}$')"

log "staging USR-B: priority 2, tries 1, successful 0"
gpt_set "$DISK" 4 2 1 0
boot 2-usr-b
assert "boot 2 partition" 4 "$PART"
assert "boot 2 end" poweroff "$END"
assert "boot 2 version" 2.0.0 "$(probe_field "$LOG" version)"
assert "boot 2 /usr backing" USR-B "$(probe_field "$LOG" partlabel)"
assert "GPT after boot 2 (try spent, nobody marked B good)" "A(P1 T0 S1) B(P2 T0 S0)" "$(gpt_state "$DISK")"

if [ "${SMOKE_NEGATIVE:-1}" = 1 ]; then
  "$VM_DIR/corrupt-slot.sh" "$DISK" 4
  gpt_set "$DISK" 4 2 1 0
  boot 3-corrupt-b
  assert "boot 3 partition" 4 "$PART"
  assert "boot 3 end (rd.emergency=reboot)" reboot "$END"
  assert "boot 3 never reached the booted system" "" "$(probe_field "$LOG" version)"
  assert "boot 3 dm-verity rejected block 0" yes \
    "$(grep -aq 'verity: .*data block 0 is corrupted' "$LOG" && echo yes || echo no)"
  assert "GPT after boot 3" "A(P1 T0 S1) B(P2 T0 S0)" "$(gpt_state "$DISK")"
fi
result="PASS ($ASSERTS_OK checks)"
