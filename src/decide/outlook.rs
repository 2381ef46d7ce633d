//! What `status` answers first, decided from the slots alone: the state word of each
//! slot, and what the next reboot does with them (GRUB's gptprio rules, [`super::ab`]).
//! Why (a gate pending, passed or failed) is the caller's to add: it is not on the disk.

use super::ab;
use crate::types::Slot;

/// One slot, in the words an operator reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotState {
    /// successful=1: GRUB may boot it again and again.
    Good,
    /// Tries left, not yet successful: GRUB will try it (flatcar-postinst's staged slot).
    Staged { tries: u8 },
    /// Booted with its last try spent, not yet successful: its first boot is on trial.
    OnTrial,
    /// No tries, not successful, priority above 0: GRUB skips it.
    Spent,
    /// The loop guard holds its build (it failed a first boot before).
    Held,
    /// Priority 0, never successful: nothing was ever installed to boot from it.
    Unused,
}

impl SlotState {
    pub fn word(self) -> String {
        match self {
            SlotState::Good => "good".into(),
            SlotState::Staged { tries: 1 } => "staged, 1 try".into(),
            SlotState::Staged { tries } => format!("staged, {tries} tries"),
            SlotState::OnTrial => "on trial".into(),
            SlotState::Spent => "spent".into(),
            SlotState::Held => "held".into(),
            SlotState::Unused => "unused".into(),
        }
    }

    /// The word alone, for JSON and metrics.
    pub fn key(self) -> &'static str {
        match self {
            SlotState::Good => "good",
            SlotState::Staged { .. } => "staged",
            SlotState::OnTrial => "on-trial",
            SlotState::Spent => "spent",
            SlotState::Held => "held",
            SlotState::Unused => "unused",
        }
    }
}

/// The state of `slots[i]`; `held`: the loop guard holds the build in it.
pub fn state(slots: &[Slot], i: usize, booted: Option<usize>, held: bool) -> SlotState {
    let a = slots[i].attrs;
    match (a.successful, a.tries, a.priority) {
        (true, ..) => SlotState::Good,
        _ if held => SlotState::Held,
        (false, t, p) if t > 0 && p > 0 => SlotState::Staged { tries: t },
        _ if booted == Some(i) => SlotState::OnTrial,
        (false, _, 0) => SlotState::Unused,
        _ => SlotState::Spent,
    }
}

/// What the next reboot does, by GRUB's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextReboot {
    /// The booted slot again.
    Again { slot: usize },
    /// A staged slot gets its try; `fallback`: where GRUB goes when that boot fails.
    Tries {
        slot: usize,
        fallback: Option<usize>,
    },
    /// Away from the booted slot, which is not good (on trial or spent): to `slot`.
    Leaves { slot: usize, from: usize },
    /// Another good slot than the booted one (a rollback by hand, a tie).
    Switches { slot: usize },
    /// No slot qualifies: GRUB stops with "no such partition".
    Nothing,
}

pub fn next_reboot(slots: &[Slot], booted: Option<usize>) -> NextReboot {
    let Some(n) = ab::next_boot(slots) else {
        return NextReboot::Nothing;
    };
    let a = slots[n].attrs;
    if !a.successful && a.tries > 0 && booted != Some(n) {
        // GRUB's fallback: the next pick once this slot's tries are spent
        let mut after = slots.to_vec();
        after[n].attrs.tries = 0;
        return NextReboot::Tries {
            slot: n,
            fallback: ab::next_boot(&after),
        };
    }
    match booted {
        Some(b) if b == n => NextReboot::Again { slot: n },
        Some(b) if !slots[b].attrs.successful => NextReboot::Leaves { slot: n, from: b },
        _ => NextReboot::Switches { slot: n },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::attrs::UsrAttrs;

    fn slots(a: (u8, u8, bool), b: (u8, u8, bool)) -> Vec<Slot> {
        [("USR-A", 3, a), ("USR-B", 4, b)]
            .into_iter()
            .map(|(l, n, (p, t, s))| Slot {
                label: l.into(),
                partition: n,
                partuuid: format!("u{n}"),
                attrs: UsrAttrs::new(p, t, s),
            })
            .collect()
    }

    #[test]
    fn states_and_next_reboots() {
        use NextReboot::*;
        use SlotState::*;
        // (A, B, booted, B held) → (A's state, B's state, next reboot)
        let cases = [
            // B staged by flatcar-postinst, A running
            (
                (1, 0, true),
                (2, 1, false),
                Some(0),
                false,
                Good,
                Staged { tries: 1 },
                Tries {
                    slot: 1,
                    fallback: Some(0),
                },
            ),
            // GRUB spent B's try and booted it: on trial; a reboot returns to A
            (
                (1, 0, true),
                (2, 0, false),
                Some(1),
                false,
                Good,
                OnTrial,
                Leaves { slot: 0, from: 1 },
            ),
            // B marked good after its gate
            (
                (1, 0, true),
                (2, 0, true),
                Some(1),
                false,
                Good,
                Good,
                Again { slot: 1 },
            ),
            // B's gate failed: spent, back on A
            (
                (1, 0, true),
                (2, 0, false),
                Some(0),
                false,
                Good,
                Spent,
                Again { slot: 0 },
            ),
            // the same, and the loop guard holds B's build
            (
                (1, 0, true),
                (2, 0, false),
                Some(0),
                true,
                Good,
                Held,
                Again { slot: 0 },
            ),
            // a fresh image: B never installed
            (
                (1, 0, true),
                (0, 0, false),
                Some(0),
                false,
                Good,
                Unused,
                Again { slot: 0 },
            ),
            // a rollback by hand from a good B to a good A
            (
                (2, 0, true),
                (1, 0, true),
                Some(1),
                false,
                Good,
                Good,
                Switches { slot: 0 },
            ),
            // nothing bootable
            (
                (1, 0, false),
                (2, 0, false),
                None,
                false,
                Spent,
                Spent,
                Nothing,
            ),
            // an image file: no booted slot; B staged
            (
                (1, 0, true),
                (2, 1, false),
                None,
                false,
                Good,
                Staged { tries: 1 },
                Tries {
                    slot: 1,
                    fallback: Some(0),
                },
            ),
        ];
        for (a, b, booted, held, sa, sb, next) in cases {
            let s = slots(a, b);
            assert_eq!(state(&s, 0, booted, false), sa, "{a:?} {b:?}");
            assert_eq!(state(&s, 1, booted, held), sb, "{a:?} {b:?}");
            assert_eq!(next_reboot(&s, booted), next, "{a:?} {b:?} {booted:?}");
        }
        assert_eq!(Staged { tries: 2 }.word(), "staged, 2 tries");
    }
}
