//! The booted system's side of the health gate, and the initrd's emergency path.
//!
//! `gate-pass` runs once boot-complete.target is reached on a first boot after an
//! upgrade; `gate-fail` runs when a critical unit fails or the deadline passes;
//! `emergency` runs from the initrd's emergency hook. All three re-check from the disk
//! that this really is the first boot after an upgrade before touching anything, so no
//! path here can reboot a normal boot.

use crate::act::flags::{CONFIG_ERROR, EMERGENCY_JSON, HEALTHY_FLAG, NEEDS_CHECK, STATE_DIR};
use crate::act::{
    reboot,
    record::{Action, Event, Record, Verdict},
};
use crate::config::{Config, OnFailure};
use crate::decide::{ab, assess};
use crate::disk::{change_slots, read_table, spend_booted};
use crate::exit::ExitCode;
use crate::probe::{self, Env};
use crate::safefs::SafeDir;
use crate::types::{Booted, Roots, Slot};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;

/// What the disk says about this boot, for the gate's decisions.
struct Here {
    disk: PathBuf,
    slots: Vec<Slot>,
    booted: usize,
    source: &'static str,
    first: bool,
    /// What dm-verity says about /usr now, after the boot has read much of it.
    verity_problem: Option<String>,
}

fn here(env: &Env, with_verity: bool) -> Result<Here> {
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

fn base_record(event: Event, verdict: Verdict, h: Option<&Here>, env: &Env) -> Record {
    let mut r = Record::new(event, verdict);
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

fn save(env: &Env, r: &Record) {
    if let Err(e) = crate::act::history::log_event(&env.sysroot, r) {
        log::warn!("history not updated: {e:#}");
    }
}

pub fn pass(p: &Roots, no_mark_good: bool, no_reboot: bool) -> Result<ExitCode> {
    let env = Env::new(p, false);
    let cfg = Config::load(&env.sysroot)?;
    let run = SafeDir::open(&env.run_dir)?;
    let state = run.subdir(STATE_DIR, true)?;
    // the unit's condition says the same; checked here too for units started without
    // it (Upholds= from the stock-image sysext)
    if !state.exists(NEEDS_CHECK) {
        log::info!("no first boot after an upgrade to prove healthy");
        return Ok(ExitCode::Ok);
    }
    let h = here(&env, true);
    // dm-verity checks lazily: a corrupted block read anywhere during this boot shows up
    // only now, and a slot that failed verification must not be called healthy
    if let Ok(h) = &h {
        if let (true, Some(why)) = (h.first, &h.verity_problem) {
            return roll_back(&env, &cfg, h, Event::GateFailed, why.clone(), no_reboot);
        }
    }
    let mut r = base_record(Event::GatePassed, Verdict::Healthy, h.as_ref().ok(), &env);
    r.reasons.push(match cfg.critical_units.is_empty() {
        true => "boot-complete.target reached (no critical units configured)".into(),
        false => format!(
            "boot-complete.target reached: {} active",
            cfg.critical_units.join(", ")
        ),
    });
    if let Some(e) = state.read(CONFIG_ERROR)? {
        r.reasons.push(format!(
            "configuration not applied: {}",
            String::from_utf8_lossy(&e).trim()
        ));
    }
    run.write_atomic(HEALTHY_FLAG, b"")?;
    state.remove(NEEDS_CHECK)?;
    r.actions.push(Action::Wrote(
        run.path().join(HEALTHY_FLAG).display().to_string(),
    ));
    if cfg.mark_good && !no_mark_good {
        match &h {
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
    log::warn!("health gate passed: {}", r.reasons.join("; "));
    save(&env, &r);
    Ok(ExitCode::Ok)
}

/// `systemctl show` of one unit's state, for the record.
fn unit_state(unit: &str) -> String {
    std::process::Command::new("systemctl")
        .args(["show", "--property=ActiveState", "--value", unit])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

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
    let cfg = Config::load(&env.sysroot)?;
    let h = here(&env, false)?;
    let (event, why) = match unit {
        Some(u) => (Event::GateFailed, format!("critical unit {u} failed")),
        None => (
            Event::Deadline,
            format!(
                "deadline of {} passed before boot-complete.target",
                cfg.deadline
            ),
        ),
    };
    roll_back(&env, &cfg, &h, event, why, no_reboot)
}

/// Record why the gate failed and, on a first boot after an upgrade with a fallback
/// available, spend the slot and reboot.
fn roll_back(
    env: &Env,
    cfg: &Config,
    h: &Here,
    event: Event,
    why: String,
    no_reboot: bool,
) -> Result<ExitCode> {
    let mut r = base_record(event, Verdict::Rollback, Some(h), env);
    r.reasons.push(why);
    r.failed_units = cfg
        .critical_units
        .iter()
        .map(|u| (u, unit_state(u)))
        .filter(|(_, s)| s != "active")
        .map(|(u, s)| format!("{u} ({s})"))
        .collect();
    if !h.first {
        // the marker says first boot, the disk says otherwise: trust the disk, never reboot
        r.verdict = Verdict::Healthy;
        r.reasons
            .push("the booted slot is not on its first boot after an upgrade any more".into());
        save(env, &r);
        return Ok(ExitCode::Ok);
    }
    if cfg.on_failure == OnFailure::Report {
        r.verdict = Verdict::Report;
        r.reasons.push("ON_FAILURE=report: not rolling back".into());
        log::error!("{}", r.reasons.join("; "));
        save(env, &r);
        return Ok(ExitCode::Ok);
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
    let actions: Vec<String> = r.actions.iter().map(Action::to_string).collect();
    log::error!("{} → {}", r.reasons.join("; "), actions.join("; "));
    save(env, &r);
    if reboot {
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
