//! Around a rollback: the fallback GRUB made on its own (recorded from the next
//! assessment), and the loop guard that keeps a build which failed its first boot from
//! being staged again (`abguard guard-staged`, run when /run/reboot-required appears;
//! `abguard stage` asks it too).

use crate::act::held;
use crate::act::record::{self, Action, Build, Entry, Event, Record, Verdict};
use crate::cli::{DiskArg, Probe};
use crate::decide::ab::{self, Slot};
use crate::decide::fallback::{self, Finding};
use crate::decide::loopguard::{self, Held};
use crate::probe::{self, verity, Env};
use anyhow::{bail, Result};
use std::path::Path;

/// What is known about a fallback besides the state it left.
pub const NO_VERDICT: &str =
    "no verdict was reached: hang, panic, power loss or a reboot before the gate";

/// Run from the assessment, before its own history line: when GRUB fell back from a
/// slot whose first boot reached no verdict, record one `fallback` event (once per
/// attempt) and return the line this boot's record adds about it.
pub fn record_fallback(env: &Env, now: &Record) -> Vec<String> {
    let Some(booted) = now
        .booted
        .as_ref()
        .and_then(|b| now.slots.iter().position(|s| s.partition == b.partition))
    else {
        return Vec::new();
    };
    let history = record::read_history(&env.sysroot);
    let (x, attempt) = match fallback::detect(&now.slots, booted, &history) {
        Finding::Fallback { slot, attempt } => (slot, attempt),
        Finding::Unknown { slot } => {
            log::info!(
                "{} is spent above the booted slot since before the history: not counted",
                now.slots[slot].label
            );
            return Vec::new();
        }
        _ => return Vec::new(),
    };
    let r = fallback_record(env, now, &now.slots[x], attempt);
    let failed = r.failed.clone().unwrap_or_default();
    let line = format!(
        "GRUB fell back from {} (version {}): {NO_VERDICT}",
        failed.label,
        failed.version_id.as_deref().unwrap_or("unknown")
    );
    log::error!("{line}");
    if let Err(e) = record::log_event(&env.sysroot, &r) {
        log::warn!("fallback not recorded: {e:#}");
        return vec![format!("{line} (not recorded: {e:#})")];
    }
    vec![line]
}

fn fallback_record(env: &Env, now: &Record, s: &Slot, attempt: Option<&Entry>) -> Record {
    let verity = attempt.and_then(|e| e.verity.as_ref());
    // the hash that booted, as GRUB passed it; else what the slot's kernel holds now
    let root_hash = attempt
        .and_then(|e| e.root_hash.clone())
        .or_else(|| verity.and_then(|v| v.expected_hash.clone()))
        .or_else(|| verity.and_then(|v| v.root_hash.clone()))
        .or_else(|| verity::kernel_root_hash(&verity::kernel_for(&env.sysroot, &s.partuuid)).ok());
    let mut r = Record::new(Event::Fallback, Verdict::Rollback);
    r.disk = now.disk.clone();
    r.table = now.table;
    r.booted = now.booted.clone();
    r.slots = now.slots.clone();
    r.version_id = now.version_id.clone();
    r.failed = Some(Build {
        label: s.label.clone(),
        partition: s.partition,
        partuuid: s.partuuid.clone(),
        version_id: attempt.and_then(|e| e.version_id.clone()),
        root_hash,
        tried_at: attempt.and_then(|e| e.time.clone()),
    });
    r.reasons.push(NO_VERDICT.to_string());
    match attempt {
        Some(e) => r.reasons.push(format!(
            "its first boot was assessed at {} (boot {}): {}, dm-verity status {}",
            e.time.as_deref().unwrap_or("?"),
            e.boot_id.as_deref().unwrap_or("?"),
            e.verdict.as_ref().map_or("?", |v| v.as_str()),
            verity.and_then(|v| v.status.as_deref()).unwrap_or("-")
        )),
        None => r.reasons.push(
            "its first boot left no record: it stopped before the assessment (in GRUB, the kernel or the initrd)"
                .into(),
        ),
    }
    match fallback::pstore_message(&pstore(env)) {
        Some(m) => r.reasons.push(format!("kernel (pstore): {m}")),
        None => r
            .reasons
            .push("no kernel panic or dm-verity message in pstore".into()),
    }
    r
}

/// The previous boot's kernel log that pstore kept (`SYSFS/fs/pstore`), by file name.
fn pstore(env: &Env) -> Vec<(String, String)> {
    use std::io::Read;
    let dir = env.sysfs.root.join("fs/pstore");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut files = Vec::new();
    for n in names {
        let mut text = Vec::new();
        // dumps are small; a bound keeps a stray big file from costing the boot
        if let Ok(f) = std::fs::File::open(dir.join(&n)) {
            if f.take(256 * 1024).read_to_end(&mut text).is_ok() {
                files.push((n, String::from_utf8_lossy(&text).into_owned()));
            }
        }
    }
    files
}

/// The staged slot's build identity: the root hash in its kernel, as GRUB will read it.
fn staged_hash(sysroot: &Path, s: &Slot) -> Result<String> {
    verity::kernel_root_hash(&verity::kernel_for(sysroot, &s.partuuid))
}

/// For `abguard stage`: refuse to stage a held build (nothing written). A slot whose
/// kernel cannot be read is not known to be held.
pub fn check_stage(root: &Path, slot: &Slot) -> Result<()> {
    let held = held::read(root)?;
    if held.is_empty() {
        return Ok(());
    }
    let Ok(hash) = staged_hash(root, slot) else {
        return Ok(());
    };
    if let Some(h) = loopguard::holding(&held, &hash) {
        return Err(ab::Refusal::Held(held_line(h)).into());
    }
    Ok(())
}

fn held_line(h: &Held) -> String {
    format!(
        "build {} (root hash {}) failed its first boot ({} at {}); `abguard allow --root-hash {}` releases it",
        h.version_id.as_deref().unwrap_or("?"),
        h.root_hash,
        h.event,
        h.since,
        h.root_hash
    )
}

/// `abguard guard-staged`: when the staged slot holds a build that failed its first
/// boot, un-stage it (tries=0, successful=0) before any reboot can use it.
pub fn guard_staged(d: &DiskArg, p: &Probe, json: bool) -> Result<i32> {
    let env = Env::new(p, false);
    let path = probe::disk_path(d.disk.as_ref(), &env)?;
    let (_, table) = probe::read_table(&path, false)?;
    let slots = table.slots();
    let say = |msg: &str| {
        match json {
            true => println!(
                "{}",
                serde_json::json!({ "unstaged": false, "message": msg })
            ),
            false => println!("{msg}"),
        }
        Ok(0)
    };
    let Some(i) = crate::verbs::verify::staged(&slots) else {
        return say("no staged slot");
    };
    let held = held::read(&env.sysroot)?;
    let hash = match staged_hash(&env.sysroot, &slots[i]) {
        Ok(h) => h,
        Err(e) if held.is_empty() => return say(&format!("nothing held ({e:#})")),
        Err(e) => {
            log::warn!("cannot tell which build is staged: {e:#}");
            return say(&format!("the staged build is unknown: {e:#}"));
        }
    };
    let Some(h) = loopguard::holding(&held, &hash).cloned() else {
        return say(&format!("{} holds build {hash}: not held", slots[i].label));
    };
    let r = unstage(&env, &path, &slots[i], &h)?;
    if let Err(e) = record::log_event(&env.sysroot, &r) {
        log::warn!("history not updated: {e:#}");
    }
    let action = r
        .actions
        .first()
        .map(ToString::to_string)
        .unwrap_or_default();
    log::error!("{}: {action}", r.reasons[0]);
    match json {
        true => println!("{}", serde_json::to_string_pretty(&r)?),
        false => println!("{action}\n{}", r.reasons[0]),
    }
    Ok(0)
}

fn unstage(env: &Env, path: &Path, s: &Slot, h: &Held) -> Result<Record> {
    let before = s.clone();
    let (_, after) = crate::verbs::slots::change_slots(path, |slots| {
        let i = ab::find_partition(slots, before.partition)?;
        if slots[i] != before || crate::verbs::verify::staged(slots) != Some(i) {
            bail!("{} is not the staged slot any more", before.label);
        }
        ab::spend_slot(slots, i)?;
        Ok(())
    })?;
    let stays_on: Vec<String> = after
        .iter()
        .filter(|x| x.partition != before.partition)
        .map(|x| format!("{} {}", x.label, x.attrs))
        .collect();
    let mut r = Record::new(Event::RestageRefused, Verdict::Unstaged);
    r.disk = Some(path.display().to_string());
    r.version_id = probe::version_id(&env.usr_candidates);
    r.before = vec![before.clone()];
    r.slots = after;
    r.failed = Some(Build {
        label: before.label.clone(),
        partition: before.partition,
        partuuid: before.partuuid.clone(),
        version_id: h.version_id.clone(),
        root_hash: Some(h.root_hash.clone()),
        tried_at: None,
    });
    r.reasons.push(held_line(h));
    r.actions.push(Action::Unstaged {
        label: before.label.clone(),
        partition: before.partition,
        stays_on: stays_on.join(", "),
    });
    Ok(r)
}

/// Status lines about the loop guard and a late assessment.
pub fn status_lines(held: &[Held], last: Option<&serde_json::Value>) -> Vec<String> {
    let mut out = Vec::new();
    if last.and_then(|l| l["event"].as_str()) == Some(Event::Assess.as_str()) {
        out.push(LATE.to_string());
    }
    out.extend(held.iter().map(|h| format!("held: {}", held_line(h))));
    out
}

/// How status and the metrics' help describe a boot `abguard-assess.service` assessed.
pub const LATE: &str = "assessed late: the initrd module did not run";
