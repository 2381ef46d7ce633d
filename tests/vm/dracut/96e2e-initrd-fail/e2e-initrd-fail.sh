#!/bin/bash
# exit 1 when e2e.initrd_fail= names this slot's VERSION_ID (stage 0 mounted it at /sysusr/usr)
want=""
for a in $(cat /proc/cmdline); do [[ $a == e2e.initrd_fail=* ]] && want=${a#*=}; done
ver=$(sed -n 's/^VERSION_ID=//p' /sysusr/usr/lib/os-release)
if [ -n "$want" ] && [ "$want" = "$ver" ]; then
    echo "E2E-INITRD-FAIL: failing stage 2 of $ver" >/dev/console
    exit 1
fi
exit 0
