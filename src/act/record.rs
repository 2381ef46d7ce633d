//! The boot-attempt record (`/run/abguard/boot.json`) and the lines of its bounded
//! history (`<root>/var/lib/abguard/attempts.jsonl`, one JSON object per line), as
//! types: written from [`Record`], read back as [`Entry`].

use crate::decide::verity::Verity;
use crate::disk::gpt::GptCopy;
pub use crate::types::event::{Action, Event, Verdict};
pub use crate::types::history::{Build, Entry};
pub use crate::types::Booted;
use crate::types::Slot;
use serde::Serialize;
use std::path::Path;

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

    pub fn event(self) -> Event {
        match self {
            Manual::Stage => Event::ManualStage,
            Manual::MarkGood => Event::ManualMarkGood,
            Manual::Rollback => Event::ManualRollback,
            Manual::Next => Event::ManualNext,
        }
    }

    pub fn from_event(event: &Event) -> Option<Manual> {
        Manual::ALL.into_iter().find(|m| &m.event() == event)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Record {
    pub schema: u32,
    pub event: Event,
    pub time: String,
    pub uptime_s: Option<f64>,
    pub boot_id: Option<String>,
    pub disk: Option<String>,
    pub table: Option<GptCopy>,
    pub booted: Option<Booted>,
    pub slots: Vec<Slot>,
    /// Manual events only: the attributes before the change (`slots` are after it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<Slot>,
    pub version_id: Option<String>,
    /// The booted build's dm-verity root hash as GRUB passed it (`verity.usrhash=`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verity: Option<Verity>,
    pub first_boot_after_upgrade: Option<bool>,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    pub actions: Vec<Action>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_units: Vec<String>,
    /// Configuration lines skipped (FILE:LINE: what).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config_errors: Vec<String>,
    /// The health gate's observations: units, window, checks with their output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<serde_json::Value>,
    /// `fallback` and `restage-refused`: the build that failed (was refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<Build>,
    /// `fallback`: the stage the attempt reached and why it ended
    /// (decide::stage::Stage), and the seconds from its kernel start to this boot's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_s: Option<u64>,
}

impl Record {
    /// A record of `event`, stamped with the running system's uptime and boot ID from
    /// `proc` (the probe's `--proc`, /proc on a live system).
    pub fn at(proc: &Path, event: Event, verdict: Verdict) -> Record {
        let mut r = Record::new(event, verdict);
        r.uptime_s =
            read_trim(&proc.join("uptime")).and_then(|s| uptime(s.split_whitespace().next()?));
        r.boot_id = read_trim(&proc.join("sys/kernel/random/boot_id"));
        r
    }

    /// A record with no host stamp (tests, and records derived from another one).
    pub fn new(event: Event, verdict: Verdict) -> Record {
        Record {
            schema: 1,
            event,
            time: now_rfc3339(),
            uptime_s: None,
            boot_id: None,
            disk: None,
            table: None,
            booted: None,
            slots: Vec::new(),
            before: Vec::new(),
            version_id: None,
            root_hash: None,
            verity: None,
            first_boot_after_upgrade: None,
            verdict,
            reasons: Vec::new(),
            actions: Vec::new(),
            failed_units: Vec::new(),
            config_errors: Vec::new(),
            gate: None,
            failed: None,
            stage: None,
            took_s: None,
        }
    }

    /// The identity of the booted build: its root hash (as GRUB passed it, else as
    /// dm-verity has it) and version.
    pub fn booted_build(&self) -> Option<Build> {
        let b = self.booted.as_ref()?;
        let verity = self.verity.as_ref();
        Some(Build {
            label: b.label.clone(),
            partition: b.partition,
            partuuid: b.partuuid.clone(),
            version_id: self.version_id.clone(),
            root_hash: self
                .root_hash
                .clone()
                .or_else(|| verity.and_then(|v| v.expected_hash.clone()))
                .or_else(|| verity.and_then(|v| v.root_hash.clone())),
            tried_at: Some(self.time.clone()),
        })
    }
}

/// `/proc/uptime`'s first field ("12345.67"), without the float parser (dec2flt's
/// tables cost the static binary 12 KB for this one number).
fn uptime(s: &str) -> Option<f64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, "0"));
    let whole: u64 = whole.parse().ok()?;
    let digits = frac.len().min(6);
    let frac: u64 = frac.get(..digits)?.parse().ok()?;
    Some(whole as f64 + frac as f64 / 10f64.powi(digits as i32))
}

fn read_trim(p: &Path) -> Option<String> {
    crate::safefs::read_text(p, crate::safefs::cap::SMALL)
        .ok()
        .flatten()
        .map(|s| s.trim().to_string())
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
    fn time_format() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_689_296), "2026-11-26T10:34:56Z");
    }

    #[test]
    fn uptime_as_proc_writes_it() {
        assert_eq!(uptime("12345.67"), Some(12345.67));
        assert_eq!(uptime("3.5"), Some(3.5));
        assert_eq!(uptime("7"), Some(7.0));
        assert_eq!(uptime("x.1"), None);
    }
}
