//! `abguard status`: the USR slots, the next boot, the booted slot, the last
//! assessment and the history, as text, JSON or Prometheus exposition.

use super::{booted_slot, is_block, print_json, HostState};
use crate::act::gate_state::{self, GateState};
use crate::act::{flags, metrics, record};
use crate::cli::args::StatusArgs;
use crate::decide::ab;
use crate::disk::{gpt::Table, read_table};
use crate::exit::{ExitCode, VerbResult};
use crate::probe::{self, Env};
use crate::safefs::SafeDir;
use crate::types::Slot;
use anyhow::{Context, Result};
use serde_json::json;
use std::path::{Path, PathBuf};

/// What both reports start from: the disk and its slots, which one booted, where the
/// host's state is, this boot's record and the health gate's snapshot.
struct Seen {
    env: Env,
    path: PathBuf,
    table: Table,
    slots: Vec<Slot>,
    booted: Option<usize>,
    /// How the booted slot was found, or why it could not be.
    booted_notes: Vec<String>,
    host: HostState,
    /// boot.json.
    last: Option<record::Entry>,
    /// The gate's own account of a pending first boot (verbs/gate/watch.rs).
    gate: Option<GateState>,
}

fn look(a: &StatusArgs) -> Result<Seen> {
    let p = a.target.roots();
    let env = Env::new(&p, false);
    let path = env.disk_path()?;
    let (_, table) = read_table(&path)?;
    let (booted, booted_notes) = match booted_slot(&env, &path, &table) {
        Ok(id) => (Some(id.index), id.notes),
        Err(why) => (None, why),
    };
    let host = HostState::of(&env, &p, &path);
    let gate = match host
        .boot_json
        .as_ref()
        .and_then(|_| gate_state::read(&env.run_dir))
    {
        Some(Ok(g)) => Some(g),
        Some(Err(e)) => {
            log::warn!("{e:#}");
            None
        }
        None => None,
    };
    Ok(Seen {
        slots: table.slots(),
        last: host.last_assessment(),
        env,
        path,
        table,
        booted,
        booted_notes,
        host,
        gate,
    })
}

/// `status`: text, JSON, or Prometheus exposition (to stdout or a textfile).
pub fn run(a: &StatusArgs) -> VerbResult {
    let s = look(a)?;
    if a.prometheus {
        prometheus(&s, a.textfile.as_deref())?;
        return Ok(ExitCode::Ok);
    }
    let next = ab::next_boot(&s.slots);
    let hist = s.host.history();
    let fell = last_fallback(&hist);
    let hist = &hist[hist.len().saturating_sub(a.history)..];
    let held = s.host.held();
    let source = s.host.source(s.last.as_ref());
    let mut problems = s.table.problems.clone();
    if s.slots.is_empty() {
        problems.push(ab::Refusal::NoUsrPartition.to_string());
    }
    if a.json {
        print_json(&json!({
            "disk": s.path.display().to_string(),
            "table": s.table.used,
            "problems": problems,
            "slots": s.slots,
            "next_boot": next.map(|i| s.slots[i].partition),
            "booted": s.booted.map(|i| s.slots[i].partition),
            "booted_notes": s.booted_notes,
            "last_assessment": s.last,
            "assessment_source": source.map(|s| s.as_str()),
            "held": held,
            "last_fallback": fell.as_ref().map(|(_, s)| s),
            "gate": s.gate.as_ref().map(GateState::to_value),
            "history": hist.iter().map(|e| &e.raw).collect::<Vec<_>>(),
        }));
        return Ok(ExitCode::Ok);
    }
    print_slots(&s.path, &s.table, &s.slots, &problems, next, s.booted);
    if let Some(t) = s.gate.as_ref().and_then(|g| g.explain(unix_now())) {
        println!("{t}");
    }
    if let Some(l) = &s.last {
        print_last(l);
    }
    if source == Some(metrics::Source::Late) {
        println!("{}", metrics::LATE);
    }
    for h in &held {
        println!("held: {}", crate::act::held::describe(h));
    }
    if let Some((line, _)) = &fell {
        println!("{line}");
    }
    print_history(hist);
    Ok(ExitCode::Ok)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn prometheus(s: &Seen, file: Option<&Path>) -> Result<()> {
    let (env, host, last) = (&s.env, &s.host, s.last.as_ref());
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
        .or_else(|| last.and_then(|l| l.verdict.clone()));
    let last_time = host
        .boot_json
        .as_ref()
        .and_then(|b| std::fs::metadata(b).ok())
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    // the running /usr's version is the host's: an image without probe options has none
    let version = last.and_then(|l| l.version_id.clone()).or_else(|| {
        (is_block(&s.path) || env.explicit)
            .then(|| probe::version_id(&env.usr_candidates))
            .flatten()
    });
    let counters = host
        .history
        .as_deref()
        .map(crate::act::history::read_counters)
        .unwrap_or_default();
    // the generator's reading of this boot's configuration (one line per error)
    let config_errors = host
        .boot_json
        .as_ref()
        .map_or(0, |_| gate_state::config_errors(&env.run_dir));
    let config_error =
        config_errors > 0 || host.run_has(&format!("{}/{}", flags::STATE_DIR, flags::CONFIG_ERROR));
    let pending = s
        .gate
        .as_ref()
        .filter(|g| g.phase == gate_state::Phase::Pending);
    let text = metrics::render(&metrics::Snapshot {
        table: s.table.used,
        problems: s.table.problems.len() + usize::from(s.slots.is_empty()),
        slots: &s.slots,
        next_boot: ab::next_boot(&s.slots),
        booted: s.booted,
        version_id: version.as_deref(),
        last_verdict: newest.as_ref(),
        last_assessment_time: last_time,
        counters: &counters,
        source: host.source(last),
        held: &host.held(),
        config_error,
        config_errors,
        gate_pending: pending.is_some(),
        gate_deadline: pending.map(|g| g.deadline_unix),
    });
    emit(&text, file)
}

/// The exposition to stdout, or atomically into a textfile-collector file.
fn emit(text: &str, file: Option<&Path>) -> Result<()> {
    let Some(f) = file else {
        print!("{text}");
        return Ok(());
    };
    let dir = f
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = f
        .file_name()
        .and_then(|n| n.to_str())
        .context("--textfile needs a UTF-8 file name")?;
    SafeDir::open(dir)?.write_atomic(name, text.as_bytes())
}

/// The disk, its problems and the slots, tagged with the next and the booted one.
fn print_slots(
    path: &Path,
    table: &Table,
    slots: &[Slot],
    problems: &[String],
    next: Option<usize>,
    booted: Option<usize>,
) {
    println!(
        "disk: {} (GPT read from the {} copy)",
        path.display(),
        table.used
    );
    for p in problems {
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
}

/// The initrd's last assessment of this boot, with its reasons.
fn print_last(l: &record::Entry) {
    println!(
        "last assessment: {}{}",
        l.verdict.as_ref().map_or("?", |v| v.as_str()),
        if l.reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", l.reasons.join("; "))
        }
    );
}

/// The newest history entries, one a line; a failed verification, a fallback or a
/// refused restage with what is known about it and what was done about it.
fn print_history(hist: &[record::Entry]) {
    if hist.is_empty() {
        return;
    }
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

/// The newest fallback: a line for the text and the stage for `--json`.
fn last_fallback(hist: &[record::Entry]) -> Option<(String, serde_json::Value)> {
    let e = hist
        .iter()
        .rev()
        .find(|e| e.event == record::Event::Fallback)?;
    let f = e.failed.clone().unwrap_or_default();
    let stage = (e.stage.as_deref()).unwrap_or("not named (recorded by an older version)");
    let took = e.took_s.map_or(String::new(), |t| format!(", {t}s"));
    let line = format!(
        "last fallback: {} (version {}) at {}: stage {stage}{took}",
        f.label,
        f.version_id.as_deref().unwrap_or("unknown"),
        e.time.as_deref().unwrap_or("?")
    );
    let j = json!({"time": e.time, "label": f.label, "stage": e.stage, "took_s": e.took_s});
    Some((line, j))
}
