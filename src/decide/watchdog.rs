//! The hang budget: on a first boot after an upgrade the machine's watchdog is armed from
//! the initrd to the gate's verdict, so a hung kernel or PID 1 resets within HANG_BUDGET
//! and GRUB falls back. Pure choices over the watchdog devices sysfs lists.

/// One `/sys/class/watchdog/watchdogN` as probed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Device {
    /// `watchdog0`: the node under /dev.
    pub name: String,
    /// The driver's `identity` ("i6300ESB timer", "iTCO_wdt", "Software Watchdog").
    pub identity: String,
    /// `max_timeout` in seconds, when the kernel reports it.
    pub max_timeout: Option<u64>,
    /// `bootstatus`: the WDIOF_* bits the driver found at load (what reset the machine).
    pub bootstatus: Option<u32>,
}

impl Device {
    /// softdog: a timer in the kernel itself, so it resets a hung PID 1 but not a hung
    /// kernel. Used only when there is nothing else, and reported as such.
    pub fn is_software(&self) -> bool {
        self.identity == "Software Watchdog"
    }
}

/// WDIOF_CARDRESET (linux/watchdog.h): the card reset the machine last time.
pub const CARDRESET: u32 = 0x20;

/// What the initrd does with the watchdog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// An ordinary boot (or a verdict already reached): the node's own setting stands.
    Leave,
    /// Arm `device` for `timeout_s` (the budget, or the device's maximum when lower).
    Arm {
        device: String,
        timeout_s: u64,
        note: String,
    },
    /// A first boot with no watchdog device: a hang before the verdict never ends.
    Missing,
}

/// The first hardware watchdog (lowest index), else softdog; capped at the device's
/// maximum. Nothing on an ordinary boot.
pub fn plan(needs_check: bool, devices: &[Device], budget_s: u64) -> Plan {
    if !needs_check {
        return Plan::Leave;
    }
    // a pick, not a sort: each sort instantiation costs the static binary kilobytes
    let Some(d) = devices
        .iter()
        .min_by_key(|d| (d.is_software(), d.name.len(), d.name.as_str()))
    else {
        return Plan::Missing;
    };
    let timeout_s = d.max_timeout.map_or(budget_s, |m| budget_s.min(m.max(1)));
    let mut note = format!("{} ({})", d.name, d.identity);
    if timeout_s < budget_s {
        note.push_str(&format!(", capped at its maximum {timeout_s}s"));
    }
    if d.is_software() {
        note.push_str(": softdog, no hardware watchdog: a hung kernel is not reset");
    }
    Plan::Arm {
        device: d.name.clone(),
        timeout_s,
        note,
    }
}

/// Whether the last reset was the watchdog's: Some(true) the driver says so, Some(false)
/// it reports bootstatus and the bit is clear, None nothing to read.
pub fn reset_by_watchdog(devices: &[Device]) -> Option<bool> {
    let known: Vec<u32> = devices
        .iter()
        .filter(|d| !d.is_software())
        .filter_map(|d| d.bootstatus)
        .collect();
    match known.is_empty() {
        true => None,
        false => Some(known.iter().any(|b| b & CARDRESET != 0)),
    }
}

/// The `system.conf.d` drop-in the booted system's manager reads after switch-root:
/// PID 1 then opens the device and pings it, and stops pinging when it hangs.
pub fn dropin(device: &str, timeout_s: u64) -> String {
    format!(
        "# abguard: a first boot after an upgrade; removed at the gate's verdict (HANG_BUDGET)\n\
         [Manager]\nWatchdogDevice=/dev/{device}\nRuntimeWatchdogSec={timeout_s}s\nRebootWatchdogSec={timeout_s}s\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: &str, identity: &str, max: Option<u64>, boot: Option<u32>) -> Device {
        Device {
            name: name.into(),
            identity: identity.into(),
            max_timeout: max,
            bootstatus: boot,
        }
    }

    #[test]
    fn what_is_armed() {
        let esb = dev("watchdog0", "i6300ESB timer", Some(2046), Some(0));
        let tco = dev("watchdog1", "iTCO_wdt", Some(613), None);
        let soft = dev("watchdog0", "Software Watchdog", Some(65535), None);
        #[rustfmt::skip]
        let cases: Vec<(&str, bool, Vec<Device>, u64, Plan)> = vec![
            ("ordinary boot: nothing", false, vec![esb.clone()], 120, Plan::Leave),
            ("first boot, no device", true, vec![], 120, Plan::Missing),
            ("first boot, i6300esb", true, vec![esb.clone()], 120,
             Plan::Arm { device: "watchdog0".into(), timeout_s: 120, note: "watchdog0 (i6300ESB timer)".into() }),
            ("budget above the device's maximum", true, vec![tco.clone()], 900,
             Plan::Arm { device: "watchdog1".into(), timeout_s: 613, note: "watchdog1 (iTCO_wdt), capped at its maximum 613s".into() }),
            ("hardware before softdog", true, vec![soft.clone(), tco.clone()], 120,
             Plan::Arm { device: "watchdog1".into(), timeout_s: 120, note: "watchdog1 (iTCO_wdt)".into() }),
            ("softdog only: reported", true, vec![soft.clone()], 120,
             Plan::Arm { device: "watchdog0".into(), timeout_s: 120, note: "watchdog0 (Software Watchdog): softdog, no hardware watchdog: a hung kernel is not reset".into() }),
        ];
        for (name, first, devices, budget, want) in cases {
            assert_eq!(plan(first, &devices, budget), want, "{name}");
        }
    }

    #[test]
    fn who_reset_the_machine() {
        let d = |b| vec![dev("watchdog0", "i6300ESB timer", None, b)];
        assert_eq!(reset_by_watchdog(&d(Some(CARDRESET))), Some(true));
        assert_eq!(reset_by_watchdog(&d(Some(0))), Some(false));
        assert_eq!(reset_by_watchdog(&d(None)), None);
        assert_eq!(reset_by_watchdog(&[]), None);
        // softdog's bit means nothing across a reset
        let soft = vec![dev("watchdog0", "Software Watchdog", None, Some(CARDRESET))];
        assert_eq!(reset_by_watchdog(&soft), None);
    }

    #[test]
    fn the_dropin_names_the_device_and_budget() {
        let t = dropin("watchdog0", 120);
        assert!(t.contains("[Manager]\n"));
        assert!(t.contains("RuntimeWatchdogSec=120s\n"));
        assert!(t.contains("WatchdogDevice=/dev/watchdog0\n"));
    }
}
