//! The boot-attempt record (`/run/abguard/boot.json`) and its bounded history
//! (`<root>/var/lib/abguard/attempts.jsonl`, one JSON object per line).

use crate::decide::verity::Verity;
use crate::disk::gpt::Copy;
use crate::safefs::{SafeDir, Tail};
use crate::types::{Booted, Slot};
use anyhow::Result;
use serde::Serialize;
use std::path::Path;

pub const HISTORY_DIR: &str = "var/lib/abguard";
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

/// A slot change an operator (or a script) made with a verb, on a disk whose history
/// is known. Recorded as `manual-<verb>` with the attributes before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manual {
    Stage,
    MarkGood,
    Rollback,
    Next,
}

impl Manual {
    pub const ALL: [Manual; 4] = [
        Manual::Stage,
        Manual::MarkGood,
        Manual::Rollback,
        Manual::Next,
    ];

    pub fn event(self) -> &'static str {
        match self {
            Manual::Stage => "manual-stage",
            Manual::MarkGood => "manual-mark-good",
            Manual::Rollback => "manual-rollback",
            Manual::Next => "manual-next",
        }
    }

    pub fn from_event(event: &str) -> Option<Manual> {
        Manual::ALL.into_iter().find(|m| m.event() == event)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Record {
    pub schema: u32,
    /// "initrd", "gate-passed", "gate-failed", "marked-good", ...
    pub event: String,
    pub time: String,
    pub uptime_s: Option<f64>,
    pub boot_id: Option<String>,
    pub disk: Option<String>,
    pub table: Option<Copy>,
    pub booted: Option<Booted>,
    pub slots: Vec<Slot>,
    /// Manual events only: the attributes before the change (`slots` are after it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<Slot>,
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verity: Option<Verity>,
    pub first_boot_after_upgrade: Option<bool>,
    pub verdict: String,
    pub reasons: Vec<String>,
    pub actions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_units: Vec<String>,
    /// Configuration lines skipped (FILE:LINE: what).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config_errors: Vec<String>,
    /// The health gate's observations: units, window, checks with their output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<serde_json::Value>,
}

impl Record {
    pub fn new(event: &str, verdict: &str) -> Record {
        Record {
            schema: 1,
            event: event.to_string(),
            time: now_rfc3339(),
            uptime_s: read_trim(Path::new("/proc/uptime"))
                .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok())),
            boot_id: read_trim(Path::new("/proc/sys/kernel/random/boot_id")),
            disk: None,
            table: None,
            booted: None,
            slots: Vec::new(),
            before: Vec::new(),
            version_id: None,
            verity: None,
            first_boot_after_upgrade: None,
            verdict: verdict.to_string(),
            reasons: Vec::new(),
            actions: Vec::new(),
            failed_units: Vec::new(),
            config_errors: Vec::new(),
            gate: None,
        }
    }
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Append an event that is not counted in the totals (a verify or read-usr report).
pub fn append_history(root: &Path, event: &impl Serialize) -> Result<()> {
    append(root, event, None)
}

/// Record an event: one history line carrying the running totals after it.
pub fn log_event(root: &Path, r: &Record) -> Result<()> {
    append(root, r, Some(r))
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
    dir.append_line(HISTORY_FILE, &line)?;
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
        .read(COUNTERS_FILE)?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

/// The totals on the newest line of `name` that carries them: from its tail, or when
/// the tail has none (only torn or older lines there), from the whole file.
fn totals_in(dir: &SafeDir, name: &str, tail: Tail) -> Result<Option<Counters>> {
    #[derive(serde::Deserialize)]
    struct Totals {
        totals: Option<Counters>,
    }
    let newest = |text: &[u8]| {
        text.split(|&b| b == b'\n')
            .rev()
            .find_map(|l| serde_json::from_slice::<Totals>(l).ok()?.totals)
    };
    if let Some(c) = newest(&tail.bytes) {
        return Ok(Some(c));
    }
    if tail.whole {
        return Ok(None);
    }
    Ok(dir.read(name)?.as_deref().and_then(newest))
}

/// Totals over every event ever recorded, for fleet metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Boots assessed (in the initrd, or by the stock-image service).
    pub boots: u64,
    /// Of those, first boots after an upgrade.
    pub first_boots: u64,
    /// First boots after an upgrade that passed the health gate.
    pub gate_passed: u64,
    /// First boots after an upgrade that failed: dm-verity, a critical unit, the
    /// deadline, or the initrd itself.
    pub failed_first_boots: u64,
    /// Slots actually spent so GRUB falls back.
    pub rollbacks: u64,
}

impl Counters {
    fn count(&mut self, r: &Record) {
        let assessed = matches!(r.event.as_str(), "initrd" | "assess");
        if assessed {
            self.boots += 1;
            if r.first_boot_after_upgrade == Some(true) {
                self.first_boots += 1;
            }
        }
        if r.event == "gate-passed" {
            self.gate_passed += 1;
        }
        let failed = matches!(
            r.event.as_str(),
            "gate-failed" | "deadline" | "initrd-emergency"
        ) || (assessed && r.verdict == "rollback");
        if failed && r.first_boot_after_upgrade != Some(false) {
            self.failed_first_boots += 1;
        }
        // an operator's rollback sends the node back to the other build as surely as
        // the gate's: counted as a rollback, never as a failed first boot
        if r.actions.iter().any(|a| a.starts_with("spent "))
            || Manual::from_event(&r.event) == Some(Manual::Rollback)
        {
            self.rollbacks += 1;
        }
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
pub fn read_history(root: &Path) -> Vec<serde_json::Value> {
    let dir = root.join(HISTORY_DIR);
    let mut all: Vec<serde_json::Value> = [HISTORY_OLD, HISTORY_FILE]
        .iter()
        .flat_map(|f| {
            std::fs::read(dir.join(f))
                .unwrap_or_default()
                .split(|&b| b == b'\n')
                .filter_map(|l| serde_json::from_slice(l).ok())
                .collect::<Vec<_>>()
        })
        .collect();
    let excess = all.len().saturating_sub(HISTORY_MAX);
    all.drain(..excess);
    all
}

/// UTC time as RFC 3339, without a date-time crate (Howard Hinnant's civil_from_days).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_follow_events() {
        let t = tempfile::tempdir().unwrap();
        let ev = |event: &str, verdict: &str, first: bool, spent: bool| {
            let mut r = Record::new(event, verdict);
            r.first_boot_after_upgrade = Some(first);
            if spent {
                r.actions
                    .push("spent USR-B (partition 4): tries=0 successful=0".into());
            }
            log_event(t.path(), &r).unwrap();
        };
        ev("initrd", "healthy", false, false);
        ev("initrd", "needs-health-check", true, false);
        ev("gate-failed", "rollback", true, true);
        ev("initrd", "healthy", false, false);
        ev("initrd", "rollback", true, true);
        ev("initrd", "needs-health-check", true, false);
        ev("gate-passed", "healthy", true, false);
        let c = read_counters(t.path());
        assert_eq!(
            c,
            Counters {
                boots: 5,
                first_boots: 3,
                gate_passed: 1,
                failed_first_boots: 2,
                rollbacks: 2
            }
        );
        assert_eq!(read_history(t.path()).len(), 7);
    }

    #[test]
    fn totals_ride_in_the_history() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(HISTORY_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        // an older version's state: history lines without totals, totals in their own file
        std::fs::write(dir.join(HISTORY_FILE), "{\"event\":\"initrd\"}\n").unwrap();
        std::fs::write(dir.join(COUNTERS_FILE), r#"{"boots":7,"rollbacks":2}"#).unwrap();
        let boot = Record::new("initrd", "healthy");
        log_event(t.path(), &boot).unwrap();
        assert_eq!(
            (
                read_counters(t.path()).boots,
                read_counters(t.path()).rollbacks
            ),
            (8, 2)
        );
        assert!(
            !dir.join(COUNTERS_FILE).exists(),
            "the old file would only go stale"
        );
        // a report that is not counted carries the totals over
        append_history(t.path(), &serde_json::json!({ "event": "verify-failed" })).unwrap();
        assert_eq!(read_history(t.path()).last().unwrap()["totals"]["boots"], 8);
        // a torn last line: the totals are the line before's, and counting goes on
        let f = dir.join(HISTORY_FILE);
        let mut text = std::fs::read(&f).unwrap();
        text.extend_from_slice(br#"{"event":"initrd","totals":{"boots":99"#);
        std::fs::write(&f, text).unwrap();
        assert_eq!(read_counters(t.path()).boots, 8);
        // through several rotations: nothing lost, nothing counted twice
        for _ in 0..3 * HISTORY_MAX {
            log_event(t.path(), &boot).unwrap();
        }
        assert_eq!(read_counters(t.path()).boots, 8 + 3 * HISTORY_MAX as u64);
        // these lines are long enough that the file outgrows TAIL: rotation still counts them
        let lines = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .unwrap()
                .lines()
                .count()
        };
        assert!(std::fs::metadata(dir.join(HISTORY_OLD)).unwrap().len() > 2 * TAIL);
        assert_eq!(lines(HISTORY_OLD), HISTORY_MAX);
        assert!(lines(HISTORY_FILE) <= HISTORY_MAX);
        // more than TAIL bytes of junk after the last good line: the whole file is read
        let mut text = std::fs::read(&f).unwrap();
        text.extend(std::iter::repeat_n(b'x', 2 * TAIL as usize));
        std::fs::write(&f, text).unwrap();
        assert_eq!(read_counters(t.path()).boots, 8 + 3 * HISTORY_MAX as u64);
    }

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_689_296), "2026-11-26T10:34:56Z");
    }

    #[test]
    fn history_is_bounded_and_skips_junk() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(HISTORY_DIR);
        for i in 0..HISTORY_MAX + 7 {
            append_history(t.path(), &serde_json::json!({ "n": i })).unwrap();
        }
        let h = read_history(t.path());
        assert_eq!(h.len(), HISTORY_MAX);
        assert_eq!(h[0]["n"], 7);
        assert_eq!(h[HISTORY_MAX - 1]["n"], HISTORY_MAX + 6);
        // rotated once: the full file moved aside, the current one holds the rest
        let lines = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .unwrap()
                .lines()
                .count()
        };
        assert_eq!((lines(HISTORY_OLD), lines(HISTORY_FILE)), (HISTORY_MAX, 7));
        // never more than 2 × HISTORY_MAX lines on disk
        for i in 0..3 * HISTORY_MAX {
            append_history(t.path(), &serde_json::json!({ "m": i })).unwrap();
            assert!(lines(HISTORY_OLD) + lines(HISTORY_FILE) <= 2 * HISTORY_MAX);
        }
        let h = read_history(t.path());
        assert_eq!(h.len(), HISTORY_MAX);
        assert_eq!(h[HISTORY_MAX - 1]["m"], 3 * HISTORY_MAX - 1);
    }

    #[test]
    fn torn_append_costs_one_line_only() {
        let t = tempfile::tempdir().unwrap();
        append_history(t.path(), &serde_json::json!({ "n": 1 })).unwrap();
        // a power cut tore the second append: half a line, no newline
        let f = t.path().join(HISTORY_DIR).join(HISTORY_FILE);
        let mut text = std::fs::read(&f).unwrap();
        text.extend_from_slice(br#"{"n": 2, "verd"#);
        std::fs::write(&f, text).unwrap();
        append_history(t.path(), &serde_json::json!({ "n": 3 })).unwrap();
        let ns: Vec<_> = read_history(t.path())
            .iter()
            .map(|v| v["n"].clone())
            .collect();
        assert_eq!(ns, [1, 3]);
    }

    #[test]
    fn torn_multibyte_character_costs_one_line_only() {
        let t = tempfile::tempdir().unwrap();
        append_history(
            t.path(),
            &serde_json::json!({ "n": 1, "unit": "café.service" }),
        )
        .unwrap();
        // the tear falls between the two bytes of "é" (C3 A9): the file is not UTF-8
        let f = t.path().join(HISTORY_DIR).join(HISTORY_FILE);
        let mut text = std::fs::read(&f).unwrap();
        text.extend_from_slice(b"{\"n\": 2, \"unit\": \"caf\xc3");
        std::fs::write(&f, text).unwrap();
        let ns: Vec<_> = read_history(t.path())
            .iter()
            .map(|v| v["n"].clone())
            .collect();
        assert_eq!(ns, [1]);
    }

    #[test]
    fn history_through_a_symlink_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join(HISTORY_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = t.path().join("victim");
        std::fs::write(&victim, "keep\n").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(HISTORY_FILE)).unwrap();
        let e = append_history(t.path(), &serde_json::json!({ "n": 1 })).unwrap_err();
        assert!(format!("{e:#}").contains("symlink"), "{e:#}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
    }
}
