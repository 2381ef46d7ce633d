//! The initrd's verdict: a pure function from what was probed to what to do.
//!
//! Safety rules encoded here: only the first boot after an upgrade can lead to a
//! rollback; anything we cannot establish leads to "healthy + indeterminate" so a broken
//! probe never blocks or loops a boot; and a slot is never spent when nothing else
//! would be bootable afterwards.

use crate::decide::ab;
use crate::decide::booted::{self, Unknown};
use crate::decide::verity::Verity;
use crate::types::{Backing, Slot};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Not the first boot after an upgrade: nothing to prove.
    Healthy,
    /// First boot after an upgrade: the booted system must prove itself.
    NeedsHealthCheck,
    /// First boot after an upgrade with a failed dm-verity check: spend the slot, reboot.
    Rollback,
    /// The two ways of finding the booted slot disagree.
    Mismatch,
    /// Something needed for a decision is missing.
    Indeterminate,
}

/// The record's verdict: the one spelling of each is types::event::Verdict's.
impl From<Verdict> for crate::types::event::Verdict {
    fn from(v: Verdict) -> Self {
        use crate::types::event::Verdict as R;
        match v {
            Verdict::Healthy => R::Healthy,
            Verdict::NeedsHealthCheck => R::NeedsHealthCheck,
            Verdict::Rollback => R::Rollback,
            Verdict::Mismatch => R::Mismatch,
            Verdict::Indeterminate => R::Indeterminate,
        }
    }
}

/// Everything the decision needs, already read from the machine.
#[derive(Clone, Debug)]
pub struct Facts {
    /// USR slots from the GPT, or why they could not be read.
    pub slots: Result<Vec<Slot>, String>,
    /// Partition number the command line names; `None` if it names none.
    pub from_cmdline: Option<Result<u32, String>>,
    /// What sysfs says backs /usr.
    pub from_sysfs: Result<Backing, String>,
    /// `Some(false)` when sysfs puts /usr on a different disk than the one read.
    pub same_disk: Option<bool>,
    pub verity: Verity,
}

impl Facts {
    /// What these facts say about the booted slot.
    pub fn evidence(&self) -> booted::Evidence<'_> {
        booted::Evidence {
            from_cmdline: &self.from_cmdline,
            from_sysfs: &self.from_sysfs,
            same_disk: self.same_disk,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub verdict: Verdict,
    /// Index into the slots of the booted one.
    pub booted: Option<usize>,
    pub booted_source: Option<&'static str>,
    pub first_boot_after_upgrade: Option<bool>,
    /// Slots as they must be written (only for `Rollback`).
    pub new_slots: Option<Vec<Slot>>,
    pub reasons: Vec<String>,
}

fn stop(verdict: Verdict, reasons: Vec<String>) -> Assessment {
    Assessment {
        verdict,
        booted: None,
        booted_source: None,
        first_boot_after_upgrade: None,
        new_slots: None,
        reasons,
    }
}

pub fn assess(f: &Facts) -> Assessment {
    let slots = match &f.slots {
        Ok(s) if s.is_empty() => {
            return stop(
                Verdict::Indeterminate,
                vec!["the disk has no USR partition".into()],
            )
        }
        Ok(s) => s,
        Err(e) => {
            return stop(
                Verdict::Indeterminate,
                vec![format!("cannot read the partition table: {e}")],
            )
        }
    };
    let (booted, source, reasons) = match booted::identify(slots, f.evidence()) {
        Ok(id) => (id.index, id.source, id.notes),
        Err(Unknown::Mismatch(r)) => return stop(Verdict::Mismatch, vec![r]),
        Err(Unknown::Missing(r)) => return stop(Verdict::Indeterminate, r),
    };
    let first = ab::is_first_boot_after_upgrade(slots, booted);
    let mut a = Assessment {
        verdict: Verdict::Healthy,
        booted: Some(booted),
        booted_source: Some(source),
        first_boot_after_upgrade: Some(first),
        new_slots: None,
        reasons,
    };
    if let Some(why) = &f.verity.unavailable {
        a.reasons.push(format!("dm-verity not checked: {why}"));
    }
    let problem = f.verity.problem();
    match (first, problem) {
        (false, None) => {}
        (false, Some(p)) => a.reasons.push(format!(
            "{p} (reported only: not the first boot after an upgrade)"
        )),
        (true, None) => a.verdict = Verdict::NeedsHealthCheck,
        (true, Some(p)) => {
            let mut after = slots.clone();
            match ab::spend_slot(&mut after, booted) {
                Ok(()) => {
                    a.reasons.push(p);
                    a.verdict = Verdict::Rollback;
                    a.new_slots = Some(after);
                }
                Err(refusal) => {
                    a.reasons.push(format!("{p}; {refusal}"));
                    a.verdict = Verdict::NeedsHealthCheck;
                }
            }
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::ab::slots_from;
    use crate::decide::verity::{parse_line, Verity};

    const H: &str = "abababababababababababababababababababababababababababababababab";

    fn backing(p: u32) -> Result<Backing, String> {
        Ok(Backing {
            chain: vec!["dm-0".into(), format!("vda{p}")],
            partition: p,
            disk: "vda".into(),
        })
    }

    fn verity(status: &str, hash: &str) -> Verity {
        Verity::from_targets(
            &[parse_line(&format!("0 8 verity {status}")).unwrap()],
            &[parse_line(&format!(
                "0 8 verity 1 254:4 254:4 4096 4096 1 2 sha256 {hash} -"
            ))
            .unwrap()],
            Some(H.into()),
        )
    }

    fn facts(
        slots: &[(u8, u8, bool)],
        cmd: Option<Result<u32, String>>,
        sys: Result<Backing, String>,
        v: Verity,
    ) -> Facts {
        Facts {
            slots: Ok(slots_from(slots)),
            from_cmdline: cmd,
            from_sysfs: sys,
            same_disk: None,
            verity: v,
        }
    }

    #[test]
    fn verdict_table() {
        let ok = || verity("V", H);
        let bad = || verity("C", H);
        let wrong = || verity("V", &"cd".repeat(32));
        let fresh: &[(u8, u8, bool)] = &[(1, 0, true), (0, 0, false)];
        let first_b: &[(u8, u8, bool)] = &[(1, 0, true), (2, 0, false)];
        let good_b: &[(u8, u8, bool)] = &[(1, 0, true), (2, 0, true)];
        let rolled_back: &[(u8, u8, bool)] = &[(2, 0, true), (1, 0, false)];
        let only_b: &[(u8, u8, bool)] = &[(0, 0, false), (2, 0, false)];
        // (facts, expected verdict)
        let cases: Vec<(Facts, Verdict)> = vec![
            (
                facts(fresh, Some(Ok(3)), backing(3), ok()),
                Verdict::Healthy,
            ),
            (
                facts(first_b, Some(Ok(4)), backing(4), ok()),
                Verdict::NeedsHealthCheck,
            ),
            (
                facts(good_b, Some(Ok(4)), backing(4), ok()),
                Verdict::Healthy,
            ),
            (
                facts(first_b, Some(Ok(3)), backing(3), ok()),
                Verdict::Healthy,
            ), // fell back to A
            (
                facts(rolled_back, Some(Ok(3)), backing(3), ok()),
                Verdict::Healthy,
            ),
            (
                facts(first_b, Some(Ok(4)), backing(4), bad()),
                Verdict::Rollback,
            ),
            (
                facts(first_b, Some(Ok(4)), backing(4), wrong()),
                Verdict::Rollback,
            ),
            (
                facts(good_b, Some(Ok(4)), backing(4), bad()),
                Verdict::Healthy,
            ), // report only
            (
                facts(only_b, Some(Ok(4)), backing(4), bad()),
                Verdict::NeedsHealthCheck,
            ), // nothing to fall back to
            (
                facts(first_b, Some(Ok(3)), backing(4), ok()),
                Verdict::Mismatch,
            ),
            (
                facts(first_b, None, backing(4), ok()),
                Verdict::NeedsHealthCheck,
            ),
            (
                facts(first_b, Some(Ok(4)), Err("no /usr".into()), ok()),
                Verdict::NeedsHealthCheck,
            ),
            (
                facts(
                    first_b,
                    Some(Err("odd".into())),
                    Err("no /usr".into()),
                    ok(),
                ),
                Verdict::Indeterminate,
            ),
            (
                facts(first_b, None, Err("no /usr".into()), ok()),
                Verdict::Indeterminate,
            ),
            (
                facts(first_b, Some(Ok(9)), backing(9), ok()),
                Verdict::Indeterminate,
            ), // ROOT, not USR
            (
                facts(&[], Some(Ok(3)), backing(3), ok()),
                Verdict::Indeterminate,
            ),
        ];
        for (i, (f, want)) in cases.iter().enumerate() {
            let a = assess(f);
            assert_eq!(a.verdict, *want, "case {i}: {a:?}");
            assert!(
                !a.reasons.is_empty()
                    || matches!(a.verdict, Verdict::Healthy | Verdict::NeedsHealthCheck),
                "case {i}"
            );
        }
    }

    #[test]
    fn unreadable_gpt_is_indeterminate() {
        let f = Facts {
            slots: Err("no GPT".into()),
            from_cmdline: Some(Ok(4)),
            from_sysfs: backing(4),
            same_disk: None,
            verity: Verity::default(),
        };
        assert_eq!(assess(&f).verdict, Verdict::Indeterminate);
    }

    #[test]
    fn rollback_spends_only_the_booted_slot() {
        let a = assess(&facts(
            &[(1, 0, true), (2, 0, false)],
            Some(Ok(4)),
            backing(4),
            verity("C", H),
        ));
        let s = a.new_slots.unwrap();
        assert_eq!((s[1].attrs.tries, s[1].attrs.successful), (0, false));
        assert_eq!(s[0], slots_from(&[(1, 0, true)])[0]);
        assert_eq!(ab::next_boot(&s), Some(0));
    }

    #[test]
    fn other_disk_is_a_mismatch() {
        let mut f = facts(
            &[(1, 0, true), (2, 0, false)],
            Some(Ok(4)),
            backing(4),
            verity("V", H),
        );
        f.same_disk = Some(false);
        assert_eq!(assess(&f).verdict, Verdict::Mismatch);
    }
}
