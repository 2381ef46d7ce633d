#!/bin/bash
# One qemu run of the test disk through its own bootloader (install-boot.sh: Flatcar's GRUB),
# across every boot the guest makes, until it powers off. GRUB decides every boot; nothing is
# passed from the host but the disk (and an optional read-only payload disk).
# Usage: run-guest.sh TAG DISK
# env: WORK (default $E2E_WORK)  TIMEOUT=240 s per boot (from one GRUB start to the next, or to
#      the poweroff)  MAX_BOOTS=8 (one more GRUB start ends the run as a loop)
#      ACCEL=tcg|kvm  SMP=2  MEM=512  PAYLOAD=FILE (/dev/disk/by-id/virtio-payload in the guest)
#      IGNITION=FILE (an Ignition config over fw_cfg, opt/com.coreos/config: Ignition's qemu platform)
#      FIRMWARE=uefi (OVMF_CODE + a copy of OVMF_VARS per run, as pflash) | bios (SeaBIOS)
# Output: WORK/logs/TAG.serial.log (raw), TAG.stamped.log (each line prefixed with the host's
#      epoch seconds when it arrived), stdout "RUN TAG: boots=3 seq=A,B,A end=poweroff wall=…s"
#      end: poweroff | timeout (a boot hung: no next GRUB start within TIMEOUT) | loop
#      (more than MAX_BOOTS) | gptprio-failed (nothing bootable) | qemu-rc=N
# Exit: 0 when the guest powered off, 1 otherwise.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
TAG=${1:?tag}; DISK=${2:?disk}
WORK=${WORK:-$E2E_WORK}
TIMEOUT=${TIMEOUT:-240}; MAX_BOOTS=${MAX_BOOTS:-8}
ACCEL=${ACCEL:-tcg}; [ "$ACCEL" = kvm ] && CPU=${CPU:-host,-arch-capabilities}; CPU=${CPU:-max}
mkdir -p "$WORK/logs"
RAW=$WORK/logs/$TAG.serial.log STAMPED=$WORK/logs/$TAG.stamped.log PIDF=$WORK/logs/$TAG.qemu.pid
rm -f "$RAW" "$STAMPED" "$PIDF"

# shellcheck disable=SC2054 # the commas belong to qemu options
DRIVES=(-drive "file=$DISK,format=raw,if=none,id=disk0,cache=unsafe" -device virtio-blk-pci,drive=disk0,bootindex=0)
# shellcheck disable=SC2054
if [ "$FIRMWARE" = uefi ]; then
  # a fresh variable store per run: OVMF finds EFI/boot/bootx64.efi on the disk by itself
  cp "$OVMF_VARS" "$WORK/logs/$TAG.vars.fd"
  # shellcheck disable=SC2054
  DRIVES+=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
           -drive "if=pflash,format=raw,unit=1,file=$WORK/logs/$TAG.vars.fd")
elif [ "$FIRMWARE" != bios ]; then die "FIRMWARE=$FIRMWARE: uefi or bios"; fi
# shellcheck disable=SC2054
[ -z "${PAYLOAD:-}" ] || DRIVES+=(-drive "file=$PAYLOAD,format=raw,if=none,id=pay0,readonly=on"
                                 -device virtio-blk-pci,drive=pay0,serial=payload)
# as flatcar_production_qemu_uefi.sh -i passes it (Flatcar's Ignition reads opt/org.flatcar-linux/config)
[ -z "${IGNITION:-}" ] || DRIVES+=(-fw_cfg "name=opt/com.coreos/config,file=$IGNITION")

# Serial console to stdout, each line stamped on arrival ($EPOCHREALTIME: no fork per line).
# GRUB's serial terminal sends VT100 escapes and \r before its lines: both are dropped first.
stamp() { local l; while IFS= read -r l; do printf '%s\n' "$l" >>"$RAW"; printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }
t0=$EPOCHREALTIME
# no -no-reboot: a guest reboot goes through the firmware and GRUB again, as on a machine;
# qemu exits when the guest powers off. -nic none: no iPXE option ROM for OVMF to try.
# i6300esb: the hardware watchdog abguard arms on a first boot after an upgrade (HANG_BUDGET);
# its expiry resets the guest as a machine's would
qemu-system-x86_64 -accel "$ACCEL" -cpu "$CPU" -M q35 -nodefaults -no-user-config \
  -display none -nic none -m "${MEM:-512}" -smp "${SMP:-2}" -pidfile "$PIDF" \
  -device i6300esb -action watchdog=reset "${DRIVES[@]}" -serial stdio </dev/null 2>"$WORK/logs/$TAG.qemu.err" |
  sed -u 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\r//g' | stamp >"$STAMPED" &
pipe=$!
qpid() { cat "$PIDF" 2>/dev/null || true; }
trap 'p=$(qpid); [ -z "$p" ] || kill "$p" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM

# Watchdog: every boot must reach the next GRUB start (or the poweroff) within TIMEOUT.
end="" last_start=$t0 boots=0
while kill -0 "$pipe" 2>/dev/null; do
  n=$(grep -c ' GRUB-E2E: start$' "$STAMPED" 2>/dev/null || true)
  if [ "${n:-0}" != "$boots" ]; then
    boots=$n; last_start=$EPOCHREALTIME
    if [ "$boots" -gt "$MAX_BOOTS" ]; then end=loop; break; fi
  fi
  if grep -q ' GRUB-E2E: gptprio failed' "$STAMPED" 2>/dev/null; then end=gptprio-failed; break; fi
  if awk -v a="$EPOCHREALTIME" -v b="$last_start" -v t="$TIMEOUT" 'BEGIN{exit !(a - b > t)}'; then
    end=timeout; break
  fi
  sleep 0.25
done
p=$(qpid); [ -z "$p" ] || kill "$p" 2>/dev/null || true
wait "$pipe" || true
boots=$(grep -c ' GRUB-E2E: start$' "$STAMPED" || true)
if [ -z "$end" ]; then
  if grep -aq 'reboot: Power down' "$RAW"; then end=poweroff
  else end="qemu-rc($(tail -1 "$WORK/logs/$TAG.qemu.err" 2>/dev/null))"; fi
fi
seq=$(sed -n 's/.* GRUB-E2E: boot slot=\([ab]\) .*/\1/p' "$STAMPED" | tr a-z A-Z | paste -sd, -)
wall=$(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN{printf "%.1f", a - b}')
echo "RUN $TAG: boots=$boots seq=${seq:-none} end=$end wall=${wall}s firmware=$FIRMWARE t0=$t0"
[ "$end" = poweroff ]
