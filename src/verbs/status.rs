//! `abguard status`: the USR slots, the next boot, the booted slot, the last
//! assessment and the history, as text, JSON or Prometheus exposition.

use super::{booted_slot, print_json, HostState};
use crate::act::{gate_state, metrics, record};
use crate::decide::ab;
use crate::disk::{gpt::Table, read_table};
use crate::exit::{ExitCode, VerbResult};
use crate::probe::{self, Env};
use crate::safefs::SafeDir;
use crate::types::{Roots, Slot};
use anyhow::{Context, Result};
use serde_json::json;
use std::path::Path;

/// Which slot booted (see [`super::booted_slot`]), or why that cannot be told.
fn booted(env: &Env, disk: &Path, table: &Table) -> (Option<usize>, Vec<String>) {
    match booted_slot(env, disk, table) {
        Ok(id) => (Some(id.index), id.notes),
        Err(why) => (None, why),
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
    // the health gate's own account of a pending first boot (verbs/gate/watch.rs)
    let gate = host
        .boot_json
        .as_ref()
        .and_then(|_| gate_state::read(&env.run_dir));
    let hist = host.history();
    let hist = &hist[hist.len().saturating_sub(history)..];
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
            "gate": gate,
            "history": hist,
        }));
        return Ok(ExitCode::Ok);
    }
    print_slots(&path, &table, &slots, &problems, next, booted);
    if let Some(t) = gate.as_ref().and_then(gate_state::explain) {
        println!("{t}");
    }
    if let Some(l) = &last {
        print_last(l);
    }
    print_history(hist);
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
    let newest = hist
        .iter()
        .rev()
        .find(|h| {
            h["event"]
                .as_str()
                .and_then(record::Manual::from_event)
                .is_none()
        })
        .or(last.as_ref());
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
            (super::is_block(&path) || env.explicit)
                .then(|| probe::version_id(&env.usr_candidates))
                .flatten()
        });
    let counters = host
        .history
        .as_deref()
        .map(record::read_counters)
        .unwrap_or_default();
    let gate = host
        .boot_json
        .as_ref()
        .and_then(|_| gate_state::read(&env.run_dir));
    // the generator's reading of this boot's configuration (one line per error)
    let config_errors = host
        .boot_json
        .as_ref()
        .map_or(0, |_| gate_state::config_errors(&env.run_dir));
    let text = metrics::render(&metrics::Snapshot {
        table: table.used,
        problems: table.problems.len() + usize::from(slots.is_empty()),
        slots: &slots,
        next_boot: ab::next_boot(&slots),
        booted,
        version_id: version.as_deref(),
        last_verdict: newest.and_then(|l| l["verdict"].as_str()),
        last_assessment_time: last_time,
        counters: &counters,
        gate_pending: gate.as_ref().is_some_and(|g| g["state"] == "pending"),
        gate_deadline: gate.as_ref().and_then(|g| g["deadline_unix"].as_u64()),
        config_errors,
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
fn print_last(l: &serde_json::Value) {
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

/// The newest history entries, one a line; a failed verification with its details.
fn print_history(hist: &[serde_json::Value]) {
    if hist.is_empty() {
        return;
    }
    println!("history:");
    for h in hist {
        println!(
            "  {} {:<12} {:<6} {:<10} {}",
            h["time"].as_str().unwrap_or("?"),
            h["event"].as_str().unwrap_or("?"),
            h["booted"]["label"].as_str().unwrap_or("-"),
            h["version_id"].as_str().unwrap_or("-"),
            h["verdict"].as_str().unwrap_or("?"),
        );
        // a slot that failed verification: which block, and what was done about it
        if matches!(
            h["event"].as_str(),
            Some("verify-failed" | "read-usr-failed")
        ) {
            for line in ["reasons", "actions"]
                .iter()
                .filter_map(|k| h[*k].as_array())
                .flatten()
                .filter_map(|v| v.as_str())
            {
                println!("      {line}");
            }
        }
    }
}
