#!/bin/bash
# Host packages for the VM tests (Debian 12). Idempotent, never upgrades, no-op when all present.
# qemu-system-x86 comes from bookworm-backports: the preinstalled qemu-utils (10.x~bpo) Breaks
# bookworm's qemu-system-common 7.2, and apt -y would silently remove it. btrfs-progs too:
# bookworm's 6.2 has no `mkfs.btrfs --compress` (Flatcar's /usr is zstd btrfs); backports' 6.14
# has. An older btrfs-progs already installed is kept (--no-upgrade): build-usr.sh then says
# that /usr is uncompressed. ovmf: UEFI firmware for the default FIRMWARE=uefi lane. The backports source
# lives in a private apt config (sources derived from the host's own apt config), so /etc/apt
# is never touched.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export DEBIAN_FRONTEND=noninteractive
PKGS=(mmdebstrap dracut-core dmsetup cryptsetup-bin squashfs-tools erofs-utils gdisk cgpt kmod cpio
      busybox-static e2fsprogs dosfstools mtools xz-utils ovmf file
      # scenario ign: Debian's Ignition and its dracut module, which depends on dracut's
      # network and url-lib modules and installs setfiles for its SELinux relabeling
      ignition dracut-network policycoreutils python3-jsonschema)
APT=(apt-get install -y -q --no-upgrade --no-install-recommends)

missing() { local p; for p in "$@"; do
  dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || echo "$p"; done; }

mapfile -t need < <(missing "${PKGS[@]}")
if [ ${#need[@]} -gt 0 ]; then
  log "installing: ${need[*]}"
  apt-get update -q >/dev/null
  "${APT[@]}" "${need[@]}" >/dev/null
fi

# bpo_install PKG...: from bookworm-backports through a private apt config (sources derived
# from the host's own), so /etc/apt is never touched
bpo_install() {
  local A=$ABGUARD_CACHE/apt-backports kr opt=""
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
  # apt-get update first so indextargets knows the host's sources on a fresh machine
  [ -n "$(ls /var/lib/apt/lists/*_Packages 2>/dev/null)" ] || apt-get update -q >/dev/null
  kr=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -r "$kr" ] && opt="[signed-by=$kr] "
  apt-get indextargets 'Identifier: Packages' --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' |
    awk -v o="$opt" '$2 ~ /^bookworm/{print "deb " o $0} $2=="bookworm"{$2="bookworm-backports"; print "deb " o $0}' |
    sort -u >"$A/sources.list"
  [ -s "$A/sources.list" ] || die "no bookworm source in the host apt config"
  cat >"$A/apt.conf" <<CONF
Dir::Etc::sourcelist "$A/sources.list";
Dir::Etc::sourceparts "/nonexistent";
Dir::State::Lists "$A/lists";
Dir::Cache "$A/cache";
CONF
  log "installing $* from bookworm-backports"
  APT_CONFIG=$A/apt.conf apt-get update -q >/dev/null
  APT_CONFIG=$A/apt.conf "${APT[@]}" -t bookworm-backports "$@" >/dev/null
  APT_CONFIG=$A/apt.conf apt-get clean
}

if [ -n "$(missing qemu-system-x86)" ]; then
  if dpkg-query -W -f '${Version}' qemu-utils 2>/dev/null | grep -q bpo; then
    bpo_install qemu-system-x86
  else
    "${APT[@]}" qemu-system-x86 >/dev/null
  fi
fi
[ -z "$(missing btrfs-progs)" ] || bpo_install btrfs-progs
log "deps ok: $(qemu-system-x86_64 --version | head -1), $(mkfs.btrfs --version | head -1)"
