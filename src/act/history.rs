//! The bounded history on ROOT: one O_APPEND line per event, each carrying the running
//! totals after it, and the totals computed from the typed events.

use crate::act::record::{Entry, Event, Manual, Record, Verdict};
use crate::safefs::{SafeDir, Tail};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;

pub const HISTORY_DIR: &str = crate::act::flags::ROOT_STATE_DIR;
pub const HISTORY_FILE: &str = "attempts.jsonl";
/// The previous HISTORY_MAX lines, once the current file filled up.
pub const HISTORY_OLD: &str = "attempts.jsonl.1";
/// Enough for months of weekly updates; old lines fall off the front.
pub const HISTORY_MAX: usize = 100;
/// Where versions before the totals moved into the history lines kept them; read once
/// when no line carries totals yet, removed after the next append.
pub const COUNTERS_FILE: &str = "counters.json";
/// The newest totals are on one of the last few lines; this much of the file's end is
/// read first.
const TAIL: u64 = 16 * 1024;
/// Versions whose failures are counted by name: the newest few, so the metrics'
/// `version_id` label stays bounded however many updates a node sees.
pub const VERSIONS_KEPT: usize = 5;

/// Append a report verb's event (`verify`, `read-usr`), not counted in the totals: the
/// record's fields and the verb's report under `key`.
pub fn append_report(root: &Path, r: &Record, key: &str, report: &impl Serialize) -> Result<()> {
    #[derive(Serialize)]
    struct WithReport<'a, R> {
        #[serde(flatten)]
        record: &'a Record,
        #[serde(flatten)]
        report: std::collections::BTreeMap<&'a str, &'a R>,
    }
    let line = WithReport {
        record: r,
        report: [(key, report)].into(),
    };
    append_history(root, &line)
}

/// Append an event that is not counted in the totals.
fn append_history(root: &Path, event: &impl Serialize) -> Result<()> {
    append(root, event, None)
}

/// Record a counted event: one history line carrying the running totals after it (and,
/// for a failed first boot, the build the loop guard holds).
pub fn record_event(root: &Path, r: &Record) -> Result<()> {
    append(root, r, Some(r))?;
    // a first boot that failed: remember the build so it is not staged again
    let failed = crate::decide::loopguard::Failure {
        event: &r.event,
        verdict: &r.verdict,
        first_boot_after_upgrade: r.first_boot_after_upgrade,
        failed: r.failed.as_ref(),
        booted: r.booted_build(),
    };
    if let Some(build) = crate::decide::loopguard::to_hold(failed) {
        crate::act::held::hold(root, &build, &r.event, &r.time)
            .context("remembering the failed build for the loop guard")?;
    }
    Ok(())
}

/// One history line: the event's fields, and the running totals after it. Carried in
/// the line itself, the totals cannot disagree with the history after a power cut, and
/// an event costs one durable write.
#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    #[serde(flatten)]
    event: &'a T,
    totals: &'a Counters,
}

/// One O_APPEND write and an fdatasync, never a rewrite, so a power cut can at worst
/// tear the last line (readers skip it, the next append starts on a fresh line).
/// Bounded by rotation: once the file holds HISTORY_MAX lines it becomes
/// attempts.jsonl.1, replacing the one before, so the newest HISTORY_MAX lines are
/// always on disk and never more than twice that.
fn append(root: &Path, event: &impl Serialize, counted: Option<&Record>) -> Result<()> {
    let dir = SafeDir::open(root)?.subpath(HISTORY_DIR, true)?;
    let current = dir.tail(HISTORY_FILE, TAIL)?;
    let full = current.as_ref().is_some_and(|t| t.lines >= HISTORY_MAX);
    let mut totals = last_totals(&dir, current)?;
    if let Some(r) = counted {
        totals.count(r);
    }
    let mut line = Vec::with_capacity(2048);
    serde_json::to_writer(
        &mut line,
        &Line {
            event,
            totals: &totals,
        },
    )?;
    line.push(b'\n');
    if full {
        dir.rename(HISTORY_FILE, HISTORY_OLD)?;
    }
    // check output and reasons are in every line: root only (docs/security.md)
    dir.append_line(HISTORY_FILE, &line, crate::act::flags::PRIVATE_MODE)?;
    // the event is recorded; the old totals file is only tidied away
    if let Err(e) = dir.remove(COUNTERS_FILE) {
        log::debug!("{e:#}");
    }
    Ok(())
}

/// The totals on the newest history line that carries them (`current` is the end of
/// the current file, already read by the caller); else the file earlier versions kept
/// them in; else zero.
fn last_totals(dir: &SafeDir, current: Option<Tail>) -> Result<Counters> {
    if let Some(c) = current
        .map(|t| totals_in(dir, HISTORY_FILE, t))
        .transpose()?
        .flatten()
    {
        return Ok(c);
    }
    if let Some(t) = dir.tail(HISTORY_OLD, TAIL)? {
        if let Some(c) = totals_in(dir, HISTORY_OLD, t)? {
            return Ok(c);
        }
    }
    Ok(dir
        .read(COUNTERS_FILE, crate::safefs::cap::RECORD)?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .map(|v: serde_json::Value| Counters::from_value(&v))
        .unwrap_or_default())
}

/// The totals on the newest line of `name` that carries them: from its tail, or when
/// the tail has none (only torn or older lines there), from the whole file.
fn totals_in(dir: &SafeDir, name: &str, tail: Tail) -> Result<Option<Counters>> {
    let newest = |text: &[u8]| {
        text.split(|&b| b == b'\n').rev().find_map(|l| {
            let v: serde_json::Value = serde_json::from_slice(l).ok()?;
            v.get("totals")
                .filter(|t| t.is_object())
                .map(Counters::from_value)
        })
    };
    if let Some(c) = newest(&tail.bytes) {
        return Ok(Some(c));
    }
    if tail.whole {
        return Ok(None);
    }
    Ok(dir
        .read(name, crate::safefs::cap::HISTORY)?
        .as_deref()
        .and_then(newest))
}

/// Totals over every event ever recorded, for fleet metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Boots assessed (in the initrd, or by the stock-image service).
    pub boots: u64,
    /// Of those, first boots after an upgrade.
    pub first_boots: u64,
    /// First boots after an upgrade that passed the health gate.
    pub gate_passed: u64,
    /// First boots after an upgrade that failed: dm-verity, a critical unit, the
    /// deadline, the initrd itself, or a fallback GRUB made with no verdict reached.
    pub failed_first_boots: u64,
    /// Times the node went back to the other build: a slot spent so GRUB falls back,
    /// a fallback GRUB made on its own, an operator's rollback.
    pub rollbacks: u64,
    /// Of the failed first boots, those no verdict was reached for (GRUB fell back).
    pub fallbacks: u64,
    /// The fallbacks by the stage the attempt reached (decide::stage::Stage); those
    /// recorded before stages were named are not in it.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub fallback_stages: std::collections::BTreeMap<String, u64>,
    /// Staged builds the loop guard un-staged.
    pub restages_refused: u64,
    /// Failed first boots by version, the newest VERSIONS_KEPT versions (oldest first).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<VersionFailures>,
}

/// One version's failed first boots, by cause (`fallback`, `gate-failed`, `deadline`,
/// `initrd`, `initrd-emergency`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VersionFailures {
    pub version_id: String,
    pub failures: std::collections::BTreeMap<String, u64>,
}

impl Counters {
    /// Read back from a history line's `totals` (or the old counters file), by hand:
    /// a missing field is 0, an older version's line reads.
    pub fn from_value(v: &serde_json::Value) -> Counters {
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let versions = v
            .get("versions")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|x| {
                Some(VersionFailures {
                    version_id: x.get("version_id")?.as_str()?.to_string(),
                    failures: x
                        .get("failures")?
                        .as_object()?
                        .iter()
                        .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                        .collect(),
                })
            })
            .collect();
        Counters {
            boots: n("boots"),
            first_boots: n("first_boots"),
            gate_passed: n("gate_passed"),
            failed_first_boots: n("failed_first_boots"),
            rollbacks: n("rollbacks"),
            fallbacks: n("fallbacks"),
            fallback_stages: (v
                .get("fallback_stages")
                .and_then(serde_json::Value::as_object))
            .into_iter()
            .flatten()
            .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
            .collect(),
            restages_refused: n("restages_refused"),
            versions,
        }
    }

    fn count(&mut self, r: &Record) {
        let assessed = r.event.is_assessment();
        if assessed {
            self.boots = self.boots.saturating_add(1);
            if r.first_boot_after_upgrade == Some(true) {
                self.first_boots = self.first_boots.saturating_add(1);
            }
        }
        if r.event == Event::GatePassed {
            self.gate_passed = self.gate_passed.saturating_add(1);
        }
        let failed =
            r.event.is_first_boot_failure() || (assessed && r.verdict == Verdict::Rollback);
        if failed && r.first_boot_after_upgrade != Some(false) {
            self.failed_first_boots = self.failed_first_boots.saturating_add(1);
            let version = match &r.failed {
                Some(b) => b.version_id.as_deref(),
                None => r.version_id.as_deref(),
            };
            let cause = if assessed { "initrd" } else { r.event.as_str() };
            self.count_version(version.unwrap_or("unknown"), cause);
        }
        // an operator's rollback sends the node back to the other build as surely as
        // the gate's: counted as a rollback, never as a failed first boot
        if r.actions.iter().any(|a| a.is_spent())
            || Manual::from_event(&r.event) == Some(Manual::Rollback)
            || r.event == Event::Fallback
        {
            self.rollbacks = self.rollbacks.saturating_add(1);
        }
        if r.event == Event::Fallback {
            self.fallbacks = self.fallbacks.saturating_add(1);
            if let Some(s) = &r.stage {
                let n = self.fallback_stages.entry(s.clone()).or_default();
                *n = n.saturating_add(1);
            }
        }
        if r.event == Event::RestageRefused {
            self.restages_refused = self.restages_refused.saturating_add(1);
        }
    }

    fn count_version(&mut self, version: &str, cause: &str) {
        let at = match self.versions.iter().position(|v| v.version_id == version) {
            Some(i) => i,
            None => {
                self.versions.push(VersionFailures {
                    version_id: version.to_string(),
                    ..VersionFailures::default()
                });
                self.versions.len() - 1
            }
        };
        // the version failing now moves to the newest end; the oldest falls off
        let mut v = self.versions.remove(at);
        let n = v.failures.entry(cause.to_string()).or_default();
        *n = n.saturating_add(1);
        self.versions.push(v);
        let excess = self.versions.len().saturating_sub(VERSIONS_KEPT);
        self.versions.drain(..excess);
    }
}

/// The running totals under `root` (zero when there is no history yet).
pub fn read_counters(root: &Path) -> Counters {
    SafeDir::open(&root.join(HISTORY_DIR))
        .and_then(|d| {
            let current = d.tail(HISTORY_FILE, TAIL)?;
            last_totals(&d, current)
        })
        .unwrap_or_default()
}

/// The newest HISTORY_MAX history entries under `root`, oldest first; lines that are
/// not JSON (a torn append) are skipped. Split as bytes: a tear inside a multi-byte
/// character must cost that line only, not the whole file.
pub fn read_history(root: &Path) -> Vec<Entry> {
    let dir = root.join(HISTORY_DIR);
    let mut all: Vec<Entry> = [HISTORY_OLD, HISTORY_FILE]
        .iter()
        .flat_map(|f| {
            crate::safefs::read_bounded(&dir.join(f), crate::safefs::cap::HISTORY)
                .unwrap_or_else(|e| {
                    log::warn!("{e:#}");
                    None
                })
                .unwrap_or_default()
                .split(|&b| b == b'\n')
                .filter_map(|l| serde_json::from_slice(l).ok())
                .map(Entry::from_value)
                .collect::<Vec<_>>()
        })
        .collect();
    let excess = all.len().saturating_sub(HISTORY_MAX);
    all.drain(..excess);
    all
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
