//! `status --prometheus`: the exposition, to stdout or atomically into a
//! textfile-collector file.

use super::Seen;
use crate::act::gate_state;
use crate::act::{flags, metrics, record};
use crate::decide::ab;
use crate::probe;
use crate::safefs::SafeDir;
use crate::verbs::is_block;
use anyhow::{Context, Result};
use std::path::Path;

pub(super) fn prometheus(s: &Seen, file: Option<&Path>) -> Result<()> {
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
        checks_refused: s.gate.as_ref().map_or(0, gate_state::checks_refused),
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
