#!/bin/sh
# abguard-esp.sh mount|umount: EFI-SYSTEM read-only at /sysroot/boot while `abguard initrd`
# runs, so a fallback can be told apart: GRUB could not load the slot's kernel (missing or
# unreadable: stage `bootloader`) or it did and the attempt died in stage 0 or the kernel.
# The slot's kernel also carries its root hash (byte 0x40), which names the build that
# failed. Flatcar mounts EFI-SYSTEM only in the booted system (and on Ignition's first boot,
# sysroot-boot.service in the initrd): a mount someone else made is left alone, and ours is
# gone before switch-root. Every failure here only means "kernel unknown" to abguard.
set -u
# in the initrd's own root, which goes away at switch-root with everything in it
MARK=/tmp/abguard-esp.mounted
ESP=/dev/disk/by-partlabel/EFI-SYSTEM
case "${1:-}" in
mount)
    mountpoint -q /sysroot/boot && exit 0
    [ -d /sysroot/boot ] && [ -b "$ESP" ] || exit 0
    mkdir -p "${MARK%/*}"
    mount -t vfat -o ro,nosuid,nodev,noexec "$ESP" /sysroot/boot && : >"$MARK"
    ;;
umount)
    [ -e "$MARK" ] || exit 0
    umount /sysroot/boot && rm -f "$MARK"
    ;;
*)
    echo "usage: abguard-esp.sh mount|umount" >&2
    exit 2
    ;;
esac
exit 0
