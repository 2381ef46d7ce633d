//! The verbs that read or change the slots: status, next, stage, mark-good, rollback.

use super::is_block;
use crate::act::{flags, metrics, record};
use crate::decide::ab::{self, Refusal};
use crate::disk::{change_slots, gpt::Table, read_table};
use crate::exit::{ExitCode, Failure, VerbResult};
use crate::probe::{self, Env};
use crate::safefs::SafeDir;
use crate::types::{Roots, Slot};
use anyhow::{anyhow, Context, Result};
use serde_json::json;
use std::path::Path;

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Which slot booted (see [`super::booted_slot`]), or why that cannot be told.
fn booted(env: &Env, disk: &Path, table: &Table) -> (Option<usize>, Vec<String>) {
    match super::booted_slot(env, disk, table) {
        Ok(id) => (Some(id.index), id.notes),
        Err(why) => (None, why),
    }
}

/// Where the host's state about this disk is: for a block device, the running system's
/// (or what the probe options point at); for an image file only what `--run-dir` and
/// `--sysroot` name, so an image never shows this machine's boot record or history.
struct HostState {
    boot_json: Option<std::path::PathBuf>,
    history: Option<std::path::PathBuf>,
}

impl HostState {
    fn of(env: &Env, p: &Roots, disk: &Path) -> HostState {
        let host = is_block(disk) || env.explicit;
        HostState {
            boot_json: (host || p.run_dir.is_some())
                .then(|| env.run_dir.join(flags::STATE_DIR).join(flags::BOOT_JSON)),
            history: (host || p.sysroot.is_some()).then(|| env.sysroot.clone()),
        }
    }

    fn last_assessment(&self) -> Option<serde_json::Value> {
        let b = std::fs::read(self.boot_json.as_ref()?).ok()?;
        serde_json::from_slice(&b).ok()
    }

    fn held(&self) -> Vec<crate::decide::loopguard::Held> {
        let Some(root) = &self.history else {
            return Vec::new();
        };
        crate::act::held::read(root).unwrap_or_else(|e| {
            log::warn!("{e:#}");
            Vec::new()
        })
    }

    /// Who assessed this boot: the initrd module, or late the booted system.
    fn source(&self, last: Option<&serde_json::Value>) -> Option<metrics::Source> {
        match record::Event::parse(last?["event"].as_str()?) {
            record::Event::Initrd => Some(metrics::Source::Initrd),
            record::Event::Assess => Some(metrics::Source::Late),
            _ => None,
        }
    }

    /// A flag or file under /run (`flags::STATE_DIR/...` or the healthy flag), when
    /// /run is known.
    fn run_has(&self, rel: &str) -> bool {
        let Some(run) = self.boot_json.as_ref().and_then(|b| b.parent()?.parent()) else {
            return false;
        };
        run.join(rel).exists()
    }

    fn history(&self) -> Vec<record::Entry> {
        self.history
            .as_deref()
            .map(crate::act::history::read_history)
            .unwrap_or_default()
    }
}

/// Append a `manual-<verb>` event when the disk's history is known (the running
/// system's disk, or `--sysroot` given) and the verb changed something. The GPT is
/// already written, so a history that cannot be appended is a warning, not a failure.
fn record_manual(
    host: &HostState,
    verb: record::Manual,
    disk: &Path,
    before: &[Slot],
    after: &[Slot],
) {
    let Some(root) = &host.history else {
        return;
    };
    if before == after {
        return;
    }
    let mut r = record::Record::new(verb.event(), record::Verdict::Manual);
    r.disk = Some(disk.display().to_string());
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
    if let Err(e) = crate::act::history::log_event(root, &r) {
        log::warn!("history not updated: {e:#}");
    }
}

/// How `status` reports.
pub enum Output {
    Text {
        json: bool,
        history: usize,
    },
    /// Prometheus exposition, to stdout or atomically into a textfile-collector file.
    Prometheus(Option<std::path::PathBuf>),
}

pub fn status(p: &Roots, out: Output) -> VerbResult {
    let (json, history) = match out {
        Output::Text { json, history } => (json, history),
        Output::Prometheus(file) => return Ok(prometheus(p, file)?),
    };
    let env = Env::new(p, false);
    let path = env.disk_path()?;
    let (_, table) = read_table(&path, false)?;
    let slots = table.slots();
    let next = ab::next_boot(&slots);
    let (booted, booted_notes) = booted(&env, &path, &table);
    let host = HostState::of(&env, p, &path);
    let last = host.last_assessment();
    let hist = host.history();
    let hist = &hist[hist.len().saturating_sub(history)..];
    let held = host.held();
    let mut problems = table.problems.clone();
    if slots.is_empty() {
        problems.push(ab::Refusal::NoUsrPartition.to_string());
    }
    if json {
        print_json(&json!({
            "disk": path.display().to_string(),
            "table": table.used,
            "problems": problems,
            "slots": slots,
            "next_boot": next.map(|i| slots[i].partition),
            "booted": booted.map(|i| slots[i].partition),
            "booted_notes": booted_notes,
            "last_assessment": last,
            "assessment_source": host.source(last.as_ref()).map(|s| s.as_str()),
            "held": held,
            "history": hist.iter().map(|e| &e.raw).collect::<Vec<_>>(),
        }));
        return Ok(ExitCode::Ok);
    }
    println!(
        "disk: {} (GPT read from the {} copy)",
        path.display(),
        table.used
    );
    for p in &problems {
        println!("  warning: {p}");
    }
    for (i, s) in slots.iter().enumerate() {
        let mut tags = Vec::new();
        if Some(i) == next {
            tags.push("next boot");
        }
        if Some(i) == booted {
            tags.push("booted");
        }
        println!(
            "  {:<6} partition {:<2} {}  {}{}",
            s.label,
            s.partition,
            s.partuuid,
            s.attrs,
            if tags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", tags.join(", "))
            }
        );
    }
    if next.is_none() && !slots.is_empty() {
        println!("  warning: no USR partition qualifies for booting: GRUB would stop with \"no such partition\"");
    }
    if let Some(l) = &last {
        let reasons: Vec<&str> = l["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str())
            .collect();
        println!(
            "last assessment: {}{}",
            l["verdict"].as_str().unwrap_or("?"),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join("; "))
            }
        );
    }
    if host.source(last.as_ref()) == Some(metrics::Source::Late) {
        println!("{}", metrics::LATE);
    }
    for h in &held {
        println!("held: {}", crate::act::held::describe(h));
    }
    if !hist.is_empty() {
        println!("history:");
        for h in hist {
            println!(
                "  {} {:<12} {:<6} {:<10} {}",
                h.time.as_deref().unwrap_or("?"),
                h.event,
                h.booted.as_ref().map_or("-", |b| b.label.as_str()),
                h.version_id.as_deref().unwrap_or("-"),
                h.verdict.as_ref().map_or("?", |v| v.as_str()),
            );
            // a slot that failed verification, a fallback, a refused restage: what is
            // known about it, and what was done about it
            if matches!(
                h.event,
                record::Event::VerifyFailed
                    | record::Event::ReadUsrFailed
                    | record::Event::Fallback
                    | record::Event::RestageRefused
            ) {
                let actions = h.actions.iter().map(ToString::to_string);
                for line in h.reasons.iter().cloned().chain(actions) {
                    println!("      {line}");
                }
            }
        }
    }
    Ok(ExitCode::Ok)
}

fn prometheus(p: &Roots, file: Option<std::path::PathBuf>) -> Result<ExitCode> {
    let env = Env::new(p, false);
    let path = env.disk_path()?;
    let (_, table) = read_table(&path, false)?;
    let slots = table.slots();
    let (booted, _) = booted(&env, &path, &table);
    let host = HostState::of(&env, p, &path);
    let last = host.last_assessment();
    // the newest verdict: a gate event after the initrd's, else the initrd's
    let hist = host.history();
    // manual and loop-guard events carry no verdict on this boot
    let newest = hist
        .iter()
        .rev()
        .find(|h| {
            !h.event.is_manual()
                && !matches!(
                    h.event,
                    record::Event::RestageRefused | record::Event::Allowed
                )
        })
        .and_then(|h| h.verdict.clone())
        .or_else(|| {
            (last.as_ref()).and_then(|l| l["verdict"].as_str().map(record::Verdict::parse))
        });
    let last_time = host
        .boot_json
        .as_ref()
        .and_then(|b| std::fs::metadata(b).ok())
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    // the running /usr's version is the host's: an image without probe options has none
    let version = last
        .as_ref()
        .and_then(|l| l["version_id"].as_str().map(str::to_string))
        .or_else(|| {
            (is_block(&path) || env.explicit)
                .then(|| probe::version_id(&env.usr_candidates))
                .flatten()
        });
    let counters = host
        .history
        .as_deref()
        .map(crate::act::history::read_counters)
        .unwrap_or_default();
    let text = metrics::render(&metrics::Snapshot {
        table: table.used,
        problems: table.problems.len() + usize::from(slots.is_empty()),
        slots: &slots,
        next_boot: ab::next_boot(&slots),
        booted,
        version_id: version.as_deref(),
        last_verdict: newest.as_ref(),
        last_assessment_time: last_time,
        counters: &counters,
        source: host.source(last.as_ref()),
        held: &host.held(),
        config_error: host.run_has(&format!("{}/{}", flags::STATE_DIR, flags::CONFIG_ERROR)),
        gate_pending: host.run_has(&format!("{}/{}", flags::STATE_DIR, flags::NEEDS_CHECK))
            && !host.run_has(flags::HEALTHY_FLAG),
        // when the gate's deadline fires: the gate's own facts (issue 11) feed this
        gate_deadline: None,
    });
    match file {
        None => print!("{text}"),
        Some(f) => {
            let dir = f
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let name = f
                .file_name()
                .and_then(|n| n.to_str())
                .context("--textfile needs a UTF-8 file name")?;
            SafeDir::open(dir)?.write_atomic(name, text.as_bytes())?;
        }
    }
    Ok(ExitCode::Ok)
}

pub fn next(p: &Roots, dry_run: bool, json: bool) -> VerbResult {
    let env = Env::new(p, false);
    let path = env.disk_path()?;
    let mut pick = None;
    let (before, after) = if dry_run {
        let (_, t) = read_table(&path, false)?;
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
    }
    Ok(ExitCode::Ok)
}

fn report_change(what: &str, path: &Path, before: &[Slot], after: &[Slot], json: bool) {
    if json {
        print_json(
            &json!({ "disk": path.display().to_string(), "action": what, "before": before, "after": after }),
        );
        return;
    }
    for (b, a) in before.iter().zip(after) {
        let mark = if b == a { "" } else { "  (changed)" };
        println!(
            "{:<6} partition {:<2} {}  →  {}{mark}",
            a.label, a.partition, b.attrs, a.attrs
        );
    }
}

pub fn stage(p: &Roots, partition: u32, json: bool) -> VerbResult {
    let env = Env::new(p, false);
    let path = env.disk_path()?;
    // the loop guard: a build that failed its first boot is not staged again
    if let Some(root) = &HostState::of(&env, p, &path).history {
        let (_, t) = read_table(&path, false)?;
        let slots = t.slots();
        super::check_stage(root, &slots[ab::find_partition(&slots, partition)?])?;
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
    );
    report_change("stage", &path, &before, &after, json);
    Ok(ExitCode::Ok)
}

pub fn mark_good(p: &Roots, partition: Option<u32>, json: bool) -> VerbResult {
    let env = Env::new(p, false);
    let path = env.disk_path()?;
    let (before, after) = change_slots(&path, |s| -> Result<(), Failure> {
        let i = match partition {
            Some(n) => ab::find_partition(s, n)?,
            None => booted_index(&env, &path)?,
        };
        ab::mark_good(s, i);
        Ok(())
    })?;
    record_manual(
        &HostState::of(&env, p, &path),
        record::Manual::MarkGood,
        &path,
        &before,
        &after,
    );
    report_change("mark-good", &path, &before, &after, json);
    Ok(ExitCode::Ok)
}

fn booted_index(env: &Env, path: &Path) -> Result<usize> {
    let (_, table) = read_table(path, false)?;
    super::booted_slot(env, path, &table)
        .map(|id| id.index)
        .map_err(|why| {
            anyhow!(
                "cannot tell which slot booted ({}); pass --partition",
                why.join("; ")
            )
        })
}

pub fn rollback(p: &Roots, partition: Option<u32>, force: bool, json: bool) -> VerbResult {
    let env = Env::new(p, false);
    let path = env.disk_path()?;
    let (before, after) = change_slots(&path, |s| -> Result<(), Failure> {
        let target = match partition {
            Some(n) => ab::find_partition(s, n)?,
            None => {
                // only from a slot known to have booted: counting from GRUB's next
                // slot would, on a disk mid-update, make the staged update the target
                let (_, table) = read_table(&path, false)?;
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
    );
    report_change("rollback", &path, &before, &after, json);
    Ok(ExitCode::Ok)
}
