#!/bin/bash
# shellcheck disable=SC2154 # moddir, systemdsystemunitdir come from dracut
# dracut module (test only): initrd-noop.service, the baseline bootprobe prints beside
# abguard-initrd.service's run time
check() { return 255; }
depends() { echo systemd; }
install() {
    inst_multiple true
    inst_simple "$moddir/initrd-noop.service" "$systemdsystemunitdir/initrd-noop.service"
    $SYSTEMCTL -q --root "$initdir" add-wants initrd.target initrd-noop.service
}
