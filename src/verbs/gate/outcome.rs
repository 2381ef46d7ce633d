//! The gate's outcomes, whoever reaches them (the watcher, a unit's OnFailure= hook,
//! the deadline): [`Outcome::claim`] the verdict once, then [`Outcome::pass`] (release
//! update-engine, mark good) or [`Outcome::fail`] (record, roll back and reboot, or
//! under ON_FAILURE=report behave as stock Flatcar). One context value carries what
//! every outcome needs.

use super::this_boot::ThisBoot;
use crate::act::gate_state::GateState;
use crate::act::history;
use crate::act::reboot;
use crate::act::record::{Action, Event, Record, Verdict};
use crate::config::Config;
use crate::decide::ab;
use crate::decide::gate::{Failure, GateFacts, UnitTrack};
use crate::disk::{change_slots, spend_booted};
use crate::exit::ExitCode;
use crate::probe::{self, MachinePaths};
use crate::types::{Booted, Slot};
use anyhow::Result;

/// Where the gate runs, what it was configured with, which slot this boot is, and what
/// the command line asked for.
pub(crate) struct Outcome<'a> {
    pub env: &'a MachinePaths,
    pub cfg: &'a Config,
    /// The booted slot, or why it is unknown (then nothing is rolled back).
    pub boot: &'a Result<ThisBoot>,
    pub no_mark_good: bool,
    pub no_reboot: bool,
}

/// A record of `event` on this boot: the booted slot (when known), the version and the
/// build's identity for the loop guard.
pub(crate) fn record(
    env: &MachinePaths,
    event: Event,
    verdict: Verdict,
    b: Option<&ThisBoot>,
) -> Record {
    let mut r = Record::at(&env.proc, event, verdict);
    if let Some(b) = b {
        r.disk = Some(b.disk.display().to_string());
        r.booted = Some(Booted::of(b.slot(), b.source));
        r.slots = b.slots.clone();
        r.first_boot_after_upgrade = Some(b.first);
    }
    r.version_id = probe::version_id(&env.usr_candidates);
    // the build's identity for the loop guard: the root hash GRUB passed
    r.root_hash = env.read_cmdline().ok().and_then(|c| c.usrhash?.ok());
    r
}

/// Append `r` to the history; a history that cannot be written never stops the gate.
pub(crate) fn save(env: &MachinePaths, r: &Record) {
    if let Err(e) = history::record_event(&env.sysroot, r) {
        log::warn!("history not updated: {e:#}");
    }
}

impl Outcome<'_> {
    /// Claim the verdict; false when someone else already did.
    pub fn claim(&self) -> bool {
        crate::act::steer::claim(&self.env.run_dir)
    }

    fn record(&self, event: Event, verdict: Verdict) -> Record {
        record(self.env, event, verdict, self.boot.as_ref().ok())
    }

    /// The watcher found the boot healthy: claim, record what proved it, release.
    pub fn pass(&self, f: &GateFacts, gate: &GateState) -> Result<ExitCode> {
        if !self.claim() {
            return Ok(ExitCode::Ok);
        }
        let mut r = self.record(Event::GatePassed, Verdict::Healthy);
        let cfg = self.cfg;
        let up: Vec<&str> = f.units.iter().map(|t| t.unit.as_str()).collect();
        r.reasons.push(match (f.first_boot, up.is_empty()) {
            (false, _) => "not the first boot after an upgrade on the disk".into(),
            (true, true) => format!("no critical units; stable for {}", cfg.stable_for),
            (true, false) => format!("{} active and stable for {}", up.join(", "), cfg.stable_for),
        });
        let checked: Vec<String> = f
            .checks
            .iter()
            .map(|c| match c.passed {
                Some(true) => format!("{} passed", c.name),
                _ => format!("{} {}", c.name, c.what),
            })
            .collect();
        if !checked.is_empty() {
            r.reasons.push(format!("checks: {}", checked.join(", ")));
        }
        r.config_errors = f.config_errors.clone();
        r.gate = Some(gate.to_value());
        self.release(r, !self.no_mark_good)
    }

    /// abguard is switched off on this node: the first boot passes at once, recorded as
    /// a passed gate with the reason.
    pub fn pass_disabled(&self, reason: String) -> Result<()> {
        if self.claim() {
            let mut r = self.record(Event::GatePassed, Verdict::Healthy);
            r.reasons.push(reason);
            self.release(r, !self.no_mark_good)?;
        }
        Ok(())
    }

    /// An operator passed the gate (`pass-gate`): claim, record it as manual with the
    /// reason, release exactly as a pass does. False when the verdict was taken already.
    pub fn pass_by_hand(&self, reason: String, gate: Option<&GateState>) -> Result<bool> {
        if !self.claim() {
            return Ok(false);
        }
        let mut r = self.record(Event::ManualPassGate, Verdict::Manual);
        r.reasons.push(reason);
        r.gate = gate.map(GateState::to_value);
        self.release(r, true)?;
        Ok(true)
    }

    /// Healthy (or failed under ON_FAILURE=report): write the flag that releases
    /// update-engine and locksmithd, record it and, when configured and `mark_good`,
    /// mark the slot good.
    fn release(&self, mut r: Record, mark_good: bool) -> Result<ExitCode> {
        let flag = crate::act::steer::release(&self.env.run_dir)?;
        r.actions.push(Action::Wrote(flag));
        if self.cfg.mark_good && mark_good {
            match self.boot {
                Ok(b) => {
                    let (_, slots) = change_slots(&b.disk, |s: &mut Vec<Slot>| -> Result<()> {
                        ab::mark_good(s, b.booted);
                        Ok(())
                    })?;
                    r.actions.push(Action::MarkedGood {
                        label: slots[b.booted].label.clone(),
                    });
                    r.slots = slots;
                }
                Err(e) => r.reasons.push(format!("not marked good: {e:#}")),
            }
        }
        settle(self.env, &mut r, true);
        log::warn!("health gate: {}: {}", r.event, r.reasons.join("; "));
        save(self.env, &r);
        Ok(ExitCode::Ok)
    }

    /// A failed gate: record it in full (with the watcher's last snapshot, when there is
    /// one); roll back, or under ON_FAILURE=report behave as stock Flatcar (the healthy
    /// flag is written, update-engine marks the slot good).
    pub fn fail(
        &self,
        f: &GateFacts,
        failure: &Failure,
        rollback: bool,
        gate: Option<&GateState>,
    ) -> Result<ExitCode> {
        let b = match self.boot {
            Ok(b) => b,
            Err(e) => {
                log::error!(
                    "gate failed ({}) but the booted slot is unknown ({e:#}): not rolled back",
                    failure.reason()
                );
                return Ok(ExitCode::Ok);
            }
        };
        if !self.claim() {
            log::warn!("the gate's verdict is already taken: nothing more to do");
            return Ok(ExitCode::Ok);
        }
        let mut r = self.record(failure.event(), Verdict::Rollback);
        r.reasons.push(failure.reason());
        r.config_errors = f.config_errors.clone();
        r.failed_units = failed_units(f);
        r.gate = gate.map(GateState::to_value);
        if !rollback {
            r.verdict = Verdict::Report;
            r.reasons
                .push("ON_FAILURE=report: not rolling back; the healthy flag is written as stock Flatcar would".into());
            log::error!("{}", r.reasons.join("; "));
            return self.release(r, false);
        }
        let reboot = match spend_booted(&b.disk, &b.slots, b.booted) {
            Ok(msg) => {
                r.actions.push(msg);
                !self.no_reboot
            }
            Err(e) => {
                r.verdict = Verdict::NeedsHealthCheck;
                r.reasons.push(format!("not rolled back: {e:#}"));
                false
            }
        };
        if reboot {
            settle(self.env, &mut r, false);
        }
        let actions: Vec<String> = r.actions.iter().map(Action::to_string).collect();
        let line = format!("{} → {}", r.reasons.join("; "), actions.join("; "));
        log::error!("{line}");
        save(self.env, &r);
        let version = r.version_id.as_deref().unwrap_or("?");
        let slot = &b.slot().label;
        crate::act::journal::send(
            &self.env.run_dir,
            crate::act::journal::GATE_FAILED,
            &line,
            &[("SLOT", slot), ("VERSION", version)],
        );
        if reboot {
            log::warn!("rolled back {}: rebooting", b.slot().label);
            reboot::reboot()?;
        }
        Ok(ExitCode::Ok)
    }
}

/// The verdict is taken: the watchdog goes back to the node's own setting (after a
/// rollback only at the reboot: a hung shutdown still resets) and the breadcrumb goes.
fn settle(env: &MachinePaths, r: &mut Record, reexec: bool) {
    match crate::act::watchdog::release(&env.run_dir, reexec) {
        Ok(Some(msg)) => r.actions.push(Action::Other(msg)),
        Ok(None) => {}
        Err(e) => r.reasons.push(format!("watchdog: {e:#}")),
    }
    crate::act::attempt::remove(&env.sysroot);
}

/// The critical units that broke or never came up, and the one whose hook fired.
fn failed_units(f: &GateFacts) -> Vec<String> {
    let mut v: Vec<String> = f
        .units
        .iter()
        .filter(|t| t.broke.is_some() || t.up_since.is_none())
        .map(UnitTrack::describe)
        .collect();
    if let Some(u) = &f.failed_hook {
        if !v.iter().any(|x| x.starts_with(u.as_str())) {
            v.push(u.clone());
        }
    }
    v
}
