#!/bin/sh
echo "E2E-EMERGENCY-TIMEOUT: press Enter for the emergency shell or wait 5 minutes for reboot" >/dev/console
sleep 300
reboot -f
