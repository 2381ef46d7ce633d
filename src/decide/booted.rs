//! Which slot booted, decided once for every caller (the initrd's verdict, the gate,
//! `status`, `mark-good`, `rollback`, `verify`): the partition the kernel command line
//! names and the one sysfs says backs /usr must agree; one alone is accepted with a
//! note; neither, or a disagreement, leaves it unknown.

use crate::types::{Backing, Slot};

/// What the probes found about the booted slot (a slice of [`crate::decide::assess::Facts`]).
#[derive(Clone, Copy, Debug)]
pub struct Evidence<'a> {
    /// Partition number the command line names; `None` if it names none.
    pub from_cmdline: &'a Option<Result<u32, String>>,
    /// What sysfs says backs /usr.
    pub from_sysfs: &'a Result<Backing, String>,
    /// `Some(false)` when sysfs puts /usr on a different disk than the one read.
    pub same_disk: Option<bool>,
}

/// The booted slot, found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identified {
    /// Index into the slots.
    pub index: usize,
    /// "cmdline+sysfs" when both agreed, else the one source that was available.
    pub source: &'static str,
    /// Why only one source was used, if so.
    pub notes: Vec<String>,
}

/// Why the booted slot is not known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// The two sources contradict each other.
    Mismatch(String),
    /// Not enough to tell.
    Missing(Vec<String>),
}

impl Unknown {
    pub fn reasons(&self) -> Vec<String> {
        match self {
            Unknown::Mismatch(r) => vec![r.clone()],
            Unknown::Missing(r) => r.clone(),
        }
    }
}

/// The booted slot among `slots`, from the evidence.
pub fn identify(slots: &[Slot], e: Evidence<'_>) -> Result<Identified, Unknown> {
    let other_disk = || "/usr is backed by a different disk than the one read".to_string();
    let mut notes = Vec::new();
    let sysfs = e.from_sysfs.as_ref().map(|b| b.partition);
    let (partition, source) = match (e.from_cmdline, &sysfs) {
        (Some(Ok(c)), Ok(s)) if c != s => {
            return Err(Unknown::Mismatch(format!(
                "the command line names partition {c} but /usr is backed by partition {s}"
            )))
        }
        (Some(Ok(_)), Ok(_)) if e.same_disk == Some(false) => {
            return Err(Unknown::Mismatch(other_disk()))
        }
        (Some(Ok(c)), Ok(_)) => (*c, "cmdline+sysfs"),
        (Some(Ok(c)), Err(e)) => {
            notes.push(format!(
                "booted slot from the command line only; sysfs: {e}"
            ));
            (*c, "cmdline")
        }
        (cmd, Ok(s)) => {
            notes.push(match cmd {
                Some(Err(e)) => format!("booted slot from sysfs only; command line: {e}"),
                _ => "booted slot from sysfs only; the command line names no /usr".into(),
            });
            if e.same_disk == Some(false) {
                return Err(Unknown::Missing(vec![other_disk()]));
            }
            (*s, "sysfs")
        }
        (cmd, Err(e)) => {
            let c = match cmd {
                Some(Err(c)) => c.clone(),
                _ => "names no /usr partition".into(),
            };
            return Err(Unknown::Missing(vec![format!(
                "cannot tell which slot booted: command line {c}; sysfs: {e}"
            )]));
        }
    };
    match slots.iter().position(|s| s.partition == partition) {
        Some(index) => Ok(Identified {
            index,
            source,
            notes,
        }),
        None => {
            notes.push(format!(
                "the booted partition {partition} is not a USR partition"
            ));
            Err(Unknown::Missing(notes))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::ab::slots_from;

    fn backing(p: u32) -> Result<Backing, String> {
        Ok(Backing {
            chain: vec!["dm-0".into(), format!("vda{p}")],
            partition: p,
            disk: "vda".into(),
        })
    }

    /// (command line, sysfs, same disk) → (index, source), or Err(is a mismatch)
    type Case = (
        Option<Result<u32, String>>,
        Result<Backing, String>,
        Option<bool>,
        Result<(usize, &'static str), bool>,
    );

    #[test]
    fn sources_table() {
        let slots = slots_from(&[(1, 0, true), (2, 0, false)]);
        let none: Result<Backing, String> = Err("no /usr".into());
        let cases: Vec<Case> = vec![
            (Some(Ok(4)), backing(4), None, Ok((1, "cmdline+sysfs"))),
            (
                Some(Ok(3)),
                backing(3),
                Some(true),
                Ok((0, "cmdline+sysfs")),
            ),
            (Some(Ok(4)), none.clone(), None, Ok((1, "cmdline"))),
            (None, backing(3), None, Ok((0, "sysfs"))),
            (Some(Err("odd".into())), backing(4), None, Ok((1, "sysfs"))),
            (Some(Ok(3)), backing(4), None, Err(true)),
            (Some(Ok(4)), backing(4), Some(false), Err(true)),
            (None, backing(4), Some(false), Err(false)),
            (None, none.clone(), None, Err(false)),
            (Some(Err("odd".into())), none, None, Err(false)),
            (Some(Ok(9)), backing(9), None, Err(false)),
        ];
        for (i, (cmd, sys, same, want)) in cases.iter().enumerate() {
            let got = identify(
                &slots,
                Evidence {
                    from_cmdline: cmd,
                    from_sysfs: sys,
                    same_disk: *same,
                },
            );
            match (got, want) {
                (Ok(id), Ok((index, source))) => {
                    assert_eq!((id.index, id.source), (*index, *source), "case {i}");
                    assert_eq!(id.notes.is_empty(), *source == "cmdline+sysfs", "case {i}");
                }
                (Err(u), Err(mismatch)) => {
                    assert_eq!(matches!(u, Unknown::Mismatch(_)), *mismatch, "case {i}");
                    assert!(!u.reasons().is_empty(), "case {i}");
                }
                (got, want) => panic!("case {i}: {got:?}, want {want:?}"),
            }
        }
    }
}
