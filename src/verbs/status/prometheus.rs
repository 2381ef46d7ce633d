//! `status --prometheus`: the exposition, to stdout or atomically into a
//! textfile-collector file.

use super::booted;
use crate::act::{flags, gate_state, metrics, record};
use crate::decide::ab;
use crate::disk::read_table;
use crate::exit::ExitCode;
use crate::probe::{self, Env};
use crate::safefs::SafeDir;
use crate::types::Roots;
use crate::verbs::{is_block, HostState};
use anyhow::{Context, Result};
use std::path::Path;

pub(super) fn prometheus(p: &Roots, file: Option<std::path::PathBuf>) -> Result<ExitCode> {
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
    let gate = host
        .boot_json
        .as_ref()
        .and_then(|_| gate_state::read(&env.run_dir));
    // the generator's reading of this boot's configuration (one line per error)
    let config_errors = host
        .boot_json
        .as_ref()
        .map_or(0, |_| gate_state::config_errors(&env.run_dir));
    let config_error =
        config_errors > 0 || host.run_has(&format!("{}/{}", flags::STATE_DIR, flags::CONFIG_ERROR));
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
        config_error,
        config_errors,
        gate_pending: gate.as_ref().is_some_and(|g| g["state"] == "pending"),
        gate_deadline: gate.as_ref().and_then(|g| g["deadline_unix"].as_u64()),
    });
    emit(&text, file.as_deref())?;
    Ok(ExitCode::Ok)
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
