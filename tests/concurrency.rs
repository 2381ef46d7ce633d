//! Two writers at once: every pair of GPT-changing verbs, started together on one image
//! file from several start states, must end as one of the two serial orders would
//! (byte for byte, with the same exit codes) and with both GPT copies valid. Without the
//! disk lock (src/disk/lock.rs) the later writer overwrote the earlier one's change from a
//! table it read before that change: most runs ended in no serial order's result.

mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

/// The tiny image with these (priority, tries, successful) for USR-A (3) and USR-B (4).
fn state(a: Attrs, b: Attrs) -> Vec<u8> {
    with_attrs(tiny_gpt(), a, b)
}

/// The GPT-changing verbs (each with an explicit slot, since an image has no booted one).
const VERBS: &[&[&str]] = &[
    &["stage", "--partition", "4"],
    &["stage", "--partition", "3"],
    &["mark-good", "--partition", "4"],
    &["mark-good", "--partition", "3"],
    &["rollback", "--force", "--partition", "3"],
    &["rollback", "--force", "--partition", "4"],
    &["next"],
];

fn cmd(verb: &[&str], img: &Path) -> Command {
    let mut c = Command::new(bin());
    c.args(verb).arg("--disk").arg(img);
    c
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Both verbs, one after the other: (image, exit codes in the order of `pair`).
fn serial(start: &[u8], first: &[&str], second: &[&str], dir: &Path) -> (Vec<u8>, [i32; 2]) {
    let img = dir.join("serial.img");
    std::fs::write(&img, start).unwrap();
    let a = code(&cmd(first, &img).output().unwrap());
    let b = code(&cmd(second, &img).output().unwrap());
    (std::fs::read(&img).unwrap(), [a, b])
}

#[test]
fn paired_writers_end_in_a_serial_order_with_both_copies_valid() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let starts = [
        ((1, 0, true), (0, 0, false)), // A good, B empty
        ((1, 0, true), (2, 1, false)), // B staged
        ((1, 0, true), (2, 0, false)), // B spent (fell back)
        ((1, 0, true), (2, 0, true)),  // B good
        ((2, 1, false), (1, 0, true)), // A staged over a good B
    ];
    let mut pairs = Vec::new();
    for (i, a) in VERBS.iter().enumerate() {
        for b in &VERBS[i..] {
            pairs.push((*a, *b));
        }
    }
    let rounds = 2;
    let (mut runs, mut bad) = (0, Vec::new());
    for (si, &(a, b)) in starts.iter().enumerate() {
        let start = state(a, b);
        for &(v1, v2) in &pairs {
            let (ab_img, ab_codes) = serial(&start, v1, v2, dir.path());
            let (ba_img, [b2, b1]) = serial(&start, v2, v1, dir.path());
            let ba_codes = [b1, b2];
            for r in 0..rounds {
                let img = dir.path().join(format!("run-{si}-{r}.img"));
                std::fs::write(&img, &start).unwrap();
                let mut p1 = cmd(v1, &img)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                let mut p2 = cmd(v2, &img)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                let codes = [
                    p1.wait().unwrap().code().unwrap_or(-1),
                    p2.wait().unwrap().code().unwrap_or(-1),
                ];
                runs += 1;
                let got = std::fs::read(&img).unwrap();
                let status = json(&abguard(&[
                    "status",
                    "--json",
                    "--disk",
                    img.to_str().unwrap(),
                ]));
                let problems = status["problems"].as_array().cloned().unwrap_or_default();
                let serial_ok =
                    (got == ab_img && codes == ab_codes) || (got == ba_img && codes == ba_codes);
                if !serial_ok || !problems.is_empty() {
                    bad.push(format!(
                        "start {:?} {v1:?} ∥ {v2:?}: exit {codes:?} (serial {ab_codes:?}/{ba_codes:?}), {} serial result, problems {problems:?}",
                        starts[si],
                        if serial_ok { "a" } else { "no" }
                    ));
                }
                std::fs::remove_file(&img).unwrap();
            }
        }
    }
    println!(
        "{runs} paired runs ({} verb pairs x {} start states x {rounds}): {} wrong, {:.1} s",
        pairs.len(),
        starts.len(),
        bad.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(runs >= 200);
    assert!(
        bad.is_empty(),
        "{} of {runs} runs wrong:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// A holder that never lets go (a stuck tool, udev probing forever): the writer gives up
/// after the bounded wait with an error naming the disk, and writes nothing.
#[test]
fn a_writer_gives_up_on_a_held_lock_naming_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("held.img");
    let start = state((1, 0, true), (0, 0, false));
    std::fs::write(&img, &start).unwrap();
    let held = abguard::disk::lock::exclusive(
        std::fs::File::open(&img).unwrap(),
        &img,
        abguard::disk::lock::WAIT,
    )
    .unwrap();
    let t = Instant::now();
    let o = cmd(&["stage", "--partition", "4"], &img).output().unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(t.elapsed() >= abguard::disk::lock::WAIT);
    assert!(
        stderr(&o).contains(&format!("{} is locked by another process", img.display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&img).unwrap(), start, "nothing written");
    // a reader needs no lock
    let s = abguard(&["status", "--json", "--disk", img.to_str().unwrap()]);
    assert!(s.status.success(), "{}", stderr(&s));
    drop(held);
}
