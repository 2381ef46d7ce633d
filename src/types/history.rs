//! A history line read back as types ([`Entry`]) and the build a failure names
//! ([`Build`]). Plain data: the history file itself is `act::history`'s.

use crate::types::attrs::UsrAttrs;
use crate::types::event::{Action, Event, Verdict};
use crate::types::{Booted, Slot};
use serde::Serialize;
use serde_json::Value;

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
    /// The `verity` object's status, root hash and expected hash.
    pub verity_status: Option<String>,
    pub verity_root_hash: Option<String>,
    pub verity_expected_hash: Option<String>,
    pub first_boot_after_upgrade: Option<bool>,
    pub verdict: Option<Verdict>,
    pub reasons: Vec<String>,
    pub actions: Vec<Action>,
    pub failed: Option<Build>,
    /// A failed gate's units, as the gate described them.
    pub failed_units: Vec<String>,
    /// `fallback`: the stage the attempt reached, and its seconds.
    pub stage: Option<String>,
    pub took_s: Option<u64>,
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
        let verity = |k| v.get("verity").and_then(|x| text(x, k));
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
            verity_status: verity("status"),
            verity_root_hash: verity("root_hash"),
            verity_expected_hash: verity("expected_hash"),
            first_boot_after_upgrade: v.get("first_boot_after_upgrade").and_then(Value::as_bool),
            verdict: text(&v, "verdict").map(|x| Verdict::parse(&x)),
            reasons: texts(&v, "reasons"),
            actions: texts(&v, "actions")
                .iter()
                .map(|a| Action::parse(a))
                .collect(),
            failed,
            failed_units: texts(&v, "failed_units"),
            stage: text(&v, "stage"),
            took_s: v.get("took_s").and_then(Value::as_u64),
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

#[cfg(test)]
mod tests {
    use super::*;

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
