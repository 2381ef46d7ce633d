//! `abguard status`: first the three answers (what runs, what the next reboot does and
//! why, why the last first boot failed), then the slots, the health gate, the held
//! builds and the history; as text, one line (`--short`), JSON or Prometheus exposition.
//! Exit 5 when it found something degraded.

/// The three answers, from the facts gathered here.
mod answers;
/// `--prometheus`.
mod prometheus;
/// Text and JSON.
mod render;

use super::{booted_slot, HostState};
use crate::act::{flags, gate_state, record, steer};
use crate::decide::ab;
use crate::disk::{gpt::Table, read_table};
use crate::exit::{ExitCode, VerbResult};
use crate::probe::{self, Env};
use crate::types::{Roots, Slot};
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
        short: bool,
        history: usize,
    },
    /// Prometheus exposition, to stdout or atomically into a textfile-collector file.
    Prometheus(Option<std::path::PathBuf>),
}

/// The health gate on this boot, from the /run flags and the history (gate.json alone
/// may be one snapshot behind: the watcher can rewrite it after an operator decided).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum GateNow {
    /// Not a first boot after an upgrade, or nothing known of /run.
    None,
    Pending(Option<serde_json::Value>),
    /// Decided, by this history entry.
    Decided(Box<record::Entry>),
    /// Decided (the verdict is taken, or the healthy flag written), not yet recorded.
    Unrecorded {
        healthy: bool,
    },
}

/// Everything status knows, gathered once for every output.
pub(crate) struct Facts {
    pub disk: String,
    pub table: Table,
    pub slots: Vec<Slot>,
    pub next: Option<usize>,
    pub booted: Option<usize>,
    pub booted_notes: Vec<String>,
    /// Per slot: VERSION_ID where known (the running /usr's, or the history's for the
    /// build now in the slot).
    pub versions: Vec<Option<String>>,
    /// Per slot: the loop guard holds its build.
    pub held_slot: Vec<bool>,
    pub last: Option<serde_json::Value>,
    pub source: Option<crate::act::metrics::Source>,
    pub gate: GateNow,
    pub history: Vec<record::Entry>,
    pub held: Vec<crate::decide::loopguard::Held>,
    pub disabled: Option<steer::Disabled>,
    pub mark_good: bool,
    pub degraded: Vec<String>,
}

pub fn status(p: &Roots, out: Output) -> VerbResult {
    let (json, short, history) = match out {
        Output::Text {
            json,
            short,
            history,
        } => (json, short, history),
        Output::Prometheus(file) => return Ok(prometheus::prometheus(p, file)?),
    };
    let f = gather(p)?;
    if json {
        render::json(&f, history);
    } else if short {
        println!("{}", answers::short(&f));
    } else {
        render::text(&f, history);
    }
    Ok(if f.degraded.is_empty() {
        ExitCode::Ok
    } else {
        ExitCode::Degraded
    })
}

fn gather(p: &Roots) -> anyhow::Result<Facts> {
    let env = Env::new(p, false);
    let path = env.disk_path()?;
    let (_, table) = read_table(&path, false)?;
    let slots = table.slots();
    let next = ab::next_boot(&slots);
    let (booted, booted_notes) = booted(&env, &path, &table);
    let host = HostState::of(&env, p, &path);
    let live = super::is_block(&path) || env.explicit;
    let last = host.last_assessment();
    let history = host.history();
    let held = host.held();
    let run = host.run_dir();
    let gate = gate_now(run.as_deref(), last.as_ref(), &history);
    let mut degraded = table.problems.clone();
    if slots.is_empty() {
        degraded.push(ab::Refusal::NoUsrPartition.to_string());
    } else if next.is_none() {
        degraded.push(
            "no USR partition qualifies for booting: GRUB would stop with \"no such partition\""
                .into(),
        );
    }
    if let Some(run) = &run {
        let n = gate_state::config_errors(run);
        if n > 0 || host.run_has(&format!("{}/{}", flags::STATE_DIR, flags::CONFIG_ERROR)) {
            degraded.push(format!(
                "configuration errors on this boot ({n} lines skipped): `abguard config --check`"
            ));
        }
    }
    if live && booted.is_none() && !slots.is_empty() {
        degraded.push(format!(
            "cannot tell which slot booted: {}",
            booted_notes.join("; ")
        ));
    }
    let root = host.history.clone();
    let hashes: Vec<Option<String>> = slots
        .iter()
        .map(|s| {
            let r = root.as_deref()?;
            super::staged_hash(r, s).ok()
        })
        .collect();
    let running_version = last
        .as_ref()
        .and_then(|l| l["version_id"].as_str().map(str::to_string))
        .or_else(|| {
            live.then(|| probe::version_id(&env.usr_candidates))
                .flatten()
        });
    let versions = answers::versions(&slots, booted, running_version, &hashes, &history);
    let held_slot = slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            !s.attrs.successful
                && held.iter().any(|h| match &hashes[i] {
                    Some(hash) => h.root_hash.eq_ignore_ascii_case(hash),
                    None => h.version_id.is_some() && h.version_id == versions[i],
                })
        })
        .collect();
    Ok(Facts {
        disk: path.display().to_string(),
        source: host.source(last.as_ref()),
        disabled: root.as_deref().and_then(steer::disabled),
        mark_good: root
            .as_deref()
            .is_some_and(|r| crate::config::Config::load(r).mark_good),
        table,
        slots,
        next,
        booted,
        booted_notes,
        versions,
        held_slot,
        last,
        gate,
        history,
        held,
        degraded,
    })
}

/// The gate on this boot. A decision is the newest gate event after this boot's
/// assessment in the history (and of the same boot, where both name it).
fn gate_now(
    run: Option<&Path>,
    last: Option<&serde_json::Value>,
    history: &[record::Entry],
) -> GateNow {
    use record::Event as E;
    let Some(run) = run else {
        return GateNow::None;
    };
    if steer::gate_pending(run) {
        return GateNow::Pending(gate_state::read(run));
    }
    let state = run.join(flags::STATE_DIR);
    let verdict = state.join(flags::GATE_VERDICT).exists();
    let healthy = run.join(flags::HEALTHY_FLAG).exists();
    let first = last.is_some_and(|v| v["first_boot_after_upgrade"] == true);
    if !verdict && !first {
        return GateNow::None;
    }
    let since = history
        .iter()
        .rposition(|e| e.event.is_assessment())
        .map_or(0, |i| i + 1);
    let this_boot = history[..since].last().and_then(|e| e.boot_id.clone());
    let decided = history[since..].iter().rev().find(|e| {
        matches!(
            e.event,
            E::GatePassed | E::ManualPassGate | E::GateFailed | E::Deadline
        ) && (this_boot.is_none() || e.boot_id.is_none() || e.boot_id == this_boot)
    });
    match decided {
        Some(e) => GateNow::Decided(Box::new(e.clone())),
        None if verdict || healthy => GateNow::Unrecorded { healthy },
        None => GateNow::None,
    }
}
