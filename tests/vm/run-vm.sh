#!/bin/bash
# Boot the test disk once under qemu. The caller plays the bootloader: it picks the slot and
# passes its PARTUUID and root hash, from which the kernel command line is built.
# Usage: run-vm.sh TAG PARTUUID ROOTHASH [extra kernel args...]
# env: WORK ($E2E_WORK: layout.env, disk.img, initrd.img)  LAYOUT DISK INITRD KERNEL (cache)
#      (LAYOUT may also be an images/mkimage.sh OUT.env)
#      TIMEOUT=180 s  ACCEL=tcg|kvm  SMP=2  MEM=512  CPU=max  QUIET=1  SNAPSHOT=0 (1: discard writes)
#      RD_ARGS (default "rd.shell=0 rd.emergency=reboot": how the initrd treats a failure)
#      PAYLOAD=FILE (extra read-only virtio disk, /dev/disk/by-id/virtio-payload in the guest)
# Output: WORK/logs/TAG.serial.log (+ TAG.cmdline); stdout "BOOT TAG: slot=A wall=12.3s end=poweroff"
# Exit: 0 when the guest powered off or rebooted, 1 on timeout or any other end.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
TAG=${1:?tag}; PARTUUID=${2:?partuuid}; ROOTHASH=${3:?roothash}; shift 3
WORK=${WORK:-$E2E_WORK}
disk=${DISK:-}
# shellcheck disable=SC1090
. "${LAYOUT:-$WORK/layout.env}"
DISK=${disk:-${DISK:-$WORK/disk.img}}; INITRD=${INITRD:-$WORK/initrd.img}
FSTYPE=${USR_FSTYPE:-${USR_FS:-squashfs}}   # USR_FS: images/mkimage.sh's OUT.env
if [ -z "${KERNEL:-}" ]; then
  # shellcheck disable=SC1091
  . "$ABGUARD_CACHE/kernel/kernel.env"; KERNEL=$VMLINUX
fi
TIMEOUT=${TIMEOUT:-180}
# under KVM, -cpu max aborts on MSR 0x10a (vm-boot.md); TCG does not care
ACCEL=${ACCEL:-tcg}; [ "$ACCEL" = kvm ] && CPU=${CPU:-host,-arch-capabilities}; CPU=${CPU:-max}
mkdir -p "$WORK/logs"; SERIAL=$WORK/logs/$TAG.serial.log; rm -f "$SERIAL"

case ${PARTUUID,,} in "${USR_A_PARTUUID,,}") slot=A ;; "${USR_B_PARTUUID,,}") slot=B ;; *) slot=$PARTUUID ;; esac
verbosity=quiet; [ "${QUIET:-1}" = 1 ] || verbosity=loglevel=6
CMDLINE="root=LABEL=ROOT rootflags=rw rw mount.usr=/dev/mapper/usr mount.usrfstype=$FSTYPE mount.usrflags=ro \
verity.usr=PARTUUID=$PARTUUID verity.usrhash=$ROOTHASH systemd.gpt_auto=0 console=ttyS0 $verbosity \
${RD_ARGS:-rd.shell=0 rd.emergency=reboot} panic=-1${*:+ $*}"
echo "$CMDLINE" >"$WORK/logs/$TAG.cmdline"

snap=""; [ "${SNAPSHOT:-0}" = 1 ] && snap=,snapshot=on
# shellcheck disable=SC2054 # the commas belong to qemu options
DRIVES=(-drive "file=$DISK,format=raw,if=none,id=disk0,cache=unsafe$snap" -device virtio-blk-pci,drive=disk0)
# shellcheck disable=SC2054
[ -z "${PAYLOAD:-}" ] || DRIVES+=(-drive "file=$PAYLOAD,format=raw,if=none,id=pay0,readonly=on"
                                 -device virtio-blk-pci,drive=pay0,serial=payload)

# -no-reboot + panic=-1: every way the guest can end (poweroff, reboot, panic) exits qemu.
# cache=unsafe: guest fsyncs are free; writes still land in the image file when qemu exits.
qpid=""
trap '[ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
t0=$(date +%s%N)
qemu-system-x86_64 -accel "$ACCEL" -cpu "$CPU" -M q35 -nodefaults -no-user-config \
  -display none -no-reboot -m "${MEM:-512}" -smp "${SMP:-2}" \
  -kernel "$KERNEL" -initrd "$INITRD" -append "$CMDLINE" \
  "${DRIVES[@]}" -serial "file:$SERIAL" </dev/null &
qpid=$!
timed_out=0
while kill -0 "$qpid" 2>/dev/null; do
  if [ $(( ($(date +%s%N) - t0) / 1000000000 )) -ge "$TIMEOUT" ]; then
    timed_out=1; kill "$qpid" 2>/dev/null || true; break
  fi
  sleep 0.2
done
qrc=0; wait "$qpid" || qrc=$?
qpid=""
wall=$(secs_since "$t0")

end=unknown
last=$(grep -ao 'reboot: \(Power down\|Restarting system\)' "$SERIAL" 2>/dev/null | tail -1) || true
case $last in *"Power down") end=poweroff ;; *Restarting*) end=reboot ;; esac
[ "$timed_out" = 0 ] || end=timeout
[ "$end" != unknown ] || end="unknown(qemu_rc=$qrc)"
echo "BOOT $TAG: slot=$slot wall=${wall}s end=$end"
case $end in poweroff|reboot) exit 0 ;; *) exit 1 ;; esac
