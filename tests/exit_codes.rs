//! Every verb ends with a code of the one table (src/exit.rs): the same meaning in every
//! verb, and only the codes `abguard::exit::codes` lists for it (which its man page and
//! --help print). Each verb is run into each of its codes here, except where a code
//! needs a setup another test owns (named in `ELSEWHERE`).

mod common;
use abguard::exit::{codes, ExitCode};
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// (verb, code, the test that runs the verb into it)
const ELSEWHERE: &[(&str, i32, &str)] = &[
    (
        "pass-gate",
        0,
        "tests/status_answers.rs (a fake machine's pending gate)",
    ),
    (
        "fail-gate",
        0,
        "tests/status_answers.rs (a fake machine's pending gate)",
    ),
    ("verify", 0, "tests/verify.rs (the cryptsetup build)"),
    ("verify", 3, "tests/verify.rs (the cryptsetup build)"),
    ("verify", 4, "tests/verify.rs (the cryptsetup build)"),
    (
        "read-usr",
        4,
        "tests/loopdev.rs (a dm-verity device with a bad block)",
    ),
    (
        "emergency",
        1,
        "none: it leaves the boot alone on every error, by design",
    ),
    ("gate-pass", 1, "tests/gate_watch.rs: an unreadable /run"),
    (
        "initrd",
        1,
        "none: every verdict, also indeterminate, exits 0",
    ),
    (
        "assess",
        1,
        "none: every verdict, also indeterminate, exits 0",
    ),
];

/// Run abguard with stdin a terminal (`script` gives it a pty): the exit code.
fn at_terminal(args: &[&str]) -> Option<i32> {
    let cmd = std::iter::once(bin().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux");
    o.status.code()
}

fn code(args: &[&str]) -> Option<i32> {
    abguard(args).status.code()
}

#[test]
fn every_verb_keeps_to_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = |n: &str| d.join(n).display().to_string();
    let img = copy(d, "d.img").display().to_string();
    let dead = d.join("dead.img");
    std::fs::write(&dead, with_attrs(tiny_gpt(), (1, 0, false), (2, 0, false))).unwrap();
    let dead = dead.display().to_string();
    let missing = p("missing.img");
    std::fs::write(d.join("a-file"), "").unwrap();
    let file = p("a-file");
    std::fs::create_dir_all(d.join("root/etc/abguard")).unwrap();
    std::fs::write(d.join("root/etc/abguard/abguard.conf"), "NO_SUCH_KEY=1\n").unwrap();
    let root = p("root");
    let empty_run = p("run");
    std::fs::create_dir_all(&empty_run).unwrap();
    std::fs::create_dir_all(d.join("clean")).unwrap();
    let clean = p("clean");
    // a gate pending
    std::fs::create_dir_all(d.join("pending/abguard")).unwrap();
    std::fs::write(d.join("pending/abguard/needs-health-check"), "").unwrap();
    let pending = p("pending");
    // the same with /run/abguard a symlink: abguard writes nothing through it
    std::fs::create_dir_all(d.join("elsewhere")).unwrap();
    std::fs::write(d.join("elsewhere/needs-health-check"), "").unwrap();
    std::fs::create_dir_all(d.join("linked")).unwrap();
    std::os::unix::fs::symlink(d.join("elsewhere"), d.join("linked/abguard")).unwrap();
    let linked = p("linked");
    // a held list that does not parse
    std::fs::create_dir_all(d.join("badheld/var/lib/abguard")).unwrap();
    std::fs::write(d.join("badheld/var/lib/abguard/held.json"), "{").unwrap();
    let badheld = p("badheld");

    // (verb, arguments after it, code)
    let mut cases: Vec<(&str, Vec<&str>, i32)> = vec![
        ("status", vec!["--disk", &img], 0),
        ("status", vec!["--disk", &missing], 1),
        ("status", vec!["--disk", &dead], 5),
        ("status", vec!["--disk", &dead, "--short"], 5),
        ("next", vec!["--disk", &img, "--dry-run"], 0),
        ("next", vec!["--disk", &missing], 1),
        ("next", vec!["--disk", &dead], 3),
        ("stage", vec!["--disk", &img, "--partition", "4"], 0),
        ("stage", vec!["--disk", &missing, "--partition", "4"], 1),
        ("stage", vec!["--disk", &img, "--partition", "9"], 3),
        ("mark-good", vec!["--disk", &img, "--partition", "3"], 0),
        ("mark-good", vec!["--disk", &missing, "--partition", "3"], 1),
        // an image has no booted slot: name it
        ("mark-good", vec!["--disk", &img], 3),
        ("rollback", vec!["--disk", &img, "--partition", "3"], 0),
        ("rollback", vec!["--disk", &missing, "--partition", "3"], 1),
        ("rollback", vec!["--disk", &img], 3),
        (
            "pass-gate",
            vec!["--disk", &img, "--run-dir", &empty_run],
            3,
        ),
        ("pass-gate", vec!["--disk", &img, "--run-dir", &linked], 1),
        (
            "fail-gate",
            vec!["--disk", &img, "--run-dir", &empty_run],
            3,
        ),
        // pending, but an image has no booted slot to spend
        ("fail-gate", vec!["--disk", &img, "--run-dir", &pending], 1),
        ("disable", vec!["--sysroot", &root], 0),
        ("enable", vec!["--sysroot", &root], 0),
        ("disable", vec!["--sysroot", &file], 1),
        ("enable", vec!["--sysroot", &file], 1),
        ("config", vec!["--root", &clean], 0),
        ("config", vec!["--root", &root, "--check"], 1),
        ("butane", vec!["--critical-unit", "a.service"], 0),
        ("butane", vec!["--check-file", "x=/no/such/file"], 2),
        ("verify", vec!["--disk", &missing, "--partition", "4"], 1),
        ("read-usr", vec!["--device", &img], 0),
        ("read-usr", vec!["--device", &missing], 1),
        ("allow", vec!["--sysroot", &root, "--all"], 0),
        ("allow", vec!["--sysroot", &badheld, "--all"], 1),
        ("guard-staged", vec!["--disk", &img, "--sysroot", &root], 0),
        ("guard-staged", vec!["--disk", &missing], 1),
        (
            "initrd",
            vec![
                "--no-reboot",
                "--disk",
                &img,
                "--run-dir",
                &empty_run,
                "--sysroot",
                &root,
            ],
            0,
        ),
        (
            "assess",
            vec![
                "--no-reboot",
                "--disk",
                &img,
                "--run-dir",
                &empty_run,
                "--sysroot",
                &root,
            ],
            0,
        ),
        (
            "gate-pass",
            vec!["--no-reboot", "--run-dir", &empty_run, "--sysroot", &root],
            0,
        ),
        (
            "gate-fail",
            vec!["--no-reboot", "--run-dir", &empty_run, "--sysroot", &root],
            0,
        ),
        ("gate-fail", vec!["--no-reboot", "--run-dir", &file], 1),
        ("emergency", vec!["--no-reboot", "--disk", &img], 0),
    ];
    let verbs: Vec<String> = {
        use clap::CommandFactory;
        let mut c = abguard::cli::Cli::command();
        c.build();
        c.get_subcommands()
            .map(|s| s.get_name().to_string())
            .filter(|n| n != "help" && n != "generator")
            .collect()
    };
    // a usage error is 2 in every verb
    for v in &verbs {
        cases.push((v, vec!["--no-such-option"], 2));
    }
    let mut seen: Vec<(String, i32)> = Vec::new();
    let mut bad = Vec::new();
    for (verb, args, want) in &cases {
        let mut a = vec![*verb];
        a.extend(args.iter().copied());
        let got = code(&a);
        if got != Some(*want) {
            bad.push(format!(
                "abguard {}: exit {got:?}, want {want}",
                a.join(" ")
            ));
        }
        seen.push((verb.to_string(), *want));
    }
    // the internal verbs that may reboot refuse a terminal without --yes (exit 3),
    // before touching anything
    for verb in ["initrd", "assess", "gate-pass", "gate-fail", "emergency"] {
        let args = [verb, "--disk", &missing, "--run-dir", &empty_run];
        match at_terminal(&args) {
            Some(3) => seen.push((verb.to_string(), 3)),
            got => bad.push(format!(
                "abguard {verb} at a terminal: exit {got:?}, want 3"
            )),
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    for (verb, code) in &seen {
        let listed: Vec<i32> = codes(verb).iter().map(|c| c.code()).collect();
        assert!(
            listed.contains(code),
            "{verb} exits {code}, which its codes {listed:?} do not list"
        );
    }
    // every code a verb lists is reached here or by the test named for it
    for v in &verbs {
        for c in codes(v) {
            let c = c.code();
            let here = seen.iter().any(|(s, x)| s == v && *x == c);
            let there = ELSEWHERE.iter().any(|(s, x, _)| s == v && *x == c);
            assert!(here || there, "nothing runs {v} into exit {c}");
        }
    }
    assert_eq!(ExitCode::Degraded.code(), 5);
    let _ = Path::new(&img);
}
