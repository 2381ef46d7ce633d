//! Did GRUB fall back on its own? A pure rule over the slots as they are now, the slot
//! that booted and the history, run on every assessment.
//!
//! GRUB's gptprio spends a try before it boots a slot. A first boot that hangs, panics
//! (bootengine opens /usr with `--panic-on-corruption`), loses power or is rebooted
//! before any verdict leaves that slot with the higher priority, tries=0 and
//! successful=0, and GRUB boots the other one next. Nothing else leaves that state
//! without a record: the gate and the initrd record their verdicts, `verify` and the
//! loop guard record their un-staging, the verbs their manual changes.

use crate::types::event::{Event, Verdict};
use crate::types::history::Entry;
use crate::types::Slot;

/// What the slots and the history say about the slot above the booted one.
#[derive(Clone, Debug, PartialEq)]
pub enum Finding<'a> {
    /// Nothing above the booted slot was tried and left unexplained.
    Ordinary,
    /// The newest change was an operator's rollback (already counted as one).
    ManualRollback,
    /// The slot above was tried and a verdict or an un-staging was recorded for it.
    Explained { slot: usize },
    /// This attempt's fallback is already in the history: never twice.
    AlreadyRecorded { slot: usize },
    /// The slot above is spent with nothing in the history saying why, but the history
    /// holds no sign that it was ever tried either (it predates the history).
    Unknown { slot: usize },
    /// GRUB fell back from `slot`: its first boot reached no verdict. `attempt` is the
    /// assessment of that boot when it got so far.
    Fallback {
        slot: usize,
        attempt: Option<&'a Entry>,
    },
}

/// The slot GRUB was asked to try and did not boot: above the booted one in priority,
/// tries=0, successful=0 (the highest such, which GRUB would have tried first).
pub fn abandoned(slots: &[Slot], booted: usize) -> Option<usize> {
    let p = slots.get(booted)?.attrs.priority;
    slots
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            *i != booted && s.attrs.priority > p && s.attrs.tries == 0 && !s.attrs.successful
        })
        .max_by_key(|(i, s)| (s.attrs.priority, std::cmp::Reverse(*i)))
        .map(|(i, _)| i)
}

fn slot_in<'a>(slots: &'a [Slot], partuuid: &str) -> Option<&'a Slot> {
    slots.iter().find(|s| s.partuuid == partuuid)
}

/// Walk the history newest first until something explains the spent slot above the
/// booted one, or the boot that tried it (or the staging before it) is reached.
pub fn detect<'a>(slots: &[Slot], booted: usize, history: &'a [Entry]) -> Finding<'a> {
    let Some(x) = abandoned(slots, booted) else {
        let newest_change = history
            .iter()
            .rev()
            .find(|e| !e.event.is_assessment() && e.event != Event::Other(String::new()));
        return match newest_change.map(|e| &e.event) {
            Some(Event::ManualRollback) => Finding::ManualRollback,
            _ => Finding::Ordinary,
        };
    };
    let uuid = slots[x].partuuid.as_str();
    let spent = |e: &Entry| {
        slot_in(&e.slots, uuid).is_some_and(|s| s.attrs.tries == 0 && !s.attrs.successful)
    };
    for e in history.iter().rev() {
        let on_x = e.booted_partuuid() == Some(uuid);
        let failed_x = e.failed.as_ref().is_some_and(|b| b.partuuid == uuid);
        match &e.event {
            Event::Fallback if failed_x => return Finding::AlreadyRecorded { slot: x },
            Event::RestageRefused if failed_x || spent(e) => return Finding::Explained { slot: x },
            Event::VerifyFailed if spent(e) => return Finding::Explained { slot: x },
            Event::GatePassed | Event::GateFailed | Event::Deadline | Event::InitrdEmergency
                if on_x =>
            {
                return Finding::Explained { slot: x }
            }
            ev if ev.is_assessment() && on_x => {
                if e.verdict == Some(Verdict::Rollback) {
                    return Finding::Explained { slot: x };
                }
                if e.first_boot_after_upgrade == Some(true) {
                    return Finding::Fallback {
                        slot: x,
                        attempt: Some(e),
                    };
                }
                // an ordinary boot of x: whatever spent it came later and is above
            }
            Event::ManualStage
            | Event::ManualRollback
            | Event::ManualMarkGood
            | Event::ManualNext => {
                let after = slot_in(&e.slots, uuid);
                // staged by hand: its next boot is the attempt, and it left no record
                if after.is_some_and(|s| s.attrs.tries > 0) {
                    return Finding::Fallback {
                        slot: x,
                        attempt: None,
                    };
                }
                if spent(e) {
                    return Finding::ManualRollback;
                }
            }
            // a boot of another slot that saw x staged: x was tried after it
            ev if ev.is_assessment()
                && slot_in(&e.slots, uuid).is_some_and(|s| s.attrs.tries > 0) =>
            {
                return Finding::Fallback {
                    slot: x,
                    attempt: None,
                };
            }
            _ => {}
        }
    }
    Finding::Unknown { slot: x }
}

/// The kernel's last words from pstore (`/sys/fs/pstore`: the ramoops or EFI dump of
/// the previous boot's panic), given as (file name, contents): the newest line naming
/// a panic, an oops or dm-verity.
pub fn pstore_message(files: &[(String, String)]) -> Option<String> {
    const SIGNS: [&str; 5] = [
        "Kernel panic",
        "device-mapper: verity",
        "verity",
        "Oops",
        "BUG:",
    ];
    SIGNS.iter().find_map(|sign| {
        files.iter().rev().find_map(|(name, text)| {
            text.lines()
                .rev()
                .find(|l| l.contains(sign))
                .map(|l| format!("{name}: {}", l.trim().chars().take(240).collect::<String>()))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::ab::slots_from;
    use crate::types::history::Build;
    use crate::types::Booted;

    /// A history line: event, booted partition (3 = A, 4 = B), first boot, verdict, and
    /// B's (priority, tries, successful) in its slots.
    fn line(
        event: &str,
        booted: Option<u32>,
        first: bool,
        verdict: &str,
        b: (u8, u8, bool),
    ) -> Entry {
        let slots = slots_from(&[(1, 0, true), b]);
        let booted = booted.map(|p| {
            let s = slots.iter().find(|s| s.partition == p).unwrap();
            Booted {
                partition: p,
                label: s.label.clone(),
                partuuid: s.partuuid.clone(),
                source: "cmdline+sysfs".into(),
            }
        });
        Entry {
            event: Event::parse(event),
            booted,
            slots,
            first_boot_after_upgrade: Some(first),
            verdict: Some(Verdict::parse(verdict)),
            time: Some(format!("t-{event}")),
            ..Entry::default()
        }
    }

    fn fallback_of_b(b_uuid: &str) -> Entry {
        Entry {
            event: Event::Fallback,
            failed: Some(Build {
                partuuid: b_uuid.into(),
                ..Build::default()
            }),
            ..Entry::default()
        }
    }

    #[derive(Debug, PartialEq)]
    enum Is {
        Ordinary,
        Manual,
        Explained,
        Already,
        Unknown,
        Fallback { attempt: bool },
    }

    /// (what happened, B's attributes now, the history, what the rule must say)
    type Case = (&'static str, (u8, u8, bool), Vec<Entry>, Is);

    #[test]
    fn which_states_are_a_fallback() {
        let spent_b = (2, 0, false);
        let staged_b = (2, 1, false);
        let b_uuid = slots_from(&[(1, 0, true), spent_b])[1].partuuid.clone();
        let a_boot = |b| line("initrd", Some(3), false, "healthy", b);
        let b_first = line("initrd", Some(4), true, "needs-health-check", spent_b);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("fresh install: B empty, below A", (0, 0, false), vec![], Is::Ordinary),
            ("B good, A booted by rollback", (1, 0, true), vec![a_boot((1, 0, true))], Is::Ordinary),
            ("B staged, not yet booted", staged_b, vec![a_boot(staged_b)], Is::Ordinary),
            ("power cut after B's initrd verdict", spent_b, vec![a_boot(staged_b), b_first.clone()], Is::Fallback { attempt: true }),
            ("hang before B's initrd wrote anything", spent_b, vec![a_boot(staged_b)], Is::Fallback { attempt: false }),
            ("staged by hand, then no record", spent_b, vec![line("manual-stage", None, false, "manual", staged_b)], Is::Fallback { attempt: false }),
            ("gate failed on B", spent_b, vec![b_first.clone(), line("gate-failed", Some(4), true, "rollback", spent_b)], Is::Explained),
            ("deadline on B", spent_b, vec![b_first.clone(), line("deadline", Some(4), true, "rollback", spent_b)], Is::Explained),
            ("initrd rolled B back", spent_b, vec![line("initrd", Some(4), true, "rollback", spent_b)], Is::Explained),
            ("initrd emergency on B", spent_b, vec![line("initrd-emergency", Some(4), true, "rollback", spent_b)], Is::Explained),
            ("verify un-staged B", spent_b, vec![a_boot(staged_b), line("verify-failed", None, false, "unstaged", spent_b)], Is::Explained),
            ("loop guard un-staged B", spent_b, vec![a_boot(staged_b), line("restage-refused", None, false, "unstaged", spent_b)], Is::Explained),
            ("fallback already recorded", spent_b, vec![a_boot(staged_b), b_first.clone(), fallback_of_b(&b_uuid), a_boot(spent_b)], Is::Already),
            ("operator spent B by hand", spent_b, vec![b_first.clone(), line("manual-rollback", None, false, "manual", spent_b)], Is::Manual),
            ("operator rolled back to A (A now above B)", (1, 0, false), vec![b_first.clone(), line("manual-rollback", None, false, "manual", (1, 0, false))], Is::Manual),
            ("spent B older than the history", spent_b, vec![a_boot(spent_b)], Is::Unknown),
            ("spent B, no history at all", spent_b, vec![], Is::Unknown),
            // the same build staged again after its fallback: a new attempt, found again
            ("second attempt after a refused restage was allowed", spent_b, vec![b_first.clone(), fallback_of_b(&b_uuid), a_boot(staged_b), b_first.clone()], Is::Fallback { attempt: true }),
        ];
        for (name, b, hist, want) in cases {
            let slots = slots_from(&[(1, 0, true), b]);
            let got = match detect(&slots, 0, &hist) {
                Finding::Ordinary => Is::Ordinary,
                Finding::ManualRollback => Is::Manual,
                Finding::Explained { slot } => {
                    assert_eq!(slot, 1, "{name}");
                    Is::Explained
                }
                Finding::AlreadyRecorded { .. } => Is::Already,
                Finding::Unknown { .. } => Is::Unknown,
                Finding::Fallback { slot, attempt } => {
                    assert_eq!(slot, 1, "{name}");
                    Is::Fallback {
                        attempt: attempt.is_some(),
                    }
                }
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn the_booted_slot_on_top_is_never_a_fallback() {
        // B booted (first boot): nothing above it, whatever A looks like
        let slots = slots_from(&[(1, 0, false), (2, 0, false)]);
        assert_eq!(detect(&slots, 1, &[]), Finding::Ordinary);
        // the highest spent slot is the one GRUB tried first
        let slots = slots_from(&[(1, 0, true), (3, 0, false), (2, 0, false)]);
        assert!(matches!(
            detect(&slots, 0, &[]),
            Finding::Unknown { slot: 1 }
        ));
    }

    #[test]
    fn pstore_names_the_panic() {
        let files = vec![
            ("dmesg-ramoops-0".to_string(), "[1.0] boot\n[2.0] device-mapper: verity: 254:0: data block 7 is corrupted\n[2.1] Kernel panic - not syncing: dm-verity device corrupted\n".to_string()),
        ];
        assert_eq!(
            pstore_message(&files).unwrap(),
            "dmesg-ramoops-0: [2.1] Kernel panic - not syncing: dm-verity device corrupted"
        );
        assert_eq!(pstore_message(&[("x".into(), "nothing\n".into())]), None);
    }
}
