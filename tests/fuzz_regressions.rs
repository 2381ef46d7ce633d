//! Replays the fuzz inputs on stable, through the very functions the libFuzzer targets
//! call (fuzz/src/lib.rs, included below): every crash the fuzzer found, minimised and
//! saved in fuzz/regressions/<target>/, and the checked-in seed corpus
//! fuzz/corpus/<target>/. `make fuzz` (ci/fuzz.sh) runs the fuzzer itself.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzz_checks;

use std::path::Path;

type Check = fn(&[u8]);

const TARGETS: &[(&str, Check)] = &[
    ("gpt_read", fuzz_checks::gpt_read),
    ("gpt_image", fuzz_checks::gpt_image),
    ("cmdline", fuzz_checks::cmdline),
    ("osrelease", fuzz_checks::osrelease),
    ("dm_ioctl", fuzz_checks::dm_ioctl),
    ("dm_lines", fuzz_checks::dm_lines),
    ("mountinfo", fuzz_checks::mountinfo),
];

/// Run every file under `dir/<target>/` through its target; returns how many ran.
fn replay(dir: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut failures = Vec::new();
    let mut ran = 0;
    for (target, check) in TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files.into_iter().filter(|f| f.is_file()) {
            let data = std::fs::read(&f).unwrap();
            ran += 1;
            if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{target} {}: {msg}", f.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} input(s) panic:\n{}",
        failures.len(),
        failures.join("\n")
    );
    ran
}

#[test]
fn saved_crashes_no_longer_panic() {
    let n = replay("fuzz/regressions");
    eprintln!("{n} regression input(s) replayed");
}

#[test]
fn seed_corpus_does_not_panic() {
    let n = replay("fuzz/corpus");
    assert!(n > 40, "only {n} seed inputs found");
}
