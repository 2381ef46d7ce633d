//! The one description of every configuration key: name, parser, default, doc line and
//! the `abguard butane` option that writes it. The loader, `abguard config`, `abguard
//! butane` and the man page all read this table; tests/config_keys.rs fails when one of
//! them misses a key.

use super::timespan::{self, Span};
use super::{valid_unit, Config, OnFailure};

/// One `KEY=VALUE` setting.
pub struct Key {
    pub name: &'static str,
    /// The value when no file sets it, in the file's syntax (parsed by `set`).
    pub default: &'static str,
    /// One line for `abguard config`, the man page and docs/configuration.md's table.
    pub doc: &'static str,
    /// The `abguard butane` option that writes this key.
    pub butane: &'static str,
    /// Apply one value; the error says what is wrong with it.
    pub set: fn(&mut Config, &str) -> Result<(), String>,
    /// The effective value, in the file's syntax.
    pub show: fn(&Config) -> String,
}

fn yes_no(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(format!("{v:?} must be yes or no")),
    }
}

fn show_bool(b: bool) -> String {
    (if b { "yes" } else { "no" }).into()
}

/// A span within `min..=max`, in systemd's grammar.
pub fn span_within(v: &str, min: Span, max: Span) -> Result<Span, String> {
    let s = timespan::parse(v)
        .map_err(|e| format!("{v:?} is not a systemd time span ({e}; e.g. 10min, 1h 30min)"))?;
    if s < min || s > max {
        return Err(format!("{v:?} is {s}, outside {min} to {max}"));
    }
    Ok(s)
}

const SEC: u64 = 1_000_000;

/// STABLE_FOR: 0 (pass as soon as everything is up) to an hour.
pub const STABLE_MAX: Span = Span(3600 * SEC);
/// HANG_BUDGET: 30 s (the initrd's hand-over to PID 1 must fit) to 10 min (below
/// iTCO's 613 s maximum, so the budget is what the hardware does).
pub const HANG_BUDGET_BOUNDS: (Span, Span) = (Span(30 * SEC), Span(600 * SEC));
/// CHECK_TIMEOUT: a second to an hour.
pub const CHECK_TIMEOUT_BOUNDS: (Span, Span) = (Span(SEC), Span(3600 * SEC));

fn set_units(c: &mut Config, v: &str) -> Result<(), String> {
    // all or nothing: a half-applied list would silently drop a critical unit
    let bad: Vec<&str> = v.split_whitespace().filter(|u| !valid_unit(u)).collect();
    if let Some(u) = bad.first() {
        let hint = if u.contains(',') {
            " (separate units with spaces, not commas)"
        } else {
            " (e.g. nginx.service)"
        };
        return Err(format!("{u:?} is not a unit name{hint}"));
    }
    for u in v.split_whitespace() {
        if c.unit_set.insert(u.to_string()) {
            c.critical_units.push(u.to_string());
        }
    }
    Ok(())
}

pub const KEYS: &[Key] = &[
    Key {
        name: "CRITICAL_UNITS",
        default: "",
        doc: "units that must be active, and stay so for STABLE_FOR, before the first boot after an upgrade counts as healthy (space-separated; merged from all files)",
        butane: "critical-unit",
        set: set_units,
        show: |c| c.critical_units.join(" "),
    },
    Key {
        name: "DEADLINE",
        default: "10min",
        doc: "how long after the booted system's manager started an unproven upgrade may take before it is rolled back (1min to 24h)",
        butane: "deadline",
        set: |c, v| {
            c.deadline = timespan::deadline(v)?;
            Ok(())
        },
        show: |c| c.deadline.to_string(),
    },
    Key {
        name: "STABLE_FOR",
        default: "1min",
        doc: "how long every critical unit must stay active, same invocation and no restart, after the last one came up (0 to 1h)",
        butane: "stable-for",
        set: |c, v| {
            c.stable_for = span_within(v, Span(0), STABLE_MAX)?;
            Ok(())
        },
        show: |c| c.stable_for.to_string(),
    },
    Key {
        name: "CHECK_TIMEOUT",
        default: "1min",
        doc: "how long one run of a health check in checks.d may take before it is killed and counts as failed (1s to 1h)",
        butane: "check-timeout",
        set: |c, v| {
            let (lo, hi) = CHECK_TIMEOUT_BOUNDS;
            c.check_timeout = span_within(v, lo, hi)?;
            Ok(())
        },
        show: |c| c.check_timeout.to_string(),
    },
    Key {
        name: "CHECK_SYSEXT",
        default: "yes",
        doc: "the built-in check: every systemd-sysext image merged on the last ordinary boot is merged again after the update",
        butane: "no-check-sysext",
        set: |c, v| {
            c.check_sysext = yes_no(v)?;
            Ok(())
        },
        show: |c| show_bool(c.check_sysext),
    },
    Key {
        name: "MARK_GOOD",
        default: "no",
        doc: "yes: abguard marks the slot good itself when the gate passes (for systems that mask update-engine)",
        butane: "mark-good",
        set: |c, v| {
            c.mark_good = yes_no(v)?;
            Ok(())
        },
        show: |c| show_bool(c.mark_good),
    },
    Key {
        name: "ON_FAILURE",
        default: "rollback",
        doc: "rollback: a failed gate spends the slot and reboots; report: record the failure in full and keep the update, as stock Flatcar would",
        butane: "on-failure",
        set: |c, v| {
            c.on_failure = match v {
                "rollback" => OnFailure::Rollback,
                "report" => OnFailure::Report,
                _ => return Err(format!("{v:?} must be rollback or report")),
            };
            Ok(())
        },
        show: |c| {
            match c.on_failure {
                OnFailure::Rollback => "rollback",
                OnFailure::Report => "report",
            }
            .into()
        },
    },
    Key {
        name: "HANG_BUDGET",
        default: "2min",
        doc: "on a first boot after an upgrade the watchdog is armed from the initrd to the verdict: a hung kernel or PID 1 resets the machine after this long without a ping (30s to 10min)",
        butane: "hang-budget",
        set: |c, v| {
            let (lo, hi) = HANG_BUDGET_BOUNDS;
            c.hang_budget = span_within(v, lo, hi)?;
            Ok(())
        },
        show: |c| c.hang_budget.to_string(),
    },
    Key {
        name: "VERIFY_USR",
        default: "no",
        doc: "yes: on the first boot after an upgrade, read all of /usr through dm-verity (abguard-read-usr.service); a rejected block fails the gate",
        butane: "verify-usr",
        set: |c, v| {
            c.verify_usr = yes_no(v)?;
            Ok(())
        },
        show: |c| show_bool(c.verify_usr),
    },
];

/// The key called `name`.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}
