#!/bin/bash
# Stage 0 of Flatcar's two-stage initrd, as the coreos-kernel ebuild builds it since 2025-09:
# a cpio whose /init is flatcar/bootengine's `minimal-init`, used unmodified from
# ABGUARD_FLATCAR_BOOTENGINE (default ../shared/vendor/flatcar-bootengine; never copied into the
# repo), with busybox (static), kmod's modprobe, veritysetup and dmsetup with their libraries
# (the host's, Debian 12), the disk/fs modules it loads (depmod'ed) and the ebuild's
# /etc/mdev.conf. It opens /usr with dm-verity, mounts it at /sysusr/usr and switch_roots into
# the slot's /usr/lib/flatcar/bootengine.img (build-stage2.sh).
# Usage: build-stage0.sh OUT.cpio [CACHE]
# The kernel comes from CACHE/kernel/kernel.env (get-kernel.sh). get-kernel.sh's pruned module
# tree lacks drivers/scsi and block/ (sd_mod, which minimal-init loads unconditionally, and its
# dependencies): they are extracted once from the same kernel package into
# CACHE/stage0/KVER-modules (a cache entry of its own, so the shared kernel tree is never
# changed in place).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
OUT=${1:?out.cpio}; CACHE=${2:-$ABGUARD_CACHE}
BE=${ABGUARD_FLATCAR_BOOTENGINE:-$REPO_DIR/../shared/vendor/flatcar-bootengine}
[ -r "$BE/minimal-init" ] || die "minimal-init not found in $BE (set ABGUARD_FLATCAR_BOOTENGINE)"
# shellcheck disable=SC1091
. "$CACHE/kernel/kernel.env"
OUT=$(realpath -m "$OUT"); mkdir -p "$(dirname "$OUT")"

# sd_mod and its dependencies, from the kernel package get-kernel.sh used
X=$CACHE/stage0/$KVER-modules
if [ ! -e "$X/lib/modules/$KVER/kernel/drivers/scsi/sd_mod.ko" ]; then
  T=$(mktemp -d "$CACHE/stage0.XXXX" 2>/dev/null || { mkdir -p "$CACHE/stage0"; mktemp -d "$CACHE/stage0/tmp.XXXX"; })
  (cd "$T" && { apt-get download -q "linux-image-$KVER" >/dev/null 2>&1 ||
                { apt-get update -q >/dev/null && apt-get download -q "linux-image-$KVER" >/dev/null; }; })
  mkdir -p "$T/root"
  dpkg-deb --fsys-tarfile "$T"/linux-image-"$KVER"_*.deb | tar -x -C "$T/root" --wildcards \
    "./lib/modules/$KVER/kernel/drivers/scsi/*" "./lib/modules/$KVER/kernel/block/*"
  mkdir -p "$CACHE/stage0"; rm -rf "$X"; mv "$T/root" "$X"; rm -rf "$T"
  log "stage 0: sd_mod and block/ of $KVER extracted into $X"
fi

W=$(mktemp -d "$(dirname "$OUT")/stage0.XXXX"); trap 'rm -rf "$W"' EXIT
R=$W/root; M=$W/mods
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,lib64} "$M/lib/modules/$KVER"
# every module minimal-init (or the kernel on its behalf) loads: the disk (virtio, sd_mod),
# dm-verity and its hash, btrfs (/usr), loop + squashfs + overlay (bootengine.img)
cp -a "$KROOT/lib/modules/$KVER/kernel" "$M/lib/modules/$KVER/"
cp -a "$X/lib/modules/$KVER/kernel/." "$M/lib/modules/$KVER/kernel/"
cp "$KROOT/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$M/lib/modules/$KVER/" 2>/dev/null || true
depmod -b "$M" "$KVER"
WANT="virtio_pci virtio_blk sd_mod dm_verity dm_mod btrfs squashfs loop overlay
      crc32c_generic crc32c_intel xxhash_generic blake2b_generic sha256_ssse3 libcrc32c"
mods=$(for m in $WANT; do modprobe -d "$M" -S "$KVER" --show-depends "$m" 2>/dev/null || true; done |
  awk '$1 == "insmod" {print $2}' | sort -u)
[ -n "$mods" ] || die "stage 0: no module resolved in $M"
for f in $mods; do
  rel=${f#"$M"/}; mkdir -p "$R/$(dirname "$rel")"; cp "$f" "$R/$rel"
done
cp "$M/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$R/lib/modules/$KVER/" 2>/dev/null || true
depmod -b "$R" "$KVER"
for m in sd_mod btrfs dm_verity loop; do
  modprobe -d "$R" -S "$KVER" --show-depends "$m" >/dev/null 2>&1 || die "stage 0: $m not loadable from the cpio"
done

# the binaries minimal-init calls by path or name, with their libraries
install -m 0755 "$BE/minimal-init" "$R/init"
install -m 0755 "$(command -v busybox)" "$R/bin/busybox"
file -L "$R/bin/busybox" | grep -q 'statically linked' || die "busybox is not static (busybox-static)"
bins=("$(command -v kmod)" "$(command -v veritysetup)" "$(command -v dmsetup)")
for b in "${bins[@]}"; do install -m 0755 "$b" "$R/sbin/${b##*/}"; done
ln -s kmod "$R/sbin/modprobe"
# /init is "#!/bin/sh": busybox as sh (minimal-init installs the other applets itself)
ln -s busybox "$R/bin/sh"
for l in $(ldd "${bins[@]}" | awk '$3 ~ /^\// {print $3} $1 ~ /^\/lib64\// {print $1}' | sort -u); do
  mkdir -p "$R$(dirname "$l")"; cp -L "$l" "$R$l"
done
# the ebuild's mdev.conf: every uevent's MODALIAS through kmod's modprobe
printf '%s\n' '$MODALIAS=.* 0:0 660 @/sbin/modprobe "$MODALIAS"' >"$R/etc/mdev.conf"
(cd "$R" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$OUT"
log "stage 0 $OUT: $(du -h "$OUT" | cut -f1), $(wc -w <<<"$mods") modules, init = $(sha256sum "$BE/minimal-init" | cut -c1-12) (minimal-init)"
