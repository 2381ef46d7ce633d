#!/bin/bash
# shellcheck disable=SC2154 # moddir, initdir, systemdsystemunitdir come from dracut
# dracut module (test stand-in for Flatcar bootengine's ignition-quench.service and
# sysroot-boot.service): once Ignition's files stage has run on a first boot, remove
# /flatcar/first_boot from EFI-SYSTEM, so GRUB stops passing flatcar.first_boot and the
# next boots are ordinary ones. Only on a first boot: it hangs off ignition-complete.target,
# which Ignition's generator pulls in only then.
check() { return 255; }
depends() { echo systemd ignition; }
installkernel() {
    hostonly='' instmods vfat fat nls_cp437 nls_ascii nls_utf8
}
install() {
    inst_multiple mount umount rm mkdir sync
    inst_script "$moddir/ignition-quench" /usr/libexec/ignition-quench
    inst_simple "$moddir/ignition-quench.service" "$systemdsystemunitdir/ignition-quench.service"
    mkdir -p "$initdir/$systemdsystemunitdir/ignition-complete.target.requires"
    ln_r "$systemdsystemunitdir/ignition-quench.service" \
        "$systemdsystemunitdir/ignition-complete.target.requires/ignition-quench.service"
}
