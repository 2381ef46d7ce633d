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
use crate::act::gate_state::{self, GateState};
use crate::act::{flags, record, steer};
use crate::cli::args::StatusArgs;
use crate::decide::ab;
use crate::disk::{gpt::Table, read_table};
use crate::exit::{ExitCode, VerbResult};
use crate::probe::{self, MachinePaths};
use crate::types::Slot;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// What both reports start from: the disk and its slots, which one booted, where the
/// host's state is, this boot's record and the health gate's snapshot.
struct Seen {
    env: MachinePaths,
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
    let p = a.paths.overrides();
    let env = MachinePaths::new(&p, false);
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

/// `status`: the answers and details as text, one line (`--short`) or JSON; or the
/// Prometheus exposition (to stdout or a textfile). Exit 5 when something is degraded.
pub fn run(a: &StatusArgs) -> VerbResult {
    let s = look(a)?;
    if a.prometheus {
        prometheus::prometheus(&s, a.textfile.as_deref())?;
        return Ok(ExitCode::Ok);
    }
    let f = gather(s);
    if a.json {
        render::json(&f, a.history);
    } else if a.short {
        println!("{}", answers::short(&f));
    } else {
        render::text(&f, a.history);
    }
    Ok(if f.degraded.is_empty() {
        ExitCode::Ok
    } else {
        ExitCode::Degraded
    })
}

/// The health gate on this boot, from the /run flags and the history (gate.json alone
/// may be one snapshot behind: the watcher can rewrite it after an operator decided).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum GateNow {
    /// Not a first boot after an upgrade, or nothing known of /run.
    None,
    Pending(Option<GateState>),
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
    pub last: Option<record::Entry>,
    pub source: Option<crate::act::metrics::Source>,
    pub gate: GateNow,
    pub history: Vec<record::Entry>,
    pub held: Vec<crate::decide::loopguard::Held>,
    pub disabled: Option<steer::Disabled>,
    pub mark_good: bool,
    pub degraded: Vec<String>,
}

fn gather(s: Seen) -> Facts {
    let Seen {
        env,
        path,
        table,
        slots,
        booted,
        booted_notes,
        host,
        last,
        gate: _,
    } = s;
    let next = ab::next_boot(&slots);
    let live = super::is_block(&path) || env.explicit;
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
        .and_then(|l| l.version_id.clone())
        .or_else(|| {
            live.then(|| probe::version_id(&env.usr_candidates))
                .flatten()
        });
    let versions = answers::versions(&slots, booted, running_version, &hashes, &history);
    let held_slot = held_slots(&slots, &held, &hashes, &versions);
    Facts {
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
    }
}

/// Per slot: the loop guard holds its build (by root hash, or by version where the
/// kernel's hash is unknown). A good slot is never held.
fn held_slots(
    slots: &[Slot],
    held: &[crate::decide::loopguard::Held],
    hashes: &[Option<String>],
    versions: &[Option<String>],
) -> Vec<bool> {
    slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            !s.attrs.successful
                && held.iter().any(|h| match &hashes[i] {
                    Some(hash) => h.root_hash.eq_ignore_ascii_case(hash),
                    None => h.version_id.is_some() && h.version_id == versions[i],
                })
        })
        .collect()
}

/// The gate on this boot. A decision is the newest gate event after this boot's
/// assessment in the history (and of the same boot, where both name it).
fn gate_now(
    run: Option<&Path>,
    last: Option<&record::Entry>,
    history: &[record::Entry],
) -> GateNow {
    use record::Event as E;
    let Some(run) = run else {
        return GateNow::None;
    };
    if steer::gate_pending(run) {
        return GateNow::Pending(gate_state::read(run).and_then(Result::ok));
    }
    let state = run.join(flags::STATE_DIR);
    let verdict = state.join(flags::GATE_VERDICT).exists();
    let healthy = run.join(flags::HEALTHY_FLAG).exists();
    let first = last.is_some_and(|l| l.first_boot_after_upgrade == Some(true));
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
