//! The boot-attempt record (`/run/abguard/boot.json`) and the lines of its bounded
//! history (`<root>/var/lib/abguard/attempts.jsonl`, one JSON object per line), as
//! types: written from [`Record`], read back as [`Entry`].

pub use crate::act::event::{Action, Event, Verdict};
pub use crate::act::history::{
    append_history, log_event, read_counters, read_history, Counters, VersionFailures,
    COUNTERS_FILE, HISTORY_DIR, HISTORY_FILE, HISTORY_MAX, HISTORY_OLD,
};
use crate::decide::ab::Slot;
use crate::decide::attrs::UsrAttrs;
use crate::disk::gpt::Copy;
use crate::probe::dm::Verity;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Booted {
    pub partition: u32,
    pub label: String,
    pub partuuid: String,
    /// "cmdline+sysfs" when both agreed, else the one source that was available.
    pub source: String,
}

/// A build that failed its first boot (or was refused for it): which slot, which
/// version, which dm-verity root hash, and when it was tried.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Build {
    pub label: String,
    pub partition: u32,
    pub partuuid: String,
    pub version_id: Option<String>,
    pub root_hash: Option<String>,
    /// When its boot was assessed, if that boot got so far.
    pub tried_at: Option<String>,
}

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
    pub table: Option<Copy>,
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
    /// `fallback` and `restage-refused`: the build that failed (was refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<Build>,
}

impl Record {
    pub fn new(event: Event, verdict: Verdict) -> Record {
        Record {
            schema: 1,
            event,
            time: now_rfc3339(),
            uptime_s: read_trim(Path::new("/proc/uptime"))
                .and_then(|s| uptime(s.split_whitespace().next()?)),
            boot_id: read_trim(Path::new("/proc/sys/kernel/random/boot_id")),
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
            failed: None,
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

/// One history line read back, as types: the fields this version reads, parsed by
/// hand from the line's JSON (no derived deserializers: the static binary stays small),
/// and the whole line in `raw`, written out again as it was by `status --json`, so a
/// field a newer version added is kept. A field that is missing or of the wrong type
/// reads as absent; a line of an older version still reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entry {
    pub event: Event,
    pub time: Option<String>,
    pub boot_id: Option<String>,
    pub booted: Option<Booted>,
    pub slots: Vec<Slot>,
    pub version_id: Option<String>,
    pub root_hash: Option<String>,
    pub verity: Option<Verity>,
    pub first_boot_after_upgrade: Option<bool>,
    pub verdict: Option<Verdict>,
    pub reasons: Vec<String>,
    pub actions: Vec<Action>,
    pub failed: Option<Build>,
    pub raw: Value,
}

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k)?.as_str().map(str::to_string)
}

fn texts(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

fn number(v: &Value, k: &str) -> Option<u32> {
    v.get(k)?.as_u64()?.try_into().ok()
}

fn slot(v: &Value) -> Option<Slot> {
    let nibble = |k| number(v, k).and_then(|n| u8::try_from(n).ok());
    Some(Slot {
        label: text(v, "label").unwrap_or_default(),
        partition: number(v, "partition")?,
        partuuid: text(v, "partuuid")?,
        attrs: UsrAttrs::new(
            nibble("priority")?,
            nibble("tries")?,
            v.get("successful")?.as_bool()?,
        ),
    })
}

fn slots(v: &Value, k: &str) -> Vec<Slot> {
    v.get(k)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(slot)
        .collect()
}

impl Entry {
    pub fn from_value(v: Value) -> Entry {
        let booted = v.get("booted").and_then(|b| {
            Some(Booted {
                partition: number(b, "partition")?,
                label: text(b, "label").unwrap_or_default(),
                partuuid: text(b, "partuuid")?,
                source: text(b, "source").unwrap_or_default(),
            })
        });
        let verity = v.get("verity").filter(|x| x.is_object()).map(|x| Verity {
            target: text(x, "target"),
            status: text(x, "status"),
            root_hash: text(x, "root_hash"),
            expected_hash: text(x, "expected_hash"),
            unavailable: text(x, "unavailable"),
        });
        let failed = v.get("failed").and_then(|f| {
            Some(Build {
                label: text(f, "label").unwrap_or_default(),
                partition: number(f, "partition").unwrap_or_default(),
                partuuid: text(f, "partuuid")?,
                version_id: text(f, "version_id"),
                root_hash: text(f, "root_hash"),
                tried_at: text(f, "tried_at"),
            })
        });
        Entry {
            event: text(&v, "event").map_or_else(Event::default, |e| Event::parse(&e)),
            time: text(&v, "time"),
            boot_id: text(&v, "boot_id"),
            booted,
            slots: slots(&v, "slots"),
            version_id: text(&v, "version_id"),
            root_hash: text(&v, "root_hash"),
            verity,
            first_boot_after_upgrade: v.get("first_boot_after_upgrade").and_then(Value::as_bool),
            verdict: text(&v, "verdict").map(|x| Verdict::parse(&x)),
            reasons: texts(&v, "reasons"),
            actions: texts(&v, "actions")
                .iter()
                .map(|a| Action::parse(a))
                .collect(),
            failed,
            raw: v,
        }
    }

    pub fn booted_partuuid(&self) -> Option<&str> {
        self.booted.as_ref().map(|b| b.partuuid.as_str())
    }
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
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
    std::fs::read_to_string(p)
        .ok()
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

    #[test]
    fn entries_keep_what_they_do_not_know() {
        let line = r#"{"event":"initrd","verdict":"healthy","actions":["wrote /run/x"],"from_v9":{"a":1},"slots":[{"label":"USR-A","partition":3,"partuuid":"u","priority":1,"tries":0,"successful":true}]}"#;
        let e = Entry::from_value(serde_json::from_str(line).unwrap());
        assert_eq!(e.event, Event::Initrd);
        assert_eq!(e.verdict, Some(Verdict::Healthy));
        assert_eq!(e.actions, [Action::Wrote("/run/x".into())]);
        assert_eq!(e.slots[0].attrs.priority, 1);
        let back: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(line).unwrap()
        );
        // an event or verdict of a newer version is kept by name
        let e = Entry::from_value(serde_json::json!({"event": "teleported", "verdict": "maybe"}));
        assert_eq!(e.event, Event::Other("teleported".into()));
        assert_eq!(e.verdict, Some(Verdict::Other("maybe".into())));
    }
}
