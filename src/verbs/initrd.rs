//! `abguard initrd`: probe, decide, act — before pivot-root, on every boot.
//!
//! Effects are the /run flags the booted system keys on, the boot record, the history
//! on the root filesystem and, only for a failed dm-verity check on the first boot
//! after an upgrade, spending the slot and rebooting.

use crate::act::flags::{BOOT_JSON, HEALTHY_FLAG, INDETERMINATE, NEEDS_CHECK, STATE_DIR};
use crate::act::{
    reboot,
    record::{self, Record},
};
use crate::cli::args::{AssessArgs, InitrdArgs, StockAssessArgs};
use crate::decide::assess::{self, Assessment, Facts, Verdict};
use crate::disk::{gpt::Table, read_table, spend_booted};
use crate::exit::{ExitCode, VerbResult};
use crate::probe::{self, MachinePaths};
use crate::safefs::SafeDir;
use crate::types::{Booted, PathOverrides, Slot};
use anyhow::{anyhow, Result};
use std::path::{Path, PathBuf};

/// `initrd`: the assessment before pivot-root.
pub fn initrd(a: &InitrdArgs) -> VerbResult {
    Ok(run(&a.opts.paths.overrides(), &Options::of(&a.opts, true))?)
}

/// `assess`: the same assessment early in the booted system, on a stock image.
pub fn assess(a: &StockAssessArgs) -> VerbResult {
    Ok(run(
        &a.opts.paths.overrides(),
        &Options::of(&a.opts, false),
    )?)
}

struct Options<'a> {
    no_reboot: bool,
    json: bool,
    dm_test: Option<(&'a Path, &'a Path)>,
    /// In the initrd (default paths /sysusr/usr and /sysroot), or in the booted system
    /// (stock-image mode: /usr and /).
    in_initrd: bool,
}

impl Options<'_> {
    fn of(a: &AssessArgs, in_initrd: bool) -> Options<'_> {
        Options {
            no_reboot: a.no_reboot,
            json: a.json,
            dm_test: a.dm_status.as_deref().zip(a.dm_table.as_deref()),
            in_initrd,
        }
    }
}

fn run(p: &PathOverrides, o: &Options) -> Result<ExitCode> {
    let env = MachinePaths::new(p, o.in_initrd);
    if !o.in_initrd && env.run_dir.join(STATE_DIR).join(BOOT_JSON).exists() {
        log::info!("this boot was already assessed (by the initrd module)");
        return Ok(ExitCode::Ok);
    }
    let disk = env.disk_path();
    let table = match &disk {
        Ok(path) => read_table(path)
            .map(|(_, t)| t)
            .map_err(|e| format!("{e:#}")),
        Err(e) => Err(format!("{e:#}")),
    };
    // read /usr before asking dm-verity: it verifies lazily, so a corrupted block shows
    // in the status only once something has read it
    let version_id = probe::version_id(&version_dirs(&env));
    let facts = probe::facts(&env, disk.as_deref().ok(), &table, o.dm_test, true);
    let mut a = assess::assess(&facts);
    let slots = facts.slots.clone().unwrap_or_default();

    let mut rec = probed_record(&env, o, &disk, &table, &facts, a.verdict);
    rec.version_id = version_id;
    // the health gate's configuration as this boot will read it: a skipped line is in
    // boot.json from the start (the gate holds a first boot on it)
    let cfg = crate::config::Config::load(&env.sysroot);
    rec.config_errors = cfg.errors.iter().map(ToString::to_string).collect();
    let reboot = a.verdict == Verdict::Rollback
        && spend(disk.as_deref().ok(), &slots, &mut a, &mut rec)
        && !o.no_reboot;
    rec.verdict = a.verdict.into();
    rec.first_boot_after_upgrade = a.first_boot_after_upgrade;
    rec.booted = a
        .booted
        .map(|i| Booted::of(&slots[i], a.booted_source.unwrap_or("?")));
    rec.slots = a.new_slots.clone().unwrap_or(slots);
    rec.reasons.extend(a.reasons.iter().cloned());
    // before this boot's own line: the history must show the failed attempt first
    if env.sysroot.is_dir() {
        let fallback = record_fallback(&env, &rec);
        rec.reasons.extend(fallback);
    }

    if a.verdict == Verdict::NeedsHealthCheck && o.in_initrd {
        hang_budget(&env, &cfg, &mut rec);
    } else if a.verdict == Verdict::NeedsHealthCheck {
        rec.reasons.push(
            "watchdog not armed: assessed in the booted system, where PID 1 keeps its own setting; a hang before the verdict is not bounded".into(),
        );
    }
    let flags = write_flags(&env.run_dir, &a, &mut rec);
    if let Err(e) = &flags {
        log::error!("{e:#}");
    }
    if env.sysroot.is_dir() {
        if let Err(e) = crate::act::history::record_event(&env.sysroot, &rec) {
            log::warn!("history not updated: {e:#}");
        }
    }
    log_summary(&rec);
    if rec.verdict == crate::act::record::Verdict::Rollback {
        let slot = rec.booted.as_ref().map_or("?", |b| b.label.as_str());
        crate::act::journal::send(
            &env.run_dir,
            crate::act::journal::INITRD_ROLLBACK,
            &rec.reasons.join("; "),
            &[("SLOT", slot)],
        );
    }
    if o.json {
        println!("{}", serde_json::to_string_pretty(&rec)?);
    }
    flags?;
    if reboot {
        log::warn!("rebooting so GRUB falls back");
        reboot::reboot()?;
    }
    Ok(ExitCode::Ok)
}

/// The record's part that comes from probing: the disk, the table and its problems, the
/// command line's warnings, dm-verity.
fn probed_record(
    env: &MachinePaths,
    o: &Options,
    disk: &Result<PathBuf>,
    table: &Result<Table, String>,
    facts: &Facts,
    verdict: Verdict,
) -> Record {
    let event = match o.in_initrd {
        true => record::Event::Initrd,
        false => record::Event::Assess,
    };
    let mut rec = Record::at(&env.proc, event, verdict.into());
    rec.disk = disk.as_ref().ok().map(|p| p.display().to_string());
    rec.table = table.as_ref().ok().map(|t| t.used);
    if let Ok(t) = table {
        rec.reasons
            .extend(t.problems.iter().map(|p| format!("GPT: {p}")));
    }
    if let Ok(c) = env.read_cmdline() {
        rec.reasons
            .extend(c.warnings.iter().map(|w| format!("command line: {w}")));
        if let Some(Err(e)) = &c.usrhash {
            rec.reasons
                .push(format!("command line: {e}; the root hash was not compared"));
        }
    }
    rec.verity = Some(facts.verity.clone());
    rec
}

/// A first boot after an upgrade: arm the watchdog for HANG_BUDGET and leave the
/// breadcrumb on ROOT that the next boot reads if this attempt never reaches a verdict.
fn hang_budget(env: &MachinePaths, cfg: &crate::config::Config, rec: &mut Record) {
    use crate::decide::watchdog::{plan, Plan};
    use crate::probe::watchdog::devices;
    let mut found = devices(&env.sysfs.root);
    // udev loads the driver on coldplug, usually long before /sysroot is mounted; a
    // machine given by the probe options is not this one: no waiting, no modprobe
    for _ in 0..20 {
        if !found.is_empty() || env.explicit {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        found = devices(&env.sysfs.root);
    }
    if found.is_empty() && !env.explicit && crate::act::watchdog::load_softdog() {
        found = devices(&env.sysfs.root);
    }
    let budget = cfg.hang_budget.0 / 1_000_000;
    let said = match plan(true, &found, budget) {
        Plan::Arm {
            device,
            timeout_s,
            note,
        } => match crate::act::watchdog::arm(&env.sysfs.dev, &env.run_dir, &device, timeout_s) {
            Ok(t) => {
                let s = format!(
                    "armed the watchdog {note} for {t}s until the verdict (HANG_BUDGET={})",
                    cfg.hang_budget
                );
                rec.actions.push(record::Action::Other(s.clone()));
                s
            }
            Err(e) => format!("watchdog not armed ({note}): {e:#}; a hang before the verdict is not bounded"),
        },
        _ => "no watchdog device: a hang of the kernel or PID 1 before the verdict is not bounded (HANG_BUDGET)".into(),
    };
    if !said.starts_with("armed the watchdog") {
        rec.reasons.push(said.clone());
    }
    let (Some(booted), Some(boot_id)) = (rec.booted.as_ref(), rec.boot_id.clone()) else {
        return;
    };
    let crumb = crate::types::attempt::Crumb {
        reached: crate::types::attempt::Reached::Initrd,
        partuuid: booted.partuuid.clone(),
        boot_id,
        boot_unix: crate::act::attempt::clock(&env.proc).1,
        watchdog: said,
        gate_started_unix: None,
        last_seen_unix: None,
        waiting: Vec::new(),
    };
    if env.sysroot.join("var").is_dir() {
        if let Err(e) = crate::act::attempt::write(&env.sysroot, &crumb) {
            log::warn!("breadcrumb not written: {e:#}");
        }
    }
}

/// A `Rollback` verdict: spend the booted slot. True when written (and a reboot makes
/// GRUB fall back); otherwise the verdict becomes `NeedsHealthCheck`, with the reason.
fn spend(disk: Option<&Path>, slots: &[Slot], a: &mut Assessment, rec: &mut Record) -> bool {
    let spent = match (disk, a.booted) {
        (Some(path), Some(i)) => spend_booted(path, slots, i),
        _ => Err(anyhow!("no disk or booted slot to write")),
    };
    match spent {
        Ok(msg) => {
            rec.actions.push(msg);
            true
        }
        Err(e) => {
            // GRUB already spent the try on this boot, so the next reboot falls back
            // anyway; without our write we must not force one.
            a.reasons.push(format!("could not spend the slot: {e:#}"));
            a.verdict = Verdict::NeedsHealthCheck;
            false
        }
    }
}

fn version_dirs(env: &MachinePaths) -> Vec<PathBuf> {
    let mut v = env.usr_candidates.clone();
    v.push(env.sysroot.join("usr"));
    v
}

/// The flags the booted system's units key on, then the record. A failure is an
/// error to report, not a reason to stop: the boot goes on either way.
fn write_flags(run_dir: &Path, a: &Assessment, rec: &mut Record) -> Result<()> {
    let run = SafeDir::open(run_dir)?;
    let state = run.subdir(STATE_DIR, true)?;
    match a.verdict {
        Verdict::NeedsHealthCheck | Verdict::Rollback => {
            run.remove(HEALTHY_FLAG)?;
            state.remove(INDETERMINATE)?;
            if a.verdict == Verdict::NeedsHealthCheck {
                let body = rec.booted.as_ref().map_or(String::new(), |b| {
                    format!("{} {}\n", b.partition, b.partuuid)
                });
                state.write_atomic(NEEDS_CHECK, body.as_bytes())?;
                rec.actions.push(record::Action::Wrote(
                    state.path().join(NEEDS_CHECK).display().to_string(),
                ));
            }
        }
        Verdict::Healthy | Verdict::Indeterminate | Verdict::Mismatch => {
            state.remove(NEEDS_CHECK)?;
            if a.verdict == Verdict::Healthy {
                state.remove(INDETERMINATE)?;
            } else {
                state.write_atomic(
                    INDETERMINATE,
                    format!("{}\n", a.reasons.join("\n")).as_bytes(),
                )?;
                rec.actions.push(record::Action::Wrote(
                    state.path().join(INDETERMINATE).display().to_string(),
                ));
            }
            run.write_atomic(HEALTHY_FLAG, b"")?;
            rec.actions.push(record::Action::Wrote(
                run.path().join(HEALTHY_FLAG).display().to_string(),
            ));
        }
    }
    state.write_atomic(BOOT_JSON, serde_json::to_string_pretty(rec)?.as_bytes())
}

fn log_summary(rec: &Record) {
    let booted = rec.booted.as_ref().map_or("unknown".to_string(), |b| {
        format!("{}(partition {})", b.label, b.partition)
    });
    let verity = rec
        .verity
        .as_ref()
        .and_then(|v| v.status.clone())
        .unwrap_or_else(|| "-".into());
    log::warn!(
        "verdict={} booted={} version={} first-boot-after-upgrade={} verity={}",
        rec.verdict,
        booted,
        rec.version_id.as_deref().unwrap_or("?"),
        rec.first_boot_after_upgrade
            .map_or("?", |f| if f { "yes" } else { "no" }),
        verity
    );
    for r in &rec.reasons {
        log::warn!("{r}");
    }
    for a in &rec.actions {
        log::info!("{a}");
    }
}

/// From the assessment, before its own history line: when GRUB fell back from a slot
/// whose first boot reached no verdict, record one `fallback` event (once per attempt)
/// and return the line this boot's record adds about it.
fn record_fallback(env: &MachinePaths, now: &crate::act::record::Record) -> Vec<String> {
    use crate::act::{fallback, history};
    use crate::decide::fallback::{detect, pstore_message, Finding};
    let Some(booted) = (now.booted.as_ref())
        .and_then(|b| now.slots.iter().position(|s| s.partition == b.partition))
    else {
        return Vec::new();
    };
    // the history is read (and parsed whole) only when a slot above the booted one was
    // spent without success: on every other boot there is no fallback to find
    if crate::decide::fallback::abandoned(&now.slots, booted).is_none() {
        return Vec::new();
    }
    let history = history::read_history(&env.sysroot);
    let crumb = crate::act::attempt::read(&env.sysroot);
    let (slot, attempt) = match detect(&now.slots, booted, &history) {
        Finding::Fallback { slot, attempt } => (&now.slots[slot], attempt),
        // staged by update_engine, then nothing: the breadcrumb says it was tried
        Finding::Unknown { slot }
            if crate::decide::stage::staged(crumb.as_ref(), &now.slots[slot].partuuid) =>
        {
            (&now.slots[slot], None)
        }
        Finding::Unknown { slot } => {
            let label = &now.slots[slot].label;
            log::info!("{label} is spent above the booted slot since before the history");
            return Vec::new();
        }
        _ => return Vec::new(),
    };
    let kernel = super::staged_hash(&env.sysroot, slot);
    // EFI-SYSTEM is mounted only in the booted system: in the initrd the kernel is unseen
    let kernel_present = (env.sysroot.join("boot/flatcar").is_dir()
        || env.sysroot.join("boot/coreos").is_dir())
    .then_some(kernel.is_ok());
    let said = pstore_message(&probe::pstore::read(&env.sysfs.root));
    let why = crate::decide::stage::classify(&crate::decide::stage::Clues {
        partuuid: &slot.partuuid,
        attempt,
        crumb: crumb.as_ref(),
        kernel_said: said.as_deref(),
        watchdog_reset: crate::decide::watchdog::reset_by_watchdog(&probe::watchdog::devices(
            &env.sysfs.root,
        )),
        kernel_present,
        now_boot_unix: Some(crate::act::attempt::clock(&env.proc).1),
    });
    let r = fallback::record(now, slot, attempt, kernel.ok(), said, &why);
    let line = fallback::summary(&r);
    log::error!("{line}");
    crate::act::journal::send(
        &env.run_dir,
        crate::act::journal::FALLBACK,
        &line,
        &[("SLOT", &slot.label)],
    );
    match history::record_event(&env.sysroot, &r) {
        Ok(()) => {
            crate::act::attempt::remove(&env.sysroot);
            vec![line]
        }
        Err(e) => vec![format!("{line} (not recorded: {e:#})")],
    }
}
