//! The A/B algorithms as pure functions over the USR slots: GRUB's `gptprio.next`,
//! cgpt's `prioritize`, and what flatcar-postinst, flatcar-setgoodroot and a manual
//! rollback do with them. Nothing here touches a disk.

use crate::types::attrs::{UsrAttrs, MAX_FIELD};
use crate::types::Slot;

/// Why a state change was refused. Callers match on this to pick the exit code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("no USR partition qualifies for booting (every one has priority 0, or tries=0 and successful=0)")]
    NothingBootable,
    #[error(
        "no partition of Flatcar's USR type (5dfbf5f4-2848-4bac-aa5e-0d9a20b745a6) on this disk"
    )]
    NoUsrPartition,
    #[error("partition {0} is not a USR partition")]
    NotUsr(u32),
    #[error("partition {0} has never booted successfully (successful=0); pass --force to give it one try")]
    NeverSuccessful(u32),
    #[error("cannot tell which slot to roll back to: {0}")]
    AmbiguousOther(String),
    /// A rollback counted from a guessed slot could re-arm the failed update.
    #[error("cannot tell which slot booted ({0}); name the slot to roll back to with --partition")]
    BootedUnknown(String),
    #[error(
        "refusing to spend partition {0}: no other USR partition would be bootable afterwards"
    )]
    LastBootable(u32),
    /// The loop guard holds this build: it failed its first boot before.
    #[error("refusing to stage: {0}")]
    Held(String),
}

/// The staged slot: the one GRUB boots next, while it still has tries and has not been
/// marked successful (what flatcar-postinst leaves: highest priority, T=1, S=0).
pub fn staged(slots: &[Slot]) -> Option<usize> {
    next_boot(slots).filter(|&i| slots[i].attrs.tries > 0 && !slots[i].attrs.successful)
}

/// Index (into `slots`) of the partition GRUB's gptprio.next would pick: entries in
/// partition order, candidate when `(tries || successful) && priority > best`, so a
/// tie goes to the lower partition number and priority 0 never boots.
pub fn next_boot(slots: &[Slot]) -> Option<usize> {
    let mut best: Option<(usize, u8)> = None;
    for (i, s) in slots.iter().enumerate() {
        let old = best.map_or(0, |(_, p)| p);
        // bootable() adds priority > 0 to GRUB's test, which `> old` (old ≥ 0) implies
        if s.attrs.bootable() && s.attrs.priority > old {
            best = Some((i, s.attrs.priority));
        }
    }
    best.map(|(i, _)| i)
}

/// What GRUB writes after choosing: one try fewer, nothing else.
pub fn spend_try(attrs: UsrAttrs) -> UsrAttrs {
    UsrAttrs {
        tries: attrs.tries.saturating_sub(1),
        ..attrs
    }
}

/// cgpt prioritize (seismograph cgpt_prioritize.c): the target alone goes into the top
/// group, the other partitions are grouped by their current priority in descending
/// order, a trailing priority-0 group is left alone ("never lower anything to zero"),
/// and the groups are renumbered from min(groups, 15) downward, never below 1.
pub fn prioritize(slots: &mut [Slot], target: usize) {
    // (priority key, members); key 99 is cgpt's marker for the target's own group
    let mut groups: Vec<(u8, Vec<usize>)> = Vec::new();
    for (i, s) in slots.iter().enumerate() {
        let key = if i == target { 99 } else { s.attrs.priority };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    // stable, like cgpt's insertion sort
    groups.sort_by_key(|g| std::cmp::Reverse(g.0));
    if groups.last().is_some_and(|(k, _)| *k == 0) {
        groups.pop();
    }
    let mut priority = groups.len().min(usize::from(MAX_FIELD)) as u8;
    for (_, members) in &groups {
        for &i in members {
            slots[i].attrs.priority = priority;
        }
        if priority > 1 {
            priority -= 1;
        }
    }
}

/// flatcar-postinst: `cgpt add -S0 -T1` then `cgpt prioritize` on the new slot.
pub fn stage(slots: &mut [Slot], target: usize) {
    slots[target].attrs.successful = false;
    slots[target].attrs.tries = 1;
    prioritize(slots, target);
}

/// flatcar-setgoodroot: `cgpt add -S1 -T0` then `cgpt prioritize`.
pub fn mark_good(slots: &mut [Slot], target: usize) {
    slots[target].attrs.successful = true;
    slots[target].attrs.tries = 0;
    prioritize(slots, target);
}

/// Manual rollback: make `target` boot next. A slot that never booted successfully
/// would be skipped by GRUB after one failed try, so it needs `force` (then it gets
/// tries=1, as the Flatcar docs' recipe `cgpt add -T 1` does).
pub fn rollback(slots: &mut [Slot], target: usize, force: bool) -> Result<(), Refusal> {
    if !slots[target].attrs.successful {
        if !force {
            return Err(Refusal::NeverSuccessful(slots[target].partition));
        }
        slots[target].attrs.tries = 1;
    }
    prioritize(slots, target);
    Ok(())
}

/// Give up on a slot: tries=0, successful=0, so GRUB skips it. Refused when that
/// would leave nothing bootable: falling back to nothing is worse than a bad slot.
pub fn spend_slot(slots: &mut [Slot], target: usize) -> Result<(), Refusal> {
    let mut after = slots.to_vec();
    after[target].attrs.tries = 0;
    after[target].attrs.successful = false;
    if next_boot(&after).is_none() {
        return Err(Refusal::LastBootable(slots[target].partition));
    }
    slots.clone_from_slice(&after);
    Ok(())
}

/// The slot a rollback from `from` goes to: the only other USR slot.
pub fn other_slot(slots: &[Slot], from: usize) -> Result<usize, Refusal> {
    let others: Vec<usize> = (0..slots.len()).filter(|&i| i != from).collect();
    match others.as_slice() {
        [one] => Ok(*one),
        [] => Err(Refusal::AmbiguousOther(
            "there is only one USR partition".into(),
        )),
        _ => Err(Refusal::AmbiguousOther(format!(
            "there are {} USR partitions; name one with --partition",
            slots.len()
        ))),
    }
}

/// First boot after an upgrade, as the shell prototype's detection script defines it
/// (tests/vm/e2e-guest/usr/libexec/seed-first-boot-check): the booted
/// slot has strictly the highest priority and has not been marked successful yet.
pub fn is_first_boot_after_upgrade(slots: &[Slot], booted: usize) -> bool {
    let me = slots[booted].attrs;
    let highest = slots
        .iter()
        .enumerate()
        .all(|(i, s)| i == booted || s.attrs.priority < me.priority);
    highest && !me.successful
}

pub fn find_partition(slots: &[Slot], partition: u32) -> Result<usize, Refusal> {
    if slots.is_empty() {
        return Err(Refusal::NoUsrPartition);
    }
    slots
        .iter()
        .position(|s| s.partition == partition)
        .ok_or(Refusal::NotUsr(partition))
}

/// The slot GRUB boots next, or why none: no USR partition at all is told apart from
/// USR partitions that are all spent.
pub fn require_next_boot(slots: &[Slot]) -> Result<usize, Refusal> {
    if slots.is_empty() {
        return Err(Refusal::NoUsrPartition);
    }
    next_boot(slots).ok_or(Refusal::NothingBootable)
}

#[cfg(test)]
pub(crate) fn slots_from(attrs: &[(u8, u8, bool)]) -> Vec<Slot> {
    let parts = [3, 4, 5, 6, 7, 8];
    attrs
        .iter()
        .zip(parts)
        .map(|(&(p, t, s), n)| Slot {
            label: format!("USR-{}", (b'A' + (n - 3) as u8) as char),
            partition: n,
            partuuid: format!("{n:08x}-0000-0000-0000-000000000000"),
            attrs: UsrAttrs::new(p, t, s),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    type Attrs = &'static [(u8, u8, bool)];

    fn attrs(slots: &[Slot]) -> Vec<(u8, u8, bool)> {
        slots
            .iter()
            .map(|s| (s.attrs.priority, s.attrs.tries, s.attrs.successful))
            .collect()
    }

    #[test]
    fn next_boot_table() {
        // (slots as (P, T, S), expected index)
        let cases: &[(Attrs, Option<usize>)] = &[
            (&[(1, 0, true), (0, 0, false)], Some(0)), // fresh image
            (&[(1, 0, true), (2, 1, false)], Some(1)), // staged B
            (&[(1, 0, true), (2, 0, false)], Some(0)), // B's try spent: fall back
            (&[(1, 0, true), (2, 0, true)], Some(1)),  // B good
            (&[(2, 0, true), (2, 0, true)], Some(0)),  // tie: lower number wins
            (&[(0, 5, true), (0, 1, true)], None),     // priority 0 never boots
            (&[(3, 0, false), (2, 0, false)], None),   // nothing has tries or success
            (&[(1, 1, false), (1, 0, true)], Some(0)),
            (&[(15, 15, false), (14, 0, true)], Some(0)),
            (&[(1, 0, true), (3, 0, false), (2, 2, false)], Some(2)),
            (&[], None),
        ];
        for (slots, want) in cases {
            assert_eq!(next_boot(&slots_from(slots)), *want, "{slots:?}");
        }
    }

    #[test]
    fn prioritize_table() {
        // (before, target, after) — the last rows are cgpt's documented corner cases
        type Row = (&'static [(u8, u8, bool)], usize, &'static [(u8, u8, bool)]);
        let cases: &[Row] = &[
            // fresh image, stage B: B above A, A keeps its place
            (
                &[(1, 0, true), (0, 0, false)],
                1,
                &[(1, 0, true), (2, 0, false)],
            ),
            (
                &[(1, 0, true), (2, 0, false)],
                0,
                &[(2, 0, true), (1, 0, false)],
            ),
            // already highest: renumbered from the group count
            (
                &[(5, 0, true), (3, 0, true)],
                0,
                &[(2, 0, true), (1, 0, true)],
            ),
            // equal priorities split into two groups
            (
                &[(2, 0, true), (2, 0, true)],
                1,
                &[(1, 0, true), (2, 0, true)],
            ),
            // the other one at 0 stays 0, target becomes 1
            (
                &[(0, 0, false), (0, 0, true)],
                1,
                &[(0, 0, false), (1, 0, true)],
            ),
            // three slots, order of the others kept, nothing lowered to 0
            (
                &[(3, 0, true), (1, 0, true), (2, 0, false)],
                1,
                &[(2, 0, true), (3, 0, true), (1, 0, false)],
            ),
            (
                &[(0, 0, true), (7, 0, true), (7, 0, false)],
                0,
                &[(2, 0, true), (1, 0, true), (1, 0, false)],
            ),
        ];
        for (before, target, after) in cases {
            let mut s = slots_from(before);
            prioritize(&mut s, *target);
            assert_eq!(attrs(&s), after.to_vec(), "{before:?} target {target}");
        }
    }

    #[test]
    fn prioritize_caps_at_15() {
        let before: Vec<(u8, u8, bool)> = (1..=6).map(|p| (p, 0, true)).collect();
        let mut s = slots_from(&before);
        // add more groups than 15 is impossible with 6 slots; check the cap with many slots
        for i in 0..20u8 {
            s.push(Slot {
                label: format!("X{i}"),
                partition: 20 + u32::from(i),
                partuuid: String::new(),
                attrs: UsrAttrs::new(i % 16, 0, true),
            });
        }
        prioritize(&mut s, 0);
        assert_eq!(s[0].attrs.priority, 15);
        assert!(s.iter().all(|x| x.attrs.priority <= 15));
    }

    #[test]
    fn flatcar_walkthrough() {
        // an update as Flatcar runs it: A booted and good, flatcar-postinst stages B,
        // GRUB boots B, flatcar-setgoodroot marks it good
        let mut s = slots_from(&[(1, 0, true), (0, 0, false)]);
        stage(&mut s, 1);
        assert_eq!(attrs(&s), [(1, 0, true), (2, 1, false)]);
        let pick = next_boot(&s).unwrap();
        assert_eq!(pick, 1);
        s[pick].attrs = spend_try(s[pick].attrs);
        assert_eq!(attrs(&s), [(1, 0, true), (2, 0, false)]);
        assert!(is_first_boot_after_upgrade(&s, 1));
        mark_good(&mut s, 1);
        assert_eq!(attrs(&s), [(1, 0, true), (2, 0, true)]);
        assert!(!is_first_boot_after_upgrade(&s, 1));
    }

    #[test]
    fn unmarked_update_falls_back() {
        let mut s = slots_from(&[(1, 0, true), (2, 1, false)]);
        let b = next_boot(&s).unwrap();
        s[b].attrs = spend_try(s[b].attrs);
        assert_eq!(next_boot(&s), Some(0));
    }

    #[test]
    fn first_boot_table() {
        let cases: &[(Attrs, usize, bool)] = &[
            (&[(1, 0, true), (2, 0, false)], 1, true),
            (&[(1, 0, true), (2, 1, false)], 1, true), // booted via a menu entry: try unspent
            (&[(1, 0, true), (2, 0, true)], 1, false), // already good
            (&[(2, 0, true), (1, 0, false)], 1, false), // rolled back manually: not highest
            (&[(2, 0, false), (2, 0, false)], 0, false), // equal: not highest
            (&[(1, 0, true), (0, 0, false)], 0, false), // fresh image
        ];
        for (slots, booted, want) in cases {
            assert_eq!(
                is_first_boot_after_upgrade(&slots_from(slots), *booted),
                *want,
                "{slots:?} booted {booted}"
            );
        }
    }

    #[test]
    fn rollback_rules() {
        let mut s = slots_from(&[(1, 0, true), (0, 0, false)]);
        assert_eq!(rollback(&mut s, 1, false), Err(Refusal::NeverSuccessful(4)));
        assert_eq!(
            attrs(&s),
            [(1, 0, true), (0, 0, false)],
            "refusal writes nothing"
        );
        rollback(&mut s, 1, true).unwrap();
        assert_eq!(attrs(&s), [(1, 0, true), (2, 1, false)]);

        let mut s = slots_from(&[(1, 0, true), (2, 0, true)]);
        rollback(&mut s, 0, false).unwrap();
        assert_eq!(attrs(&s), [(2, 0, true), (1, 0, true)]);
        assert_eq!(next_boot(&s), Some(0));
    }

    #[test]
    fn spend_never_leaves_nothing() {
        let mut s = slots_from(&[(1, 0, true), (2, 0, false)]);
        spend_slot(&mut s, 1).unwrap();
        assert_eq!(next_boot(&s), Some(0));
        let mut s = slots_from(&[(0, 0, false), (2, 0, false)]);
        assert_eq!(spend_slot(&mut s, 1), Err(Refusal::LastBootable(4)));
        let mut s = slots_from(&[(1, 0, false), (2, 1, false)]);
        assert_eq!(spend_slot(&mut s, 1), Err(Refusal::LastBootable(4)));
    }

    #[test]
    fn other_slot_rules() {
        let two = slots_from(&[(1, 0, true), (0, 0, false)]);
        assert_eq!(other_slot(&two, 0), Ok(1));
        let one = slots_from(&[(1, 0, true)]);
        assert!(other_slot(&one, 0).is_err());
        let three = slots_from(&[(1, 0, true), (0, 0, false), (0, 0, false)]);
        assert!(other_slot(&three, 0).is_err());
    }

    #[test]
    fn staged_is_the_next_boot_with_a_try_left() {
        let s = slots_from(&[(1, 0, true), (2, 1, false)]);
        assert_eq!(staged(&s), Some(1));
        // the try was spent (B is booting or failed): not staged any more
        assert_eq!(staged(&slots_from(&[(1, 0, true), (2, 0, false)])), None);
        // fresh image, B good, a manual rollback with --force (T1 on a never-good slot)
        assert_eq!(staged(&slots_from(&[(1, 0, true), (0, 0, false)])), None);
        assert_eq!(staged(&slots_from(&[(1, 0, true), (2, 0, true)])), None);
        assert_eq!(staged(&slots_from(&[(2, 1, false), (1, 0, true)])), Some(0));
        // B has tries but A has the higher priority: GRUB boots A, nothing is staged
        assert_eq!(staged(&slots_from(&[(3, 0, true), (2, 1, false)])), None);
    }
}
