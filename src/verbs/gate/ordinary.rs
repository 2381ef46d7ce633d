//! What the watcher does on an ordinary boot (remember which sysext images are merged,
//! report configuration errors), and the built-in check that compares the two on the
//! next first boot.

use super::outcome;
use crate::act::flags::SYSEXTS_MERGED;
use crate::act::record::{Event, Verdict};
use crate::decide::gate::CheckTrack;
use crate::probe::{checks, MachinePaths};
use crate::safefs::SafeDir;
use std::path::Path;

/// An ordinary boot: remember the merged sysexts, report configuration errors.
pub(super) fn boot(env: &MachinePaths, errors: &[String], merged: &[String]) {
    let (dir, name) = SYSEXTS_MERGED
        .rsplit_once('/')
        .unwrap_or(("", SYSEXTS_MERGED));
    let dir = SafeDir::open(&env.sysroot).and_then(|r| r.subpath(dir, true));
    if let Ok(dir) = dir {
        let text: String = merged.iter().map(|m| format!("{m}\n")).collect();
        if let Err(e) = dir.write_atomic(name, text.as_bytes()) {
            log::warn!("{SYSEXTS_MERGED}: {e:#}");
        }
    }
    if !errors.is_empty() {
        // not a first boot: the error is reported, protection of the next one stays on
        log::error!(
            "configuration errors (lines skipped): {}",
            errors.join("; ")
        );
        let mut r = outcome::record(env, Event::ConfigError, Verdict::Healthy, None);
        r.reasons
            .push("configuration lines skipped on an ordinary boot".into());
        r.config_errors = errors.to_vec();
        outcome::save(env, &r);
    }
}

/// The sysext images the last ordinary boot had merged.
pub(super) fn merged_before(env: &MachinePaths) -> Vec<String> {
    crate::safefs::read_text(
        &env.sysroot.join(SYSEXTS_MERGED),
        crate::safefs::cap::RECORD,
    )
    .map_err(|e| log::warn!("{e:#}"))
    .ok()
    .flatten()
    .map(|t| {
        t.lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}

/// The built-in sysext check (`t`): every image merged before the update is merged now.
pub(super) fn sysext_check(usr: &Path, before: &[String], t: Option<&mut CheckTrack>) {
    let Some(t) = t else { return };
    if t.passed == Some(true) {
        return;
    }
    let missing = checks::sysext_missing(before, &checks::sysexts(usr));
    t.runs = t.runs.saturating_add(1);
    t.passed = Some(missing.is_empty());
    t.what = match missing.is_empty() {
        true => "exit 0".into(),
        false => format!("not merged since the update: {}", missing.join(", ")),
    };
}
