//! The verbs that change the slots: next, stage, mark-good, rollback. Each goes
//! through [`crate::disk::change_slots`] and records a `manual-<verb>` event.

use super::{print_json, HostState};
use crate::act::record;
use crate::cli::args::{MarkGoodArgs, NextArgs, RollbackArgs, StageArgs};
use crate::decide::ab::{self, Refusal};
use crate::disk::{change_slots, read_table};
use crate::exit::{ExitCode, Failure, VerbResult};
use crate::probe::MachinePaths;
use crate::types::Slot;
use anyhow::{anyhow, Result};
use serde_json::json;
use std::path::Path;

/// Append a `manual-<verb>` event when the disk's history is known (the running
/// system's disk, or `--sysroot` given) and the verb changed something. The GPT is
/// already written, so a history that cannot be appended is a warning, not a failure.
fn record_manual(
    host: &HostState,
    verb: record::Manual,
    disk: &Path,
    before: &[Slot],
    after: &[Slot],
    booted: Option<usize>,
) {
    let Some(root) = &host.history else {
        return;
    };
    if before == after {
        return;
    }
    let mut r = record::Record::at(&host.proc, verb.event(), record::Verdict::Manual);
    r.disk = Some(disk.display().to_string());
    r.booted = booted.map(|i| crate::types::Booted::of(&after[i], "probe"));
    r.before = before.to_vec();
    r.slots = after.to_vec();
    r.actions = before
        .iter()
        .zip(after)
        .filter(|(b, a)| b != a)
        .map(|(b, a)| record::Action::Changed {
            label: a.label.clone(),
            partition: a.partition,
            before: b.attrs.to_string(),
            after: a.attrs.to_string(),
        })
        .collect();
    if let Err(e) = crate::act::history::record_event(root, &r) {
        log::warn!("history not updated: {e:#}");
    }
}

/// `next`: what GRUB's gptprio.next does (or only shows it, `--dry-run`).
pub fn next(a: &NextArgs) -> VerbResult {
    let (p, dry_run, json) = (&a.paths.overrides(), a.dry_run, a.json);
    let env = MachinePaths::new(p, false);
    let path = env.disk_path()?;
    let mut pick = None;
    let (before, after) = if dry_run {
        let (_, t) = read_table(&path)?;
        let s = t.slots();
        let i = ab::require_next_boot(&s)?;
        let mut a = s.clone();
        a[i].attrs = ab::spend_try(a[i].attrs);
        pick = Some(i);
        (s, a)
    } else {
        change_slots(&path, |s| -> Result<(), Failure> {
            let i = ab::require_next_boot(s)?;
            s[i].attrs = ab::spend_try(s[i].attrs);
            pick = Some(i);
            Ok(())
        })?
    };
    if !dry_run {
        record_manual(
            &HostState::of(&env, p, &path),
            record::Manual::Next,
            &path,
            &before,
            &after,
            booted_of(&env, &path),
        );
    }
    let i = pick.ok_or_else(|| anyhow!("no slot was picked"))?;
    if json {
        print_json(&json!({
            "partition": after[i].partition,
            "partuuid": after[i].partuuid,
            "label": after[i].label,
            "tries_before": before[i].attrs.tries,
            "tries_after": after[i].attrs.tries,
            "dry_run": dry_run,
        }));
    } else {
        println!("{}", after[i].partition);
        if !dry_run {
            eprintln!("{} spent a try: reboot to apply", after[i].label);
        }
    }
    Ok(ExitCode::Ok)
}

fn report_change(what: &str, path: &Path, before: &[Slot], after: &[Slot], json: bool) {
    let next = ab::next_boot(after).map(|i| after[i].label.clone());
    if json {
        print_json(&json!({
            "disk": path.display().to_string(),
            "action": what,
            "before": before,
            "after": after,
            "next_boot": next,
        }));
        return;
    }
    for (b, a) in before.iter().zip(after) {
        let mark = if b == a { "" } else { "  (changed)" };
        println!(
            "{:<6} partition {:<2} {}  →  {}{mark}",
            a.label, a.partition, b.attrs, a.attrs
        );
    }
    if before != after && what != "mark-good" {
        println!(
            "next boot: {}: reboot to apply",
            next.as_deref().unwrap_or("none")
        );
    }
}

/// The booted slot's index when the probe can tell (else none: nothing is guessed).
fn booted_of(env: &MachinePaths, path: &Path) -> Option<usize> {
    let (_, table) = read_table(path).ok()?;
    super::booted_slot(env, path, &table)
        .ok()
        .map(|id| id.index)
}

/// `stage`: as flatcar-postinst does, unless the loop guard holds the build.
pub fn stage(a: &StageArgs) -> VerbResult {
    let (p, partition, json) = (&a.paths.overrides(), a.partition, a.json);
    let env = MachinePaths::new(p, false);
    let path = env.disk_path()?;
    // the loop guard: a build that failed its first boot is not staged again
    if let Some(root) = &HostState::of(&env, p, &path).history {
        let (_, t) = read_table(&path)?;
        let slots = t.slots();
        check_stage(root, &slots[ab::find_partition(&slots, partition)?])?;
    }
    let (before, after) = change_slots(&path, |s| -> Result<(), Failure> {
        let i = ab::find_partition(s, partition)?;
        ab::stage(s, i);
        Ok(())
    })?;
    record_manual(
        &HostState::of(&env, p, &path),
        record::Manual::Stage,
        &path,
        &before,
        &after,
        booted_of(&env, &path),
    );
    report_change("stage", &path, &before, &after, json);
    Ok(ExitCode::Ok)
}

/// `mark-good`: as flatcar-setgoodroot does.
pub fn mark_good(a: &MarkGoodArgs) -> VerbResult {
    let (p, partition, json) = (&a.paths.overrides(), a.partition, a.json);
    let env = MachinePaths::new(p, false);
    let path = env.disk_path()?;
    let booted = booted_of(&env, &path);
    let (before, after) = change_slots(&path, |s| -> Result<(), Failure> {
        let i = match partition {
            Some(n) => ab::find_partition(s, n)?,
            None => booted_index(&env, &path)?,
        };
        ab::mark_good(s, i);
        Ok(())
    })?;
    let host = HostState::of(&env, p, &path);
    record_manual(
        &host,
        record::Manual::MarkGood,
        &path,
        &before,
        &after,
        booted,
    );
    // the booted slot marked good while its gate waits: the gate is passed with it, so
    // update-engine and locksmithd are not held for the rest of the boot
    let marked = partition.map_or(booted, |n| ab::find_partition(&after, n).ok());
    let passed = (marked.is_some() && marked == booted)
        .then(|| pass_pending_gate(&env, &host, &after, booted?))
        .flatten();
    report_change("mark-good", &path, &before, &after, json);
    if let Some(line) = passed {
        eprintln!("{line}");
    }
    Ok(ExitCode::Ok)
}

/// When a gate is pending on this boot: take its verdict, write the flag a pass
/// writes, record `manual-pass-gate`; the line saying so.
fn pass_pending_gate(
    env: &MachinePaths,
    host: &HostState,
    after: &[Slot],
    booted: usize,
) -> Option<String> {
    use crate::act::steer;
    let run = host.run_dir()?;
    if !steer::gate_pending(&run) || !steer::claim(&run) {
        return None;
    }
    let mut r = record::Record::at(
        &host.proc,
        record::Event::ManualPassGate,
        record::Verdict::Manual,
    );
    r.booted = Some(crate::types::Booted::of(&after[booted], "probe"));
    r.slots = after.to_vec();
    r.version_id = crate::probe::version_id(&env.usr_candidates);
    r.reasons
        .push("abguard mark-good of the booted slot while its health gate waited".into());
    let line = match steer::release(&run) {
        Ok(flag) => {
            r.actions.push(record::Action::Wrote(flag));
            format!(
                "the health gate pending on this boot is passed by hand with it: update-engine \
                 and locksmithd are released ({} recorded)",
                r.event
            )
        }
        Err(e) => format!("the pending health gate could not be released: {e:#}"),
    };
    if let Some(root) = &host.history {
        if let Err(e) = crate::act::history::record_event(root, &r) {
            log::warn!("history not updated: {e:#}");
        }
    }
    Some(line)
}

fn booted_index(env: &MachinePaths, path: &Path) -> Result<usize, Failure> {
    let (_, table) = read_table(path)?;
    super::booted_slot(env, path, &table)
        .map(|id| id.index)
        .map_err(|why| Refusal::BootedUnknown(why.join("; ")).into())
}

/// `rollback`: make the other slot boot next.
pub fn rollback(a: &RollbackArgs) -> VerbResult {
    let (p, partition, force, json) = (&a.paths.overrides(), a.partition, a.force, a.json);
    let env = MachinePaths::new(p, false);
    let path = env.disk_path()?;
    let (before, after) = change_slots(&path, |s| -> Result<(), Failure> {
        let target = match partition {
            Some(n) => ab::find_partition(s, n)?,
            None => {
                // only from a slot known to have booted: counting from GRUB's next
                // slot would, on a disk mid-update, make the staged update the target
                let (_, table) = read_table(&path)?;
                let from = super::booted_slot(&env, &path, &table)
                    .map_err(|why| Refusal::BootedUnknown(why.join("; ")))?
                    .index;
                ab::other_slot(s, from)?
            }
        };
        ab::rollback(s, target, force)?;
        Ok(())
    })?;
    record_manual(
        &HostState::of(&env, p, &path),
        record::Manual::Rollback,
        &path,
        &before,
        &after,
        booted_of(&env, &path),
    );
    report_change("rollback", &path, &before, &after, json);
    Ok(ExitCode::Ok)
}

/// The loop guard's check for `abguard stage` on a system whose history is `root`:
/// refuse to stage a held build (nothing written). A slot whose kernel cannot be read
/// is not known to be held.
fn check_stage(root: &Path, slot: &crate::types::Slot) -> Result<(), crate::exit::Failure> {
    let held = crate::act::held::read(root)?;
    if held.is_empty() {
        return Ok(());
    }
    match super::staged_hash(root, slot) {
        Ok(hash) => match crate::decide::loopguard::holding(&held, &hash) {
            Some(h) => Err(crate::decide::ab::Refusal::Held(crate::act::held::describe(h)).into()),
            None => Ok(()),
        },
        Err(_) => Ok(()),
    }
}
