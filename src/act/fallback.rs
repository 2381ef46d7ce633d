//! The `fallback` record: GRUB fell back from a slot whose first boot reached no
//! verdict. Built from what the assessment, the history and pstore know.

use crate::act::record::{Build, Entry, Event, Record, Verdict};
use crate::types::Slot;

/// What is known about a fallback besides the state it left.
pub const NO_VERDICT: &str =
    "no verdict was reached: hang, panic, power loss or a reboot before the gate";

/// The record of the fallback from `s`, written by the assessment `now` of the boot
/// GRUB fell back to. `attempt` is the failed boot's own assessment when it got that
/// far; `kernel_hash` the root hash in the slot's kernel; `kernel_said` pstore's line.
pub fn record(
    now: &Record,
    s: &Slot,
    attempt: Option<&Entry>,
    kernel_hash: Option<String>,
    kernel_said: Option<String>,
    why: &crate::decide::stage::Classified,
) -> Record {
    // the hash that booted, as GRUB passed it; else what the slot's kernel holds now
    let root_hash = attempt
        .and_then(|e| {
            (e.root_hash.clone())
                .or_else(|| e.verity_expected_hash.clone())
                .or_else(|| e.verity_root_hash.clone())
        })
        .or(kernel_hash);
    let mut r = Record::new(Event::Fallback, Verdict::Rollback);
    // written during this boot: this boot's stamp
    r.uptime_s = now.uptime_s;
    r.boot_id = now.boot_id.clone();
    r.disk = now.disk.clone();
    r.table = now.table;
    r.booted = now.booted.clone();
    r.slots = now.slots.clone();
    r.version_id = now.version_id.clone();
    r.failed = Some(Build {
        label: s.label.clone(),
        partition: s.partition,
        partuuid: s.partuuid.clone(),
        version_id: attempt.and_then(|e| e.version_id.clone()),
        root_hash,
        tried_at: attempt.and_then(|e| e.time.clone()),
    });
    r.reasons.push(NO_VERDICT.to_string());
    r.stage = Some(why.stage.as_str().to_string());
    r.took_s = why.took_s;
    r.reasons.push(format!(
        "stage: {}{}: {}",
        why.stage.as_str(),
        why.took_s.map_or(String::new(), |t| format!(
            " ({t}s from its kernel's start to this boot's)"
        )),
        why.why
    ));
    r.reasons.push(match attempt {
        Some(e) => format!(
            "its first boot was assessed at {} (boot {}): {}, dm-verity status {}",
            e.time.as_deref().unwrap_or("?"),
            e.boot_id.as_deref().unwrap_or("?"),
            e.verdict.as_ref().map_or("?", |v| v.as_str()),
            e.verity_status.as_deref().unwrap_or("-")
        ),
        None => "its first boot left no record: it stopped before the assessment (in GRUB, the kernel or the initrd)".into(),
    });
    r.reasons.push(match kernel_said {
        Some(m) => format!("kernel (pstore): {m}"),
        None => "no kernel panic or dm-verity message in pstore".into(),
    });
    r
}

/// The line the assessment of this boot adds about the fallback it recorded.
pub fn summary(r: &Record) -> String {
    let f = r.failed.clone().unwrap_or_default();
    format!(
        "GRUB fell back from {} (version {}): {NO_VERDICT}; stage: {}",
        f.label,
        f.version_id.as_deref().unwrap_or("unknown"),
        r.stage.as_deref().unwrap_or("?")
    )
}
