//! The booted system's side of the health gate, and the initrd's emergency path: the
//! three entry points.
//!
//! `gate-pass` runs the watcher ([`watch`]) on every boot; `gate-fail` runs when a
//! critical unit fails or the deadline passes; `emergency` runs from the initrd's
//! emergency hook. All three first ask the disk which slot this is and whether this
//! really is its first boot after an upgrade ([`this_boot`]) before touching anything,
//! so no path here can reboot a normal boot; what they do then is an [`outcome`].

/// An ordinary boot: remember the merged sysexts, report configuration errors.
mod ordinary;
/// Claim the verdict, then pass or fail: what every path through the gate ends with.
mod outcome;
/// An operator's hand: `pass-gate` and `fail-gate`.
pub mod steer;
/// Which slot this boot is, by the initrd's rules, and its dm-verity state.
mod this_boot;
/// The watcher's loop: units, window, checks, until a verdict.
mod watch;

use crate::act::flags::{EMERGENCY_JSON, HEALTHY_FLAG, NEEDS_CHECK, STATE_DIR};
use crate::act::gate_state;
use crate::act::reboot;
use crate::act::record::{Event, Verdict};
use crate::cli::args::{EmergencyArgs, GateFailArgs, GatePassArgs};
use crate::config::Config;
use crate::decide::gate::{self as decide_gate, GateAction, GateFacts, UnitTrack};
use crate::disk::spend_booted;
use crate::exit::{ExitCode, VerbResult};
use crate::probe::MachinePaths;
use crate::safefs::SafeDir;
use outcome::Outcome;

/// `gate-pass`: the gate on this boot ([`watch`]).
pub fn pass(a: &GatePassArgs) -> VerbResult {
    Ok(watch::run(
        &MachinePaths::new(&a.paths.overrides(), false),
        a,
    )?)
}

/// `gate-fail`: a critical unit's OnFailure= hook (`--unit`) or the deadline timer.
pub fn fail(a: &GateFailArgs) -> VerbResult {
    let env = MachinePaths::new(&a.paths.overrides(), false);
    let run = SafeDir::open(&env.run_dir)?;
    let state = run.subdir(STATE_DIR, true)?;
    if !state.exists(NEEDS_CHECK) || run.exists(HEALTHY_FLAG) {
        log::warn!(
            "not the first boot after an upgrade (or already proven healthy): nothing to roll back"
        );
        return Ok(ExitCode::Ok);
    }
    if let Some(d) = crate::act::steer::disabled(&env.sysroot) {
        log::warn!(
            "abguard is disabled on this node (since {}: {}): not rolling back",
            d.since,
            d.reason
        );
        return Ok(ExitCode::Ok);
    }
    let cfg = Config::load(&env.sysroot);
    let boot = Ok(this_boot::probe(&env)?);
    let first = boot.as_ref().is_ok_and(|b| b.first);
    let unit = a.unit.as_deref();
    let mut f = GateFacts {
        first_boot: first,
        units: cfg
            .critical_units
            .iter()
            .map(|u| UnitTrack::new(u))
            .collect(),
        deadline_passed: unit.is_none(),
        failed_hook: unit.map(String::from),
        config_errors: this_boot::config_errors(&env, &cfg),
        ..GateFacts::default()
    };
    // one look at the units, so the reason says what was still pending
    if let Ok(states) = crate::probe::units::states(&cfg.critical_units) {
        for (t, s) in f.units.iter_mut().zip(states) {
            decide_gate::observe(t, s, 0);
        }
    }
    // the watcher's last word: the checks it ran (only its snapshot knows them)
    let snapshot = match gate_state::read(&env.run_dir) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            log::warn!("the watcher's checks are not known: {e:#}");
            None
        }
        None => None,
    };
    if let Some(s) = &snapshot {
        f.checks = s.checks.clone();
    }
    let o = Outcome {
        env: &env,
        cfg: &cfg,
        boot: &boot,
        no_mark_good: false,
        no_reboot: a.no_reboot,
    };
    match decide_gate::gate(&f, &cfg.gate_policy()) {
        GateAction::Fail { failure, rollback } => {
            Ok(o.fail(&f, &failure, rollback, snapshot.as_ref())?)
        }
        _ => {
            // the marker says first boot, the disk says otherwise: trust the disk, never reboot
            let event = unit.map_or(Event::Deadline, |_| Event::GateFailed);
            let mut r = outcome::record(&env, event, Verdict::Healthy, boot.as_ref().ok());
            r.reasons
                .push("the booted slot is not on its first boot after an upgrade any more".into());
            outcome::save(&env, &r);
            Ok(ExitCode::Ok)
        }
    }
}

/// `emergency`, from the initrd's emergency hook: on a first boot after an upgrade,
/// spend the slot and reboot now rather than sitting in the emergency shell; otherwise
/// do nothing.
pub fn emergency(a: &EmergencyArgs) -> VerbResult {
    let env = MachinePaths::new(&a.paths.overrides(), true);
    let b = match this_boot::probe(&env) {
        Ok(b) => b,
        Err(e) => {
            log::warn!("emergency: leaving the boot alone: {e:#}");
            return Ok(ExitCode::Ok);
        }
    };
    if !b.first {
        log::warn!(
            "emergency: not the first boot after an upgrade; keeping the usual emergency handling"
        );
        return Ok(ExitCode::Ok);
    }
    let mut r = outcome::record(&env, Event::InitrdEmergency, Verdict::Rollback, Some(&b));
    r.reasons
        .push("the initrd failed on the first boot after an upgrade".into());
    match spend_booted(&b.disk, &b.slots, b.booted) {
        Ok(msg) => r.actions.push(msg),
        Err(e) => {
            log::error!("emergency: not rolled back: {e:#}");
            return Ok(ExitCode::Ok);
        }
    }
    let line = format!(
        "initrd failed on the first boot of {}: {}; rebooting",
        b.slot().label,
        r.actions[0]
    );
    log::error!("{line}");
    let slot = &b.slot().label;
    crate::act::journal::send(
        &env.run_dir,
        crate::act::journal::EMERGENCY,
        &line,
        &[("SLOT", slot)],
    );
    if let Ok(run) = SafeDir::open(&env.run_dir).and_then(|d| d.subdir(STATE_DIR, true)) {
        let json = serde_json::to_string_pretty(&r).map_err(anyhow::Error::from)?;
        let _ = run.write_atomic(EMERGENCY_JSON, json.as_bytes());
    }
    if env.sysroot.join("var").is_dir() {
        outcome::save(&env, &r);
    }
    if !a.no_reboot {
        reboot::reboot_now()?;
    }
    Ok(ExitCode::Ok)
}
