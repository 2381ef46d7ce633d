//! Manual slot changes (`stage`, `mark-good`, `rollback`, `next`) on a disk whose
//! history is known land in the history: the verb, the attributes before and after.
//! A manual rollback counts as a rollback, never as a failed first boot.
mod common;
use common::*;

#[test]
fn manual_changes_are_recorded_with_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy(dir.path(), "d.img");
    let m = FakeMachine::new(&img);
    // booted from A, the good slot
    let h = sample().var("USR_A_ROOTHASH");
    m.boot(3, &verity_cmdline(A_UUID, &h), "V", &h);
    m.verb(&["stage", "--partition", "4"]);
    m.verb(&["next"]);
    m.verb(&["mark-good", "--partition", "4"]);
    m.verb(&["rollback", "--partition", "3"]);
    let hist = m.history();
    let events: Vec<_> = hist.iter().map(|h| h["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "manual-stage",
            "manual-next",
            "manual-mark-good",
            "manual-rollback"
        ]
    );
    let stage = &hist[0];
    assert_eq!(stage["verdict"], "manual");
    assert_eq!(stage["before"][1]["priority"], 0);
    assert_eq!(stage["slots"][1]["priority"], 2);
    assert_eq!(stage["slots"][1]["tries"], 1);
    assert!(
        stage["actions"][0]
            .as_str()
            .unwrap()
            .contains("USR-B (partition 4)"),
        "{stage}"
    );
    assert_eq!(hist[1]["before"][1]["tries"], 1);
    assert_eq!(hist[1]["slots"][1]["tries"], 0);
    let totals = &hist[3]["totals"];
    assert_eq!(totals["rollbacks"], 1, "{totals}");
    assert_eq!(totals["failed_first_boots"], 0, "{totals}");
    assert_eq!(hist[2]["totals"]["rollbacks"], 0);
    // nothing changed, nothing recorded
    m.verb(&["rollback", "--partition", "3"]);
    assert_eq!(m.history().len(), 4);
    // the metrics: one rollback; the last verdict is still no manual event's
    let o = m.verb(&["status", "--prometheus"]);
    let text = stdout(&o);
    assert!(text.contains("abguard_rollbacks_total 1"), "{text}");
    assert!(!text.contains("verdict=\"manual\"} 1"), "{text}");
}

#[test]
fn an_image_with_a_sysroot_records_but_dry_runs_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let img = copy(dir.path(), "d.img");
    let root = tempfile::tempdir().unwrap();
    let (d, r) = (img.to_str().unwrap(), root.path().to_str().unwrap());
    assert!(
        abguard(&["stage", "--disk", d, "--partition", "4", "--sysroot", r])
            .status
            .success()
    );
    assert!(abguard(&["next", "--dry-run", "--disk", d, "--sysroot", r])
        .status
        .success());
    let text = std::fs::read_to_string(root.path().join("var/lib/abguard/attempts.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("\"event\":\"manual-stage\""), "{text}");
}
