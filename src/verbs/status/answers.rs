//! The three answers `status` opens with, as sentences: which slot and build runs,
//! what the next reboot does and why, and why the last first boot failed.

use super::{Facts, GateNow};
use crate::act::record::{Entry, Event, Verdict};
use crate::decide::outlook::{self, NextReboot, SlotState};
use crate::types::Slot;

/// VERSION_ID per slot: the running /usr's for the booted slot; for another, the
/// newest history entry about the build now in it (its root hash matching the slot's
/// kernel, or, where the kernel is unreadable, any slot but a staged one, whose build
/// is new).
pub(super) fn versions(
    slots: &[Slot],
    booted: Option<usize>,
    running: Option<String>,
    hashes: &[Option<String>],
    history: &[Entry],
) -> Vec<Option<String>> {
    slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if booted == Some(i) {
                return running.clone();
            }
            let staged = !s.attrs.successful && s.attrs.tries > 0;
            history.iter().rev().find_map(|e| {
                let (part, version, hash) = match (&e.failed, &e.booted) {
                    (Some(f), _) => (f.partition, f.version_id.as_ref(), f.root_hash.as_ref()),
                    (None, Some(b)) => (
                        b.partition,
                        e.version_id.as_ref(),
                        e.root_hash.as_ref().or(e.verity_root_hash.as_ref()),
                    ),
                    _ => return None,
                };
                let same = match (&hashes[i], hash) {
                    (Some(k), Some(h)) => k.eq_ignore_ascii_case(h),
                    (Some(_), None) => false,
                    (None, _) => !staged,
                };
                (part == s.partition && same)
                    .then(|| version.cloned())
                    .flatten()
            })
        })
        .collect()
}

/// Each slot's state word; the booted slot whose gate failed on this boot is spent.
pub(super) fn states(f: &Facts) -> Vec<SlotState> {
    (0..f.slots.len())
        .map(|i| {
            let s = outlook::state(&f.slots, i, f.booted, f.held_slot[i]);
            match (&f.gate, s) {
                (GateNow::Decided(e), SlotState::OnTrial) if failed(e) => SlotState::Spent,
                _ => s,
            }
        })
        .collect()
}

fn failed(e: &Entry) -> bool {
    matches!(e.event, Event::GateFailed | Event::Deadline) && e.verdict != Some(Verdict::Report)
}

fn name(f: &Facts, i: usize) -> String {
    match &f.versions[i] {
        Some(v) => format!("{} {v}", f.slots[i].label),
        None => f.slots[i].label.clone(),
    }
}

/// "running: USR-B 2.0.0 (partition 4), on trial".
pub(super) fn running(f: &Facts) -> String {
    match f.booted {
        Some(i) => format!(
            "running: {} (partition {}), {}",
            name(f, i),
            f.slots[i].partition,
            states(f)[i].word()
        ),
        None => format!("running: not known ({})", f.booted_notes.join("; ")),
    }
}

fn when(e: &Entry) -> &str {
    e.time.as_deref().unwrap_or("?")
}

/// What the next reboot does, and why.
pub(super) fn next_reboot(f: &Facts) -> String {
    let label = |i: usize| f.slots[i].label.as_str();
    match outlook::next_reboot(&f.slots, f.booted) {
        NextReboot::Nothing => {
            "next reboot: no slot qualifies: GRUB stops with \"no such partition\"".into()
        }
        NextReboot::Again { slot } => format!("next reboot: {} again (good)", label(slot)),
        NextReboot::Switches { slot } => format!(
            "next reboot: {} (good, above the booted slot)",
            name(f, slot)
        ),
        NextReboot::Tries { slot, fallback } => format!(
            "next reboot: tries {} ({}); {}",
            name(f, slot),
            states(f)[slot].word(),
            match fallback {
                Some(b) => format!(
                    "falls back to {} when that first boot fails (a failed health gate, a \
                     hang or a crash before it decides)",
                    label(b)
                ),
                None => "nothing to fall back to".into(),
            }
        ),
        NextReboot::Leaves { slot, from } => {
            let why = match &f.gate {
                GateNow::Pending(_) => format!(
                    "{} is on trial and its health gate has not decided",
                    label(from)
                ),
                GateNow::Decided(e) if failed(e) => format!(
                    "{} failed its health gate at {} (why: below)",
                    label(from),
                    when(e)
                ),
                GateNow::Decided(_) | GateNow::Unrecorded { healthy: true } => format!(
                    "{} passed its health gate but is not marked good yet: if nothing marks \
                     it good (update-engine masked, MARK_GOOD=no), a reboot goes back; \
                     `abguard mark-good` keeps it",
                    label(from)
                ),
                _ => format!("{} was never marked good", label(from)),
            };
            format!("next reboot: back to {} — {why}", name(f, slot))
        }
    }
}

/// The health gate on this boot, when there is one (or abguard is off).
pub(super) fn gate(f: &Facts) -> Option<String> {
    let off = f.disabled.as_ref().map(|d| {
        format!(
            "abguard is DISABLED on this node (since {}: {}): first boots pass unwatched; \
             `abguard enable` switches it on",
            d.since, d.reason
        )
    });
    let slot = f
        .booted
        .map_or("the booted slot", |i| f.slots[i].label.as_str());
    let now = match &f.gate {
        GateNow::None => None,
        GateNow::Pending(snap) => Some(format!(
            "{}; decide by hand: `abguard pass-gate` or `abguard fail-gate`",
            snap.as_ref()
                .and_then(|g| g.explain(unix_now()))
                .unwrap_or_else(|| "health gate pending (no snapshot yet)".into())
        )),
        GateNow::Decided(e) if failed(e) => Some(format!(
            "{slot} failed its health gate at {}: {}",
            when(e),
            e.reasons.join("; ")
        )),
        GateNow::Decided(e) => {
            let marked = f.booted.is_some_and(|i| f.slots[i].attrs.successful);
            let how = if e.event == Event::ManualPassGate {
                "was passed by hand"
            } else {
                "passed its health gate"
            };
            Some(format!(
                "{slot} {how} at {} ({}); {}",
                when(e),
                e.reasons.join("; "),
                if marked {
                    "it is marked good"
                } else if f.mark_good {
                    "abguard marks it good"
                } else {
                    "update-engine marks it good"
                }
            ))
        }
        GateNow::Unrecorded { healthy: true } => Some(format!(
            "{slot} passed its health gate (not in the history)"
        )),
        GateNow::Unrecorded { healthy: false } => {
            Some("the health gate decided (not in the history yet)".into())
        }
    };
    match (off, now) {
        (None, None) => None,
        (a, b) => Some(a.into_iter().chain(b).collect::<Vec<_>>().join("\n")),
    }
}

/// The newest failed first boot in the history.
pub(super) fn last_failure(f: &Facts) -> Option<&Entry> {
    f.history.iter().rev().find(|e| {
        let v = e.verdict.as_ref();
        (e.event.is_first_boot_failure() && v != Some(&Verdict::Healthy))
            || (e.event.is_assessment() && v == Some(&Verdict::Rollback))
    })
}

/// The version of the build an entry is about: its own, else an earlier entry's about
/// the same root hash (a record written where /usr's os-release was not readable).
fn version_of<'a>(e: &'a Entry, history: &'a [Entry]) -> Option<&'a str> {
    let (version, hash) = match &e.failed {
        Some(b) => (b.version_id.as_deref(), b.root_hash.as_deref()),
        None => (e.version_id.as_deref(), e.root_hash.as_deref()),
    };
    version.or_else(|| {
        let hash = hash?;
        history
            .iter()
            .rev()
            .find(|x| {
                x.root_hash
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(hash))
            })
            .and_then(|x| x.version_id.as_deref())
    })
}

/// "why": the last failed first boot, its reasons, failed units and what was done.
pub(super) fn why(e: &Entry, history: &[Entry]) -> Vec<String> {
    let label = match (&e.failed, &e.booted) {
        (Some(b), _) => b.label.as_str(),
        (None, Some(b)) => b.label.as_str(),
        _ => "?",
    };
    let build = format!("{label} {}", version_of(e, history).unwrap_or("?"));
    let mut v = vec![format!(
        "last failed first boot: {build} at {} ({})",
        when(e),
        e.event
    )];
    v.extend(e.reasons.iter().map(|r| format!("  why: {r}")));
    if !e.failed_units.is_empty() {
        v.push(format!("  failed units: {}", e.failed_units.join("; ")));
    }
    v.extend(e.actions.iter().map(|a| format!("  done: {a}")));
    v
}

/// The one line of `--short`.
pub(super) fn short(f: &Facts) -> String {
    let mut parts = vec![match f.booted {
        Some(i) => format!("{} {}", name(f, i), states(f)[i].word()),
        None => "booted slot not known".into(),
    }];
    match &f.gate {
        GateNow::Pending(_) => parts.push("health gate pending".into()),
        GateNow::Decided(e) if failed(e) => parts.push(format!("health gate failed ({})", e.event)),
        GateNow::Decided(_) => parts.push("health gate passed".into()),
        _ => {}
    }
    let next = match outlook::next_reboot(&f.slots, f.booted) {
        NextReboot::Nothing => "nothing".into(),
        NextReboot::Again { slot }
        | NextReboot::Switches { slot }
        | NextReboot::Tries { slot, .. }
        | NextReboot::Leaves { slot, .. } => f.slots[slot].label.clone(),
    };
    parts.push(format!("next reboot: {next}"));
    if let Some(e) = last_failure(f) {
        parts.push(format!("last failure: {} {}", e.event, when(e)));
    }
    if f.disabled.is_some() {
        parts.push("abguard DISABLED".into());
    }
    if !f.degraded.is_empty() {
        parts.push(format!("DEGRADED: {}", f.degraded.join("; ")));
    }
    parts.join("; ")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
