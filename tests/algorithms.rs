//! `next` and prioritize checked against independent transliterations of the C code
//! they must match (GRUB's gptprio.c grub_find_next and seismograph's
//! cgpt_prioritize.c), over every two-slot state and many random three-slot states.
//! The references below follow the C line by line on purpose: they are the oracle.

mod common;
use abguard::decide::ab;
use abguard::types::attrs::UsrAttrs;
use abguard::types::Slot;
use common::Rng;

/// gptprio.c: walk entries in order; candidate when (tries_left || successful) &&
/// priority > old_priority, old_priority starting at 0.
fn grub_find_next(p: &[(u8, u8, bool)]) -> Option<usize> {
    let mut old_priority = 0u8;
    let mut found = None;
    for (i, &(priority, tries_left, successful)) in p.iter().enumerate() {
        if (tries_left != 0 || successful) && priority > old_priority {
            old_priority = priority;
            found = Some(i);
        }
    }
    found
}

/// cgpt_prioritize.c with set_friends = 0 and max_priority = 0 (Flatcar's use).
fn cgpt_prioritize(prio: &mut [u8], set_partition: usize) {
    #[derive(Clone)]
    struct Group {
        priority: i32,
        parts: Vec<usize>,
    }
    let mut groups: Vec<Group> = Vec::new();
    let add = |groups: &mut Vec<Group>, priority: i32, i: usize| {
        if let Some(g) = groups.iter_mut().find(|g| g.priority == priority) {
            g.parts.push(i);
        } else {
            groups.push(Group {
                priority,
                parts: vec![i],
            });
        }
    };
    for (i, &p) in prio.iter().enumerate() {
        if i == set_partition {
            add(&mut groups, 99, i);
        } else {
            add(&mut groups, i32::from(p), i);
        }
    }
    // straight insertion sort, descending
    for i in 1..groups.len() {
        let tmp = groups[i].clone();
        let mut j = i;
        while j > 0 && groups[j - 1].priority < tmp.priority {
            groups[j] = groups[j - 1].clone();
            j -= 1;
        }
        groups[j] = tmp;
    }
    let mut num_groups = groups.len();
    if groups[num_groups - 1].priority == 0 {
        num_groups -= 1;
    }
    let mut priority = if num_groups > 15 {
        15
    } else {
        num_groups as i32
    };
    for g in groups.iter_mut().take(num_groups) {
        g.priority = priority;
        if priority > 1 {
            priority -= 1;
        }
    }
    for g in groups.iter().take(num_groups) {
        for &p in &g.parts {
            prio[p] = g.priority as u8;
        }
    }
}

fn slots(states: &[(u8, u8, bool)]) -> Vec<Slot> {
    states
        .iter()
        .enumerate()
        .map(|(i, &(p, t, s))| Slot {
            label: format!("USR-{i}"),
            partition: 3 + i as u32,
            partuuid: String::new(),
            attrs: UsrAttrs::new(p, t, s),
        })
        .collect()
}

fn all_attrs() -> Vec<(u8, u8, bool)> {
    let mut v = Vec::new();
    for p in 0..16 {
        for t in 0..16 {
            for s in [false, true] {
                v.push((p, t, s));
            }
        }
    }
    v
}

#[test]
fn next_matches_gptprio_on_every_two_slot_state() {
    let all = all_attrs();
    let mut n = 0u64;
    for &a in &all {
        for &b in &all {
            let st = [a, b];
            assert_eq!(ab::next_boot(&slots(&st)), grub_find_next(&st), "{st:?}");
            n += 1;
        }
    }
    assert_eq!(n, 512 * 512);
}

#[test]
fn prioritize_matches_cgpt_on_every_two_slot_state() {
    let all = all_attrs();
    for &a in &all {
        for &b in &all {
            for target in 0..2 {
                let st = [a, b];
                let mut ours = slots(&st);
                ab::prioritize(&mut ours, target);
                let mut theirs = [a.0, b.0];
                cgpt_prioritize(&mut theirs, target);
                let got: Vec<u8> = ours.iter().map(|s| s.attrs.priority).collect();
                assert_eq!(got, theirs, "{st:?} target {target}");
                // tries and successful untouched
                assert!(ours
                    .iter()
                    .zip(&st)
                    .all(|(s, o)| (s.attrs.tries, s.attrs.successful) == (o.1, o.2)));
            }
        }
    }
}

#[test]
fn prioritize_and_next_match_on_random_wider_tables() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..20_000 {
        let n = 1 + rng.below(20) as usize;
        let st: Vec<(u8, u8, bool)> = (0..n)
            .map(|_| (rng.below(16) as u8, rng.below(16) as u8, rng.below(2) == 1))
            .collect();
        assert_eq!(ab::next_boot(&slots(&st)), grub_find_next(&st), "{st:?}");
        let target = rng.below(n as u64) as usize;
        let mut ours = slots(&st);
        ab::prioritize(&mut ours, target);
        let mut theirs: Vec<u8> = st.iter().map(|s| s.0).collect();
        cgpt_prioritize(&mut theirs, target);
        let got: Vec<u8> = ours.iter().map(|s| s.attrs.priority).collect();
        assert_eq!(got, theirs, "{st:?} target {target}");
    }
}

#[test]
fn verbs_follow_the_flatcar_scripts() {
    // flatcar-postinst: cgpt add -S0 -T1; cgpt prioritize. setgoodroot: -S1 -T0; prioritize.
    let all = all_attrs();
    let mut rng = Rng(42);
    for _ in 0..5000 {
        let st = [all[rng.below(512) as usize], all[rng.below(512) as usize]];
        let target = rng.below(2) as usize;
        let mut prio = [st[0].0, st[1].0];
        cgpt_prioritize(&mut prio, target);
        let mut s = slots(&st);
        ab::stage(&mut s, target);
        assert_eq!(
            (s[target].attrs.tries, s[target].attrs.successful),
            (1, false)
        );
        assert_eq!([s[0].attrs.priority, s[1].attrs.priority], prio);
        let mut s = slots(&st);
        ab::mark_good(&mut s, target);
        assert_eq!(
            (s[target].attrs.tries, s[target].attrs.successful),
            (0, true)
        );
        assert_eq!([s[0].attrs.priority, s[1].attrs.priority], prio);
        // a staged slot always boots next, whatever the other slot's state
        let mut s = slots(&st);
        ab::stage(&mut s, target);
        assert_eq!(ab::next_boot(&s), Some(target), "{st:?}");
    }
}
