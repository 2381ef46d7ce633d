#!/bin/bash
# shellcheck disable=SC2154 # moddir comes from dracut
# Test stand-in for Flatcar bootengine's 99emergency-timeout: on an initrd failure, wait five
# minutes, then reboot. abguard's hook must act before this on a first boot after an upgrade.
check() { return 255; }
depends() { echo systemd; }
install() {
    inst_hook emergency 99 "$moddir/emergency-timeout.sh"
}
