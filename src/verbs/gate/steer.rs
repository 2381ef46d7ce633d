//! `pass-gate` and `fail-gate`: an operator decides a pending gate. Each takes the
//! gate's verdict as the watcher would and ends in the same [`Outcome`]: a pass writes
//! the flag that releases update-engine and locksmithd, a failure spends the slot and
//! reboots. The watcher sees the verdict taken and stops.

use super::outcome::Outcome;
use super::this_boot;
use crate::act::{gate_state, steer};
use crate::cli::args::{FailGateArgs, PassGateArgs};
use crate::config::Config;
use crate::decide::gate::{self as decide_gate, Failure as GateFailure, GateFacts, UnitTrack};
use crate::exit::{ExitCode, Failure, VerbResult};
use crate::probe::MachinePaths;
use anyhow::anyhow;

fn not_pending(what: &str) -> Failure {
    Failure::Refused(anyhow!(
        "no health gate is pending on this boot (not a first boot after an upgrade, or it \
         already decided): nothing to {what}; `abguard status` says what happened"
    ))
}

/// The watcher's snapshot, when it left a readable one.
fn snapshot(env: &MachinePaths) -> Option<gate_state::GateState> {
    gate_state::read(&env.run_dir).and_then(Result::ok)
}

/// `pass-gate`: the pending gate passes by hand, recorded as `manual-pass-gate`.
pub fn pass(a: &PassGateArgs) -> VerbResult {
    let env = MachinePaths::new(&a.paths.overrides(), false);
    if !steer::gate_pending(&env.run_dir) {
        return Err(not_pending("pass"));
    }
    let mut cfg = Config::load(&env.sysroot);
    cfg.mark_good |= a.mark_good;
    let boot = this_boot::probe(&env);
    let o = Outcome {
        env: &env,
        cfg: &cfg,
        boot: &boot,
        no_mark_good: false,
        no_reboot: true,
    };
    let why = format!(
        "passed by hand (abguard pass-gate){}",
        a.reason
            .as_deref()
            .map_or(String::new(), |r| format!(": {r}"))
    );
    if !o.pass_by_hand(why, snapshot(&env).as_ref())? {
        return Err(not_pending("pass"));
    }
    println!("health gate passed by hand: update-engine and locksmithd are released");
    if !cfg.mark_good {
        println!("update-engine marks the slot good; `abguard mark-good` does it now");
    }
    Ok(ExitCode::Ok)
}

/// `fail-gate`: the pending gate fails now, as a critical unit's failure makes it.
pub fn fail(a: &FailGateArgs) -> VerbResult {
    let env = MachinePaths::new(&a.paths.overrides(), false);
    if !steer::gate_pending(&env.run_dir) {
        return Err(not_pending("fail"));
    }
    let cfg = Config::load(&env.sysroot);
    let boot = Ok(this_boot::probe(&env)?);
    let label = match &boot {
        Ok(b) if !b.first => {
            return Err(Failure::Refused(anyhow!(
                "the disk says {} is not on its first boot after an upgrade: not spending it \
                 (`abguard rollback` goes back by hand)",
                b.slot().label
            )))
        }
        Ok(b) => b.slot().label.clone(),
        Err(_) => unreachable!("probed above"),
    };
    let snap = snapshot(&env);
    let mut f = GateFacts {
        first_boot: true,
        units: cfg
            .critical_units
            .iter()
            .map(|u| UnitTrack::new(u))
            .collect(),
        checks: snap.as_ref().map(|s| s.checks.clone()).unwrap_or_default(),
        config_errors: this_boot::config_errors(&env, &cfg),
        ..GateFacts::default()
    };
    // one look at the units, so the record says how they were
    if let Ok(states) = crate::probe::units::states(&cfg.critical_units) {
        for (t, s) in f.units.iter_mut().zip(states) {
            decide_gate::observe(t, s, 0);
        }
    }
    let failure = GateFailure::Manual {
        reason: a.reason.clone(),
    };
    let o = Outcome {
        env: &env,
        cfg: &cfg,
        boot: &boot,
        no_mark_good: false,
        no_reboot: a.no_reboot,
    };
    o.fail(&f, &failure, true, snap.as_ref())?;
    println!(
        "health gate failed by hand: {label} spent; {}",
        if a.no_reboot {
            "reboot to apply (GRUB falls back)"
        } else {
            "rebooting"
        }
    );
    Ok(ExitCode::Ok)
}
