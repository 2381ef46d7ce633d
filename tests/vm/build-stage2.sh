#!/bin/bash
# Stage 2 of Flatcar's two-stage initrd: the full dracut initrd, squashed into
# /usr/lib/flatcar/bootengine.img inside each USR slot, where stage 0 (build-stage0.sh,
# minimal-init) loop-mounts it and switch_roots into it. Flatcar builds it with its own dracut
# and systemd (update-bootengine, every bootengine module); here dracut-ng from Debian trixie
# runs inside a trixie tree (a cache entry of its own, built by build-rootfs.sh with dracut
# added), so the initrd's systemd is the booted root's systemd (257), as on Flatcar.
# Usage: build-stage2.sh ROOTFS OUT.img [CACHE]
#   ROOTFS: the booted root's tree (build-rootfs.sh): its systemd version must match
# env: EXTRA_DRACUT_MODULES="/abs/dracut/50abguard ..." (added by name: 50abguard -> abguard)
#      TREE_DRACUT_MODULES="ignition" (modules the trixie tree's packages installed: Ignition's
#      30ignition comes with its package, as Flatcar's comes with its ebuild)
#      STAGE2_TREE_OUT=DIR: also leave the unpacked initrd there (for assertions)
# Output: OUT.img (squashfs, lz4), cached by the hash of every input under CACHE/stage2/img.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ROOTFS=${1:?rootfs}; OUT=${2:?out.img}; CACHE=${3:-$ABGUARD_CACHE}
# shellcheck disable=SC1091
. "$CACHE/kernel/kernel.env"
OUT=$(realpath -m "$OUT"); mkdir -p "$(dirname "$OUT")"
# ignition, dracut-network (30ignition depends on network and url-lib), curl (url-lib's),
# isc-dhcp-client, iproute2 and procps (network-legacy's: the qemu platform needs no network, and
# systemd-networkd in the initrd would wait for one), policycoreutils (setfiles, which
# Ignition runs for its SELinux relabeling) are only put in the images that name Ignition's
# module; one tree serves both, so it is built once per cache
TREE=$(ROOTFS_SUITE=trixie ROOTFS_PKGS=dracut-core,kmod,cpio,systemd-cryptsetup,ignition,dracut-network,curl,isc-dhcp-client,iproute2,procps,policycoreutils \
  "$VM_DIR/build-rootfs.sh" "$CACHE/stage2")
sdver() { awk '/^Package: systemd$/{f=1} f&&/^Version:/{print $2; exit}' "$1/var/lib/dpkg/status"; }
[ "$(sdver "$TREE")" = "$(sdver "$ROOTFS")" ] ||
  die "stage 2's systemd $(sdver "$TREE") is not the root's $(sdver "$ROOTFS"): rebuild one of them"

# Flatcar's bootengine modules that apply to this guest (shared/vendor, never copied into the
# repo): 99emergency-timeout (the 5-minute "Press Enter ... or wait" before a forced reboot).
BE=${ABGUARD_FLATCAR_BOOTENGINE:-$REPO_DIR/../shared/vendor/flatcar-bootengine}
[ -r "$BE/flatcar-bootengine-src.tar.xz" ] || die "Flatcar's bootengine not found in $BE (set ABGUARD_FLATCAR_BOOTENGINE)"
W=$(mktemp -d "$(dirname "$OUT")/stage2.XXXX"); trap 'rm -rf "$W"' EXIT
tar -xJf "$BE/flatcar-bootengine-src.tar.xz" -C "$W" bootengine/dracut/99emergency-timeout
MODDIRS=("$W/bootengine/dracut/99emergency-timeout")
for d in ${EXTRA_DRACUT_MODULES:-}; do
  [ -r "$d/module-setup.sh" ] || die "$d is not a dracut module directory"
  MODDIRS+=("$(realpath "$d")")
done
# what a Flatcar initrd runs minus what stage 0 did (verity) or Flatcar's /usr provides;
# bash: bootengine's scripts assume /bin/sh is bash
MODS="bash systemd systemd-initrd dracut-systemd udev-rules base fs-lib rootfs-block dm"
for d in "${MODDIRS[@]}"; do n=${d##*/}; MODS="$MODS ${n##[0-9][0-9]}"; done
for n in ${TREE_DRACUT_MODULES:-}; do
  compgen -G "$TREE/usr/lib/dracut/modules.d/[0-9][0-9]$n/module-setup.sh" >/dev/null ||
    die "the trixie tree has no dracut module $n"
  MODS="$MODS $n"
done

KEY=$( { cat "$0"; echo "$TREE $KVER $MODS"; for d in "${MODDIRS[@]}"; do (cd "$d" && tar -c --sort=name --mtime=@0 --owner=0 --group=0 .); done
         cat "${ABGUARD_BIN:-/dev/null}"; } | sha256sum | cut -c1-16)
C=$CACHE/stage2/img; mkdir -p "$C"
if [ ! -s "$C/$KEY.img" ]; then
  # the trixie tree, hard-linked (dracut only adds files), plus the kernel's modules and ours
  R=$W/tree; cp -al "$TREE" "$R"
  mkdir -p "$R/lib/modules"; cp -al "$KROOT/lib/modules/$KVER" "$R/lib/modules/$KVER"
  for d in "${MODDIRS[@]}"; do cp -a "$d" "$R/usr/lib/dracut/modules.d/${d##*/}"; done
  bin=""; if [ -n "${ABGUARD_BIN:-}" ]; then install -m 0755 "$ABGUARD_BIN" "$R/tmp/abguard"; bin=/tmp/abguard; fi
  # a private mount namespace: /proc, /sys and /dev vanish with it
  unshare -m sh -c '
    R=$1; mount -t proc proc "$R/proc"; mount --rbind /sys "$R/sys"; mount --rbind /dev "$R/dev"
    shift; exec chroot "$R" env ABGUARD_BIN="$1" dracut --quiet --force --no-hostonly --reproducible \
      --kver "$2" -m "$3" --filesystems "ext4 btrfs" --no-compress --no-early-microcode /tmp/stage2.cpio' \
    sh "$R" "$bin" "$KVER" "$MODS" || die "dracut failed in the trixie tree"
  mkdir "$W/initrd"
  (cd "$W/initrd" && cpio -id --quiet <"$R/tmp/stage2.cpio")
  [ -x "$W/initrd/init" ] || [ -L "$W/initrd/init" ] || die "stage 2 has no /init"
  mksquashfs "$W/initrd" "$C/$KEY.img.tmp" -noappend -quiet -no-progress -comp lz4 -all-root >/dev/null
  mv "$C/$KEY.img.tmp" "$C/$KEY.img"
  # one entry per input set is plenty: drop the ones not used for a day
  find "$C" -name '*.img' -mtime +1 -delete
  log "stage 2 $KEY: $(du -h "$C/$KEY.img" | cut -f1), dracut $(chroot "$TREE" dracut --version 2>/dev/null | awk '{print $2}'), systemd $(sdver "$TREE"), modules: $MODS"
fi
cp "$C/$KEY.img" "$OUT"
if [ -n "${STAGE2_TREE_OUT:-}" ]; then
  rm -rf "$STAGE2_TREE_OUT"; mkdir -p "$STAGE2_TREE_OUT"
  unsquashfs -f -q -n -d "$STAGE2_TREE_OUT" "$OUT" >/dev/null
fi
