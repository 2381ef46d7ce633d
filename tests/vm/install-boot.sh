#!/bin/bash
# Make a build-disk.sh image boot through Flatcar's own GRUB on both firmwares, as a Flatcar
# image does: for UEFI EFI/boot/bootx64.efi (the x86_64-efi build) on EFI-SYSTEM; for BIOS
# core.img (i386-pc) in BIOS-BOOT (partition 2) and boot.img's code in the MBR. Both carry the
# same embedded config, which sources /flatcar/grub/grub.cfg on EFI-SYSTEM. Also on EFI-SYSTEM: the per-slot kernels /flatcar/vmlinuz-a|b
# (the slot's dm-verity root hash at byte 0x40, where Flatcar's build stores it), the
# per-slot /flatcar/load-a|b and the shared initrd. GRUB itself is not part of the project:
# it comes prebuilt from ABGUARD_FLATCAR_GRUB (docs/test-dependencies.md) and is unpacked
# into the cache.
# Usage: install-boot.sh DISK LAYOUT.env INITRD
# env: ABGUARD_FLATCAR_GRUB (default ../shared/vendor/flatcar-grub beside the clone)
#      GRUB_CMDLINE (extra words for every boot's kernel command line)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
IMG=${1:?disk}; LAYOUT=${2:?layout.env}; INITRD=${3:?initrd}
# shellcheck disable=SC1090
. "$LAYOUT"
# shellcheck disable=SC1091
. "$ABGUARD_CACHE/kernel/kernel.env"
GRUB=$(grub_tree pc)
GRUB_EFI=$(grub_tree efi)
W=$(mktemp -d "${TMPDIR:-/tmp}/install-boot.XXXX"); trap 'rm -rf "$W"' EXIT
BIOS_LBA=$(gpt_attr "$IMG" 2 b)
[ "$(gpt_attr "$IMG" 2 t | tr a-f A-F)" = "$T_BIOS" ] || die "$IMG: partition 2 is not BIOS-BOOT"

# the embedded config of both images: the real one is on EFI-SYSTEM, as on Flatcar
cat >"$W/embed.cfg" <<'CFG'
set root=hd0,gpt1
set prefix=($root)/flatcar/grub
CFG
"$GRUB/pc/bin/grub-mkimage" -O i386-pc -d "$GRUB/pc/lib/grub/i386-pc" -p '(hd0,gpt1)/flatcar/grub' \
  -c "$W/embed.cfg" -o "$W/core.img" \
  biosdisk part_gpt fat ext2 gpt gptprio normal linux serial terminal echo test search \
  search_part_label configfile halt reboot
# the same GRUB source built for UEFI; ext2 reads OEM's grub.cfg, as on BIOS
"$GRUB_EFI/efi/bin/grub-mkimage" -O x86_64-efi -d "$GRUB_EFI/efi/lib/grub/x86_64-efi" -p '(hd0,gpt1)/flatcar/grub' \
  -c "$W/embed.cfg" -o "$W/bootx64.efi" \
  part_gpt fat ext2 gpt gptprio normal linux serial terminal echo test search \
  search_part_label configfile halt reboot
core_size=$(stat -c %s "$W/core.img")
[ "$core_size" -le $(( $(gpt_attr "$IMG" 2 s) * 512 )) ] || die "core.img ($core_size B) does not fit BIOS-BOOT"
# diskboot.img's blocklist (end of core.img's first sector): the rest of core.img follows it
python3 - "$W/core.img" "$BIOS_LBA" <<'PY'
import struct, sys
p, lba = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read())
b[0x1f4:0x1fc] = struct.pack("<Q", lba + 1)
open(p, "wb").write(b)
PY
dd if="$W/core.img" of="$IMG" bs=512 seek="$BIOS_LBA" conv=notrunc status=none
# boot.img into sector 0 around the protective MBR's partition table and BPB, as
# grub-bios-setup does; the core.img LBA at 0x5c
python3 - "$IMG" "$GRUB/pc/lib/grub/i386-pc/boot.img" "$BIOS_LBA" <<'PY'
import struct, sys
disk, boot, lba = sys.argv[1], open(sys.argv[2], "rb").read(), int(sys.argv[3])
with open(disk, "r+b") as f:
    mbr = bytearray(f.read(512))
    mbr[0:3] = boot[0:3]
    mbr[0x5a:0x1b8] = boot[0x5a:0x1b8]
    mbr[0x5c:0x64] = struct.pack("<Q", lba)
    f.seek(0)
    f.write(mbr)
PY

# EFI-SYSTEM content, written into the FAT image in place (mtools, no mount)
esp_off=$(( $(gpt_attr "$IMG" 1 b) * 512 ))
M=(-i "$IMG@@$esp_off")
mmd "${M[@]}" ::/flatcar ::/flatcar/grub ::/EFI ::/EFI/boot 2>/dev/null || true
mcopy -o "${M[@]}" "$W/bootx64.efi" ::/EFI/boot/bootx64.efi
grub_cfg "$USR_FSTYPE" >"$W/grub.cfg"
mcopy -o "${M[@]}" "$W/grub.cfg" ::/flatcar/grub/grub.cfg
mcopy -o "${M[@]}" "$INITRD" ::/flatcar/initrd.img
for x in A B; do
  h=USR_${x}_ROOTHASH; h=${!h}
  [ -n "$h" ] || continue
  s=${x,,}
  slot_kernel "$h" "$W/vmlinuz-$s"
  mcopy -o "${M[@]}" "$W/vmlinuz-$s" "::/flatcar/vmlinuz-$s"
  load_cfg "$W/vmlinuz-$s" >"$W/load-$s"
  mcopy -o "${M[@]}" "$W/load-$s" "::/flatcar/load-$s"
done
log "GRUB on $IMG: core.img $core_size B at LBA $BIOS_LBA, bootx64.efi $(stat -c %s "$W/bootx64.efi") B, ESP: $(mdir -b "${M[@]}" ::/flatcar | tr '\n' ' ')"
