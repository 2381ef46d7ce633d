//! The booted system's side of the health gate, and the initrd's emergency path.
//!
//! `gate-pass` runs once boot-complete.target is reached on a first boot after an
//! upgrade; `gate-fail` runs when a critical unit fails or the deadline passes;
//! `emergency` runs from the initrd's emergency hook. All three re-check from the disk
//! that this really is the first boot after an upgrade before touching anything, so no
//! path here can reboot a normal boot.

/// The watching half: units, window, checks, until a verdict.
pub mod watch;

use crate::act::flags::{
    CONFIG_ERROR, EMERGENCY_JSON, GATE_JSON, GATE_VERDICT, HEALTHY_FLAG, NEEDS_CHECK, STATE_DIR,
};
use crate::act::{
    reboot,
    record::{Action, Event, Record, Verdict},
};
use crate::config::Config;
use crate::decide::gate::{
    self as decide_gate, CheckTrack, Failure, GateAction, GateFacts, UnitTrack,
};
use crate::decide::{ab, assess};
use crate::disk::{change_slots, read_table, spend_booted};
use crate::exit::ExitCode;
use crate::probe::{self, Env};
use crate::safefs::SafeDir;
use crate::types::{Booted, Roots, Slot};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// What the disk says about this boot, for the gate's decisions.
#[derive(Clone)]
pub(crate) struct Here {
    pub(crate) disk: PathBuf,
    pub(crate) slots: Vec<Slot>,
    pub(crate) booted: usize,
    pub(crate) source: &'static str,
    pub(crate) first: bool,
    /// What dm-verity says about /usr now, after the boot has read much of it.
    pub(crate) verity_problem: Option<String>,
}

pub(crate) fn here(env: &Env, with_verity: bool) -> Result<Here> {
    let disk = match env.disk_path() {
        Ok(p) => p,
        Err(e) => find_disk_by_cmdline(env).with_context(|| format!("{e:#}"))?,
    };
    let (_, table) = read_table(&disk, false)?;
    let facts = probe::facts(env, Some(&disk), &Ok(table.clone()), None, with_verity);
    let a = assess::assess(&facts);
    let Some(booted) = a.booted else {
        bail!("cannot tell which slot booted: {}", a.reasons.join("; "));
    };
    Ok(Here {
        disk,
        slots: table.slots(),
        booted,
        source: a.booted_source.unwrap_or("?"),
        first: a.first_boot_after_upgrade == Some(true),
        verity_problem: facts.verity.problem(),
    })
}

/// When /usr never got mounted (the case the emergency hook exists for), find the disk
/// whose GPT holds the partition the command line names.
fn find_disk_by_cmdline(env: &Env) -> Result<PathBuf> {
    let c = env.read_cmdline()?;
    let Some(Ok((_, probe::cmdline::UsrRef::PartUuid(uuid)))) = c.usr else {
        bail!("the command line names no /usr PARTUUID to search the disks for");
    };
    let dir = env.sysfs.root.join("class/block");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            !dir.join(n).join("partition").exists()
                && !n.starts_with("dm-")
                && !n.starts_with("ram")
        })
        .collect();
    names.sort();
    for n in names {
        let dev = env.sysfs.dev.join(&n);
        if let Ok((_, t)) = read_table(&dev, false) {
            if t.slots().iter().any(|s| s.partuuid == uuid) {
                return Ok(dev);
            }
        }
    }
    bail!("no disk holds a USR partition with PARTUUID {uuid}")
}

pub(crate) fn base_record(event: Event, verdict: Verdict, h: Option<&Here>, env: &Env) -> Record {
    let mut r = Record::at(&env.proc, event, verdict);
    if let Some(h) = h {
        r.disk = Some(h.disk.display().to_string());
        r.booted = Some(Booted::of(&h.slots[h.booted], h.source));
        r.slots = h.slots.clone();
        r.first_boot_after_upgrade = Some(h.first);
    }
    r.version_id = probe::version_id(&env.usr_candidates);
    // the build's identity for the loop guard: the root hash GRUB passed
    r.root_hash = env.read_cmdline().ok().and_then(|c| c.usrhash?.ok());
    r
}

pub(crate) fn save(env: &Env, r: &Record) {
    if let Err(e) = crate::act::history::log_event(&env.sysroot, r) {
        log::warn!("history not updated: {e:#}");
    }
}

/// Claim the verdict; false when someone else already did.
pub(crate) fn claim(env: &Env) -> bool {
    let p = env.run_dir.join(STATE_DIR).join(GATE_VERDICT);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&p)
    {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        // an unwritable /run must not stop a rollback
        Err(e) => {
            log::warn!("{}: {e}", p.display());
            true
        }
    }
}

/// `gate-pass`: the gate on this boot ([`watch`]).
pub fn pass(p: &Roots, no_mark_good: bool, no_reboot: bool) -> Result<ExitCode> {
    watch::run(p, no_mark_good, no_reboot)
}

/// Healthy: write the flag that releases update-engine and locksmithd, record it and
/// optionally mark the slot good.
pub(crate) fn act_pass(
    env: &Env,
    cfg: &Config,
    h: &Result<Here>,
    mut r: Record,
    no_mark_good: bool,
) -> Result<ExitCode> {
    let run = SafeDir::open(&env.run_dir)?;
    let state = run.subdir(STATE_DIR, true)?;
    run.write_atomic(HEALTHY_FLAG, b"")?;
    state.remove(NEEDS_CHECK)?;
    r.actions.push(Action::Wrote(
        run.path().join(HEALTHY_FLAG).display().to_string(),
    ));
    if cfg.mark_good && !no_mark_good {
        match h {
            Ok(h) => {
                let (_, slots) = change_slots(&h.disk, |s: &mut Vec<Slot>| -> Result<()> {
                    ab::mark_good(s, h.booted);
                    Ok(())
                })?;
                r.actions.push(Action::MarkedGood {
                    label: slots[h.booted].label.clone(),
                });
                r.slots = slots;
            }
            Err(e) => r.reasons.push(format!("not marked good: {e:#}")),
        }
    }
    settle(env, &mut r, true);
    log::warn!("health gate: {}: {}", r.event, r.reasons.join("; "));
    save(env, &r);
    Ok(ExitCode::Ok)
}

/// The verdict is taken: the watchdog goes back to the node's own setting (after a
/// rollback only at the reboot: a hung shutdown still resets) and the breadcrumb goes.
pub(crate) fn settle(env: &Env, r: &mut Record, reexec: bool) {
    match crate::act::watchdog::release(&env.run_dir, reexec) {
        Ok(Some(msg)) => r.actions.push(Action::Other(msg)),
        Ok(None) => {}
        Err(e) => r.reasons.push(format!("watchdog: {e:#}")),
    }
    crate::act::attempt::remove(&env.sysroot);
}

/// The configuration errors of this boot: the gate's own reading and the generator's.
pub(crate) fn config_errors(env: &Env, cfg: &Config) -> Vec<String> {
    let mut v: Vec<String> = cfg.errors.iter().map(ToString::to_string).collect();
    let marker = env.run_dir.join(STATE_DIR).join(CONFIG_ERROR);
    if let Ok(t) = std::fs::read_to_string(marker) {
        for l in t.lines().filter(|l| !l.trim().is_empty()) {
            if !v.iter().any(|e| e == l) {
                v.push(l.to_string());
            }
        }
    }
    v
}

/// `gate-fail`: a critical unit's OnFailure= hook (`--unit`) or the deadline timer.
pub fn fail(p: &Roots, unit: Option<&str>, no_reboot: bool) -> Result<ExitCode> {
    let env = Env::new(p, false);
    let run = SafeDir::open(&env.run_dir)?;
    let state = run.subdir(STATE_DIR, true)?;
    if !state.exists(NEEDS_CHECK) || run.exists(HEALTHY_FLAG) {
        log::warn!(
            "not the first boot after an upgrade (or already proven healthy): nothing to roll back"
        );
        return Ok(ExitCode::Ok);
    }
    let cfg = Config::load(&env.sysroot);
    let h = here(&env, false)?;
    let mut f = GateFacts {
        first_boot: h.first,
        units: cfg
            .critical_units
            .iter()
            .map(|u| UnitTrack::new(u))
            .collect(),
        deadline_passed: unit.is_none(),
        failed_hook: unit.map(String::from),
        config_errors: config_errors(&env, &cfg),
        ..GateFacts::default()
    };
    // one look at the units, so the reason says what was still pending
    if let Ok(states) = crate::probe::units::states(&cfg.critical_units) {
        for (t, s) in f.units.iter_mut().zip(states) {
            decide_gate::observe(t, s, 0);
        }
    }
    // the watcher's last word: the checks it ran (only its snapshot knows them)
    let snapshot: Option<serde_json::Value> = state
        .read(GATE_JSON)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(checks) = snapshot.as_ref().and_then(|s| s["checks"].as_array()) {
        f.checks = checks.iter().map(check_of).collect();
    }
    match decide_gate::gate(&f, &cfg.gate_policy()) {
        GateAction::Fail { failure, rollback } => {
            act_fail(&env, &cfg, &h, &f, &failure, rollback, snapshot, no_reboot)
        }
        _ => {
            // the marker says first boot, the disk says otherwise: trust the disk, never reboot
            let mut r = base_record(
                unit.map_or(Event::Deadline, |_| Event::GateFailed),
                Verdict::Healthy,
                Some(&h),
                &env,
            );
            r.reasons
                .push("the booted slot is not on its first boot after an upgrade any more".into());
            save(&env, &r);
            Ok(ExitCode::Ok)
        }
    }
}

/// One check as the watcher's snapshot has it.
fn check_of(c: &serde_json::Value) -> CheckTrack {
    CheckTrack {
        name: c["name"].as_str().unwrap_or("?").into(),
        required: c["required"].as_bool().unwrap_or(true),
        runs: c["runs"].as_u64().unwrap_or(0) as u32,
        passed: c["passed"].as_bool(),
        what: c["result"].as_str().unwrap_or("").into(),
        output: c["output"].as_str().unwrap_or("").into(),
    }
}

/// A failed gate: record it in full; roll back, or under ON_FAILURE=report behave as
/// stock Flatcar (the healthy flag is written, update-engine marks the slot good).
#[allow(clippy::too_many_arguments)]
pub(crate) fn act_fail(
    env: &Env,
    cfg: &Config,
    h: &Here,
    f: &GateFacts,
    failure: &Failure,
    rollback: bool,
    snapshot: Option<serde_json::Value>,
    no_reboot: bool,
) -> Result<ExitCode> {
    if !claim(env) {
        log::warn!("the gate's verdict is already taken: nothing more to do");
        return Ok(ExitCode::Ok);
    }
    let mut r = base_record(failure.event(), Verdict::Rollback, Some(h), env);
    r.reasons.push(failure.reason());
    r.config_errors = f.config_errors.clone();
    r.failed_units = f
        .units
        .iter()
        .filter(|t| t.broke.is_some() || t.up_since.is_none())
        .map(UnitTrack::describe)
        .collect();
    if let Some(u) = &f.failed_hook {
        if !r.failed_units.iter().any(|x| x.starts_with(u.as_str())) {
            r.failed_units.push(u.clone());
        }
    }
    r.gate = snapshot;
    if !rollback {
        r.verdict = Verdict::Report;
        r.reasons
            .push("ON_FAILURE=report: not rolling back; the healthy flag is written as stock Flatcar would".into());
        log::error!("{}", r.reasons.join("; "));
        return act_pass(env, cfg, &Ok(h.clone()), r, false);
    }
    let reboot = match spend_booted(&h.disk, &h.slots, h.booted) {
        Ok(msg) => {
            r.actions.push(msg);
            !no_reboot
        }
        Err(e) => {
            r.verdict = Verdict::NeedsHealthCheck;
            r.reasons.push(format!("not rolled back: {e:#}"));
            false
        }
    };
    if reboot {
        settle(env, &mut r, false);
    }
    let actions: Vec<String> = r.actions.iter().map(Action::to_string).collect();
    log::error!("{} → {}", r.reasons.join("; "), actions.join("; "));
    save(env, &r);
    if reboot {
        log::warn!("rolled back {}: rebooting", h.slots[h.booted].label);
        reboot::reboot()?;
    }
    Ok(ExitCode::Ok)
}

/// From the initrd's emergency hook: on a first boot after an upgrade, spend the slot
/// and reboot now rather than sitting in the emergency shell; otherwise do nothing.
pub fn emergency(p: &Roots, no_reboot: bool) -> Result<ExitCode> {
    let env = Env::new(p, true);
    let h = match here(&env, false) {
        Ok(h) => h,
        Err(e) => {
            log::warn!("emergency: leaving the boot alone: {e:#}");
            return Ok(ExitCode::Ok);
        }
    };
    if !h.first {
        log::warn!(
            "emergency: not the first boot after an upgrade; keeping the usual emergency handling"
        );
        return Ok(ExitCode::Ok);
    }
    let mut r = base_record(Event::InitrdEmergency, Verdict::Rollback, Some(&h), &env);
    r.reasons
        .push("the initrd failed on the first boot after an upgrade".into());
    match spend_booted(&h.disk, &h.slots, h.booted) {
        Ok(msg) => r.actions.push(msg),
        Err(e) => {
            log::error!("emergency: not rolled back: {e:#}");
            return Ok(ExitCode::Ok);
        }
    }
    log::error!(
        "initrd failed on the first boot of {}: {}; rebooting",
        h.slots[h.booted].label,
        r.actions[0]
    );
    if let Ok(run) = SafeDir::open(&env.run_dir).and_then(|d| d.subdir(STATE_DIR, true)) {
        let _ = run.write_atomic(EMERGENCY_JSON, serde_json::to_string_pretty(&r)?.as_bytes());
    }
    if env.sysroot.join("var").is_dir() {
        save(&env, &r);
    }
    if !no_reboot {
        reboot::reboot_now()?;
    }
    Ok(ExitCode::Ok)
}
