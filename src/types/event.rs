//! The words of the record as types: which event, which verdict, which action. Each is
//! written as the string docs/operator.md documents and read back into the same variant; a
//! value a newer version writes is kept as `Other` rather than failing the line.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Serialize as `as_str`, read back with `parse`: one spelling per variant.
macro_rules! string_enum {
    ($ty:ident { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// Every known variant, in docs/operator.md's order.
            pub const ALL: &'static [$ty] = &[$($ty::$v),+];

            pub fn as_str(&self) -> &str {
                match self {
                    $($ty::$v => $s,)+
                    $ty::Other(s) => s,
                }
            }

            pub fn parse(s: &str) -> $ty {
                match s {
                    $($s => $ty::$v,)+
                    other => $ty::Other(other.to_string()),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok($ty::parse(&String::deserialize(d)?))
            }
        }
    };
}

/// What happened: the `event` field of the boot record and of each history line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    Initrd,
    /// The stock-image assessment in the booted system (the initrd module did not run).
    Assess,
    GatePassed,
    GateFailed,
    Deadline,
    InitrdEmergency,
    VerifyFailed,
    ReadUsrFailed,
    ManualStage,
    ManualMarkGood,
    ManualRollback,
    ManualNext,
    /// `abguard pass-gate` (or `mark-good` of the booted slot while its gate waited):
    /// the gate passed by hand.
    ManualPassGate,
    /// `abguard disable` / `enable`: the health gate switched off / on on this node.
    Disabled,
    Enabled,
    /// GRUB fell back from a slot whose first boot reached no verdict.
    Fallback,
    /// The loop guard un-staged a build that already failed its first boot.
    RestageRefused,
    /// `abguard allow` released held builds.
    Allowed,
    /// The health gate's configuration has errors (reported, protection stays on).
    ConfigError,
    /// Written by a newer version: kept, never counted.
    Other(String),
}

string_enum!(Event {
    Initrd => "initrd",
    Assess => "assess",
    GatePassed => "gate-passed",
    GateFailed => "gate-failed",
    Deadline => "deadline",
    InitrdEmergency => "initrd-emergency",
    VerifyFailed => "verify-failed",
    ReadUsrFailed => "read-usr-failed",
    ManualStage => "manual-stage",
    ManualMarkGood => "manual-mark-good",
    ManualRollback => "manual-rollback",
    ManualNext => "manual-next",
    ManualPassGate => "manual-pass-gate",
    Disabled => "disabled",
    Enabled => "enabled",
    Fallback => "fallback",
    RestageRefused => "restage-refused",
    Allowed => "allowed",
    ConfigError => "config-error",
});

impl Event {
    /// A boot assessment (initrd module or stock-image service).
    pub fn is_assessment(&self) -> bool {
        matches!(self, Event::Initrd | Event::Assess)
    }

    pub fn is_manual(&self) -> bool {
        matches!(
            self,
            Event::ManualStage
                | Event::ManualMarkGood
                | Event::ManualRollback
                | Event::ManualNext
                | Event::ManualPassGate
                | Event::Disabled
                | Event::Enabled
        )
    }

    /// Events that end a first boot as failed whatever their verdict says (the initrd's
    /// own failure is its `rollback` verdict, decided by the caller).
    pub fn is_first_boot_failure(&self) -> bool {
        matches!(
            self,
            Event::GateFailed | Event::Deadline | Event::InitrdEmergency | Event::Fallback
        )
    }
}

impl Default for Event {
    fn default() -> Self {
        Event::Other(String::new())
    }
}

/// The `verdict` field.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Healthy,
    NeedsHealthCheck,
    Rollback,
    Mismatch,
    Indeterminate,
    /// ON_FAILURE=report: the failure is recorded, nothing rolled back.
    Report,
    /// A verb run by hand.
    Manual,
    /// `verify`/`read-usr` found a block dm-verity rejects.
    Corrupted,
    /// The failing staged slot was un-staged before a reboot could use it.
    Unstaged,
    /// `abguard allow`: held builds may be staged again.
    Allowed,
    Other(String),
}

string_enum!(Verdict {
    Healthy => "healthy",
    NeedsHealthCheck => "needs-health-check",
    Rollback => "rollback",
    Mismatch => "mismatch",
    Indeterminate => "indeterminate",
    Report => "report",
    Manual => "manual",
    Corrupted => "corrupted",
    Unstaged => "unstaged",
    Allowed => "allowed",
});

impl Default for Verdict {
    fn default() -> Self {
        Verdict::Other(String::new())
    }
}

/// One line of `actions`: what was written. Written as the sentence an operator reads;
/// read back into the variant by the same words, so the totals never depend on them
/// (they are counted from the typed value when the event is recorded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The slot was given up (tries=0, successful=0) so GRUB falls back.
    Spent {
        label: String,
        partition: u32,
    },
    /// A staged slot was given up before any boot used it.
    Unstaged {
        label: String,
        partition: u32,
        stays_on: String,
    },
    MarkedGood {
        label: String,
    },
    /// A flag or file under /run.
    Wrote(String),
    /// A manual verb's change of one slot: `before -> after` attributes.
    Changed {
        label: String,
        partition: u32,
        before: String,
        after: String,
    },
    Other(String),
}

impl Action {
    pub fn is_spent(&self) -> bool {
        matches!(self, Action::Spent { .. })
    }

    pub fn parse(s: &str) -> Action {
        Self::try_parse(s).unwrap_or_else(|| Action::Other(s.to_string()))
    }

    fn try_parse(s: &str) -> Option<Action> {
        // "LABEL (partition N)" followed by `rest`
        let slot = |s: &str| -> Option<(String, u32, String)> {
            let (label, rest) = s.split_once(" (partition ")?;
            let (n, rest) = rest.split_once(')')?;
            Some((label.to_string(), n.parse().ok()?, rest.to_string()))
        };
        if let Some(r) = s.strip_prefix("spent ") {
            let (label, partition, rest) = slot(r)?;
            return (rest == ": tries=0 successful=0")
                .then_some(Action::Spent { label, partition });
        }
        if let Some(r) = s.strip_prefix("un-staged ") {
            let (label, partition, rest) = slot(r)?;
            let stays_on = rest
                .strip_prefix(": tries=0 successful=0; the next boot stays on ")?
                .to_string();
            return Some(Action::Unstaged {
                label,
                partition,
                stays_on,
            });
        }
        if let Some(r) = s.strip_prefix("wrote ") {
            return Some(Action::Wrote(r.to_string()));
        }
        if let Some(label) = s
            .strip_prefix("marked ")
            .and_then(|r| r.strip_suffix(" good"))
        {
            return Some(Action::MarkedGood {
                label: label.to_string(),
            });
        }
        let (label, partition, rest) = slot(s)?;
        let (before, after) = rest.strip_prefix(": ")?.split_once(" -> ")?;
        Some(Action::Changed {
            label,
            partition,
            before: before.to_string(),
            after: after.to_string(),
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Spent { label, partition } => {
                write!(f, "spent {label} (partition {partition}): tries=0 successful=0")
            }
            Action::Unstaged {
                label,
                partition,
                stays_on,
            } => write!(
                f,
                "un-staged {label} (partition {partition}): tries=0 successful=0; the next boot stays on {stays_on}"
            ),
            Action::MarkedGood { label } => write!(f, "marked {label} good"),
            Action::Wrote(p) => write!(f, "wrote {p}"),
            Action::Changed {
                label,
                partition,
                before,
                after,
            } => write!(f, "{label} (partition {partition}): {before} -> {after}"),
            Action::Other(s) => f.write_str(s),
        }
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Action::parse(&String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_reads_back_as_its_variant() {
        for e in Event::ALL {
            assert_eq!(&Event::parse(e.as_str()), e);
            let j = serde_json::to_string(e).unwrap();
            assert_eq!(&serde_json::from_str::<Event>(&j).unwrap(), e);
        }
        for v in Verdict::ALL {
            assert_eq!(&Verdict::parse(v.as_str()), v);
        }
        assert_eq!(
            Event::parse("from-the-future"),
            Event::Other("from-the-future".into())
        );
    }

    #[test]
    fn actions_round_trip_and_only_spent_counts() {
        let cases = [
            Action::Spent {
                label: "USR-B".into(),
                partition: 4,
            },
            Action::Unstaged {
                label: "USR-B".into(),
                partition: 4,
                stays_on: "USR-A P1 T0 S1".into(),
            },
            Action::MarkedGood {
                label: "USR-B".into(),
            },
            Action::Wrote("/run/first-boot-healthy".into()),
            Action::Changed {
                label: "USR-A".into(),
                partition: 3,
                before: "P1 T0 S1".into(),
                after: "P2 T0 S1".into(),
            },
            Action::Other("something a newer version did".into()),
        ];
        for a in &cases {
            let j = serde_json::to_string(a).unwrap();
            assert_eq!(&serde_json::from_str::<Action>(&j).unwrap(), a, "{j}");
        }
        let spent: Vec<bool> = cases.iter().map(Action::is_spent).collect();
        assert_eq!(spent, [true, false, false, false, false, false]);
        // a message that merely starts like one is not that action
        assert!(!Action::parse("spent the night").is_spent());
    }
}
