#!/bin/bash
# shellcheck disable=SC2154 # moddir, initdir, systemdsystemunitdir come from dracut
# dracut module: run `abguard initrd` on every boot before switch-root, and make a
# failed initrd on the first boot after an upgrade roll back at once.

# Included whenever the binary is installed, like Flatcar's bootengine modules
# (update-bootengine runs dracut --no-hostonly over every module).
# ABGUARD_BIN: take the binary from elsewhere than the image root (test builds).
check() {
    require_binaries "${ABGUARD_BIN:-/usr/bin/abguard}" || return 1
    return 0
}

depends() {
    echo systemd
    return 0
}

# The hang budget arms the machine's watchdog from the initrd on a first boot after an
# upgrade (docs/failure-budgets.md): its driver must be loaded there, before switch-root.
# The next boot names a kernel panic from pstore (docs/failure-budgets.md); on UEFI machines
# whose kernel builds the EFI backend as a module, it must be loaded before anything can
# panic, so it is loaded early in the initrd and stays loaded after switch-root.
installkernel() {
    hostonly='' instmods '=drivers/watchdog'
    hostonly='' instmods efi_pstore
    # abguard-esp.sh reads EFI-SYSTEM (FAT) for the slots' kernels
    hostonly='' instmods vfat nls_cp437 nls_ascii nls_utf8
}

install() {
    # static binary: no library resolution needed
    inst_simple "${ABGUARD_BIN:-/usr/bin/abguard}" /usr/bin/abguard
    inst_simple "$moddir/abguard-initrd.service" "$systemdsystemunitdir/abguard-initrd.service"
    inst_script "$moddir/abguard-esp.sh" /usr/libexec/abguard-esp.sh
    inst_multiple mount umount mountpoint
    # initrd.target is what initrd-cleanup waits for, on first and later boots alike
    $SYSTEMCTL -q --root "$initdir" add-wants initrd.target abguard-initrd.service
    # before Flatcar's 99emergency-timeout (300 s) and before rd.emergency= acts
    inst_hook emergency 00 "$moddir/abguard-emergency.sh"
    inst_hook shutdown-emergency 00 "$moddir/abguard-emergency.sh"
    # only when the module was installed above (built in, or no EFI backend: nothing to load)
    if [ -n "$(find "$initdir/lib/modules" "$initdir/usr/lib/modules" -name 'efi-pstore.ko*' 2>/dev/null)" ]; then
        mkdir -p "$initdir/etc/modules-load.d"
        echo efi_pstore >"$initdir/etc/modules-load.d/abguard-pstore.conf"
    fi
}
