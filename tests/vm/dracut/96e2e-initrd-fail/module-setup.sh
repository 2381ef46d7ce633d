#!/bin/bash
# shellcheck disable=SC2154 # moddir, systemdsystemunitdir come from dracut
# dracut module (test only): with e2e.initrd_fail=VERSION on the command line, stage 2 fails
# on the slot whose /usr has that VERSION_ID (e2e-initrd-fail.service, OnFailure= the
# emergency target), so a scenario can break B's initrd after stage 0 without touching A.
# Stage 0 (minimal-init) has already opened and mounted /usr, so this is the failure that
# abguard's emergency hook handles; the ones before it are stage 0's own.
check() { return 255; }
depends() { echo systemd; }
install() {
    inst_multiple cat sed
    inst_simple "$moddir/e2e-initrd-fail.sh" /usr/libexec/e2e-initrd-fail
    inst_simple "$moddir/e2e-initrd-fail.service" "$systemdsystemunitdir/e2e-initrd-fail.service"
    $SYSTEMCTL -q --root "$initdir" add-wants initrd.target e2e-initrd-fail.service
}
