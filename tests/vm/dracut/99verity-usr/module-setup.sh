#!/bin/bash
# shellcheck disable=SC2154 # moddir, initdir, systemdutildir come from dracut
# dracut module (test stand-in for Flatcar bootengine's verity setup): /dev/mapper/usr from
# verity.usr= + verity.usrhash= on the kernel command line, with the layout's hash offset
# built in (VERITY_USR_HASH_OFFSET at build time) for file systems other than ext4, whose
# own size says where the hash tree starts (bootengine: e2size).
check() { require_binaries veritysetup dd od dmsetup systemd-escape || return 1; return 255; }
depends() { echo systemd dm; }
installkernel() {
    hostonly='' instmods dm-verity dm-mod virtio_blk virtio_pci ext4 squashfs erofs crc32c_generic
}
install() {
    inst_multiple veritysetup dd od tr grep dmsetup systemd-escape
    inst_script "$moddir/verity-usr-open" /usr/lib/verity-usr/verity-usr-open
    inst_script "$moddir/verity-generator" "$systemdutildir/system-generators/verity-generator"
    echo "VERITY_USR_HASH_OFFSET=${VERITY_USR_HASH_OFFSET:-}" >"$initdir/etc/verity-usr.conf"
}
