#!/bin/bash
# Minimal Debian tree (systemd as init) that the disk builder splits into /usr + ROOT.
# Usage: build-rootfs.sh [CACHE]   env: ROOTFS_PKGS (extra packages, comma-separated),
#        ROOTFS_SUITE (bookworm: systemd 252 | trixie: systemd 257, as Flatcar's >= 256)
# Prints the rootfs directory on stdout: CACHE/rootfs/<suite>-<hash of this script + packages>.
# Mirrors come from the host's apt config at run time; nothing is hard-coded: for another
# suite than the host's, the host's own Debian mirrors serve it under its name.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
C=${1:-$ABGUARD_CACHE}/rootfs
SUITE=${ROOTFS_SUITE:-bookworm}
# cgpt: lets a guest-side probe or a human read the USR attributes of /dev/vda.
# dmsetup: its udev rules keep /dev/mapper/usr (the initrd made it) when the root udev
# re-processes the devices, as on Flatcar; trixie's udev drops unknown dm links.
PKGS="systemd-sysv,udev,cgpt,dmsetup${ROOTFS_PKGS:+,$ROOTFS_PKGS}"
KEY=$SUITE-$( { cat "$0"; echo "$SUITE $PKGS"; } | sha256sum | cut -c1-16)
OUT=$C/$KEY
if [ -x "$OUT/usr/bin/systemctl" ]; then echo "$OUT"; exit 0; fi

# the host's Debian sources, renamed to SUITE (bookworm-security -> trixie-security)
HOST_SUITE=$(. /etc/os-release; echo "${VERSION_CODENAME:-}")
mapfile -t MIRRORS < <(apt-get indextargets 'Identifier: Packages' \
    --format 'deb $(REPO_URI) $(RELEASE) $(COMPONENT)' |
  awk -v h="$HOST_SUITE" -v s="$SUITE" '$3==h || $3==h"-updates" || $3==h"-security" {
    sub("^" h, s, $3); print }' | sort -u)
[ ${#MIRRORS[@]} -gt 0 ] || die "no apt source for $HOST_SUITE in the host apt config to serve $SUITE (apt-get update?)"

mkdir -p "$C"
rm -rf "$OUT.tmp"; trap 'rm -rf "$OUT.tmp"' EXIT
# fast-tweaks: the harness never logs in and the VM lives for seconds, so gettys, periodic
# timers and a persistent journal only cost boot time; so do the caches rebuilt whenever /usr
# is newer than /etc (ldconfig, the journal catalog: every fresh disk's first boot) and the
# modprobe units for what the guest never uses (drm, fuse, configfs): 1-1.5 s each with one
# vCPU (systemd-analyze blame in the guest).
# machine-id stays empty: systemd then generates one without ConditionFirstBoot (which would
# run systemd-firstboot and preset-all, +4 s).
# shellcheck disable=SC2016 # $1 is expanded by mmdebstrap's hook shell
TWEAK='set -e; S="$1/etc/systemd/system"
  rm -f "$S"/getty.target.wants/getty@tty1.service "$S"/multi-user.target.wants/e2scrub_reap.service
  rm -f "$S"/timers.target.wants/*.timer
  ln -sf /dev/null "$S/getty-static.service"; ln -sf /dev/null "$S/serial-getty@ttyS0.service"
  for u in ldconfig systemd-journal-catalog-update modprobe@drm modprobe@fuse modprobe@configfs; do
    ln -sf /dev/null "$S/$u.service"; done
  mkdir -p "$1/etc/systemd/journald.conf.d"
  printf "[Journal]\nStorage=volatile\n" >"$1/etc/systemd/journald.conf.d/10-volatile.conf"
  : >"$1/etc/machine-id"; echo abguard-vm >"$1/etc/hostname"
  rm -f "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/*
  rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin'
mmdebstrap --quiet --mode=root --variant=minbase --include="$PKGS" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --customize-hook="$TWEAK" "$SUITE" "$OUT.tmp" "${MIRRORS[@]}" >&2
mv "$OUT.tmp" "$OUT"
# older keys of this suite are dead weight (~170 MB each)
find "$C" -mindepth 1 -maxdepth 1 ! -name "$KEY" \( -name "$SUITE-*" -o ! -name '*-*' \) -exec rm -rf {} +
log "rootfs $KEY: $(du -sh --apparent-size "$OUT" | cut -f1) ($(du -sh --apparent-size "$OUT/usr" | cut -f1) in /usr)"
echo "$OUT"
