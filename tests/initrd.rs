//! The initrd assessment end to end on disk images and fake machines: flags, record,
//! history, the rollback write, and the refusals that keep a boot going.

mod common;
use common::*;

struct Case {
    _dir: tempfile::TempDir,
    img: std::path::PathBuf,
    m: FakeMachine,
    a_hash: String,
    b_hash: String,
}

/// B staged and booted by GRUB (its try spent), or the fresh image when `staged` is false.
fn case(staged: bool) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let img = if staged {
        staged_and_booted_b(dir.path())
    } else {
        copy(dir.path(), "d.img")
    };
    let m = FakeMachine::new(&img);
    Case {
        _dir: dir,
        img,
        m,
        a_hash: sample().var("USR_A_ROOTHASH"),
        b_hash: sample().var("USR_B_ROOTHASH"),
    }
}

fn verdict(o: &std::process::Output) -> String {
    assert!(o.status.success(), "initrd failed: {}", stderr(o));
    json(o)["verdict"].as_str().unwrap().to_string()
}

#[test]
fn plain_boot_of_a_is_healthy() {
    let c = case(false);
    c.m.boot(3, &verity_cmdline(A_UUID, &c.a_hash), "V", &c.a_hash);
    c.m.os_release("1.0.0");
    let before = sha(&c.img);
    let o = c.m.initrd(&[]);
    assert_eq!(verdict(&o), "healthy");
    let j = json(&o);
    assert_eq!(j["booted"]["partition"], 3);
    assert_eq!(j["booted"]["source"], "cmdline+sysfs");
    assert_eq!(j["version_id"], "1.0.0");
    assert_eq!(j["verity"]["status"], "V");
    assert_eq!(j["first_boot_after_upgrade"], false);
    assert!(c.m.p("run/first-boot-healthy").exists());
    assert!(!c.m.p("run/abguard/needs-health-check").exists());
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.m.p("run/abguard/boot.json")).unwrap()).unwrap();
    assert_eq!(rec["verdict"], "healthy");
    assert_eq!(c.m.history().len(), 1);
    assert!(
        sha(&c.img) == before,
        "a healthy boot writes nothing to the disk"
    );
}

/// The record's uptime and boot ID come from the probe's `--proc`, never from the host's
/// /proc behind the fake machine's back.
#[test]
fn the_record_is_stamped_from_the_given_proc() {
    let c = case(false);
    c.m.boot(3, &verity_cmdline(A_UUID, &c.a_hash), "V", &c.a_hash);
    c.m.os_release("1.0.0");
    std::fs::create_dir_all(c.m.p("proc/sys/kernel/random")).unwrap();
    std::fs::write(c.m.p("proc/uptime"), "123.45 200.00\n").unwrap();
    std::fs::write(c.m.p("proc/sys/kernel/random/boot_id"), "fake-boot-id\n").unwrap();
    let o = c.m.initrd(&[]);
    assert_eq!(verdict(&o), "healthy");
    let h = c.m.history();
    assert_eq!(h[0]["boot_id"], "fake-boot-id", "{}", h[0]);
    assert_eq!(h[0]["uptime_s"], 123.45);
    // a fake machine without one: no stamp rather than the host's
    std::fs::remove_dir_all(c.m.p("proc")).unwrap();
    let o = c.m.initrd(&[]);
    assert_eq!(verdict(&o), "healthy");
    let h = c.m.history();
    assert!(h[1].get("boot_id").is_none_or(|v| v.is_null()), "{}", h[1]);
}

#[test]
fn first_boot_of_b_needs_a_health_check() {
    let c = case(true);
    c.m.boot(4, &verity_cmdline(B_UUID, &c.b_hash), "V", &c.b_hash);
    c.m.os_release("2.0.0");
    let o = c.m.initrd(&[]);
    assert_eq!(verdict(&o), "needs-health-check");
    assert_eq!(json(&o)["first_boot_after_upgrade"], true);
    assert!(!c.m.p("run/first-boot-healthy").exists());
    let marker = std::fs::read_to_string(c.m.p("run/abguard/needs-health-check")).unwrap();
    assert!(marker.starts_with("4 e03dd35c"), "{marker}");
    // running again (e.g. a restarted unit) gives the same state
    assert_eq!(verdict(&c.m.initrd(&[])), "needs-health-check");
    assert!(!c.m.p("run/first-boot-healthy").exists());
    assert_eq!(c.m.history().len(), 2);
}

#[test]
fn bad_verity_on_first_boot_spends_the_slot() {
    for (status, hash_of_table) in [("C", true), ("V", false)] {
        let c = case(true);
        let table_hash = if hash_of_table {
            c.b_hash.clone()
        } else {
            "00".repeat(32)
        };
        c.m.boot(4, &verity_cmdline(B_UUID, &c.b_hash), status, &table_hash);
        let o = c.m.initrd(&[]);
        assert_eq!(verdict(&o), "rollback", "{status}");
        let j = json(&o);
        assert!(j["actions"].to_string().contains("spent USR-B"), "{j}");
        assert_eq!(cgpt_attrs(&c.img, 4), (2, 0, false, 0x2));
        assert_eq!(cgpt_attrs(&c.img, 3), (1, 0, true, 0x101));
        assert_eq!(
            stdout(&abguard(&[
                "next",
                "--disk",
                c.img.to_str().unwrap(),
                "--dry-run"
            ]))
            .trim(),
            "3"
        );
        assert!(!c.m.p("run/first-boot-healthy").exists());
        assert_eq!(c.m.history()[0]["verdict"], "rollback");
    }
}

#[test]
fn bad_verity_on_a_normal_boot_is_reported_only() {
    let c = case(false);
    c.m.boot(3, &verity_cmdline(A_UUID, &c.a_hash), "C", &c.a_hash);
    let before = sha(&c.img);
    let o = c.m.initrd(&[]);
    assert_eq!(verdict(&o), "healthy");
    assert!(json(&o)["reasons"].to_string().contains("reported only"));
    assert!(sha(&c.img) == before);
    assert!(c.m.p("run/first-boot-healthy").exists());
}

#[test]
fn disagreeing_sources_are_a_mismatch() {
    let c = case(true);
    // the command line says A, but /usr sits on vda4
    c.m.boot(4, &verity_cmdline(A_UUID, &c.a_hash), "V", &c.a_hash);
    let before = sha(&c.img);
    let o = c.m.initrd(&[]);
    assert_eq!(verdict(&o), "mismatch");
    assert!(c.m.p("run/first-boot-healthy").exists());
    let why = std::fs::read_to_string(c.m.p("run/abguard/indeterminate")).unwrap();
    assert!(
        why.contains("partition 3") && why.contains("partition 4"),
        "{why}"
    );
    assert!(sha(&c.img) == before);
}

#[test]
fn indeterminate_inputs_never_block_the_boot() {
    // (what breaks, how)
    type Breaker = Box<dyn Fn(&Case)>;
    let cases: Vec<(&str, Breaker)> = vec![
        (
            "unreadable GPT",
            Box::new(|c: &Case| {
                run_ok(
                    repo().join("images/corrupt.sh").to_str().unwrap(),
                    &[c.img.to_str().unwrap(), "both-headers"],
                );
            }),
        ),
        (
            "no cmdline and no sysfs",
            Box::new(|c: &Case| {
                std::fs::remove_file(c.m.p("cmdline")).unwrap();
                std::fs::remove_dir_all(c.m.p("sys")).unwrap();
            }),
        ),
        (
            "odd cmdline and no /usr mount",
            Box::new(|c: &Case| {
                std::fs::write(c.m.p("cmdline"), "verity.usr=LABEL=whatever").unwrap();
                std::fs::write(c.m.p("mountinfo"), "").unwrap();
            }),
        ),
        (
            "PARTUUID of no USR slot",
            Box::new(|c: &Case| {
                std::fs::write(
                    c.m.p("cmdline"),
                    "verity.usr=PARTUUID=00000000-0000-0000-0000-000000000000",
                )
                .unwrap();
                std::fs::write(c.m.p("mountinfo"), "").unwrap();
            }),
        ),
    ];
    for (what, breakit) in cases {
        let c = case(true);
        c.m.boot(4, &verity_cmdline(B_UUID, &c.b_hash), "C", &c.b_hash);
        breakit(&c);
        let before = sha(&c.img);
        let o = c.m.initrd(&[]);
        assert_eq!(verdict(&o), "indeterminate", "{what}: {}", stdout(&o));
        assert!(c.m.p("run/first-boot-healthy").exists(), "{what}");
        assert!(c.m.p("run/abguard/indeterminate").exists(), "{what}");
        assert!(sha(&c.img) == before, "{what}: wrote to the disk");
    }
}

#[test]
fn one_source_is_enough_and_says_so() {
    let c = case(true);
    c.m.boot(4, &verity_cmdline(B_UUID, &c.b_hash), "V", &c.b_hash);
    std::fs::remove_file(c.m.p("cmdline")).unwrap();
    let o = c.m.initrd(&[]);
    assert_eq!(verdict(&o), "needs-health-check");
    assert_eq!(json(&o)["booted"]["source"], "sysfs");
}

#[test]
fn symlinks_in_run_are_refused() {
    let c = case(false);
    c.m.boot(3, &verity_cmdline(A_UUID, &c.a_hash), "V", &c.a_hash);
    let victim = c.m.p("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::os::unix::fs::symlink(&victim, c.m.p("run/first-boot-healthy")).unwrap();
    let o = c.m.initrd(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("symlink"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");

    let c = case(false);
    c.m.boot(3, &verity_cmdline(A_UUID, &c.a_hash), "V", &c.a_hash);
    let elsewhere = c.m.p("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, c.m.p("run/abguard")).unwrap();
    let o = c.m.initrd(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("symlink"), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn read_only_run_is_an_error_not_a_crash() {
    let c = case(false);
    c.m.boot(3, &verity_cmdline(A_UUID, &c.a_hash), "V", &c.a_hash);
    let run = c.m.p("run");
    let root =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(c.m.p("cmdline")).unwrap()) == 0;
    if root {
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs"])
            .arg(&run)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a read-only tmpfs");
    } else {
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o555))
            .unwrap();
    }
    let o = c.m.initrd(&[]);
    if root {
        let _ = std::process::Command::new("umount").arg(&run).status();
    }
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("run") && (e.contains("Read-only") || e.contains("denied")),
        "{e}"
    );
    // the verdict was still reached and recorded in the history
    assert_eq!(c.m.history()[0]["verdict"], "healthy");
}
