//! Unit tests of `history` (beside it, to keep that file short).

use super::*;

#[test]
fn counters_follow_events() {
    let t = tempfile::tempdir().unwrap();
    let ev = |event: &str, verdict: &str, first: bool, spent: bool| {
        let mut r = Record::new(Event::parse(event), Verdict::parse(verdict));
        r.first_boot_after_upgrade = Some(first);
        if spent {
            r.actions.push(crate::types::event::Action::Spent {
                label: "USR-B".into(),
                partition: 4,
            });
        }
        record_event(t.path(), &r).unwrap();
    };
    ev("initrd", "healthy", false, false);
    ev("initrd", "needs-health-check", true, false);
    ev("gate-failed", "rollback", true, true);
    ev("initrd", "healthy", false, false);
    ev("initrd", "rollback", true, true);
    ev("initrd", "needs-health-check", true, false);
    ev("gate-passed", "healthy", true, false);
    let c = read_counters(t.path());
    assert_eq!(
        c,
        Counters {
            boots: 5,
            first_boots: 3,
            gate_passed: 1,
            failed_first_boots: 2,
            rollbacks: 2,
            versions: vec![VersionFailures {
                version_id: "unknown".into(),
                failures: [("gate-failed".to_string(), 1), ("initrd".to_string(), 1)].into(),
            }],
            ..Counters::default()
        }
    );
    assert_eq!(read_history(t.path()).len(), 7);
}

#[test]
fn failures_by_version_keep_only_the_newest_versions() {
    let mut c = Counters::default();
    let mut fail = |event: Event, version: &str| {
        let mut r = Record::new(event, Verdict::Rollback);
        r.version_id = Some(version.into());
        c.count(&r);
    };
    for i in 0..VERSIONS_KEPT + 3 {
        fail(Event::GateFailed, &format!("1.{i}"));
    }
    fail(Event::Deadline, "1.3");
    fail(Event::GateFailed, "1.3");
    assert_eq!(c.failed_first_boots, VERSIONS_KEPT as u64 + 5);
    assert_eq!(c.versions.len(), VERSIONS_KEPT);
    // the newest failure is last, the oldest versions fell off
    let last = c.versions.last().unwrap();
    assert_eq!(last.version_id, "1.3");
    assert_eq!(
        last.failures,
        [("deadline".to_string(), 1), ("gate-failed".to_string(), 2)].into()
    );
    assert!(!c.versions.iter().any(|v| v.version_id == "1.0"));
}

#[test]
fn totals_ride_in_the_history() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join(HISTORY_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    // an older version's state: history lines without totals, totals in their own file
    std::fs::write(dir.join(HISTORY_FILE), "{\"event\":\"initrd\"}\n").unwrap();
    std::fs::write(dir.join(COUNTERS_FILE), r#"{"boots":7,"rollbacks":2}"#).unwrap();
    let boot = Record::new(Event::Initrd, Verdict::Healthy);
    record_event(t.path(), &boot).unwrap();
    assert_eq!(
        (
            read_counters(t.path()).boots,
            read_counters(t.path()).rollbacks
        ),
        (8, 2)
    );
    assert!(
        !dir.join(COUNTERS_FILE).exists(),
        "the old file would only go stale"
    );
    // a report that is not counted carries the totals over
    append_history(t.path(), &serde_json::json!({ "event": "verify-failed" })).unwrap();
    assert_eq!(
        read_history(t.path()).last().unwrap().raw["totals"]["boots"],
        8
    );
    // a torn last line: the totals are the line before's, and counting goes on
    let f = dir.join(HISTORY_FILE);
    let mut text = std::fs::read(&f).unwrap();
    text.extend_from_slice(br#"{"event":"initrd","totals":{"boots":99"#);
    std::fs::write(&f, text).unwrap();
    assert_eq!(read_counters(t.path()).boots, 8);
    // through several rotations: nothing lost, nothing counted twice
    for _ in 0..3 * HISTORY_MAX {
        record_event(t.path(), &boot).unwrap();
    }
    assert_eq!(read_counters(t.path()).boots, 8 + 3 * HISTORY_MAX as u64);
    // these lines are long enough that the file outgrows TAIL: rotation still counts them
    let lines = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .lines()
            .count()
    };
    assert!(std::fs::metadata(dir.join(HISTORY_OLD)).unwrap().len() > 2 * TAIL);
    assert_eq!(lines(HISTORY_OLD), HISTORY_MAX);
    assert!(lines(HISTORY_FILE) <= HISTORY_MAX);
    // more than TAIL bytes of junk after the last good line: the whole file is read
    let mut text = std::fs::read(&f).unwrap();
    text.extend(std::iter::repeat_n(b'x', 2 * TAIL as usize));
    std::fs::write(&f, text).unwrap();
    assert_eq!(read_counters(t.path()).boots, 8 + 3 * HISTORY_MAX as u64);
}

#[test]
fn history_is_bounded_and_skips_junk() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join(HISTORY_DIR);
    for i in 0..HISTORY_MAX + 7 {
        append_history(t.path(), &serde_json::json!({ "n": i })).unwrap();
    }
    let h = read_history(t.path());
    assert_eq!(h.len(), HISTORY_MAX);
    assert_eq!(h[0].raw["n"], 7);
    assert_eq!(h[HISTORY_MAX - 1].raw["n"], HISTORY_MAX + 6);
    // rotated once: the full file moved aside, the current one holds the rest
    let lines = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!((lines(HISTORY_OLD), lines(HISTORY_FILE)), (HISTORY_MAX, 7));
    // never more than 2 × HISTORY_MAX lines on disk
    for i in 0..3 * HISTORY_MAX {
        append_history(t.path(), &serde_json::json!({ "m": i })).unwrap();
        assert!(lines(HISTORY_OLD) + lines(HISTORY_FILE) <= 2 * HISTORY_MAX);
    }
    let h = read_history(t.path());
    assert_eq!(h.len(), HISTORY_MAX);
    assert_eq!(h[HISTORY_MAX - 1].raw["m"], 3 * HISTORY_MAX - 1);
}

#[test]
fn torn_append_costs_one_line_only() {
    let t = tempfile::tempdir().unwrap();
    append_history(t.path(), &serde_json::json!({ "n": 1 })).unwrap();
    // a power cut tore the second append: half a line, no newline
    let f = t.path().join(HISTORY_DIR).join(HISTORY_FILE);
    let mut text = std::fs::read(&f).unwrap();
    text.extend_from_slice(br#"{"n": 2, "verd"#);
    std::fs::write(&f, text).unwrap();
    append_history(t.path(), &serde_json::json!({ "n": 3 })).unwrap();
    let ns: Vec<_> = read_history(t.path())
        .iter()
        .map(|v| v.raw["n"].clone())
        .collect();
    assert_eq!(ns, [1, 3]);
}

#[test]
fn torn_multibyte_character_costs_one_line_only() {
    let t = tempfile::tempdir().unwrap();
    append_history(
        t.path(),
        &serde_json::json!({ "n": 1, "unit": "café.service" }),
    )
    .unwrap();
    // the tear falls between the two bytes of "é" (C3 A9): the file is not UTF-8
    let f = t.path().join(HISTORY_DIR).join(HISTORY_FILE);
    let mut text = std::fs::read(&f).unwrap();
    text.extend_from_slice(b"{\"n\": 2, \"unit\": \"caf\xc3");
    std::fs::write(&f, text).unwrap();
    let ns: Vec<_> = read_history(t.path())
        .iter()
        .map(|v| v.raw["n"].clone())
        .collect();
    assert_eq!(ns, [1]);
}

#[test]
fn history_through_a_symlink_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join(HISTORY_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    let victim = t.path().join("victim");
    std::fs::write(&victim, "keep\n").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join(HISTORY_FILE)).unwrap();
    let e = append_history(t.path(), &serde_json::json!({ "n": 1 })).unwrap_err();
    assert!(format!("{e:#}").contains("symlink"), "{e:#}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
}
