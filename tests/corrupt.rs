//! Damaged tables: fall back to the good copy and say so, or fail with a clear error
//! and write nothing. Repairs must equal `cgpt repair` followed by `cgpt add`.

mod common;
use common::*;
use std::path::Path;

fn corrupt(img: &Path, kind: &str) {
    run_ok(
        repo().join("images/corrupt.sh").to_str().unwrap(),
        &[img.to_str().unwrap(), kind],
    );
}

#[test]
fn one_bad_copy_falls_back_and_repairs_like_cgpt() {
    // (kind, copy expected to be used, words expected in the problem report)
    let cases = [
        ("primary-header", "backup", "primary header"),
        ("primary-array", "backup", "primary partition array"),
        ("backup-header", "primary", "backup header"),
        ("backup-array", "primary", "backup partition array"),
    ];
    for (kind, used, problem) in cases {
        let dir = tempfile::tempdir().unwrap();
        let ours = copy(dir.path(), "ours.img");
        corrupt(&ours, kind);
        let theirs = dir.path().join("theirs.img");
        std::fs::copy(&ours, &theirs).unwrap();

        // working but degraded: status answers and exits 5
        let o = abguard(&["status", "--disk", ours.to_str().unwrap(), "--json"]);
        assert_eq!(o.status.code(), Some(5), "{kind}: {}", stderr(&o));
        assert!(j_degraded(&o).contains(problem), "{kind}");
        let j = json(&o);
        assert_eq!(j["table"], used, "{kind}");
        let problems = j["problems"].to_string();
        assert!(problems.contains(problem), "{kind}: {problems}");
        assert_eq!(j["slots"][0]["priority"], 1, "{kind}: slots still read");
        assert_eq!(j["next_boot"], 3);

        let o = abguard(&[
            "stage",
            "--disk",
            ours.to_str().unwrap(),
            "--partition",
            "4",
        ]);
        assert!(o.status.success(), "{kind}: {}", stderr(&o));
        run_ok("cgpt", &["repair", theirs.to_str().unwrap()]);
        cgpt_add(&theirs, 4, 2, 1, false);
        assert!(
            sha(&ours) == sha(&theirs),
            "{kind}: repair + stage differs from cgpt repair + add"
        );
        let o = abguard(&["status", "--disk", ours.to_str().unwrap(), "--json"]);
        assert_eq!(o.status.code(), Some(0), "{kind}: repaired, fine again");
        let j = json(&o);
        assert_eq!(
            (j["table"].as_str(), j["problems"].as_array().map(Vec::len)),
            (Some("primary"), Some(0)),
            "{kind}"
        );
    }
}

#[test]
fn unusable_disks_are_clear_errors_without_writes() {
    // (kind, words the error must contain)
    let cases = [
        ("both-headers", "no valid GPT copy"),
        ("truncate", "no"),
        ("zero", "too small"),
        ("mbr-only", "no GPT partition table"),
        ("protective-mbr-only", "no GPT partition table"),
    ];
    for (kind, words) in cases {
        let dir = tempfile::tempdir().unwrap();
        let img = copy(dir.path(), "d.img");
        corrupt(&img, kind);
        let before = sha(&img);
        for args in [
            vec!["status"],
            vec!["next"],
            vec!["stage", "--partition", "4"],
            vec!["mark-good", "--partition", "3"],
            vec!["rollback", "--partition", "3"],
        ] {
            let mut a = args.clone();
            a.extend(["--disk", img.to_str().unwrap()]);
            let o = abguard(&a);
            assert_eq!(o.status.code(), Some(1), "{kind} {args:?}: {}", stderr(&o));
            let e = stderr(&o);
            assert!(
                e.starts_with("error: ") && e.contains(words),
                "{kind} {args:?}: {e}"
            );
            assert!(!e.contains("panicked"), "{kind}: {e}");
        }
        assert!(
            sha(&img) == before,
            "{kind}: a failed verb wrote to the disk"
        );
    }
}

#[test]
fn not_a_disk_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("random.bin");
    let mut rng = Rng(7);
    let bytes: Vec<u8> = (0..1 << 20).map(|_| rng.next() as u8).collect();
    std::fs::write(&f, &bytes).unwrap();
    let o = abguard(&["status", "--disk", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no GPT"), "{}", stderr(&o));
    let o = abguard(&[
        "status",
        "--disk",
        dir.path().join("missing").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
}

#[test]
fn wrong_partition_numbers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy(dir.path(), "d.img");
    let before = sha(&img);
    for n in ["9", "5", "0", "200"] {
        let o = abguard(&["stage", "--disk", img.to_str().unwrap(), "--partition", n]);
        assert_eq!(o.status.code(), Some(3), "{n}: {}", stderr(&o));
        assert!(stderr(&o).contains("not a USR partition"), "{}", stderr(&o));
    }
    assert!(sha(&img) == before);
}

#[test]
fn a_non_utf8_image_path_is_a_path_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let img = dir
        .path()
        .join(std::ffi::OsStr::from_bytes(b"disk-\xff.img"));
    std::fs::copy(copy(dir.path(), "plain.img"), &img).unwrap();
    for verb in ["status", "next"] {
        let o = std::process::Command::new(bin())
            .arg(verb)
            .arg("--disk")
            .arg(&img)
            .arg("--json")
            .output()
            .unwrap();
        assert!(o.status.success(), "{verb}: {}", stderr(&o));
    }
    assert_eq!(
        json(&abguard(&[
            "status",
            "--disk",
            dir.path().join("plain.img").to_str().unwrap(),
            "--json"
        ]))["next_boot"],
        3
    );
}

fn j_degraded(o: &std::process::Output) -> String {
    json(o)["degraded"].to_string()
}
