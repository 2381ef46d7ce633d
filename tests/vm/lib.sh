# shellcheck shell=bash
# Shared helpers for the VM tests. Source it; it sets no shell options of its own.
VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$VM_DIR/../.." && pwd)
# Big downloads and the rootfs live outside the repo and survive `cargo clean`.
ABGUARD_CACHE=${ABGUARD_CACHE:-/var/cache/abguard-e2e}
E2E_WORK=${E2E_WORK:-$REPO_DIR/target/e2e}

# Flatcar's GUIDs: the one copy, shared with images/mkimage.sh
# shellcheck source=images/layout.sh
. "$REPO_DIR/images/layout.sh"

log() { printf '%s %s\n' "$(date +%H:%M:%S.%3N)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# assert DESCRIPTION EXPECTED ACTUAL
ASSERTS_OK=0
assert() {
  if [ "$2" = "$3" ]; then ASSERTS_OK=$((ASSERTS_OK + 1)); log "ok: $1 = '$3'"
  else die "$1: expected '$2', got '$3'"; fi
}

# secs_since T0_NS -> seconds with one decimal
secs_since() { awk -v d=$(( $(date +%s%N) - $1 )) 'BEGIN{printf "%.1f", d/1e9}'; }

# timed LABEL CMD... : runs CMD, records "LABEL seconds" in TIMINGS, keeps CMD's status.
TIMINGS=()
timed() {
  local label=$1 t0 rc=0 s note=""; shift
  t0=$(date +%s%N)
  "$@" || rc=$?
  s=$(secs_since "$t0")
  [ "$rc" = 0 ] || note=" (rc=$rc)"
  TIMINGS+=("$label ${s}s$note")
  log "time: $label ${s}s$note"
  return "$rc"
}
print_timings() { local t; for t in "${TIMINGS[@]}"; do printf '  %s\n' "$t"; done; }

# --- GPT on the image file (no loop device) -------------------------------------------
# Debian's cgpt only prints priority/tries/successful for ChromeOS kernel partitions in a
# plain `cgpt show`, so every field is read on its own.
gpt_attr() { cgpt show -i "$2" "-$3" "$1"; }                       # DISK N P|T|S|A|u|l|b|s
gpt_pts() { echo "P$(gpt_attr "$1" "$2" P) T$(gpt_attr "$1" "$2" T) S$(gpt_attr "$1" "$2" S)"; }
gpt_set() { cgpt add -i "$2" -P "$3" -T "$4" -S "$5" "$1"; }        # DISK N PRIO TRIES SUCCESSFUL
gpt_state() { echo "A($(gpt_pts "$1" 3)) B($(gpt_pts "$1" 4))"; }  # e.g. A(P1 T0 S1) B(P2 T1 S0)

# part_range DISK N -> "OFFSET_BYTES SIZE_BYTES"
part_range() { echo "$(( $(gpt_attr "$1" "$2" b) * 512 )) $(( $(gpt_attr "$1" "$2" s) * 512 ))"; }

# The host plays GRUB's gptprio.next with `abguard next` on the image: it picks the slot and
# spends a try exactly as GRUB does (checked against gptprio.c in tests/algorithms.rs).
# Prints one line of JSON {"partition","partuuid",...}; rc 3 and no write when nothing qualifies.
grub_next() {
  local out
  out=$("${ABGUARD_BIN:?ABGUARD_BIN: the abguard binary}" next --disk "$1" --json) || return $?
  tr -d ' \n' <<<"$out"
  echo
}

# json_get JSON KEY: flat one-line JSON objects only (what grub_next prints).
json_get() { sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p" <<<"$1"; }

# --- ROOT (ext4, partition 9) on the host, no mount ---------------------------------------
# debugfs accepts unix_io options after '?', so it reads the partition in place.
root_debugfs() { # DISK DEBUGFS-REQUEST
  local off; off=$(( $(gpt_attr "$1" 9 b) * 512 ))
  debugfs -R "$2" "$1?offset=$off" 2>&1 | sed '/^debugfs [0-9.]* (/d'
}
# root_cat DISK PATH: file content on stdout; rc 1 when the file does not exist.
root_cat() {
  local off; off=$(( $(gpt_attr "$1" 9 b) * 512 ))
  debugfs -R "stat $2" "$1?offset=$off" 2>&1 | grep -q '^Inode:' || return 1
  debugfs -R "cat $2" "$1?offset=$off" 2>/dev/null
}

# --- serial log ----------------------------------------------------------------------
# CSI (with the intermediates of systemd >= 256's terminal reset, ESC [!p) and OSC (ESC ]104 BEL)
strip_ansi() { sed 's/\x1b\[[0-9;?]*[ -\/]*[@-~]//g; s/\x1b\][^\x07\x1b]*\(\x07\|\x1b\\\)//g; s/\r$//' "$@"; }
# probe_field LOG KEY: value of KEY= in the first BOOTPROBE line (empty if none)
probe_field() { strip_ansi "$1" | grep -a '^BOOTPROBE: version=' | head -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# --- Flatcar's GRUB (install-boot.sh, run-guest.sh) ------------------------------------------
# FIRMWARE=uefi (default: OVMF, GRUB's x86_64-efi build as EFI/boot/bootx64.efi, as
# flatcar_production_qemu_uefi.sh boots) | bios (SeaBIOS, GRUB's i386-pc core.img in BIOS-BOOT).
# install-boot.sh puts both on every disk, as Flatcar's images carry both; FIRMWARE only picks
# what qemu starts.
FIRMWARE=${FIRMWARE:-uefi}
# Flatcar's GRUB builds, unpacked once into the cache (keyed by the tarball's hash).
# ABGUARD_FLATCAR_GRUB names the folder with the tarballs (shared/vendor/flatcar-grub);
# GRUB_PC_TARBALL / GRUB_EFI_TARBALL name the files in it, to bring your own build.
ABGUARD_FLATCAR_GRUB=${ABGUARD_FLATCAR_GRUB:-$REPO_DIR/../shared/vendor/flatcar-grub}
GRUB_PC_TARBALL=${GRUB_PC_TARBALL:-grub-2.06-flatcar-i386-pc.tar.xz}
GRUB_EFI_TARBALL=${GRUB_EFI_TARBALL:-grub-2.06-flatcar-x86_64-efi.tar.xz}
# grub_tree [pc|efi]: prints the folder holding pc/ (or efi/)
grub_tree() {
  local plat=${1:-pc} tar key d
  if [ "$plat" = efi ]; then tar=$GRUB_EFI_TARBALL; else tar=$GRUB_PC_TARBALL; fi
  tar=$ABGUARD_FLATCAR_GRUB/$tar
  [ -r "$tar" ] || die "Flatcar's GRUB not found: $tar (set ABGUARD_FLATCAR_GRUB to the folder holding it)"
  key=$(sha256sum "$tar" | cut -c1-16); d=$ABGUARD_CACHE/grub/$key
  if [ ! -x "$d/$plat/bin/grub-mkimage" ]; then
    rm -rf "$d.tmp"; mkdir -p "$d.tmp"
    tar -xJf "$tar" -C "$d.tmp"
    rm -rf "$d"; mv "$d.tmp" "$d"
  fi
  echo "$d"
}
# OVMF (Debian's ovmf): read-only code + a per-run copy of the variable store
OVMF_CODE=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
OVMF_VARS=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}

# slot_kernel ROOTHASH OUT: the kernel for one slot, its /usr root hash as 64 ASCII hex digits
# at byte 0x40, where Flatcar's build stores it. On this kernel 0x40 is the start of the PE
# header, so (as on Flatcar) the image is no EFI stub: GRUB's `linux` enters it through the
# boot protocol on both firmwares.
slot_kernel() {
  # shellcheck disable=SC1091
  . "$ABGUARD_CACHE/kernel/kernel.env"
  [[ $1 =~ ^[0-9a-f]{64}$ ]] || die "slot_kernel: '$1' is not a sha256 root hash"
  cp "$KROOT/boot/vmlinuz-$KVER" "$2"
  printf '%s' "$1" | dd of="$2" bs=1 seek=64 conv=notrunc status=none
}
# load_cfg KERNEL: /flatcar/load-a|b, the per-slot GRUB snippet. Flatcar's GRUB 2.12 reads the
# hash from the kernel itself; this 2.06 build cannot, so the snippet carries what is at 0x40.
load_cfg() { printf 'set usrhash="%s"\n' "$(dd if="$1" bs=1 skip=64 count=64 status=none)"; }

# grub_cfg USR_FSTYPE: /flatcar/grub/grub.cfg, modelled on flatcar/scripts
# build_library/grub.cfg (the same on BIOS and UEFI, as Flatcar's): OEM's grub.cfg may set linux_append (and here linux_rd),
# gptprio.next picks the slot by $usr_uuid, set fallback retries the default entry. Lines
# starting "GRUB-E2E:" on the serial console are what run-guest.sh reads.
grub_cfg() {
  local fst=""; [ "$1" = ext4 ] || fst="mount.usrfstype=$1"
  cat <<CFG
# abguard e2e: Flatcar's GRUB config, BIOS and UEFI (see tests/vm/README.md)
set default="flatcar"
set fallback="0 0 0"
set timeout=0
serial com0 --speed=115200 --word=8 --parity=no
terminal_input serial_com0
terminal_output serial_com0
echo "GRUB-E2E: start"

set linux_root="root=LABEL=ROOT"
set linux_console="console=ttyS0,115200n8"
# how the initrd treats a failure (Flatcar: its emergency shell with a timeout)
set linux_rd="rd.shell=0 rd.emergency=reboot"
set linux_append=""
search --no-floppy --set oem --part-label OEM --hint "\$root"
if [ -n "\$oem" -a -f "(\$oem)/grub.cfg" ]; then
    source "(\$oem)/grub.cfg"
fi
# Flatcar's first-boot detection: the image ships /flatcar/first_boot on the ESP, the initrd
# removes it once Ignition has run (ignition-quench). Debian's Ignition generator reads
# ignition.firstboot instead of Flatcar's flatcar.first_boot, so both are set.
set first_boot=""
if [ -f "(\$root)/flatcar/first_boot" ]; then
    set first_boot="flatcar.first_boot=detected ignition.firstboot=1"
fi
# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check fails at random
# ("IO-APIC + timer doesn't work!", a panic before anything of the slot runs, then an extra boot)
set linux_cmdline="rootflags=rw rw mount.usrflags=ro consoleblank=0 \$linux_root \$linux_console quiet systemd.gpt_auto=0 panic=-1 no_timer_check $fst \$first_boot \$linux_rd \$linux_append"

function gptprio {
    gptprio.next -d usr_device -u usr_uuid
    if [ \$? -ne 0 -o -z "\$usr_uuid" ]; then
        # Flatcar waits at a prompt here; the test ends the VM so the harness sees it at once
        echo "GRUB-E2E: gptprio failed"
        halt
    fi
    if [ "\$usr_uuid" = "$USR_A_PARTUUID" ]; then
        set slot="a"
        set usr_label="USR-A"
    else
        set slot="b"
        set usr_label="USR-B"
    fi
}

menuentry "Flatcar default" --id=flatcar {
    gptprio
    echo "GRUB-E2E: boot slot=\$slot \$usr_device"
    source (\$root)/flatcar/load-\$slot
    # Flatcar passes verity.usr=PARTUUID=\$usr_uuid. Stage 0 (minimal-init) finds the drive by
    # grepping partition uevents, and Debian's kernel puts PARTNAME but no PARTUUID in them
    # (Flatcar's kernel carries a patch that adds it): the lab names the slot GRUB chose by its
    # label, unique on Flatcar's disk.
    linux /flatcar/vmlinuz-\$slot \$linux_cmdline mount.usr=/dev/mapper/usr verity.usr=PARTLABEL=\$usr_label verity.usrhash=\$usrhash
    # stage 0 of the two-stage initrd (build-stage0.sh); stage 2 is in the slot's /usr
    initrd /flatcar/initrd.img
    echo "GRUB-E2E: loaded"
}
CFG
}
