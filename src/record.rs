//! The boot-attempt record (`/run/abguard/boot.json`) and its bounded history
//! (`<root>/var/lib/abguard/attempts.jsonl`, one JSON object per line).

use crate::ab::Slot;
use crate::dm::Verity;
use crate::gpt::Copy;
use crate::safefs::SafeDir;
use anyhow::Result;
use serde::Serialize;
use std::path::Path;

pub const HISTORY_DIR: &str = "var/lib/abguard";
pub const HISTORY_FILE: &str = "attempts.jsonl";
/// Enough for months of weekly updates; old lines fall off the front.
pub const HISTORY_MAX: usize = 100;
/// Running totals kept beside the bounded history, so metrics stay monotonic when old
/// history lines fall off.
pub const COUNTERS_FILE: &str = "counters.json";

#[derive(Clone, Debug, Serialize)]
pub struct Booted {
    pub partition: u32,
    pub label: String,
    pub partuuid: String,
    /// "cmdline+sysfs" when both agreed, else the one source that was available.
    pub source: String,
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
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verity: Option<Verity>,
    pub first_boot_after_upgrade: Option<bool>,
    pub verdict: String,
    pub reasons: Vec<String>,
    pub actions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_units: Vec<String>,
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
            version_id: None,
            verity: None,
            first_boot_after_upgrade: None,
            verdict: verdict.to_string(),
            reasons: Vec::new(),
            actions: Vec::new(),
            failed_units: Vec::new(),
        }
    }
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Append `record` to the history under `root`, keeping the newest HISTORY_MAX lines.
/// The whole file is rewritten atomically: an append that a power cut tears would
/// leave a line every later reader has to skip.
pub fn append_history(root: &Path, record: &impl Serialize) -> Result<()> {
    let dir = SafeDir::open(root)?.subpath(HISTORY_DIR, true)?;
    let old = dir.read(HISTORY_FILE)?.unwrap_or_default();
    // Bytes, not text: lines are carried over verbatim, never re-decoded. Only the
    // oldest lines beyond the bound are cut, so only they are scanned for.
    let lines = memchr::memchr_iter(b'\n', &old).count()
        + usize::from(old.last().is_some_and(|&b| b != b'\n'));
    let excess = (lines + 1).saturating_sub(HISTORY_MAX);
    let cut = match excess {
        0 => 0,
        n => memchr::memchr_iter(b'\n', &old)
            .nth(n - 1)
            .map_or(old.len(), |i| i + 1),
    };
    let mut out = Vec::with_capacity(old.len() + 2048);
    out.extend_from_slice(&old[cut..]);
    if out.last().is_some_and(|&b| b != b'\n') {
        out.push(b'\n');
    }
    serde_json::to_writer(&mut out, record)?;
    out.push(b'\n');
    dir.write_atomic(HISTORY_FILE, &out)
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
        if r.actions.iter().any(|a| a.starts_with("spent ")) {
            self.rollbacks += 1;
        }
    }
}

pub fn read_counters(root: &Path) -> Counters {
    std::fs::read(root.join(HISTORY_DIR).join(COUNTERS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Record an event: one history line, and the running totals.
pub fn log_event(root: &Path, r: &Record) -> Result<()> {
    append_history(root, r)?;
    let dir = SafeDir::open(root)?.subpath(HISTORY_DIR, true)?;
    let mut c = read_counters(root);
    c.count(r);
    dir.write_atomic(COUNTERS_FILE, &serde_json::to_vec(&c)?)
}

/// History entries under `root`, oldest first; lines that are not JSON are skipped.
pub fn read_history(root: &Path) -> Vec<serde_json::Value> {
    let path = root.join(HISTORY_DIR).join(HISTORY_FILE);
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
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
    fn time_format() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_689_296), "2026-11-26T10:34:56Z");
    }

    #[test]
    fn history_is_bounded_and_skips_junk() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..HISTORY_MAX + 7 {
            append_history(t.path(), &serde_json::json!({ "n": i })).unwrap();
        }
        let h = read_history(t.path());
        assert_eq!(h.len(), HISTORY_MAX);
        assert_eq!(h[0]["n"], 7);
        assert_eq!(h[HISTORY_MAX - 1]["n"], HISTORY_MAX + 6);
        let f = t.path().join(HISTORY_DIR).join(HISTORY_FILE);
        let mut text = std::fs::read_to_string(&f).unwrap();
        text.push_str("{torn line\n");
        std::fs::write(&f, text).unwrap();
        assert_eq!(read_history(t.path()).len(), HISTORY_MAX);
    }
}
