#!/bin/sh
# dracut emergency hook (sourced): on the first boot after an upgrade, spend the slot
# and reboot now; on any other boot this does nothing and the usual handling goes on.
if [ -x /usr/bin/abguard ]; then
    # --yes: the emergency shell may have the console on stdin
    /usr/bin/abguard emergency --yes || :
fi
