//! Every read and write cross-checked against the real cgpt and sgdisk on images:
//! random attribute states, foreign attribute bits, and writes byte-identical to
//! `cgpt add` making the same change.

mod common;
use abguard::decide::ab;
use abguard::disk::gpt::Table;
use common::*;
use std::fs::OpenOptions;

fn read(img: &std::path::Path) -> Table {
    let mut f = std::fs::File::open(img).unwrap();
    Table::read(&mut f, 512).unwrap()
}

#[test]
fn random_states_agree_with_cgpt_and_sgdisk() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ours = copy(dir.path(), "ours.img");
    let theirs = copy(dir.path(), "theirs.img");
    // foreign bits that must survive: legacy-bootable, read-only, no-auto, reserved 57
    run_ok(
        "sgdisk",
        &[
            "-A",
            "3:set:2",
            "-A",
            "3:set:60",
            "-A",
            "4:set:63",
            "-A",
            "4:set:57",
            "-A",
            "4:set:0",
            ours.to_str().unwrap(),
        ],
    );
    std::fs::copy(&ours, &theirs).unwrap();
    let foreign = [
        sgdisk_attr_bits(&ours, 3) & !(0x1ff << 48),
        sgdisk_attr_bits(&ours, 4) & !(0x1ff << 48),
    ];
    for round in 0..60 {
        let mut table = read(&ours);
        let mut slots = table.slots();
        for s in slots.iter_mut() {
            s.attrs.priority = rng.below(16) as u8;
            s.attrs.tries = rng.below(16) as u8;
            s.attrs.successful = rng.below(2) == 1;
        }
        table.set_slots(&slots);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&ours)
            .unwrap();
        table.write(&mut f).unwrap();
        drop(f);
        for s in &slots {
            cgpt_add(
                &theirs,
                s.partition,
                s.attrs.priority,
                s.attrs.tries,
                s.attrs.successful,
            );
        }
        assert!(
            sha(&ours) == sha(&theirs),
            "round {round}: not byte-identical to cgpt add for {slots:?}"
        );
        let back = read(&ours).slots();
        assert_eq!(back, slots, "round {round}: read back");
        for (i, s) in slots.iter().enumerate() {
            let (p, t, ok, a) = cgpt_attrs(&ours, s.partition);
            assert_eq!(
                (p, t, ok),
                (s.attrs.priority, s.attrs.tries, s.attrs.successful),
                "round {round} cgpt"
            );
            let bits = sgdisk_attr_bits(&ours, s.partition);
            assert_eq!(bits >> 48, u64::from(a), "cgpt -A is bits 48..63");
            assert_eq!(
                bits & !(0x1ff << 48),
                foreign[i],
                "round {round}: foreign bits kept"
            );
        }
    }
    // sgdisk agrees the table is sound and numbering is unchanged (no 5 and 8)
    let p = run_ok("sgdisk", &["-p", ours.to_str().unwrap()]);
    let numbers: Vec<&str> = p
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(numbers, ["1", "2", "3", "4", "6", "7", "9"]);
}

#[test]
fn verbs_are_byte_identical_to_cgpt() {
    // (verb args, expected USR-A and USR-B (P, T, S) after, starting from the fresh image)
    type Row = (&'static [&'static str], (u8, u8, bool), (u8, u8, bool));
    let cases: &[Row] = &[
        (&["stage", "--partition", "4"], (1, 0, true), (2, 1, false)),
        (
            &["mark-good", "--partition", "4"],
            (1, 0, true),
            (2, 0, true),
        ),
        (
            &["rollback", "--partition", "4", "--force"],
            (1, 0, true),
            (2, 1, false),
        ),
        (
            &["mark-good", "--partition", "3"],
            (1, 0, true),
            (0, 0, false),
        ),
        (&["next"], (1, 0, true), (0, 0, false)),
    ];
    for (args, a, b) in cases {
        let dir = tempfile::tempdir().unwrap();
        let ours = copy(dir.path(), "ours.img");
        let theirs = copy(dir.path(), "theirs.img");
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--disk", ours.to_str().unwrap()]);
        let o = abguard(&full);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        cgpt_add(&theirs, 3, a.0, a.1, a.2);
        cgpt_add(&theirs, 4, b.0, b.1, b.2);
        assert!(sha(&ours) == sha(&theirs), "{args:?} differs from cgpt add");
    }
}

#[test]
fn stage_then_next_then_fallback_on_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy(dir.path(), "d.img");
    let d = img.to_str().unwrap();
    assert!(abguard(&["stage", "--disk", d, "--partition", "4"])
        .status
        .success());
    let o = abguard(&["next", "--disk", d, "--json"]);
    let j = json(&o);
    assert_eq!(
        (
            j["partition"].as_u64(),
            j["tries_before"].as_u64(),
            j["tries_after"].as_u64()
        ),
        (Some(4), Some(1), Some(0))
    );
    assert_eq!(j["partuuid"], B_UUID);
    assert_eq!(cgpt_attrs(&img, 4), (2, 0, false, 0x2));
    // no mark-good: the next boot falls back to A and writes nothing (A has no tries)
    let before = sha(&img);
    assert_eq!(stdout(&abguard(&["next", "--disk", d])).trim(), "3");
    assert!(sha(&img) == before, "spending nothing must write nothing");
    // dry run never writes
    assert!(abguard(&["stage", "--disk", d, "--partition", "4"])
        .status
        .success());
    let before = sha(&img);
    let o = abguard(&["next", "--disk", d, "--dry-run", "--json"]);
    assert_eq!(json(&o)["tries_after"], 0);
    assert!(sha(&img) == before);
}

#[test]
fn nothing_bootable_is_exit_3_without_write() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy(dir.path(), "d.img");
    cgpt_add(&img, 3, 1, 0, false);
    cgpt_add(&img, 4, 2, 0, false);
    let before = sha(&img);
    let o = abguard(&["next", "--disk", img.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("no USR partition qualifies"),
        "{}",
        stderr(&o)
    );
    assert!(sha(&img) == before);
}

#[test]
fn rollback_refuses_a_never_good_slot() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy(dir.path(), "d.img");
    let before = sha(&img);
    // from the fresh image, the other slot (B) never booted
    let o = abguard(&[
        "rollback",
        "--disk",
        img.to_str().unwrap(),
        "--partition",
        "4",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("never booted successfully"),
        "{}",
        stderr(&o)
    );
    assert!(sha(&img) == before);
    // after B became good, rolling back to A needs no force
    assert!(abguard(&[
        "mark-good",
        "--disk",
        img.to_str().unwrap(),
        "--partition",
        "4"
    ])
    .status
    .success());
    let o = abguard(&[
        "rollback",
        "--disk",
        img.to_str().unwrap(),
        "--partition",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(cgpt_attrs(&img, 3).0, 2);
    assert_eq!(
        ab::next_boot(&read(&img).slots()).map(|i| read(&img).slots()[i].partition),
        Some(3)
    );
}

#[test]
fn rollback_without_a_known_booted_slot_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy(dir.path(), "d.img");
    // mid-update: B staged (GRUB's next slot), A the good one; an image has no booted
    // slot, so counting from GRUB's next would pick A and --force would re-arm B
    cgpt_add(&img, 4, 2, 1, false);
    cgpt_add(&img, 3, 1, 0, true);
    let before = sha(&img);
    for force in [false, true] {
        let mut args = vec!["rollback", "--disk", img.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        let o = abguard(&args);
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(stderr(&o).contains("--partition"), "{}", stderr(&o));
        assert!(sha(&img) == before, "nothing written (force={force})");
    }
}

#[test]
fn status_json_has_the_documented_fields() {
    let o = abguard(&["status", "--disk", sample().img.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["table"], "primary");
    assert_eq!(j["next_boot"], 3);
    let s = &j["slots"][1];
    for k in [
        "label",
        "partition",
        "partuuid",
        "priority",
        "tries",
        "successful",
    ] {
        assert!(!s[k].is_null(), "slot field {k}");
    }
    assert_eq!(s["partuuid"], B_UUID);
    assert_eq!(j["slots"][0]["label"], "USR-A");
}

/// Flatcar's own cgpt (seismograph, which knows the USR type, unlike Debian's) unpacked into
/// `dir`, or None (skip) when it is neither configured nor at the default place.
/// ABGUARD_FLATCAR_SEISMOGRAPH names the folder; when it is set (as .ci/run does) a missing
/// tarball fails the test.
fn flatcar_cgpt(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let (folder, required) = match std::env::var_os("ABGUARD_FLATCAR_SEISMOGRAPH") {
        Some(d) => (std::path::PathBuf::from(d), true),
        None => (repo().join("../shared/vendor/flatcar-seismograph"), false),
    };
    let tar = folder.join("seismograph-bin-debian12-amd64.tar.xz");
    if !tar.is_file() {
        assert!(
            !required,
            "ABGUARD_FLATCAR_SEISMOGRAPH is set but {} is missing",
            tar.display()
        );
        skip(&format!(
            "Flatcar's cgpt oracle needs {} (docs/test-dependencies.md)",
            tar.display()
        ));
        return None;
    }
    run_ok(
        "tar",
        &["-xJf", tar.to_str().unwrap(), "-C", dir.to_str().unwrap()],
    );
    Some(dir.join("bin/cgpt"))
}

/// `stage` is Flatcar's postinst and `mark-good` its setgoodroot, byte for byte, as Flatcar's
/// cgpt writes them (`cgpt repair`, `cgpt add -i N -S0 -T1` / `-S1 -T0`, `cgpt prioritize -i N`),
/// on random states of an image whose sector 0 cgpt wrote itself (cgpt rewrites the protective
/// MBR on every call; abguard never touches sector 0). Flatcar's `cgpt show` reads the USR
/// attributes back the same.
#[test]
fn stage_and_mark_good_are_byte_identical_to_flatcar_cgpt() {
    let dir = tempfile::tempdir().unwrap();
    let Some(cgpt) = flatcar_cgpt(dir.path()) else {
        return;
    };
    let cgpt = cgpt.to_str().unwrap();
    let base = copy(dir.path(), "base.img");
    run_ok(cgpt, &["repair", base.to_str().unwrap()]);
    let base = std::fs::read(&base).unwrap();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut cases = 0;
    for _ in 0..10 {
        let mut attrs = || (rng.below(16) as u8, rng.below(16) as u8, rng.below(2) == 1);
        let (a, b) = (attrs(), attrs());
        let start = with_attrs(&base, a, b);
        for n in ["3", "4"] {
            for (verb, s, t) in [("stage", "0", "1"), ("mark-good", "1", "0")] {
                let what = format!("{verb} {n} from A {a:?} B {b:?}");
                let (ours, theirs) = (dir.path().join("ours.img"), dir.path().join("theirs.img"));
                std::fs::write(&ours, &start).unwrap();
                std::fs::write(&theirs, &start).unwrap();
                let o = abguard(&[verb, "--partition", n, "--disk", ours.to_str().unwrap()]);
                let img = theirs.to_str().unwrap();
                run_ok(cgpt, &["repair", img]);
                run_ok(cgpt, &["add", "-i", n, "-S", s, "-T", t, img]);
                run_ok(cgpt, &["prioritize", "-i", n, img]);
                assert!(
                    o.status.success(),
                    "{what}: abguard refused: {}",
                    stderr(&o)
                );
                assert!(
                    sha(&ours) == sha(&theirs),
                    "{what}: differs from Flatcar's cgpt"
                );
                let show = run_ok(cgpt, &["show", "-i", n, img]);
                assert!(
                    show.contains("Attr: priority="),
                    "{what}: Flatcar's cgpt shows no USR attributes: {show}"
                );
                cases += 1;
            }
        }
    }
    println!("{cases} writes byte-identical to Flatcar's cgpt");
}
