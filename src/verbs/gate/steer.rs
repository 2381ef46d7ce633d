//! `pass-gate` and `fail-gate`: an operator decides a pending gate. Each takes the
//! gate's verdict as the watcher would, and acts through the same functions: a pass
//! writes the flag that releases update-engine and locksmithd, a failure spends the
//! slot and reboots. The watcher sees the verdict taken and stops.

use super::{act_fail, act_pass, base_record, check_of, claim, config_errors, here};
use crate::act::record::{Event, Verdict};
use crate::act::{gate_state, steer};
use crate::config::Config;
use crate::decide::gate::{Failure as GateFailure, GateFacts, UnitTrack};
use crate::exit::{ExitCode, Failure, VerbResult};
use crate::probe::Env;
use crate::types::Roots;
use anyhow::anyhow;

fn not_pending(what: &str) -> Failure {
    Failure::Refused(anyhow!(
        "no health gate is pending on this boot (not a first boot after an upgrade, or it \
         already decided): nothing to {what}; `abguard status` says what happened"
    ))
}

/// `pass-gate`: the pending gate passes by hand, recorded as `manual-pass-gate`.
pub fn pass(p: &Roots, reason: Option<&str>, mark_good: bool) -> VerbResult {
    let env = Env::new(p, false);
    if !steer::gate_pending(&env.run_dir) {
        return Err(not_pending("pass"));
    }
    let mut cfg = Config::load(&env.sysroot);
    cfg.mark_good |= mark_good;
    let h = here(&env, false);
    if !claim(&env) {
        return Err(not_pending("pass"));
    }
    let mut r = base_record(
        Event::ManualPassGate,
        Verdict::Manual,
        h.as_ref().ok(),
        &env,
    );
    r.reasons.push(format!(
        "passed by hand (abguard pass-gate){}",
        reason.map_or(String::new(), |r| format!(": {r}"))
    ));
    r.gate = gate_state::read(&env.run_dir);
    act_pass(&env, &cfg, &h, r, false)?;
    println!("health gate passed by hand: update-engine and locksmithd are released");
    if !cfg.mark_good {
        println!("update-engine marks the slot good; `abguard mark-good` does it now");
    }
    Ok(ExitCode::Ok)
}

/// `fail-gate`: the pending gate fails now, as a critical unit's failure makes it.
pub fn fail(p: &Roots, reason: Option<&str>, no_reboot: bool) -> VerbResult {
    let env = Env::new(p, false);
    if !steer::gate_pending(&env.run_dir) {
        return Err(not_pending("fail"));
    }
    let cfg = Config::load(&env.sysroot);
    let h = here(&env, false)?;
    if !h.first {
        return Err(Failure::Refused(anyhow!(
            "the disk says {} is not on its first boot after an upgrade: not spending it \
             (`abguard rollback` goes back by hand)",
            h.slots[h.booted].label
        )));
    }
    let snapshot = gate_state::read(&env.run_dir);
    let mut f = GateFacts {
        first_boot: true,
        units: cfg
            .critical_units
            .iter()
            .map(|u| UnitTrack::new(u))
            .collect(),
        checks: (snapshot.as_ref())
            .and_then(|s| s["checks"].as_array())
            .map(|c| c.iter().map(check_of).collect())
            .unwrap_or_default(),
        config_errors: config_errors(&env, &cfg),
        ..GateFacts::default()
    };
    // one look at the units, so the record says how they were
    if let Ok(states) = crate::probe::units::states(&cfg.critical_units) {
        for (t, s) in f.units.iter_mut().zip(states) {
            crate::decide::gate::observe(t, s, 0);
        }
    }
    let failure = GateFailure::Manual {
        reason: reason.map(String::from),
    };
    act_fail(&env, &cfg, &h, &f, &failure, true, snapshot, no_reboot)?;
    println!(
        "health gate failed by hand: {} spent; {}",
        h.slots[h.booted].label,
        if no_reboot {
            "reboot to apply (GRUB falls back)"
        } else {
            "rebooting"
        }
    );
    Ok(ExitCode::Ok)
}
