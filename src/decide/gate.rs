//! The health gate's verdict on a first boot after an upgrade, from observed unit
//! states and check results. Healthy means up and staying up: every critical unit
//! `active`, never restarted (same InvocationID, NRestarts 0) and never left `active`,
//! for STABLE_FOR after the last one came up, every required check passed, and the
//! configuration read completely. Anything that fails, restarts or leaves `active`
//! before the verdict is a definitive failure at once, not at the deadline.
//!
//! [`observe`] folds one observation of a unit into its [`UnitTrack`]; [`gate`] decides.
//! Both are pure; the watcher (verbs/gate/watch.rs) polls systemd and runs the checks.

use crate::types::event::Event;
/// What the decision needs of the configuration (config::Config::gate_policy): the
/// configuration lives above this stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatePolicy {
    /// STABLE_FOR in µs.
    pub stable_for: u64,
    /// ON_FAILURE=rollback (false: report).
    pub rollback: bool,
}

/// systemd's ActiveState.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Active {
    Active,
    Reloading,
    Inactive,
    Failed,
    Activating,
    Deactivating,
    /// Anything else (maintenance, refreshing, a future state, no answer).
    Other,
}

impl Active {
    pub fn parse(s: &str) -> Active {
        match s {
            "active" => Active::Active,
            "reloading" => Active::Reloading,
            "inactive" => Active::Inactive,
            "failed" => Active::Failed,
            "activating" => Active::Activating,
            "deactivating" => Active::Deactivating,
            _ => Active::Other,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Active::Active => "active",
            Active::Reloading => "reloading",
            Active::Inactive => "inactive",
            Active::Failed => "failed",
            Active::Activating => "activating",
            Active::Deactivating => "deactivating",
            Active::Other => "other",
        }
    }
    fn up(self) -> bool {
        matches!(self, Active::Active | Active::Reloading)
    }
}

/// One unit as `systemctl show` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitState {
    pub active: Active,
    pub sub: String,
    pub invocation: String,
    pub restarts: u32,
    pub result: String,
}

/// What the gate knows of one critical unit over this boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitTrack {
    pub unit: String,
    /// The latest observation.
    pub now: Option<UnitState>,
    /// When it was first seen up (µs, CLOCK_MONOTONIC) and with which invocation.
    pub up_since: Option<u64>,
    pub up_invocation: Option<String>,
    /// The first definitive failure seen; it never clears.
    pub broke: Option<String>,
}

impl UnitTrack {
    pub fn new(unit: &str) -> UnitTrack {
        UnitTrack {
            unit: unit.to_string(),
            now: None,
            up_since: None,
            up_invocation: None,
            broke: None,
        }
    }

    /// "nginx.service (activating/start-pre)", for the pending gate's explanation.
    pub fn describe(&self) -> String {
        match &self.now {
            None => format!("{} (no state from systemd yet)", self.unit),
            Some(s) => format!(
                "{} ({}/{}, {} restarts)",
                self.unit,
                s.active.as_str(),
                s.sub,
                s.restarts
            ),
        }
    }
}

/// Fold one observation at `now` (µs) into the unit's track.
pub fn observe(t: &mut UnitTrack, s: UnitState, now: u64) {
    if t.broke.is_none() {
        t.broke = broke(t, &s);
    }
    if t.broke.is_none() && t.up_since.is_none() && s.active.up() {
        t.up_since = Some(now);
        t.up_invocation = Some(s.invocation.clone());
    }
    t.now = Some(s);
}

fn broke(t: &UnitTrack, s: &UnitState) -> Option<String> {
    if s.restarts > 0 {
        return Some(format!(
            "restarted {} times by systemd (NRestarts)",
            s.restarts
        ));
    }
    if s.sub == "auto-restart" {
        return Some("exited and waits to be restarted (auto-restart)".into());
    }
    if s.active == Active::Failed {
        return Some(format!("failed (result {})", s.result));
    }
    if let Some(inv) = &t.up_invocation {
        if *inv != s.invocation {
            return Some("restarted (a new InvocationID)".into());
        }
        if !s.active.up() {
            return Some(format!("left active: now {}", t_state(s)));
        }
    }
    None
}

fn t_state(s: &UnitState) -> String {
    format!("{}/{}", s.active.as_str(), s.sub)
}

/// The latest result of one health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckTrack {
    pub name: String,
    /// A required check must pass; a wanted one (`*.wanted`) is only recorded.
    pub required: bool,
    pub runs: u32,
    /// None: not finished yet.
    pub passed: Option<bool>,
    /// "exit 1", "killed after 60s", "missing: docker.raw", ...
    pub what: String,
    pub output: String,
}

/// Everything the gate decides from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GateFacts {
    /// CLOCK_MONOTONIC in µs, the clock of systemd's own timestamps.
    pub now: u64,
    /// When the gate started watching: the window's start when no unit is critical.
    pub started: u64,
    pub first_boot: bool,
    pub units: Vec<UnitTrack>,
    pub checks: Vec<CheckTrack>,
    /// The deadline timer fired (only abguard-deadline.service sets this).
    pub deadline_passed: bool,
    /// A unit's OnFailure= hook fired.
    pub failed_hook: Option<String>,
    /// dm-verity has seen a corrupted block on this boot.
    pub verity_problem: Option<String>,
    /// Configuration lines that were skipped.
    pub config_errors: Vec<String>,
}

/// Why the gate failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    Unit { unit: String, what: String },
    Verity { what: String },
    Deadline { pending: Vec<String> },
}

impl Failure {
    pub fn reason(&self) -> String {
        match self {
            Failure::Unit { unit, what } => format!("critical unit {unit} {what}"),
            Failure::Verity { what } => what.clone(),
            Failure::Deadline { pending } if pending.is_empty() => "deadline passed".into(),
            Failure::Deadline { pending } => {
                format!("deadline passed while waiting for {}", pending.join("; "))
            }
        }
    }
    /// The history's event name.
    pub fn event(&self) -> Event {
        match self {
            Failure::Deadline { .. } => Event::Deadline,
            _ => Event::GateFailed,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateAction {
    /// Not a first boot after an upgrade: nothing to prove.
    NotFirstBoot,
    /// Keep watching; `run_checks` once every unit is up.
    Wait {
        waiting: Vec<String>,
        /// End of the stability window (µs), once every unit is up.
        window_ends: Option<u64>,
        run_checks: bool,
    },
    /// Healthy: write the flag, release update-engine.
    Pass,
    /// Failed: `rollback` false under ON_FAILURE=report (record, then behave as stock).
    Fail { failure: Failure, rollback: bool },
}

/// How [`gate`] lists the stable-for window's countdown among what it waits for
/// ("the stable-for window (12s left)").
pub const WINDOW_WAIT: &str = "the stable-for window";

/// The verdict on `f` under `cfg`.
pub fn gate(f: &GateFacts, cfg: &GatePolicy) -> GateAction {
    if !f.first_boot {
        return GateAction::NotFirstBoot;
    }
    let fail = |failure| GateAction::Fail {
        failure,
        rollback: cfg.rollback,
    };
    if let Some(what) = &f.verity_problem {
        return fail(Failure::Verity { what: what.clone() });
    }
    if let Some(t) = f.units.iter().find(|t| t.broke.is_some()) {
        return fail(Failure::Unit {
            unit: t.unit.clone(),
            what: t.broke.clone().unwrap_or_default(),
        });
    }
    if let Some(u) = &f.failed_hook {
        return fail(Failure::Unit {
            unit: u.clone(),
            what: "failed (its OnFailure= hook ran)".into(),
        });
    }
    let mut waiting: Vec<String> = f
        .config_errors
        .iter()
        .map(|e| format!("a complete configuration ({e})"))
        .collect();
    let down: Vec<&UnitTrack> = f.units.iter().filter(|t| t.up_since.is_none()).collect();
    waiting.extend(down.iter().map(|t| t.describe()));
    let all_up = down.is_empty();
    let window_ends = all_up.then(|| {
        let last = f.units.iter().filter_map(|t| t.up_since).max();
        last.unwrap_or(f.started).saturating_add(cfg.stable_for)
    });
    if let Some(end) = window_ends.filter(|end| f.now < *end) {
        let left = (end - f.now).div_ceil(1_000_000);
        waiting.push(format!("{WINDOW_WAIT} ({left}s left)"));
    }
    if all_up {
        for c in f
            .checks
            .iter()
            .filter(|c| c.required && c.passed != Some(true))
        {
            waiting.push(match c.passed {
                None => format!("check {} (running)", c.name),
                Some(_) => format!("check {} ({})", c.name, c.what),
            });
        }
    }
    if f.deadline_passed {
        return fail(Failure::Deadline { pending: waiting });
    }
    if waiting.is_empty() {
        return GateAction::Pass;
    }
    GateAction::Wait {
        waiting,
        window_ends,
        run_checks: all_up,
    }
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
