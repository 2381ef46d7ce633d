//! Power cut at every write of every verb that changes the table: the real write path
//! (gpt::Table::write) on a disk that stops after k writes or tears the k-th one at a
//! sector boundary. Every cut point is enumerated. Afterwards the table must still read
//! (primary or backup, as cgpt and GRUB would read it) and GRUB's choice must be the old
//! state's or the new state's, never "no bootable partition" and never a slot with
//! successful=0 and tries=0.

mod common;
use abguard::decide::ab;
use abguard::disk::gpt::Table;
use abguard::types::Slot;
use common::*;
use std::collections::HashSet;

fn read(image: &[u8]) -> anyhow::Result<Table> {
    Table::read(&mut std::io::Cursor::new(image), 512)
}

fn choice(slots: &[Slot]) -> Option<(u32, u8, u8, bool)> {
    ab::next_boot(slots).map(|i| {
        let s = &slots[i];
        (
            s.partition,
            s.attrs.priority,
            s.attrs.tries,
            s.attrs.successful,
        )
    })
}

/// A starting state: the tiny image with these (P, T, S) for USR-A and USR-B.
fn state(a: (u8, u8, bool), b: (u8, u8, bool)) -> Vec<u8> {
    let mut t = read(tiny_gpt()).unwrap();
    let mut s = t.slots();
    for (slot, (p, tr, ok)) in s.iter_mut().zip([a, b]) {
        slot.attrs = abguard::types::attrs::UsrAttrs::new(p, tr, ok);
    }
    t.set_slots(&s);
    let mut c = std::io::Cursor::new(tiny_gpt().to_vec());
    t.write(&mut c).unwrap();
    c.into_inner()
}

type Change = fn(&mut Vec<Slot>);
type Attrs = (u8, u8, bool);

/// A table whose primary copy a power cut tore: the primary array holds other slot
/// values than its header's CRC covers, so only the backup is valid.
fn torn_primary(image: Vec<u8>) -> Vec<u8> {
    let mut t = read(&image).unwrap();
    let mut s = t.slots();
    s[0].attrs.tries = (s[0].attrs.tries + 1) % 16;
    t.set_slots(&s);
    // backup array, backup header, primary array land; the primary header does not
    let mut dev = PowerCut::new(image.clone(), 3, None);
    t.write(&mut dev).unwrap();
    let mut torn = dev.into_image();
    // and put the backup back to the original state, so "old" is well defined
    let orig = read(&image).unwrap();
    let len = torn.len();
    torn[len - 33 * 512..].copy_from_slice(&image[len - 33 * 512..]);
    assert!(read(&torn).unwrap().slots() == orig.slots());
    torn
}

#[test]
fn every_cut_point_of_every_verb_leaves_a_bootable_disk() {
    let fresh = ((1, 0, true), (0, 0, false));
    let staged = ((1, 0, true), (2, 1, false));
    let first_boot = ((1, 0, true), (2, 0, false));
    let b_good = ((1, 0, true), (2, 0, true));
    // (verb, starting state, what the verb does to the slots: the binary's own functions)
    let verbs: &[(&str, (Attrs, Attrs), Change)] = &[
        ("stage B", fresh, |s| ab::stage(s, 1)),
        ("next (GRUB) on staged B", staged, |s| {
            let i = ab::next_boot(s).unwrap();
            s[i].attrs = ab::spend_try(s[i].attrs);
        }),
        ("mark-good B", first_boot, |s| ab::mark_good(s, 1)),
        ("rollback to A", b_good, |s| {
            ab::rollback(s, 0, false).unwrap()
        }),
        ("rollback --force to never-good B", fresh, |s| {
            ab::rollback(s, 1, true).unwrap()
        }),
        ("spend B (gate failed)", first_boot, |s| {
            ab::spend_slot(s, 1).unwrap()
        }),
        ("stage A over a good B", b_good, |s| ab::stage(s, 0)),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut cut_points = 0;
    let mut survivors: HashSet<Vec<u8>> = HashSet::new();
    // each verb from a clean table and from one a previous cut left torn (new primary
    // array, old primary header: only the backup valid), where the order of the copies
    // decides whether a second cut can destroy the last valid one
    let starts: Vec<(&str, Attrs, Attrs, Change, bool)> = verbs
        .iter()
        .flat_map(|(n, (a, b), c)| [(*n, *a, *b, *c, false), (*n, *a, *b, *c, true)])
        .collect();
    for (name, a, b, change, torn) in &starts {
        let before = if *torn {
            torn_primary(state(*a, *b))
        } else {
            state(*a, *b)
        };
        let name = &format!("{name}{}", if *torn { " (primary torn)" } else { "" });
        let old = read(&before).unwrap();
        let mut new_slots = old.slots();
        change(&mut new_slots);
        assert_eq!(
            old.used,
            if *torn {
                abguard::disk::gpt::GptCopy::Backup
            } else {
                abguard::disk::gpt::GptCopy::Primary
            }
        );
        let (old_choice, new_choice) = (choice(&old.slots()), choice(&new_slots));
        // count the writes of an uninterrupted run, and each write's size in sectors
        let mut probe = PowerCut::new(before.clone(), usize::MAX, None);
        let mut t = old.clone();
        t.set_slots(&new_slots);
        t.write(&mut probe).unwrap();
        let writes = probe.writes_seen;
        assert_eq!(
            writes, 4,
            "{name}: backup array, backup header, primary array, primary header"
        );
        let sectors = [32usize, 1, 32, 1];
        for k in 0..=writes {
            let tears: Vec<Option<usize>> = std::iter::once(None)
                .chain((1..sectors.get(k).copied().unwrap_or(0)).map(Some))
                .collect();
            for tear in tears {
                cut_points += 1;
                let mut dev = PowerCut::new(before.clone(), k, tear);
                t.write(&mut dev).unwrap();
                let after = dev.into_image();
                let what = format!("{name}: cut after {k} writes, tear {tear:?}");
                let table = read(&after).unwrap_or_else(|e| panic!("{what}: unreadable: {e:#}"));
                let slots = table.slots();
                let c = choice(&slots);
                assert!(c.is_some(), "{what}: no bootable partition");
                assert!(
                    c == old_choice || c == new_choice,
                    "{what}: GRUB would boot {c:?}, neither {old_choice:?} nor {new_choice:?}"
                );
                let i = ab::next_boot(&slots).unwrap();
                assert!(
                    slots[i].attrs.tries > 0 || slots[i].attrs.successful,
                    "{what}"
                );
                // a complete write, or none, leaves both copies agreeing
                if k == writes || (k == 0 && tear.is_none() && !*torn) {
                    assert!(table.problems.is_empty(), "{what}: {:?}", table.problems);
                }
                survivors.insert(after);
            }
        }
    }
    // what cgpt reads from every distinct surviving disk is what we read
    for (n, img) in survivors.iter().enumerate() {
        let path = dir.path().join(format!("s{n}.img"));
        std::fs::write(&path, img).unwrap();
        for s in read(img).unwrap().slots() {
            let (p, t, ok, _) = cgpt_attrs(&path, s.partition);
            assert_eq!(
                (p, t, ok),
                (s.attrs.priority, s.attrs.tries, s.attrs.successful),
                "survivor {n}"
            );
        }
    }
    println!(
        "power cuts: {cut_points} cut points ({} verbs, each from a clean and a torn table), {} distinct survivors, all cross-checked with cgpt",
        verbs.len(),
        survivors.len()
    );
    assert!(cut_points >= starts.len() * 67);
}

#[test]
fn the_next_write_repairs_a_torn_table() {
    // cut between the backup and the primary: the primary still holds the old state
    let before = state((1, 0, true), (0, 0, false));
    let mut t = read(&before).unwrap();
    let mut s = t.slots();
    ab::stage(&mut s, 1);
    t.set_slots(&s);
    let mut dev = PowerCut::new(before, 2, None);
    t.write(&mut dev).unwrap();
    let torn = dev.into_image();
    let r = read(&torn).unwrap();
    assert_eq!(
        r.problems,
        ["backup partition array differs from the primary"]
    );
    assert_eq!(
        r.slots()[1].attrs.priority,
        0,
        "the primary wins, as in GRUB"
    );
    // any later write makes both copies agree again
    let mut c = std::io::Cursor::new(torn);
    r.write(&mut c).unwrap();
    assert!(read(c.get_ref()).unwrap().problems.is_empty());
}
