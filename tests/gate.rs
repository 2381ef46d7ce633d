//! The booted system's gate and the initrd emergency path on fake machines: they act
//! only on an unproven first boot after an upgrade, and never spend the last good slot.

mod common;
use common::*;

struct Booted {
    _dir: tempfile::TempDir,
    img: std::path::PathBuf,
    m: FakeMachine,
}

/// A machine that booted B for the first time after staging (initrd said so).
/// No critical units and STABLE_FOR=0 (vendor defaults), so `gate-pass` decides at once.
fn first_boot_of_b() -> Booted {
    let dir = tempfile::tempdir().unwrap();
    let img = staged_and_booted_b(dir.path());
    let m = machine_on_first_boot_of_b(&img);
    assert_eq!(json(&m.initrd(&[]))["verdict"], "needs-health-check");
    let vendor = m.p("sysroot/usr/lib/abguard");
    std::fs::create_dir_all(&vendor).unwrap();
    std::fs::write(vendor.join("abguard.conf"), "STABLE_FOR=0\n").unwrap();
    Booted { _dir: dir, img, m }
}

fn gate(b: &Booted, verb: &[&str]) -> std::process::Output {
    b.m.verb(verb)
}

fn config(b: &Booted, text: &str) {
    let d = b.m.p("sysroot/etc/abguard");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("abguard.conf"), text).unwrap();
}

#[test]
fn a_failed_critical_unit_spends_the_new_slot() {
    let b = first_boot_of_b();
    config(&b, "CRITICAL_UNITS=nginx.service\n");
    gate(&b, &["gate-fail", "--unit", "nginx.service", "--no-reboot"]);
    assert_eq!(cgpt_attrs(&b.img, 4), (2, 0, false, 0x2));
    assert_eq!(
        stdout(&abguard(&[
            "next",
            "--disk",
            b.img.to_str().unwrap(),
            "--dry-run"
        ]))
        .trim(),
        "3"
    );
    let last = b.m.history().pop().unwrap();
    assert_eq!(last["event"], "gate-failed");
    assert_eq!(last["verdict"], "rollback");
    assert!(
        last["reasons"].to_string().contains("nginx.service failed"),
        "{last}"
    );
    assert!(
        last["failed_units"].to_string().contains("nginx.service"),
        "{last}"
    );
}

#[test]
fn the_deadline_spends_the_new_slot() {
    let b = first_boot_of_b();
    gate(&b, &["gate-fail", "--no-reboot"]);
    assert_eq!(cgpt_attrs(&b.img, 4).1, 0);
    let last = b.m.history().pop().unwrap();
    assert_eq!(last["event"], "deadline");
    assert!(
        last["reasons"].to_string().contains("deadline passed"),
        "{last}"
    );
}

#[test]
fn nothing_happens_on_a_normal_boot() {
    let b = first_boot_of_b();
    // the gate already passed
    gate(&b, &["gate-pass"]);
    let before = sha(&b.img);
    gate(&b, &["gate-fail", "--unit", "nginx.service", "--no-reboot"]);
    assert!(sha(&b.img) == before);
    // no marker at all (the initrd said healthy)
    let b = first_boot_of_b();
    std::fs::remove_file(b.m.p("run/abguard/needs-health-check")).unwrap();
    let before = sha(&b.img);
    gate(&b, &["gate-fail", "--no-reboot"]);
    assert!(sha(&b.img) == before);
    // a stale marker, but the disk says B is good already: trust the disk
    let b = first_boot_of_b();
    assert!(abguard(&[
        "mark-good",
        "--disk",
        b.img.to_str().unwrap(),
        "--partition",
        "4"
    ])
    .status
    .success());
    let before = sha(&b.img);
    gate(&b, &["gate-fail", "--no-reboot"]);
    assert!(sha(&b.img) == before);
    assert!(b.m.history().pop().unwrap()["reasons"]
        .to_string()
        .contains("not on its first boot"));
}

#[test]
fn report_policy_and_last_slot_never_write() {
    let b = first_boot_of_b();
    config(&b, "ON_FAILURE=report\n");
    let before = sha(&b.img);
    gate(&b, &["gate-fail", "--no-reboot"]);
    assert!(sha(&b.img) == before);
    assert_eq!(b.m.history().pop().unwrap()["verdict"], "report");

    let b = first_boot_of_b();
    cgpt_add(&b.img, 3, 1, 0, false); // A no longer bootable: B is all there is
    let before = sha(&b.img);
    gate(&b, &["gate-fail", "--no-reboot"]);
    assert!(sha(&b.img) == before);
    let last = b.m.history().pop().unwrap();
    assert!(
        last["reasons"]
            .to_string()
            .contains("no other USR partition would be bootable"),
        "{last}"
    );
}

#[test]
fn gate_pass_flags_and_optional_mark_good() {
    let b = first_boot_of_b();
    gate(&b, &["gate-pass"]);
    assert!(b.m.p("run/first-boot-healthy").exists());
    assert!(!b.m.p("run/abguard/needs-health-check").exists());
    assert_eq!(
        cgpt_attrs(&b.img, 4),
        (2, 0, false, 0x2),
        "update-engine marks good, not us"
    );
    assert_eq!(b.m.history().pop().unwrap()["event"], "gate-passed");

    let b = first_boot_of_b();
    config(&b, "MARK_GOOD=yes\n");
    gate(&b, &["gate-pass"]);
    assert_eq!(cgpt_attrs(&b.img, 4), (2, 0, true, 0x102));
    let last = b.m.history().pop().unwrap();
    assert!(
        last["actions"].to_string().contains("marked USR-B good"),
        "{last}"
    );
}

#[test]
fn emergency_rolls_back_only_a_first_boot_even_without_usr() {
    let b = first_boot_of_b();
    // /usr never got mounted, and no --disk: the disk is found by the PARTUUID
    std::fs::write(b.m.p("mountinfo"), "").unwrap();
    std::fs::create_dir_all(b.m.p("dev")).unwrap();
    std::os::unix::fs::symlink(&b.img, b.m.p("dev/vda")).unwrap();
    let s = |r: &str| b.m.p(r).to_str().unwrap().to_string();
    let args = [
        "emergency".to_string(),
        "--no-reboot".into(),
        "--cmdline".into(),
        s("cmdline"),
        "--sysfs".into(),
        s("sys"),
        "--dev".into(),
        s("dev"),
        "--mountinfo".into(),
        s("mountinfo"),
        "--run-dir".into(),
        s("run"),
        "--sysroot".into(),
        s("sysroot"),
    ];
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = abguard(&refs);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(cgpt_attrs(&b.img, 4), (2, 0, false, 0x2));
    assert!(b.m.p("run/abguard/emergency.json").exists());
    // a second emergency (now A is what GRUB picks; B is no first boot) does nothing
    let before = sha(&b.img);
    std::fs::write(b.m.p("cmdline"), verity_cmdline(A_UUID, "00")).unwrap();
    assert!(abguard(&refs).status.success());
    assert!(sha(&b.img) == before);
}
